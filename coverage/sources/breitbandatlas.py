"""Reader for the published Breitbandatlas tables (BNetzA / BMVI downloads).

The files differ in delimiter, quoting, header wording and threshold sets:
``alle Technologien ≥ 16 Mbit/s``, ``leitungsg. Technologien …``, ``DSL …``,
``CATV …``, ``FTTH/B …``, ``mobile Technologien …`` in the Gemeinde files, and
coded ``verf_300_16``-style names in the Land files. All are mapped to one
long table: ``key, group, threshold_mbps, share`` with our group names.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from coverage.errors import DataSourceError, SchemaError
from coverage.text import one_line

#: Breitbandatlas header words -> our technology groups.
_WORD_GROUPS = {
    "alle technologien": "all",
    "leitungsg. technologien": "wired",
    "leitungsgebundene technologien": "wired",
    "mobile technologien": "mobile",
    "mobilfunk": "mobile",
    "dsl": "dsl",
    "catv": "hfc",
    "ftth/b": "fibre",
}
_CODE_GROUPS = {"300": "all", "100": "wired", "200": "mobile", "dsl": "dsl", "catv": "hfc", "ftth": "fibre"}
_WORD_RE = re.compile(r"^(?P<word>.+?)\s*(?:≥|>=)\s*(?P<t>\d+(?:[.,]\d+)?)\s*Mbit/s$", re.IGNORECASE)
_CODE_RE = re.compile(r"^verf_(?P<word>[a-z0-9]+)_(?P<t>\d+)$", re.IGNORECASE)


def parse_header(name: str) -> tuple[str, float] | None:
    """``'CATV ≥ 50 Mbit/s'`` -> ``('hfc', 50.0)``; ``'verf_300_16'`` -> ``('all', 16.0)``; else None."""
    text = name.strip().strip('"')
    m = _WORD_RE.match(text)
    if m and m["word"].strip().casefold() in _WORD_GROUPS:
        return _WORD_GROUPS[m["word"].strip().casefold()], float(m["t"].replace(",", "."))
    m = _CODE_RE.match(text)
    if m and m["word"].casefold() in _CODE_GROUPS:
        return _CODE_GROUPS[m["word"].casefold()], float(m["t"])
    return None


def read_bba_table(path: str | Path) -> pd.DataFrame:
    """Read one published table into ``key, group, threshold_mbps, share`` (share in %).

    ``key`` is the AGS with its leading zeros restored (8 digits for Gemeinden,
    5 for Kreise, 2 for Länder, judged from the longest key in the file).
    Columns that are not availability shares (e.g. 5G/LTE columns we do not model) are ignored.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataSourceError(f"{path}: cannot read Breitbandatlas table ({one_line(exc)})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, quoting=csv.QUOTE_MINIMAL)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
        raise DataSourceError(f"{path}: not a readable Breitbandatlas table ({one_line(exc)})") from exc
    key_col = next((c for c in frame.columns if c.strip().strip('"').casefold() in ("ags", "staat")), None)
    if key_col is None:
        raise SchemaError(f"{path}: no AGS column in header {list(frame.columns)[:5]}…")
    headers = {c: parse_header(c) for c in frame.columns if c != key_col}
    parsed = {c: p for c, p in headers.items() if p is not None}
    if not parsed:
        raise SchemaError(f"{path}: no column looks like an availability share ('DSL ≥ 16 Mbit/s' or 'verf_dsl_16')")
    keys = frame[key_col].astype(str).str.strip().str.strip('"')
    width = int(keys.str.len().max())
    width = 8 if width > 5 else (5 if width > 2 else 2)
    # all share columns at once, column after column (one conversion instead of one per column: ~5× faster)
    cells = pd.Series(frame[list(parsed)].to_numpy(dtype=object).ravel(order="F"))
    values = pd.to_numeric(cells.str.replace(",", ".", regex=False), errors="coerce").to_numpy(dtype=float)
    n = len(frame)
    out = pd.DataFrame({
        "key": np.tile(keys.str.zfill(width).to_numpy(dtype=object), len(parsed)),
        "group": np.repeat(np.array([g for g, _ in parsed.values()], dtype=object), n),
        "threshold_mbps": np.repeat(np.array([t for _, t in parsed.values()], dtype=float), n),
        "share": values,
    })
    return out.dropna(subset=["share"]).reset_index(drop=True)  # empty cells are "not published", not 0


def bba_wide(long: pd.DataFrame) -> pd.DataFrame:
    """Pivot the long table to one row per key with ``share_ge_{t}_{group}`` columns."""
    tags = {t: f"{t:g}" for t in long["threshold_mbps"].unique()}  # formatted once per threshold, not per row
    cols = "share_ge_" + long["threshold_mbps"].map(tags) + "_" + long["group"]
    # the first value of a repeated (key, column), as pivot_table(aggfunc="first") gave, without its cost
    first = long.assign(col=cols).drop_duplicates(["key", "col"])
    wide = first.pivot(index="key", columns="col", values="share")
    wide.columns.name = None
    return wide.reset_index()


#: Kreis table (``2021_BBA_Kreisdaten.xls``) column prefixes and group words -> (kind, group).
KREIS_KINDS = {"priv": "households", "gew": "businesses", "schulen": "schools"}
_KREIS_GROUPS = {"alle_tech": "all", "lg_tech": "wired", "dsl": "dsl", "catv": "hfc", "ftthb": "fibre"}
_KREIS_RE = re.compile(r"^(?P<kind>priv|gew|schulen)_(?P<group>alle_tech|lg_tech|dsl|catv|ftthb)_(?P<t>\d+)$")


def is_kreis_table(path: str | Path) -> bool:
    """True for the Breitbandatlas Kreis table (a legacy ``.xls`` workbook, ``2021_BBA_Kreisdaten.xls``)."""
    return Path(path).suffix.casefold() == ".xls"


def read_bba_kreis_table(path: str | Path) -> pd.DataFrame:
    """Read the Kreis table into ``key, kind, group, threshold_mbps, share`` (``kind``: households,
    businesses or schools; key = 5-digit Kreis AGS).

    The workbook's first sheet has a ``krs`` column and ``{priv|gew|schulen}_{group}_{t}`` share
    columns (e.g. ``schulen_alle_tech_1000``); other columns (name, geometry sizes) are ignored.
    """
    import xlrd
    from xlrd.biffh import XLRDError

    path = Path(path)
    try:
        sheet = xlrd.open_workbook(str(path)).sheet_by_index(0)
    except (OSError, XLRDError) as exc:
        raise DataSourceError(f"{path}: not a readable Breitbandatlas Kreis table ({one_line(exc)})") from exc
    if sheet.nrows < 1:
        raise SchemaError(f"{path}: the Kreis table's first sheet is empty")
    header = [str(v).strip() for v in sheet.row_values(0)]
    if "krs" not in header:
        raise SchemaError(f"{path}: no 'krs' column in the Kreis table's header {header[:5]}…")
    parsed = {i: m for i, m in ((i, _KREIS_RE.match(h)) for i, h in enumerate(header)) if m}
    if not parsed:
        raise SchemaError(f"{path}: no column looks like a Kreis share ('schulen_alle_tech_16', 'priv_dsl_50')")
    key_col = header.index("krs")
    keys = [str(v).strip().split(".")[0].zfill(5) for v in sheet.col_values(key_col, 1)]
    long = []
    for i, m in parsed.items():
        values = pd.to_numeric(pd.Series(sheet.col_values(i, 1), dtype=object).replace("", None), errors="coerce")
        long.append(pd.DataFrame({"key": keys, "kind": KREIS_KINDS[m["kind"]], "group": _KREIS_GROUPS[m["group"]],
                                  "threshold_mbps": float(m["t"]), "share": values.to_numpy(float)}))
    out = pd.concat(long, ignore_index=True)
    return out.dropna(subset=["share"]).reset_index(drop=True)
