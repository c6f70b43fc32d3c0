"""Readers for the Zensus 2022 grids on the INSPIRE grid (EPSG:3035).

Two layouts are accepted, giving the same frame:

- the repackaged parquet files (``grid_1km.parquet``: ``x, y, einwohner, hh_groesse_d,
  leerstandsquote``; ``grid_100m_buildings.parquet``: ``x, y, buildings, dwellings``);
- the official Zensus CSVs as published by Destatis (``;``-separated, Latin-1, decimal comma,
  e.g. ``GITTER_ID_1km;x_mp_1km;y_mp_1km;Einwohner``). Several CSVs (one per attribute, as
  published) can be given together; they are joined on the cell centre.

Result: one row per cell, ``x, y`` (cell centre, int64 metres, EPSG:3035) and float64 value
columns. **Negative values are codes** (-1 no value, -9 and other negatives suppressed), as are
``–``/empty cells in the CSVs: all become NaN, never numbers.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyproj import Transformer

from coverage.crs import INSPIRE_GRID_CRS
from coverage.errors import DataSourceError, SchemaError
from coverage.text import one_line

log = logging.getLogger(__name__)

GRID_100M_COLUMNS = ("buildings", "dwellings")

#: Official CSV header words (folded: lower case, letters and digits only) -> our names.
_VALUE_NAMES = {
    "einwohner": "einwohner",
    "durchschnhhgroesse": "hh_groesse_d",
    "durchschnittlichehaushaltsgroesse": "hh_groesse_d",
    "durchschnittlichehaushaltsgrosse": "hh_groesse_d",
    "hhgroessed": "hh_groesse_d",
    "leerstandsquote": "leerstandsquote",
    "gebaeude": "buildings",
    "anzahlgebaeude": "buildings",
    "wohngebaeude": "buildings",
    "buildings": "buildings",
    "wohnungen": "dwellings",
    "anzahlwohnungen": "dwellings",
    "dwellings": "dwellings",
}
_IGNORED = re.compile(r"^(gitter_id.*|werterlaeuternde_zeichen.*|unnamed.*)$", re.IGNORECASE)

Bbox = tuple[float, float, float, float]


def _fold(name: str) -> str:
    text = name.strip().strip('"').casefold()
    text = text.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")
    return re.sub(r"[^a-z0-9]", "", text)


def grid_bbox(bounds: Sequence[float], crs: object, margin_m: float = 1000.0) -> Bbox:
    """Bounds ``(minx, miny, maxx, maxy)`` in ``crs`` -> a bbox in EPSG:3035 with a margin.

    The four corners and edge midpoints are transformed, so the result covers the input.
    """
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    tr = Transformer.from_crs(crs, INSPIRE_GRID_CRS, always_xy=True)
    xs = np.linspace(minx, maxx, 9)
    ys = np.linspace(miny, maxy, 9)
    gx, gy = np.meshgrid(xs, ys)
    px, py = tr.transform(gx.ravel(), gy.ravel())
    return (
        float(np.min(px)) - margin_m,
        float(np.min(py)) - margin_m,
        float(np.max(px)) + margin_m,
        float(np.max(py)) + margin_m,
    )


def _clean(frame: pd.DataFrame, value_cols: Iterable[str]) -> pd.DataFrame:
    out = pd.DataFrame({"x": frame["x"].astype("int64"), "y": frame["y"].astype("int64")})
    for col in value_cols:
        values = pd.to_numeric(frame[col], errors="coerce").astype("float64")
        out[col] = values.where(values >= 0)  # negative = code (no value / suppressed)
    return out.reset_index(drop=True)


def _in_bbox(frame: pd.DataFrame, bbox: Bbox | None) -> pd.DataFrame:
    if bbox is None:
        return frame
    minx, miny, maxx, maxy = bbox
    keep = frame["x"].between(minx, maxx) & frame["y"].between(miny, maxy)
    return frame[keep]


def _read_parquet(path: Path, bbox: Bbox | None) -> pd.DataFrame:
    filters = None
    if bbox is not None:
        minx, miny, maxx, maxy = bbox
        filters = [
            ("x", ">=", int(np.floor(minx))),
            ("x", "<=", int(np.ceil(maxx))),
            ("y", ">=", int(np.floor(miny))),
            ("y", "<=", int(np.ceil(maxy))),
        ]
    try:
        table = pq.read_table(path, filters=filters)
    except (OSError, pa.ArrowException) as exc:
        raise DataSourceError(f"{path}: cannot read Zensus parquet ({one_line(exc)})") from exc
    frame = table.to_pandas()
    missing = {"x", "y"} - set(frame.columns)
    if missing:
        raise SchemaError(
            f"{path}: missing column(s) {sorted(missing)} (expected cell centres x, y in EPSG:3035)"
        )
    values = [c for c in frame.columns if c not in ("x", "y")]
    return _clean(frame, values)


def _read_csv(path: Path, bbox: Bbox | None) -> pd.DataFrame:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataSourceError(f"{path}: cannot read Zensus CSV ({one_line(exc)})") from exc
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):  # published as Latin-1/cp1252; '–' is cp1252 0x96
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    try:
        frame = pd.read_csv(io.StringIO(text), sep=";", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataSourceError(f"{path}: cannot parse Zensus CSV ({one_line(exc)})") from exc
    cols = {c: c.strip().strip('"') for c in frame.columns}
    xcol = next((c for c, n in cols.items() if n.casefold().startswith("x_mp")), None)
    ycol = next((c for c, n in cols.items() if n.casefold().startswith("y_mp")), None)
    if xcol is None or ycol is None:
        raise SchemaError(f"{path}: no x_mp_*/y_mp_* cell centre columns in header {list(cols.values())[:6]}")
    renamed = {xcol: "x", ycol: "y"}
    for c, n in cols.items():
        if c in (xcol, ycol) or _IGNORED.match(n):
            continue
        renamed[c] = _VALUE_NAMES.get(_fold(n), _fold(n))
    if len(renamed) == 2:
        raise SchemaError(f"{path}: no value column besides the cell id and centre")
    frame = frame[list(renamed)].rename(columns=renamed)
    values = [c for c in frame.columns if c not in ("x", "y")]
    for col in ("x", "y", *values):
        text = frame[col].str.strip().str.replace(",", ".", regex=False)  # decimal comma
        frame[col] = pd.to_numeric(text, errors="coerce")  # '–', '' and other marks -> NaN
    bad = frame["x"].isna() | frame["y"].isna()
    if bad.any():
        raise SchemaError(
            f"{path}: {int(bad.sum())} row(s) with unusable x_mp/y_mp (first row {int(np.argmax(bad)) + 2})"
        )
    return _clean(_in_bbox(frame, bbox), values)


def read_zensus_grid(
    paths: str | Path | Sequence[str | Path], bbox: Bbox | None = None, required: Sequence[str] = ()
) -> pd.DataFrame:
    """Read one or several Zensus grid files (parquet or official CSV) into one frame.

    ``bbox`` (EPSG:3035, on cell centres) limits what is kept; parquet files are filtered
    while reading. Several files are outer-joined on ``x, y``. ``required`` value columns
    must be present, else :class:`SchemaError` naming the files.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    frames = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise DataSourceError(f"{p}: Zensus grid file not found")
        frames.append(_read_parquet(p, bbox) if p.suffix.lower() == ".parquet" else _read_csv(p, bbox))
    out = frames[0]
    for other in frames[1:]:
        dup = (set(out.columns) & set(other.columns)) - {"x", "y"}
        if dup:
            raise SchemaError(
                f"{[str(p) for p in paths]}: column(s) {sorted(dup)} appear in more than one file"
            )
        out = out.merge(other, on=["x", "y"], how="outer")
    missing = [c for c in required if c not in out.columns]
    if missing:
        raise SchemaError(
            f"{[str(p) for p in paths]}: missing Zensus column(s) {missing}; found {list(out.columns)}"
        )
    out = out.sort_values(["x", "y"], kind="stable").reset_index(drop=True)
    log.info("read Zensus grid %s: %d cells", [Path(p).name for p in paths], len(out))
    return out


def read_grid_1km(paths: str | Path | Sequence[str | Path], bbox: Bbox | None = None) -> pd.DataFrame:
    """The 1 km grid: ``x, y, einwohner, hh_groesse_d`` (+ ``leerstandsquote`` if given)."""
    out = read_zensus_grid(paths, bbox, required=("einwohner", "hh_groesse_d"))
    if "leerstandsquote" not in out:
        out["leerstandsquote"] = np.nan
    return out


def read_grid_100m(paths: str | Path | Sequence[str | Path], bbox: Bbox | None = None) -> pd.DataFrame:
    """The 100 m buildings grid: ``x, y, buildings, dwellings``."""
    return read_zensus_grid(paths, bbox, required=GRID_100M_COLUMNS)


def households_1km(grid: pd.DataFrame) -> pd.Series:
    """Households per 1 km cell = einwohner / hh_groesse_d where both are positive, else NaN."""
    ein = grid["einwohner"]
    hh = grid["hh_groesse_d"]
    ok = (ein > 0) & (hh > 0)
    return (ein / hh).where(ok).rename("households")
