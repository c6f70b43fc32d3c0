"""Address points with household counts, from CSV/XLSX (x/y columns) or vector files.

Output contract (one row per accepted input row; rejected rows are returned in
the quarantine table): ``address_id`` (str), ``households`` (float ≥ 0),
``businesses`` (float ≥ 0), ``site_kind``, ``site_name``, ``street``,
``house_number``, ``postcode``, ``locality`` (str, "" when absent),
``source_row`` (1-based row in the file), ``geometry`` (Point, working CRS).
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from coverage.columns import constant, stripped_text
from coverage.config import AddressesConfig
from coverage.crs import check_coordinate_units, parse_crs, to_crs
from coverage.errors import InputDataError, SchemaError
from coverage.membership import StringLookup
from coverage.model import ADDRESS_OPTIONAL, AddressFormat
from coverage.numbers import parse_numbers
from coverage.quarantine import RowFilter
from coverage.sources.hkde import read_hkde
from coverage.sources.tables import TextTable, apply_column_map, read_text_table, reject_unreadable
from coverage.sources.vector import is_vector, read_vector

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("site_kind", "site_name", "street", "house_number", "postcode", "locality")
#: Few distinct values per file: read as categoricals from GeoParquet.
CATEGORICAL_COLUMNS = ("site_kind", "site_name", "street", "postcode", "locality")


def read_addresses(cfg: AddressesConfig, working_crs: object,
                   households: str = "required") -> tuple[gpd.GeoDataFrame, pd.DataFrame, int]:
    """Read and validate addresses; return (accepted, quarantine, rows read).

    ``households``: "required" (the column must be there), "optional" (a missing column gives NaN,
    to be estimated) or "ignore" (the column is not read or checked at all: NaN, to be estimated).
    """
    if cfg.format == AddressFormat.HKDE:
        return read_hkde(cfg, working_crs, households)
    path = Path(cfg.path)
    table: TextTable | None = None
    if is_vector(path):
        frame, rows_read = _from_vector(cfg, path), None
        decimal = cfg.table.decimal  # text attributes: decided per column unless declared
    else:
        table = read_text_table(path, cfg.table)
        frame = apply_column_map(table.frame, dict(cfg.columns), path)
        frame["source_row"] = np.arange(len(frame)) + table.first_data_row
        decimal = table.decimal
    rows_read = len(frame)
    if rows_read == 0:
        raise InputDataError(f"{path}: no data rows (header only?)")
    to_estimate = households == "ignore" or (households == "optional" and "households" not in frame.columns)
    if to_estimate:
        frame = frame.drop(columns="households", errors="ignore").assign(households=np.nan)
    missing = [c for c in ("address_id", "households") if c not in frame.columns]
    if not is_vector(path):
        missing += [c for c in ("x", "y") if c not in frame.columns]
    if missing:
        raise SchemaError(f"{path}: missing column(s) {missing}; found {list(frame.columns)} "
                          "(map differently named columns with [addresses.columns])")
    checks = RowFilter(frame, path.name, frame["source_row"])
    if table is not None:
        reject_unreadable(table, checks)
    ids = frame["address_id"]
    if not pd.api.types.is_string_dtype(ids.dtype) or isinstance(ids.dtype, pd.CategoricalDtype):
        ids = ids.astype("string")
    ids = ids.str.strip()
    checks.reject(ids.isna() | (ids == ""), "address_id", "missing_value")
    if to_estimate:
        hh = pd.Series(np.nan, index=frame.index)  # to be estimated
    else:
        blank_h, hh, unsure_h = _numbers(frame, "households", decimal)
        checks.reject(blank_h, "households", "missing_value")
        checks.reject(unsure_h, "households", "ambiguous_number")
        checks.reject(hh.isna(), "households", "bad_number")
        checks.reject(hh < 0, "households", "negative_value")
        checks.reject(hh > cfg.max_households, "households", "implausible_value",
                      detail=f"more than {cfg.max_households:g} households at one address (addresses.max_households)")
    if "businesses" in frame:
        blank_b, businesses, unsure_b = _numbers(frame, "businesses", decimal)
        businesses = businesses.where(~blank_b, 0.0)  # an empty business count means none
        checks.reject(unsure_b, "businesses", "ambiguous_number")
    else:
        businesses = pd.Series(0.0, index=frame.index)
    checks.reject(businesses.isna(), "businesses", "bad_number")
    checks.reject(businesses < 0, "businesses", "negative_value")

    if is_vector(path):
        geometry = frame.geometry
        kind = pd.Series(shapely.get_type_id(geometry.values), index=frame.index)
        checks.reject((kind < 0) | pd.Series(shapely.is_empty(geometry.values), index=frame.index), "geometry",
                      "missing_coordinates", values=pd.Series("", index=frame.index))
        checks.reject(kind != 0, "geometry", "not_a_point", values=lambda hit: geometry[hit].geom_type)
        crs = frame.crs
    else:
        x, unsure_x = parse_numbers(frame["x"].astype("string"), decimal)
        y, unsure_y = parse_numbers(frame["y"].astype("string"), decimal)
        checks.reject(unsure_x, "x", "ambiguous_number")
        checks.reject(unsure_y, "y", "ambiguous_number")
        checks.reject(x.isna(), "x", "missing_coordinates")
        checks.reject(y.isna(), "y", "missing_coordinates")
        if cfg.crs is None:
            raise InputDataError(f"{path}: coordinates in columns x/y need a CRS: set [addresses] crs = \"EPSG:…\"")
        crs = parse_crs(cfg.crs, "addresses.crs")
        check_coordinate_units(x.to_numpy(), y.to_numpy(), crs, str(path))
        geometry = gpd.GeoSeries(gpd.points_from_xy(x.fillna(0), y.fillna(0)), index=frame.index, crs=crs)
    # Duplicates among the rows still accepted: the first accepted occurrence stays.
    ok_ids = ids[checks.ok]
    repeated = pd.Series(StringLookup(ok_ids).duplicated, index=ok_ids.index).reindex(ids.index, fill_value=False)
    checks.reject(repeated, "address_id", "duplicate_address_id")

    ok = checks.ok.to_numpy()
    keep = (lambda s: s) if ok.all() else (lambda s: s[ok])
    out = gpd.GeoDataFrame({
        "address_id": keep(ids).astype(str),
        "households": keep(hh).astype("float64"),
        "businesses": keep(businesses).astype("float64"),
        **{c: _text(keep(frame[c])) if c in frame else constant("", keep(frame.index)) for c in TEXT_COLUMNS},
        "source_row": keep(frame["source_row"]).astype("int64"),
    }, geometry=keep(geometry).to_numpy(), crs=crs)
    out = to_crs(out.reset_index(drop=True), working_crs, str(path))
    quarantine = checks.quarantine
    log.info("addresses %s: %d rows read, %d accepted, %d quarantined", path.name, rows_read, len(out), len(quarantine))
    return out, quarantine, rows_read


def _text(values: pd.Series) -> pd.Series:
    """Stripped text, "" for empty; few-valued (categorical) columns stay categorical."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return stripped_text(values)
    return values.astype("string").fillna("").str.strip().astype(str)


def _numbers(frame: pd.DataFrame, column: str, decimal: str | None) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(empty?, value, ambiguous?) of a count column; typed numbers (Parquet) are used as they are, text
    is parsed once per distinct value (counts have few), the decimal convention decided over the column."""
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values):
        return values.isna(), values.astype("float64"), pd.Series(False, index=frame.index)
    text = values.astype("string").str.strip().fillna("")
    numbers, ambiguous = parse_numbers(text, decimal)
    return text == "", numbers, ambiguous


def _from_vector(cfg: AddressesConfig, path: Path) -> gpd.GeoDataFrame:
    columns = dict(cfg.columns)
    frame = read_vector(path, cfg.layer, categorical=[columns.get(c, c) for c in CATEGORICAL_COLUMNS])
    frame = apply_column_map(frame, columns, path)
    if frame.crs is None:
        if cfg.crs is None:
            raise InputDataError(f"{path}: the file has no CRS; set [addresses] crs = \"EPSG:…\"")
        frame = frame.set_crs(parse_crs(cfg.crs, "addresses.crs"))
    frame = frame.reset_index(drop=True)
    frame["source_row"] = np.arange(len(frame)) + 1
    for col in ("address_id", "households", *[c for c in ADDRESS_OPTIONAL if c in frame]):
        if (col in frame and col not in ("households", "businesses")
                and not isinstance(frame[col].dtype, pd.CategoricalDtype)):
            frame[col] = frame[col].astype("string")
    return frame
