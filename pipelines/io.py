"""Atomic output writing and spreadsheet-safe exports.

Every file is written to a temporary name in the same folder and renamed into
place, so a crashed run never leaves a half-written file. Whole run folders
are built under a hidden ``.partial`` name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from coverage.text import document_series

log = logging.getLogger(__name__)

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: The most characters (UTF-16 code units) an Excel cell holds; longer text is cut and ends with CUT_MARKER.
EXCEL_CELL_CHARS = 32_767
CUT_MARKER = "…[gekürzt]"


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
    except Exception as exc:
        if _disk_full(exc):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def _disk_full(exc: Exception) -> bool:
    """Whether ``exc`` is a full disk that is not an OSError: GDAL's GeoPackage driver (pyogrio) reports
    it as SQLite's "database or disk is full". Raised as the OSError (ENOSPC) it is, a full disk is one
    line and exit 2 whichever file meets it first (the run's worker writes lists while this process
    writes the grid)."""
    return not isinstance(exc, OSError) and "database or disk is full" in str(exc)


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
        safe = _neutralised(out[col])
        if safe is not None:
            out[col] = safe
    return out


def _neutralised(s: pd.Series) -> pd.Series | None:
    """The column with risky text prefixed, or None when nothing needs it."""
    if isinstance(s.dtype, pd.CategoricalDtype):  # only the categories are text; renaming them is enough
        categories = pd.Series(s.cat.categories)
        safe = _neutralised(categories)
        if safe is None:
            return None
        if not safe.duplicated().any():
            return s.cat.rename_categories(safe.to_numpy())
        s = s.astype(object)  # "=x" and "'=x" both present: they become equal, categories cannot
    risky = _risky(s)
    return s.where(~risky, "'" + s.astype("string")) if risky is not None and risky.any() else None


_RISKY_FIRST = frozenset(FORMULA_PREFIXES)  # every prefix is one character
_RISKY_PATTERN = "^[" + "".join("\\" + c if c in "-\\]^" else c for c in FORMULA_PREFIXES) + "]"


def _risky(s: pd.Series) -> np.ndarray | None:
    """Per value, whether it is text starting with a formula prefix; None for a column of numbers (a
    negative number is not a formula). Arrow strings are tested by Arrow's regex kernel and Python
    objects by their first character: converting each column to pandas strings first cost most of the
    time of writing the per-Amt lists."""
    if pd.api.types.is_object_dtype(s):
        return np.fromiter((isinstance(v, str) and v[:1] in _RISKY_FIRST for v in s), dtype=bool, count=len(s))
    if not pd.api.types.is_string_dtype(s):
        return None
    if getattr(s.dtype, "storage", None) == "pyarrow":
        hit = pc.fill_null(pc.match_substring_regex(pa.array(s.array), _RISKY_PATTERN), False)
        return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
    return s.astype("string").str.startswith(FORMULA_PREFIXES).fillna(False).to_numpy(dtype=bool)


def spreadsheet_cells(frame: pd.DataFrame, sheet: str) -> pd.DataFrame:
    """``frame`` as the cells of an XLSX sheet may hold it: control characters escaped (the rule of
    :mod:`coverage.text`; openpyxl refuses them), formulas neutralised (:func:`neutralise_formulas`),
    and text longer than a cell (:data:`EXCEL_CELL_CHARS`) cut so that it ends with :data:`CUT_MARKER`,
    with a warning naming the sheet, the column and how many values were cut."""
    out = frame.copy()
    for j in range(out.shape[1]):
        escaped = document_series(out.iloc[:, j])
        if escaped is not None:
            out.isetitem(j, escaped)
    out = neutralise_formulas(out)
    for j, col in enumerate(out.columns):
        cut, n = _cut_long_text(out.iloc[:, j])
        if cut is not None:
            out.isetitem(j, cut)
            log.warning("sheet %s, column %s: %d text value(s) longer than %d characters cut, ending with %r",
                        sheet, col, n, EXCEL_CELL_CHARS, CUT_MARKER)
    return out


def _cut_long_text(s: pd.Series) -> tuple[pd.Series | None, int]:
    """The column with text longer than a cell cut (and the number cut), or (None, 0)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)  # rare; cut categories could coincide
    # A value of up to EXCEL_CELL_CHARS // 2 code points fits whatever it holds (each is 1 or 2 UTF-16 units).
    if pd.api.types.is_object_dtype(s):
        maybe = np.fromiter((isinstance(v, str) and len(v) > EXCEL_CELL_CHARS // 2 for v in s), bool, len(s))
    elif pd.api.types.is_string_dtype(s):
        maybe = s.str.len().gt(EXCEL_CELL_CHARS // 2).fillna(False).to_numpy(dtype=bool)
    else:
        return None, 0
    rows = [i for i in np.flatnonzero(maybe) if len(s.iloc[i].encode("utf-16-le")) > 2 * EXCEL_CELL_CHARS]
    if not rows:
        return None, 0
    room = 2 * (EXCEL_CELL_CHARS - len(CUT_MARKER))  # bytes of UTF-16; the marker is one unit per character
    out = s.copy()
    out.iloc[rows] = [s.iloc[i].encode("utf-16-le")[:room].decode("utf-16-le", errors="ignore") + CUT_MARKER
                      for i in rows]  # "ignore": a pair of surrogates cut in half is dropped whole
    return out, len(rows)


def write_csv(path: Path, frame: pd.DataFrame, *, german: bool = False) -> Path:
    """CSV for machines (UTF-8, ``,``, ``.``) or for German Excel (BOM, ``;``, decimal comma).

    Text is written as it is (control characters included, see :mod:`coverage.text`); every field
    holding a line break is quoted, so each value stays one field and each row one record.
    """
    safe = neutralise_formulas(frame)
    with atomic_path(path) as tmp:
        if german:
            safe.to_csv(tmp, index=False, sep=";", decimal=",", encoding="utf-8-sig", lineterminator=_line_end(safe))
        elif not _write_csv_arrow(safe, tmp):
            safe.to_csv(tmp, index=False, encoding="utf-8", lineterminator=_line_end(safe))
    return path


def write_csv_parts(frame: pd.DataFrame, key: str, path_of: Callable[[str], Path]) -> list[tuple[str, Path]]:
    """One machine CSV per value of column ``key`` (sorted; rows in frame order), as :func:`write_csv`
    writes each ``frame.groupby(key)`` part, but formulas are neutralised and the frame converted to
    Arrow once for all parts (the per-Amt lists: 116 parts of one 268,000-row frame for MV)."""
    safe = neutralise_formulas(frame)
    codes, values = pd.factorize(safe[key], sort=True)  # missing keys: -1, left out as groupby does
    order = np.argsort(codes, kind="stable")
    order = order[codes[order] >= 0]
    starts = np.searchsorted(codes[order], np.arange(len(values) + 1))
    try:
        table = pa.Table.from_pandas(safe.iloc[order], preserve_index=False)
        table = table.replace_schema_metadata(None)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError):
        table = None  # no Arrow form: each part as write_csv writes it
    written = []
    for k, value in enumerate(values):
        path = path_of(str(value))
        if table is None:
            write_csv(path, safe.iloc[order[starts[k]:starts[k + 1]]])
        else:
            with atomic_path(path) as tmp:
                pa_csv.write_csv(table.slice(starts[k], starts[k + 1] - starts[k]), tmp,
                                 pa_csv.WriteOptions(quoting_style="needed"))
        written.append((str(value), path))
    return written


def _line_end(frame: pd.DataFrame) -> str:
    """The line end for pandas' CSV writer: Python's csv module quotes a field that holds a character
    of the line terminator, so with "\n" a lone "\r" in a value would end the record for every reader.
    Only such data gets "\r\n" line ends (which quotes both); all other files keep "\n"."""
    return "\r\n" if _holds_text(frame, "\r") else "\n"


def _holds_text(frame: pd.DataFrame, char: str) -> bool:
    """Whether a text value (or column name) of ``frame`` contains ``char``."""
    if any(char in str(c) for c in frame.columns):
        return True
    for j in range(frame.shape[1]):
        s = frame.iloc[:, j]
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = pd.Series(s.cat.categories)
        if pd.api.types.is_object_dtype(s):
            if any(isinstance(v, str) and char in v for v in s):
                return True
        elif pd.api.types.is_string_dtype(s) and s.str.contains(char, regex=False, na=False).any():
            return True
    return False


def _write_csv_arrow(frame: pd.DataFrame, path: Path) -> bool:
    """The machine CSV through Arrow's writer (10-15x faster than pandas on the 11,000 x 300 Gemeinde
    table of Germany). Numbers are written shortest-exact (``45324``, not ``45324.0``), missing values
    as empty cells, booleans as ``true``/``false``. False when a column has no Arrow type or no CSV
    form (mixed objects, lists, repeated column names): the caller writes it with pandas instead."""
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if table.schema.metadata:
            table = table.replace_schema_metadata(None)
        pa_csv.write_csv(table, path, pa_csv.WriteOptions(quoting_style="needed"))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError):
        return False
    return True


def arrow_table(frame: pd.DataFrame | pa.Table) -> pa.Table:
    """A frame as an Arrow table (columns converted in parallel; numbers and Arrow strings without copies)."""
    if isinstance(frame, pa.Table):
        return frame
    return pa.Table.from_pandas(frame, preserve_index=False, nthreads=os.cpu_count() or 1)


def _uniform_dictionaries(table: pa.Table) -> pa.Table:
    """Categorical columns with int32 dictionary indices and large_string values whatever their number
    of categories (pandas picks int8 or int16), so the part files of one dataset share one schema.
    Done per file written: a part of a million rows costs 4 MB per column, not the whole partition."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            values = field.type.value_type
            if pa.types.is_string(values) or pa.types.is_large_string(values):
                values = pa.large_string()
            wanted = pa.dictionary(pa.int32(), values)
            if field.type != wanted:
                table = table.set_column(i, field.with_type(wanted), table.column(i).cast(wanted))
    return table


def write_parquet(path: Path, frame: pd.DataFrame | pa.Table) -> Path:
    """One Parquet file, zstd-compressed (half the size of snappy here, at the same speed)."""
    table = _uniform_dictionaries(arrow_table(frame))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def write_parquet_parts(folder: Path, stem: str, frame: pd.DataFrame | pa.Table, rows_per_part: int = 1_000_000
                        ) -> list[Path]:
    """``folder/{stem}-NNN.parquet`` files of at most ``rows_per_part`` rows, written by parallel threads
    (Parquet encoding releases the GIL; one file is encoded by one core). Read back as one dataset."""
    table = arrow_table(frame)
    starts = range(0, max(len(table), 1), rows_per_part)
    paths = [folder / f"{stem}-{i:03d}.parquet" for i in range(len(starts))]
    with ThreadPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1)) as pool:
        list(pool.map(lambda k: write_parquet(paths[k], table.slice(starts[k], rows_per_part)), range(len(paths))))
    return paths


def point_symlink(link: Path, target: Path) -> None:
    """Atomically (re)point ``link`` at ``target`` (relative link, so the tree can move)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.parent / f".{link.name}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)
