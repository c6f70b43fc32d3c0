"""Fingerprints of inputs, parameters and code: what decides whether a stage must run again."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path


def file_fingerprint(path: Path) -> dict:
    """Size and SHA-256 of a file, or of every file below a folder (bundles, partitioned datasets).

    A missing path gets ``{"missing": true}``: the stage that reads it reports the error properly.
    """
    path = Path(path)
    if not path.exists():
        return {"path": str(path), "missing": True}
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    size = 0
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with f.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
        size += f.stat().st_size
    return {"path": str(path), "bytes": size, "sha256": digest.hexdigest(), "files": len(files)}


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
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def params_hash(params: object) -> str:
    return hashlib.sha256(json.dumps(_plain(params), sort_keys=True, default=str).encode()).hexdigest()


@cache
def module_hash(name: str) -> str:
    """SHA-256 of a module's source file ('' for modules that do not exist yet)."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError:
        return ""
    source = Path(module.__file__ or "")
    return hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else ""


def stage_key(name: str, inputs: Iterable[dict], params: object, modules: Iterable[str],
              upstream: Iterable[str]) -> str:
    """One hash over everything a stage's result depends on."""
    payload = {"stage": name, "inputs": [i.get("sha256", "missing") for i in inputs],
               "params": params_hash(params), "code": [module_hash(m) for m in modules],
               "upstream": list(upstream)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
