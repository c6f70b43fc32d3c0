"""Delimited-text and spreadsheet tables as people deliver them.

Sniffs what the config leaves open: encoding (UTF-8, UTF-8 with BOM, else
cp1252, which is a superset of Latin-1 for printable text) and delimiter (``,``,
``;``, tab). Everything is read as text, as it is: only ``\r``/``\n`` end a line
(not the other separators ``str.splitlines`` knows), fields of any length are
read. Numbers are parsed later, per cell and with the decimal convention decided
per column (:mod:`coverage.numbers`), so one bad cell quarantines one row instead
of a whole file. Rows that cannot be read as they are stay in the table, empty,
and are listed for the readers to quarantine (:func:`reject_unreadable`): a row
with more fields than the header (``bad_row``), and — in a UTF-8 file with a few
bytes that are not UTF-8 (a stray cp1252 ``ä``) — the rows holding them
(``bad_encoding``) instead of the whole file read as cp1252 mojibake.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from coverage.config import TableOptions
from coverage.errors import DataSourceError, InputDataError
from coverage.quarantine import RowFilter
from coverage.text import one_line

log = logging.getLogger(__name__)

_DELIMITERS = (";", ",", "\t", "|")
#: What ends a line in a delimited file. Not str.splitlines(), which also splits on U+2028, U+0085,
#: VT, FF and \x1c-\x1e, characters that may stand inside a (quoted) field.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: Replaces an undecodable byte in a mostly-UTF-8 file (its rows are quarantined as bad_encoding).
REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class TextTable:
    """A table read as strings plus how it was decoded (for the manifest)."""

    frame: pd.DataFrame
    encoding: str
    delimiter: str | None
    decimal: str | None  # the decimal mark declared in the config; None: decided per column from its cells
    first_data_row: int  # 1-based line/row number of the first data row in the file
    #: rows with more fields than the header: position in ``frame`` (whose cells are left empty) ->
    #: (fields found, the row's text)
    bad_rows: Mapping[int, tuple[int, str]] = field(default_factory=dict)
    #: in a UTF-8 file: how many bytes were not UTF-8 (replaced by U+FFFD) and where the first one is
    bad_bytes: int = 0
    bad_bytes_at: str = ""


def _where(raw: bytes, offset: int) -> str:
    line = raw.count(b"\n", 0, offset) + 1
    return f"byte {offset}, line {line}"


def decode(raw: bytes, encoding: str | None, path: Path) -> tuple[str, str]:
    """Decode bytes with the given encoding, or UTF-8(-BOM) falling back to cp1252.

    A UTF-8 file (one that holds multi-byte UTF-8 characters) with a few bytes that are not UTF-8
    is decoded as UTF-8 with those bytes replaced by U+FFFD (see :func:`decode_counted`).
    """
    text, used, _n, _at = decode_counted(raw, encoding, path)
    return text, used


def decode_counted(raw: bytes, encoding: str | None, path: Path) -> tuple[str, str, int, str]:
    """(text, encoding, bytes replaced, where the first replaced byte is)."""
    if encoding:
        try:
            return raw.decode(encoding), encoding, 0, ""
        except UnicodeDecodeError as exc:
            raise DataSourceError(f"{path}: cannot decode as {encoding} at {_where(raw, exc.start)} "
                                  f"(byte 0x{raw[exc.start]:02x}: {exc.reason})") from exc
        except LookupError as exc:
            raise DataSourceError(f"{path}: cannot decode as {encoding} ({one_line(exc)})") from exc
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "utf-16", 0, ""
        except UnicodeDecodeError as exc:
            raise DataSourceError(f"{path}: cannot decode as UTF-16 at byte {exc.start} ({exc.reason})") from exc
    name, body = ("utf-8-sig", raw[3:]) if raw.startswith(b"\xef\xbb\xbf") else ("utf-8", raw)
    try:
        return body.decode("utf-8"), name, 0, ""
    except UnicodeDecodeError as exc:
        first = exc.start + len(raw) - len(body)
        replaced = body.decode("utf-8", errors="replace")
        # Multi-byte UTF-8 characters besides the bad bytes: a UTF-8 file with stray bytes, not cp1252.
        if name == "utf-8-sig" or any(ch > "\x7f" and ch != REPLACEMENT for ch in replaced):
            n_bad = replaced.count(REPLACEMENT) - body.decode("utf-8", errors="ignore").count(REPLACEMENT)
            log.warning("%s: %d byte sequence(s) that are not UTF-8 in a UTF-8 file, first at %s (0x%02x); "
                        "their rows are quarantined as bad_encoding", path, n_bad, _where(raw, first), raw[first])
            return replaced, name, n_bad, f"{_where(raw, first)} (0x{raw[first]:02x})"
        return raw.decode("cp1252", errors="replace"), "cp1252", 0, ""


def _lines(text: str) -> list[str]:
    """Physical lines: split on \r\n, \r and \n only."""
    return _LINE_BREAK.split(text)


def _skip_lines(text: str, n: int) -> str:
    """``text`` from its ``n``-th line break on (the first ``n`` lines skipped)."""
    pos = 0
    for _ in range(n):
        m = _LINE_BREAK.search(text, pos)
        if m is None:
            return ""
        pos = m.end()
    return text[pos:]


def sniff_delimiter(text: str) -> str:
    """Pick the delimiter that splits the first lines most consistently."""
    lines = [ln for ln in _lines(text[:1_000_000])[:20] if ln.strip()]
    if not lines:
        return ","
    best, best_score = ",", -1.0
    for d in _DELIMITERS:
        counts = [len(next(csv.reader([ln], delimiter=d), [])) for ln in lines]
        if counts[0] < 2:
            continue
        consistent = sum(c == counts[0] for c in counts) / len(counts)
        score = consistent * 1000 + counts[0]
        if score > best_score:
            best, best_score = d, score
    return best


def _raise_field_limit(size: int) -> None:
    """The csv module refuses fields above 128 KiB by default; a field can be as long as the file."""
    limit = min(max(size, 1 << 17), (1 << 31) - 1)
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)


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
    text, encoding, bad_bytes, bad_at = decode_counted(raw, options.encoding, path)
    skip = (options.header_row - 1) if options.header_row else 0
    body = _skip_lines(text, skip)
    _raise_field_limit(len(body))
    delimiter = options.delimiter or sniff_delimiter(body)
    if delimiter == "\\t":
        delimiter = "\t"
    bad_rows: dict[int, tuple[int, str]] = {}
    try:
        frame = pd.read_csv(io.StringIO(body, newline=""), sep=delimiter, dtype=str, keep_default_na=False,
                            skipinitialspace=True, on_bad_lines="error", engine="c")
    except pd.errors.ParserError as exc:
        if not re.search(r"Expected \d+ fields in line \d+, saw \d+", str(exc)):
            raise InputDataError(f"{path}: not a readable {delimiter!r}-separated table ({one_line(exc)})") from exc
        frame, bad_rows = _read_with_bad_rows(body, delimiter, path)
    except (csv.Error, ValueError) as exc:
        raise InputDataError(f"{path}: not a readable {delimiter!r}-separated table ({one_line(exc)})") from exc
    if not isinstance(frame.index, pd.RangeIndex):
        # every data row has more fields than the header: pandas would take the first column as the
        # index and shift every cell one column to the left
        frame, bad_rows = _read_with_bad_rows(body, delimiter, path)
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    return TextTable(frame, encoding, delimiter, options.decimal, first_data_row=skip + 2, bad_rows=bad_rows,
                     bad_bytes=bad_bytes, bad_bytes_at=bad_at)


def _read_with_bad_rows(body: str, delimiter: str, path: Path) -> tuple[pd.DataFrame, dict[int, tuple[int, str]]]:
    """Read a table some of whose rows have more fields than the header (the C parser refuses the file).

    Such a row stays in its place with empty cells, and its text is kept for the quarantine.
    Only used when needed: the csv module is slower than pandas' parser.
    """
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter, skipinitialspace=True, strict=True)
    header: list[str] | None = None
    rows: list[list[str | None]] = []
    bad: dict[int, tuple[int, str]] = {}
    try:
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # blank line, as pandas skips them
            if header is None:
                header = record
                continue
            if len(record) > len(header):
                bad[len(rows)] = (len(record), delimiter.join(record))
                rows.append([None] * len(header))
            else:
                rows.append([*record, *([None] * (len(header) - len(record)))])
    except csv.Error as exc:
        raise InputDataError(f"{path}: not a readable {delimiter!r}-separated table "
                             f"(line {reader.line_num}: {one_line(exc)})") from exc
    if header is None:
        raise InputDataError(f"{path}: no header row")
    first = min(bad)
    log.warning("%s: %d row(s) with more fields than the header's %d (first: data row %d); quarantined as bad_row",
                path, len(bad), len(header), first + 1)
    return pd.DataFrame(rows, columns=header, dtype=object), bad


def reject_unreadable(table: TextTable, checks: RowFilter) -> None:
    """Quarantine the rows that could not be read as they are (call before any other check).

    ``bad_row``: more fields than the header (the cells would be shifted); ``bad_encoding``: a cell
    holding bytes that are not UTF-8 in a UTF-8 file.
    """
    index = checks.ok.index
    if table.bad_rows:
        positions = np.fromiter(table.bad_rows, dtype=np.int64)
        hit = np.zeros(len(index), dtype=bool)
        hit[positions] = True
        shown = pd.Series("", index=index, dtype=object)
        shown.iloc[positions] = [text for _n, text in table.bad_rows.values()]
        n_header = len(table.frame.columns)
        checks.reject(pd.Series(hit, index=index), "*", "bad_row", values=shown,
                      detail=f"the row has more fields than the header's {n_header}")
    if table.bad_bytes:
        for column in checks.frame.columns:
            values = checks.frame[column]
            if pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
                hit_text = values.astype("string").str.contains(REPLACEMENT, regex=False).fillna(False)
                checks.reject(hit_text.astype(bool), str(column), "bad_encoding",
                              detail=f"bytes that are not UTF-8 in a UTF-8 file (shown as \ufffd; "
                                     f"the file's first at {table.bad_bytes_at})")


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
    return TextTable(frame, "parquet", None, None, first_data_row=1)


def _read_xlsx(path: Path, options: TableOptions) -> TextTable:
    try:
        raw = pd.read_excel(path, sheet_name=options.sheet or 0, header=None, dtype=object)
    except (ValueError, OSError, KeyError) as exc:
        raise DataSourceError(f"{path}: cannot read spreadsheet ({one_line(exc)})") from exc
    raw = raw.map(_xlsx_cell)
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
    return TextTable(frame, "xlsx", None, options.decimal, first_data_row=header_idx + 2)


def _xlsx_cell(value: object) -> str:
    """A spreadsheet cell as text. Numeric cells are numbers already: they are written so that they read
    back exactly and carry no decimal convention (``16.5`` -> ``165e-1``, ``3.0`` -> ``3``), so text
    cells of the same column are decided by the other text cells alone."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if not np.isfinite(number):
            return str(number)
        if number.is_integer() and abs(number) < 2**53:
            return str(int(number))
        sign, digits, exponent = Decimal(repr(number)).as_tuple()
        return ("-" if sign else "") + "".join(map(str, digits)) + f"e{exponent}"
    return str(value)


def apply_column_map(frame: pd.DataFrame, columns: dict[str, str], path: Path) -> pd.DataFrame:
    """Rename source columns to canonical names (``{"house_number": "Hausnummer"}``)."""
    missing = [src for src in columns.values() if src not in frame.columns]
    if missing:
        raise InputDataError(f"{path}: column map names column(s) {missing} that the file does not have "
                             f"(found: {list(frame.columns)})")
    return frame.rename(columns={src: canon for canon, src in columns.items()})
