"""Atomic output writing and spreadsheet-safe exports.

Every file is written to a temporary name in the same folder and renamed into
place, so a crashed run never leaves a half-written file. Whole run folders
are built under a hidden ``.partial`` name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; rename it onto ``path`` only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real extension last: GDAL picks drivers and checks conformance by it.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.chmod(0o666 & ~_umask())  # mkstemp makes 0600; outputs are meant to be shared and served
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def write_bytes(path: Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: object) -> Path:
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would execute (``=``, ``+``, ``-``, ``@``) with ``'``."""
    out = frame.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_string_dtype(s) and not pd.api.types.is_object_dtype(s):
            is_text = s.notna().to_numpy()  # a string column: every value is text or missing
        elif pd.api.types.is_object_dtype(s):
            is_text = np.fromiter((isinstance(v, str) for v in s), dtype=bool, count=len(s))
        else:
            continue  # numbers stay numbers (a negative number is not a formula)
        text = s.astype("string")
        risky = text.str.startswith(FORMULA_PREFIXES).fillna(False).to_numpy() & is_text
        if risky.any():
            out[col] = s.where(~risky, "'" + text)
    return out


def write_csv(path: Path, frame: pd.DataFrame, *, german: bool = False) -> Path:
    """CSV for machines (UTF-8, ``,``, ``.``) or for German Excel (BOM, ``;``, decimal comma)."""
    safe = neutralise_formulas(frame)
    with atomic_path(path) as tmp:
        if german:
            safe.to_csv(tmp, index=False, sep=";", decimal=",", encoding="utf-8-sig")
        else:
            safe.to_csv(tmp, index=False, encoding="utf-8")
    return path


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


def point_symlink(link: Path, target: Path) -> None:
    """Atomically (re)point ``link`` at ``target`` (relative link, so the tree can move)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.parent / f".{link.name}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)
