"""The library stays a library: no module under coverage/ imports the shell (`pipelines`) or the
demo-data generator (`demo`); both of those may import `coverage`, never the other way round."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[1] / "coverage"
FORBIDDEN = ("demo", "pipelines")


def forbidden_imports(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """(line, module) of every import of a :data:`FORBIDDEN` top-level package in ``source``.

    Covers ``import x[.y]``, ``from x[.y] import ...`` and ``importlib.import_module("x...")`` /
    ``__import__("x...")`` with a literal name. Relative imports stay inside ``coverage``.
    """
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        found += [(node.lineno, n) for n in names if n.split(".")[0] in FORBIDDEN]
    return sorted(found)


def library_modules() -> list[Path]:
    return sorted(LIBRARY.rglob("*.py"))


def test_the_checker_sees_every_import_form():
    source = (
        "import demo\n"
        "import pipelines.io as io\n"
        "from demo.addresses import largest_remainder\n"
        "def f():\n"
        "    from pipelines import synth\n"
        "    import importlib\n"
        "    importlib.import_module('demo.build_mv')\n"
        "    __import__('pipelines')\n"
    )
    assert [m for _, m in forbidden_imports(source)] == [
        "demo",
        "pipelines.io",
        "demo.addresses",
        "pipelines",
        "demo.build_mv",
        "pipelines",
    ]
    harmless = "import coverage.sources\nfrom . import demo\nfrom .pipelines import x\nimport demographics\n"
    assert forbidden_imports(harmless) == []


def test_library_has_modules_to_check():
    modules = library_modules()
    assert LIBRARY / "__init__.py" in modules
    assert LIBRARY / "sources" / "__init__.py" in modules
    assert not (LIBRARY / "synth").exists(), "the demo generator lives in demo/, not in the library"


@pytest.mark.parametrize("path", library_modules(), ids=lambda p: p.relative_to(LIBRARY).as_posix())
def test_library_module_imports_neither_demo_nor_pipelines(path):
    found = forbidden_imports(path.read_text(encoding="utf-8"), str(path))
    assert found == [], f"{path.relative_to(LIBRARY.parent)} imports {found} (line, module)"
