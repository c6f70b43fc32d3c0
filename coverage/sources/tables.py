"""Delimited-text and spreadsheet tables as people deliver them.

Sniffs what the config leaves open: encoding (UTF-8, UTF-8 with BOM, else
cp1252, which is a superset of Latin-1 for printable text), delimiter (``,``,
``;``, tab) and decimal mark (``,`` when the delimiter is not a comma and
numbers look like ``16,0``). Everything is read as text; numbers are parsed
later, per cell, so one bad cell quarantines one row instead of a whole file.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from coverage.config import TableOptions
from coverage.errors import DataSourceError, InputDataError
from coverage.text import one_line

_DELIMITERS = (";", ",", "\t", "|")
_LINE_END = re.compile(r"\r\n|\r|\n")


def _lines(text: str) -> list[str]:
    """The lines of a CSV text, split at CR/LF only: ``str.splitlines`` also splits at the vertical tab,
    form feed, U+0085, U+2028, ... which are text inside a cell (e.g. in a site name), not row ends."""
    return _LINE_END.split(text)


@dataclass(frozen=True)
class TextTable:
    """A table read as strings plus how it was decoded (for the manifest)."""

    frame: pd.DataFrame
    encoding: str
    delimiter: str | None
    decimal: str
    first_data_row: int  # 1-based line/row number of the first data row in the file


def decode(raw: bytes, encoding: str | None, path: Path) -> tuple[str, str]:
    """Decode bytes with the given encoding, or UTF-8(-BOM) falling back to cp1252."""
    if encoding:
        try:
            return raw.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError) as exc:
            raise DataSourceError(f"{path}: cannot decode as {encoding} ({one_line(exc)})") from exc
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace"), "cp1252"


def sniff_delimiter(text: str) -> str:
    """Pick the delimiter that splits the first lines most consistently."""
    lines = [ln for ln in _lines(text)[:20] if ln.strip()]
    if not lines:
        return ","
    best, best_score = ",", -1.0
    for d in _DELIMITERS:
        counts = [len(next(csv.reader([ln], delimiter=d))) for ln in lines]
        if counts[0] < 2:
            continue
        consistent = sum(c == counts[0] for c in counts) / len(counts)
        score = consistent * 1000 + counts[0]
        if score > best_score:
            best, best_score = d, score
    return best


_DECIMAL_COMMA = re.compile(r"^-?\d{1,3}(\.\d{3})*,\d+$|^-?\d+,\d+$")


def sniff_decimal(frame: pd.DataFrame, delimiter: str) -> str:
    """``','`` when the file uses decimal commas (only possible if ``,`` is not the delimiter)."""
    if delimiter == ",":
        return "."
    sample = frame.head(200).to_numpy().ravel()
    hits = sum(bool(_DECIMAL_COMMA.match(str(v).strip())) for v in sample if isinstance(v, str))
    return "," if hits else "."


def read_text_table(path: str | Path, options: TableOptions | None = None, categorical: Sequence[str] = ()
                    ) -> TextTable:
    """Read a CSV/TSV or XLSX file into a frame of strings with stripped header names.

    Parquet keeps its types; the ``categorical`` columns (few distinct values) are read as dictionaries.
    """
    path = Path(path)
    options = options or TableOptions()
    if not path.exists():
        raise DataSourceError(f"{path}: file not found")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path, options)
    if path.is_dir() or path.suffix.lower() == ".parquet":
        return read_parquet_table(path, categorical)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataSourceError(f"{path}: cannot read ({one_line(exc)})") from exc
    if not raw.strip():
        raise InputDataError(f"{path}: file is empty")
    text, encoding = decode(raw, options.encoding, path)
    skip = (options.header_row - 1) if options.header_row else 0
    body = "\n".join(_lines(text)[skip:])
    delimiter = options.delimiter or sniff_delimiter(body)
    if delimiter == "\\t":
        delimiter = "\t"
    try:
        frame = pd.read_csv(io.StringIO(body), sep=delimiter, dtype=str, keep_default_na=False,
                            skipinitialspace=True, on_bad_lines="error", engine="c")
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        raise InputDataError(f"{path}: not a readable {delimiter!r}-separated table ({one_line(exc)})") from exc
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    decimal = options.decimal or sniff_decimal(frame, delimiter)
    return TextTable(frame, encoding, delimiter, decimal, first_data_row=skip + 2)


def read_parquet_table(path: Path, categorical: Sequence[str] = ()) -> TextTable:
    """A Parquet file or folder of part files as one typed frame; ``categorical`` columns as categoricals.

    Row numbers in messages count records across the dataset's files in path order, from 1.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from coverage.sources.vector import parquet_files

    files = parquet_files(path)
    if not files:
        raise DataSourceError(f"{path}: no .parquet files")
    try:
        names = set(pq.read_schema(files[0]).names)
        parts = [pq.read_table(f, read_dictionary=[c for c in categorical if c in names]) for f in files]
        table = pa.concat_tables(parts, promote_options="permissive").unify_dictionaries()
        frame = table.to_pandas()
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise DataSourceError(f"{path}: cannot read Parquet ({one_line(exc)})") from exc
    return TextTable(frame, "parquet", None, ".", first_data_row=1)


def _read_xlsx(path: Path, options: TableOptions) -> TextTable:
    try:
        raw = pd.read_excel(path, sheet_name=options.sheet or 0, header=None, dtype=str)
    except (ValueError, OSError, KeyError) as exc:
        raise DataSourceError(f"{path}: cannot read spreadsheet ({one_line(exc)})") from exc
    raw = raw.fillna("")
    if options.header_row:
        header_idx = options.header_row - 1
    else:  # the first row with at least two non-empty cells is the header
        filled = (raw != "").sum(axis=1)
        candidates = np.flatnonzero(filled.to_numpy() >= 2)
        if not len(candidates):
            raise InputDataError(f"{path}: no header row found in sheet {options.sheet or 1}")
        header_idx = int(candidates[0])
    frame = raw.iloc[header_idx + 1:].reset_index(drop=True)
    frame.columns = [str(c).strip() for c in raw.iloc[header_idx]]
    frame = frame.loc[:, [c != "" for c in frame.columns]]
    return TextTable(frame, "xlsx", None, ".", first_data_row=header_idx + 2)


def apply_column_map(frame: pd.DataFrame, columns: dict[str, str], path: Path) -> pd.DataFrame:
    """Rename source columns to canonical names (``{"house_number": "Hausnummer"}``)."""
    missing = [src for src in columns.values() if src not in frame.columns]
    if missing:
        raise InputDataError(f"{path}: column map names column(s) {missing} that the file does not have "
                             f"(found: {list(frame.columns)})")
    return frame.rename(columns={src: canon for canon, src in columns.items()})
