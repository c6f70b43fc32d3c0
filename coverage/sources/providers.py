"""Provider deliveries: address tables (CSV/XLSX), coverage polygons, rasters.

Each reader returns accepted records with canonical columns plus a quarantine
table. Shared offer columns: ``provider, technology`` (a
:class:`~coverage.technology.Technology` value), ``down_mbps, up_mbps``
(float, up may be NaN = unknown), ``status`` (current/planned),
``planned_date`` (ISO string or ""), ``source``, ``source_row``.
Tables add a locator: ``address_id`` or ``x, y`` (working CRS) or
``street, house_number, postcode``; ``locator`` names which one a row uses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from coverage.columns import constant, stripped_text
from coverage.config import MAX_SPEED_MBPS, ProviderConfig
from coverage.crs import check_coordinate_units, parse_crs, to_crs
from coverage.errors import DataSourceError, InputDataError, SchemaError
from coverage.model import OfferStatus, RasterDelivery, WindowReader
from coverage.numbers import by_unique, parse_numbers, parse_speeds
from coverage.quarantine import RowFilter
from coverage.sources.tables import apply_column_map, read_text_table, reject_unreadable
from coverage.sources.vector import read_vector
from coverage.technology import Technology, normalise_alias
from coverage.text import one_line

log = logging.getLogger(__name__)



def parse_dates(text: pd.Series) -> pd.Series:
    """ISO dates (``2024-02-01``) first, then German ones (``01.02.2024``); NaT where neither fits."""
    text = text.replace("", pd.NA)
    iso = pd.to_datetime(text, errors="coerce", format="ISO8601")
    german = pd.to_datetime(text, errors="coerce", format="%d.%m.%Y")
    return iso.fillna(german)


def _offer_fields(frame: pd.DataFrame, cfg: ProviderConfig, decimal: str | None, aliases: Mapping[str, Technology],
                  checks: RowFilter) -> pd.DataFrame:
    """Parse provider, technology, speeds, status and date; reject bad rows into ``checks``.

    Text columns are cleaned once per distinct value and returned as categoricals; message
    text for the quarantine is built only for rejected rows (tens of millions of rows at
    Germany scale pay for neither).
    """
    idx = frame.index

    def text(name: str, default: object) -> pd.Series:
        if name in frame.columns:
            return stripped_text(frame[name])
        return constant("" if default is None else str(default), idx)

    def speeds(name: str, default: object
               ) -> tuple[pd.Series, pd.Series, pd.Series, Callable[[pd.Series], pd.Series]]:
        """(blank?, Mbit/s, ambiguous?, text of rejected rows); typed numeric columns (Parquet, vector
        attributes) skip text parsing; text is parsed per distinct value, the convention decided per column."""
        if name not in frame.columns or pd.api.types.is_numeric_dtype(frame[name]):
            values = (frame[name] if name in frame.columns
                      else pd.Series(np.nan if default is None else default, index=idx)).astype("float64")
            return (values.isna(), values.where(np.isfinite(values)), pd.Series(False, index=idx),
                    lambda hit: values[hit].astype("string"))
        raw = text(name, default)
        mbps, ambiguous = parse_speeds(raw, decimal)
        return raw == "", mbps, ambiguous, lambda hit: raw[hit].astype(str)

    provider = text("provider", cfg.provider)
    checks.reject(provider == "", "provider", "missing_value")
    tech_text = text("technology", cfg.technology)
    # Technology is a StrEnum: the mapped values are the canonical strings ("dsl", "ftth", …).
    technology = by_unique(tech_text, lambda u: u.astype(object).map(
        lambda w: str(aliases[k]) if (k := normalise_alias(w)) in aliases else None))
    checks.reject(tech_text == "", "technology", "missing_value")
    checks.reject(technology.isna(), "technology", "unknown_technology", values=tech_text)

    down_blank, down, down_unsure, down_text = speeds("down_mbps", cfg.down_mbps)
    checks.reject(down_blank, "down_mbps", "missing_value", values=down_text)
    checks.reject(down_unsure, "down_mbps", "ambiguous_number", values=down_text)
    checks.reject(down.isna(), "down_mbps", "bad_number", values=down_text)
    checks.reject(down < 0, "down_mbps", "negative_value", values=down_text)
    checks.reject(down > MAX_SPEED_MBPS, "down_mbps", "absurd_speed", values=down_text)
    up_blank, up, up_unsure, up_text = speeds("up_mbps", cfg.up_mbps)
    checks.reject(up_unsure, "up_mbps", "ambiguous_number", values=up_text)
    checks.reject(~up_blank & up.isna(), "up_mbps", "bad_number", values=up_text)
    checks.reject(up < 0, "up_mbps", "negative_value", values=up_text)
    checks.reject(up > MAX_SPEED_MBPS, "up_mbps", "absurd_speed", values=up_text)
    checks.reject(up > down * cfg.max_upload_ratio, "up_mbps", "upload_above_download",
                  values=lambda hit: up_text(hit) + " > " + down_text(hit))

    current, planned = OfferStatus.CURRENT.value, OfferStatus.PLANNED.value
    status = by_unique(text("status", cfg.status), lambda u: u.str.casefold().replace(
        {"": str(cfg.status), "geplant": planned, "aktuell": current, "ist": current}))
    checks.reject(~status.isin([s.value for s in OfferStatus]), "status", "bad_status")
    date_text = text("planned_date", cfg.planned_date)
    dates = by_unique(date_text, lambda u: parse_dates(u).dt.strftime("%Y-%m-%d").fillna("").astype(object))
    checks.reject((date_text != "") & (dates == ""), "planned_date", "bad_date")
    return pd.DataFrame({"provider": provider, "technology": technology, "down_mbps": down.astype("float64"),
                         "up_mbps": up.astype("float64"), "status": status, "planned_date": dates}, index=idx)


_NO_LOCATOR, _BY_ID, _BY_XY, _BY_ADDRESS = 0, 1, 2, 3
LOCATORS = ("", "address_id", "xy", "address")


ADDRESS_FIELDS = ("street", "house_number", "postcode", "locality", "ags")


def locate_records(out: pd.DataFrame, text: Callable[[str], pd.Series], columns: set[str], decimal: str | None,
                   crs: str | None, working_crs: object, path: Path, checks: RowFilter, crs_hint: str) -> None:
    """Give every record its locator (address_id, else x/y in the working CRS, else street address) and
    the locator columns in ``out``; a row with none is rejected as ``missing_locator``. One rule for
    provider records, business and site lists and objections alike."""
    has_xy = {"x", "y"} <= columns
    out["address_id"] = text("address_id")
    locator = np.where((out["address_id"] != "").to_numpy(dtype=bool), _BY_ID, _NO_LOCATOR).astype(np.int8)
    x, unsure_x = parse_numbers(text("x"), decimal) if has_xy else (None, None)
    y, unsure_y = parse_numbers(text("y"), decimal) if has_xy else (None, None)
    if x is not None and y is not None and unsure_x is not None and unsure_y is not None:
        if crs is None:
            raise InputDataError(f"{path}: coordinates in columns x/y need a CRS: {crs_hint}")
        free = pd.Series(locator == _NO_LOCATOR, index=out.index)
        checks.reject(free & unsure_x, "x", "ambiguous_number", values=lambda hit: text("x")[hit])
        checks.reject(free & unsure_y, "y", "ambiguous_number", values=lambda hit: text("y")[hit])
        bad_xy = free & ((text("x") != "") | (text("y") != "")) & (x.isna() | y.isna())
        checks.reject(bad_xy, "x", "missing_coordinates", values=lambda hit: text("x")[hit] + " " + text("y")[hit])
        locator[(free & x.notna() & y.notna()).to_numpy()] = _BY_XY
    for col in ADDRESS_FIELDS:
        out[col] = text(col)
    street_ok = (out["street"] != "").to_numpy(dtype=bool) & (out["house_number"] != "").to_numpy(dtype=bool)
    locator[(locator == _NO_LOCATOR) & street_ok] = _BY_ADDRESS
    checks.reject(pd.Series(locator == _NO_LOCATOR, index=out.index), "address_id", "missing_locator")
    out["x"], out["y"] = np.nan, np.nan
    by_xy = locator == _BY_XY
    if x is not None and y is not None and by_xy.any():
        xy_crs = parse_crs(str(crs), f"{path} crs")
        check_coordinate_units(x[by_xy].to_numpy(), y[by_xy].to_numpy(), xy_crs, str(path))
        pts = gpd.GeoSeries(gpd.points_from_xy(x.fillna(0), y.fillna(0)), crs=xy_crs)
        pts = to_crs(gpd.GeoDataFrame(geometry=pts), working_crs, str(path)).geometry
        out["x"] = np.where(by_xy, pts.x.to_numpy(), np.nan)
        out["y"] = np.where(by_xy, pts.y.to_numpy(), np.nan)
    out["locator"] = pd.Categorical.from_codes(locator, LOCATORS)


def read_provider_table(cfg: ProviderConfig, working_crs: object, aliases: Mapping[str, Technology]
                        ) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Address-level deliveries (CSV/XLSX/Parquet). Returns (records, quarantine, rows read)."""
    path = Path(cfg.path)
    table = read_text_table(path, cfg.table, categorical=_categorical_sources(cfg))
    frame = apply_column_map(table.frame, dict(cfg.columns), path).reset_index(drop=True)
    needed = [c for c in ("provider", "technology") if c not in frame and getattr(cfg, c) is None]
    if "down_mbps" not in frame and cfg.down_mbps is None:
        needed.append("down_mbps")
    has_id = "address_id" in frame
    has_xy = {"x", "y"} <= set(frame.columns)
    has_addr = {"street", "house_number"} <= set(frame.columns)
    lacking = "" if has_id or has_xy or has_addr else _missing_locator(set(frame.columns))
    if needed or lacking:
        what = ", ".join(repr(c) for c in needed) + (" and " if needed and lacking else "") + lacking
        example = ", ".join(f'{c} = "…"' for c in needed or ["address_id"])
        raise SchemaError(f"{path}: missing column(s) {what}; found {', '.join(map(repr, table.frame.columns))} "
                          f"(name the file's columns in its [[providers]] table, e.g. columns = {{ {example} }})")
    rows = pd.Series(np.arange(len(frame)) + table.first_data_row, index=frame.index)
    checks = RowFilter(frame, cfg.name, rows)
    reject_unreadable(table, checks)
    fields = _offer_fields(frame, cfg, table.decimal, aliases, checks)

    def text(col: str) -> pd.Series:
        if col not in frame:
            return constant("", frame.index)
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            return stripped_text(frame[col])
        return frame[col].astype("string").str.strip().fillna("")

    out = fields
    locate_records(out, text, set(frame.columns), table.decimal, cfg.crs, working_crs, path, checks,
                   'set crs = "EPSG:…" for this provider')
    ok = checks.ok.to_numpy()
    out["source"] = constant(cfg.name, frame.index)
    out["source_row"] = rows
    records = out if ok.all() else out[ok]
    records = records.reset_index(drop=True)
    log.info("provider %s: %d rows read, %d accepted, %d quarantined", cfg.name, len(frame), len(records),
             len(checks.quarantine))
    return records, checks.quarantine, len(frame)


def _missing_locator(found: set[str]) -> str:
    """What a table without any complete locator lacks, naming the half-present one if there is one."""
    for pair in (("x", "y"), ("street", "house_number")):
        present = [c for c in pair if c in found]
        if present:
            absent = next(c for c in pair if c not in found)
            return f"{absent!r} (besides {present[0]!r}) to locate records"
    return "a locator: 'address_id', or 'x' and 'y', or 'street' and 'house_number'"


def _categorical_sources(cfg: ProviderConfig) -> list[str]:
    """Source column names of the few-valued text columns (read as dictionaries from Parquet)."""
    names = {c: c for c in ("provider", "technology", "status", "planned_date", "street", "postcode", "locality")}
    names.update({c: src for c, src in cfg.columns.items() if c in names})
    return list(names.values())


def read_provider_polygons(cfg: ProviderConfig, working_crs: object, aliases: Mapping[str, Technology]
                           ) -> tuple[gpd.GeoDataFrame, pd.DataFrame, int]:
    """Coverage polygons; every address inside a polygon gets its offer."""
    path = Path(cfg.path)
    frame = read_vector(path, cfg.layer)
    frame = apply_column_map(frame, dict(cfg.columns), path).reset_index(drop=True)
    if frame.crs is None:
        if cfg.crs is None:
            raise InputDataError(f"{path}: the file has no CRS; set crs = \"EPSG:…\" for this provider")
        frame = frame.set_crs(parse_crs(cfg.crs, f"{path} crs"))
    kinds = set(frame.geom_type.dropna()) - {"Polygon", "MultiPolygon"}
    if kinds:
        raise InputDataError(f"{path}: coverage polygons expected, found geometry type(s) {sorted(kinds)}")
    if "down_mbps" not in frame and cfg.down_mbps is None:
        raise SchemaError(f"{path}: no 'down_mbps' column and no down_mbps in the config")
    # Text attributes as text; numeric speed attributes stay numbers (no decimal convention to decide).
    text_frame = pd.DataFrame({c: frame[c] if c in ("down_mbps", "up_mbps") and _is_number(frame[c])
                               else frame[c].astype("string") for c in frame.columns if c != frame.geometry.name})
    rows = pd.Series(np.arange(len(frame)) + 1, index=frame.index)
    checks = RowFilter(text_frame, cfg.name, rows)
    checks.reject(frame.geometry.isna() | frame.geometry.is_empty, "geometry", "missing_coordinates",
                  values=pd.Series("", index=frame.index))
    checks.reject(~frame.geometry.is_valid, "geometry", "invalid_geometry",
                  values=pd.Series(frame.geometry.is_valid_reason(), index=frame.index))
    fields = _offer_fields(text_frame, cfg, cfg.table.decimal, aliases, checks)
    ok = checks.ok
    out = gpd.GeoDataFrame(fields[ok].assign(source=cfg.name, source_row=rows[ok]),
                           geometry=frame.geometry[ok], crs=frame.crs)
    out = to_crs(out.reset_index(drop=True), working_crs, str(path))
    log.info("provider %s: %d polygons read, %d accepted, %d quarantined", cfg.name, len(frame), len(out),
             len(checks.quarantine))
    return out, checks.quarantine, len(frame)


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


#: The most cells one stored block of a raster may hold. Reading any cell decodes its whole block, so a
#: raster stored as one huge compressed strip (a "decompression bomb": a small file of vast dimensions)
#: would be decoded whole; such a file is refused with a hint to re-tile it.
MAX_BLOCK_CELLS = 4096 * 4096


@dataclass(frozen=True)
class RasterFileCells:
    """One band of a raster file, read window by window; the file is opened once per ``open()``."""

    path: Path
    band: int

    @contextmanager
    def open(self) -> Iterator[WindowReader]:
        try:
            src = rasterio.open(self.path)
        except RasterioIOError as exc:
            raise DataSourceError(f"{self.path}: cannot read as a raster ({one_line(exc)})") from exc
        with src:
            def read(row: int, col: int, height: int, width: int) -> np.ndarray:
                try:
                    return src.read(self.band, window=Window(col, row, width, height))
                except RasterioIOError as exc:  # a corrupt or truncated block
                    raise DataSourceError(f"{self.path}: band {self.band}: cannot read the cells from row {row}, "
                                          f"col {col} ({one_line(_root_cause(exc))})") from exc
            yield read


def _root_cause(exc: BaseException) -> BaseException:
    """GDAL's own reason ("ZIPDecode: Decoding error …") behind rasterio's "Read failed. See previous exception"."""
    while (cause := exc.__cause__ or exc.__context__) is not None:
        exc = cause
    return exc


def read_provider_raster(cfg: ProviderConfig, aliases: Mapping[str, Technology]) -> RasterDelivery:
    """One band of a GeoTIFF of download speed (nodata and 0 mean no service): its georeferencing and
    layout, checked; no cells. They are read block by block when sampled (:func:`coverage.match.sample_raster`).

    A raster with several bands needs ``band = N`` in its delivery's config; a band stored in blocks of more
    than :data:`MAX_BLOCK_CELLS` cells is refused (reading one cell would decode the whole block).
    """
    path = Path(cfg.path)
    if not path.exists():
        raise DataSourceError(f"{path}: file not found")
    try:
        with rasterio.open(path) as src:
            band = _raster_band(path, cfg.band, src.count)
            crs = src.crs if src.crs is not None else (parse_crs(cfg.crs) if cfg.crs else None)
            transform, nodata, dtype = src.transform, src.nodatavals[band - 1], src.dtypes[band - 1]
            shape, block = (src.height, src.width), src.block_shapes[band - 1]
    except RasterioIOError as exc:
        raise DataSourceError(f"{path}: cannot read as a raster ({one_line(exc)})") from exc
    if crs is None:
        raise InputDataError(f"{path}: raster has no CRS; set crs = \"EPSG:…\" for this provider")
    if transform.determinant == 0:
        raise InputDataError(f"{path}: raster has no usable geotransform (cell size {transform.a:g} × "
                             f"{transform.e:g}); expected a georeferenced GeoTIFF")
    if str(dtype).startswith("complex"):
        raise InputDataError(f"{path}: band {band} holds {dtype} cells; expected real numbers (download speed "
                             "in Mbit/s)")
    if block[0] * block[1] > MAX_BLOCK_CELLS:
        raise InputDataError(f"{path}: band {band} is stored in blocks of {block[0]} × {block[1]} cells; expected "
                             f"at most {MAX_BLOCK_CELLS:,} cells per block (reading a cell decodes its whole block); "
                             "re-tile it, e.g. gdal_translate -co TILED=YES -co COMPRESS=DEFLATE")
    tech = aliases.get(normalise_alias(cfg.technology or ""))
    if tech is None:
        raise InputDataError(f"{path}: technology {cfg.technology!r} is not in the alias table")
    log.info("provider %s: raster of %d × %d cells, band %d, blocks of %d × %d, nodata %s", cfg.name, *shape, band,
             *block, nodata)
    return RasterDelivery(cells=RasterFileCells(path, band), shape=shape, block_shape=block, band=band,
                          transform=transform, crs=crs, nodata=nodata, provider=str(cfg.provider),
                          technology=tech, up_mbps=float(cfg.up_mbps) if cfg.up_mbps is not None else np.nan,
                          status=OfferStatus(cfg.status), planned_date=cfg.planned_date or "", source=cfg.name)


def _raster_band(path: Path, band: int | None, count: int) -> int:
    """The band to sample: ``band`` from the config, or the only one; a one-line error otherwise."""
    if count < 1:
        raise InputDataError(f"{path}: raster has no bands; expected one band of download speed in Mbit/s")
    if band is None:
        if count > 1:
            raise InputDataError(f"{path}: raster has {count} bands; set band = N (1 to {count}) in this delivery's "
                                 "[[providers]] table for the band of download speed in Mbit/s")
        return 1
    if band > count:
        raise InputDataError(f"{path}: band = {band} is out of range: the raster has {count} band(s) "
                             f"(expected 1 to {count})")
    return band
