"""`python -m pipelines.precompile` (run by make at install) reaches every compiled kernel, so a first run in a
fresh clone finds them all in numba's on-disk cache instead of compiling them (issue 15)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def unreached() -> dict:
    """In a fresh process: run compile_kernels, then list the kernels it left without a compiled signature."""
    import coverage.membership
    import coverage.pip
    import coverage.service
    from pipelines.precompile import compile_kernels

    dispatcher = type(coverage.pip._locate_kernel)
    kernels = {f"{m.__name__}.{name}": f for m in (coverage.pip, coverage.service, coverage.membership)
               for name, f in vars(m).items() if isinstance(f, dispatcher)}
    compile_kernels()
    # helpers called only from other kernels are compiled into their callers, never on their own
    sources = {name: inspect.getsource(f.py_func) for name, f in kernels.items()}
    helpers = {name for name in kernels
               if any(f"{name.rsplit('.', 1)[1]}(" in src for other, src in sources.items() if other != name)}
    return {"kernels": sorted(kernels),
            "missing": sorted(name for name, f in kernels.items() if not f.signatures and name not in helpers),
            "uncached": sorted(name for name, f in kernels.items() if type(f._cache).__name__ != "FunctionCache")}


def test_every_kernel_is_compiled_and_cached():
    code = "import json, tests.test_precompile as t; print(json.dumps(t.unreached()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["kernels"]) >= 10  # the modules' njit functions were found at all
    assert not result["missing"], f"kernels not reached by pipelines.precompile: {result['missing']}"
    assert not result["uncached"], f"kernels without cache=True: {result['uncached']}"
