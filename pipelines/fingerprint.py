"""Fingerprints of inputs, parameters and code: what decides whether a stage must run again.

Code fingerprints are computed, not listed: a stage's code is its function, the functions of the
same module it calls, and every project module those use, followed through their imports. Any edit
to any of these files changes the stage's key, so a rerun after an upgrade never reuses results of
the old code.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import hashlib
import inspect
import json
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

#: The folder holding the project's packages; code outside it (numpy, pandas …) is pinned by versions.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("coverage", "pipelines")


def file_fingerprint(path: Path) -> dict[str, Any]:
    """Name, size and SHA-256 of a file's content (what ``sha256sum FILE`` prints), or of a folder's files
    (bundles, partitioned datasets): then the SHA-256 of their ``sha256sum`` lines (hash, two spaces,
    path relative to the folder), sorted by path as ``LC_ALL=C sort`` does, i.e. what
    ``(cd DIR && find . -type f | sed 's|^./||' | LC_ALL=C sort | xargs -d '\\n' sha256sum) | sha256sum`` prints.

    ``stamp`` (sizes and modification times) lets the runner notice a file replaced during the run.
    A missing path gets ``{"missing": true}``: the stage that reads it reports the error properly.
    """
    path = Path(path)
    if not path.exists():
        return {"path": str(path), "name": path.name, "missing": True}
    if path.is_dir():
        files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())
        lines = "".join(f"{_sha256(f)}  {f.relative_to(path).as_posix()}\n" for f in files)
        digest = hashlib.sha256(lines.encode()).hexdigest()
    else:
        files = [path]
        digest = _sha256(path)
    return {"path": str(path), "name": path.name, "bytes": sum(f.stat().st_size for f in files), "sha256": digest,
            "files": len(files), "stamp": input_stamp(path)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def input_stamp(path: Path) -> str:
    """A short digest of the sizes and modification times (ns) of a file or of a folder's files."""
    path = Path(path)
    if not path.exists():
        return "missing"
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stats = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]


def _plain(value: object) -> object:
    """JSON-able form of config values (dataclasses, enums, paths, tuples, mappings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if hasattr(value, "items"):  # mappingproxy and other read-only mappings
        return _plain(dict(value.items()))
    if isinstance(value, set | frozenset):  # in a stable order: set order changes from process to process
        return sorted((_plain(v) for v in value), key=str)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def params_hash(params: object) -> str:
    return hashlib.sha256(json.dumps(_plain(params), sort_keys=True, default=str).encode()).hexdigest()


def _is_project(module: str) -> bool:
    return module.split(".")[0] in PROJECT_PACKAGES


def module_file(module: str, root: Path) -> Path | None:
    """The source file of a project module below ``root`` (a package's ``__init__.py``), if any."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _statements(nodes: Iterable[ast.AST]) -> Iterable[ast.AST]:
    """Every statement, nested ones too (imports inside functions, ``try`` and ``if`` blocks), without
    visiting expressions: a third of the time of ``ast.walk``."""
    for node in nodes:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            yield from _statements(getattr(node, field, None) or ())


def _imports(module: str, source: str) -> set[str]:
    """Project modules a module imports anywhere (top level or inside functions), resolved."""
    found: set[str] = set()
    package = module if module.endswith("__init__") else module.rpartition(".")[0]
    for node in _statements(ast.parse(source).body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # may name submodules
    return {m for m in found if _is_project(m)}


#: Per module: its file's SHA-256 and the project modules it imports (see :func:`import_closure`).
ModuleIndex = dict[str, tuple[str, set[str]]]


def import_closure(modules: Iterable[str], root: Path, index: ModuleIndex | None = None) -> dict[str, str]:
    """Every project module reachable from ``modules`` through imports, with its file's SHA-256.

    Packages count with their ``__init__``: importing ``coverage.report.maps`` runs
    ``coverage/__init__.py`` and ``coverage/report/__init__.py`` first. ``index`` (filled as modules are
    read) lets the stages of one plan share the reading and parsing of the modules they have in common.
    """
    index = {} if index is None else index
    todo = list(modules)
    hashes: dict[str, str] = {}
    while todo:
        name = todo.pop()
        if name in hashes or not _is_project(name):
            continue
        if name not in index:
            path = module_file(name, root)
            if path is None:  # a name imported from a module, not a module of its own
                continue
            data = path.read_bytes()
            index[name] = (hashlib.sha256(data).hexdigest(), _imports(name, data.decode("utf-8")))
        digest, imported = index[name]
        hashes[name] = digest
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo += [*parents, *imported]
    return dict(sorted(hashes.items()))


def _code_objects(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _literal(value: object) -> str | None:
    """A canonical text of plain data (sets sorted), or None for other objects (loggers, frames …)
    whose ``repr`` carries addresses or state rather than a value."""
    if value is None or isinstance(value, str | int | float | bool | bytes):
        return repr(value)
    if isinstance(value, tuple | list | frozenset | set):
        items = [_literal(v) for v in value]
        if any(i is None for i in items):
            return None
        texts = [i for i in items if i is not None]
        return f"{type(value).__name__}({sorted(texts) if isinstance(value, set | frozenset) else texts})"
    if isinstance(value, dict):
        pairs = [(_literal(k), _literal(v)) for k, v in value.items()]
        return None if any(k is None or v is None for k, v in pairs) else f"dict({sorted(pairs)})"
    return None


def code_closure(fn: Callable[..., Any]) -> tuple[list[str], set[str]]:
    """The sources of ``fn`` and of the same-module functions it calls, and the other project modules
    it uses (by the global names its code refers to). Same-module helpers count by their source,
    not by their whole module, so editing one stage does not rerun the others."""
    home = fn.__module__
    sources: list[str] = []
    modules: set[str] = set()
    seen: set[Callable[..., Any]] = set()
    todo = [fn]
    while todo:
        f = inspect.unwrap(todo.pop())
        if f in seen:
            continue
        seen.add(f)
        sources.append(inspect.getsource(f))
        names = {n for code in _code_objects(f.__code__) for n in code.co_names}
        for name in sorted(names):
            if name not in f.__globals__:
                continue  # a builtin or an attribute name
            value = f.__globals__[name]
            if isinstance(value, types.ModuleType):
                if _is_project(value.__name__):
                    modules.add(value.__name__)
                continue
            owner = getattr(value, "__module__", None) if callable(value) else None
            if owner is None:  # a constant (of this module, or imported): its value counts
                text = _literal(value)
                if text is not None:
                    sources.append(f"{name} = {text}")
            elif not _is_project(owner):
                continue
            elif owner == home and isinstance(value, types.FunctionType):
                todo.append(value)
            elif owner == home and isinstance(value, type):
                sources.append(inspect.getsource(value))
            else:
                modules.add(owner)
    return sources, modules


def code_key(fn: Callable[..., Any], root: Path | None = None, index: ModuleIndex | None = None) -> str:
    """One hash over a stage function's code closure (see :func:`code_closure`), its module files
    read below ``root`` (default: :data:`PROJECT_ROOT`); ``index`` as for :func:`import_closure`."""
    sources, modules = code_closure(fn)
    closure = import_closure(modules, root or PROJECT_ROOT, index)
    payload = {"functions": sorted(sources), "modules": closure}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def stage_key(name: str, inputs: Iterable[dict[str, Any]], params: object, code: str,
              upstream: Iterable[str]) -> str:
    """One hash over everything a stage's result depends on."""
    payload = {"stage": name, "inputs": [[i.get("name"), i.get("sha256", "missing")] for i in inputs],
               "params": params_hash(params), "code": code, "upstream": list(upstream)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
