"""The one place that knows about coordinate reference systems.

CRSs are compared as :class:`pyproj.CRS` objects, never as strings, and a
mismatch raises instead of warning. Distances are only ever measured in a
projected CRS with metre units.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from coverage.errors import ConfigError, CRSMismatchError, InputDataError
from coverage.text import one_line

if TYPE_CHECKING:
    import geopandas as gpd

#: Working CRS for Mecklenburg-Vorpommern: ETRS89 / UTM zone 33N.
DEFAULT_WORKING_CRS = "EPSG:25833"
#: INSPIRE statistical grid (Zensus), ETRS89-LAEA.
INSPIRE_GRID_CRS = "EPSG:3035"


def parse_crs(value: object, what: str = "crs") -> CRS:
    """Parse a user-given CRS (``"EPSG:25833"``, WKT, an EPSG int) or fail clearly."""
    try:
        return CRS.from_user_input(value)
    except CRSError as exc:
        raise ConfigError(f"{what}: {value!r} is not a coordinate reference system ({one_line(exc)})") from exc


def working_crs(value: object = DEFAULT_WORKING_CRS) -> CRS:
    """Return the working CRS, refusing geographic or non-metre systems."""
    crs = parse_crs(value, "analysis.crs")
    if not crs.is_projected:
        raise ConfigError(f"analysis.crs: {crs.to_string()} is geographic; a projected CRS in metres is required")
    units = {axis.unit_name for axis in crs.axis_info}
    if units - {"metre"}:
        raise ConfigError(f"analysis.crs: {crs.to_string()} is not in metres (units: {sorted(units)})")
    return crs


#: UTM zones of ETRS89 in which German cadastres publish coordinates (EPSG:25831 … EPSG:25833).
ETRS89_UTM_ZONES = (31, 32, 33)


def etrs89_utm(zone: int) -> CRS:
    """ETRS89 / UTM zone ``zone``N (EPSG:258zz), the CRS of official German cadastre coordinates."""
    if zone not in ETRS89_UTM_ZONES:
        raise ValueError(f"UTM zone {zone} is not one of {ETRS89_UTM_ZONES}")
    return CRS.from_epsg(25800 + zone)


def utm_zones_to(x: np.ndarray, y: np.ndarray, zones: np.ndarray, target: object) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates given per row in its own ETRS89/UTM zone, converted to ``target``: one
    transformation per zone, rows already in ``target`` unchanged."""
    x, y = np.asarray(x, dtype="float64").copy(), np.asarray(y, dtype="float64").copy()
    zones = np.asarray(zones)
    for zone in np.unique(zones):
        source = etrs89_utm(int(zone))
        if same_crs(source, target):
            continue
        rows = zones == zone
        x[rows], y[rows] = Transformer.from_crs(source, CRS.from_user_input(target), always_xy=True).transform(
            x[rows], y[rows])
    return x, y


def same_crs(a: object, b: object) -> bool:
    """True when two CRS-like values describe the same CRS (pyproj equality, not text)."""
    if a is None or b is None:
        return a is b
    return CRS.from_user_input(a).equals(CRS.from_user_input(b), ignore_axis_order=True)


def assert_same_crs(*frames: gpd.GeoDataFrame, names: tuple[str, ...] | None = None) -> None:
    """Raise :class:`CRSMismatchError` unless all frames share one CRS."""
    names = names or tuple(f"input {i}" for i in range(len(frames)))
    first = frames[0].crs
    for frame, name in zip(frames[1:], names[1:], strict=True):
        if not same_crs(first, frame.crs):
            raise CRSMismatchError(
                f"CRS mismatch: {names[0]} is {_label(first)} but {name} is {_label(frame.crs)}; "
                "reproject both to the working CRS first"
            )


def to_crs(frame: gpd.GeoDataFrame, target: object, source_name: str = "input") -> gpd.GeoDataFrame:
    """Reproject ``frame`` to ``target``; a frame without a CRS is an input error."""
    if frame.crs is None:
        raise InputDataError(f"{source_name}: has no coordinate reference system; set one in the config (crs = ...)")
    if same_crs(frame.crs, target):
        return frame
    return frame.to_crs(target)


def transform_xy(x: np.ndarray, y: np.ndarray, source: object, target: object) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates ``x, y`` (easting/northing order) from ``source`` to ``target`` CRS."""
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    if same_crs(source, target):
        return x, y
    tx, ty = Transformer.from_crs(source, target, always_xy=True).transform(x, y)
    return np.asarray(tx, dtype="float64"), np.asarray(ty, dtype="float64")


def check_coordinate_units(x: np.ndarray, y: np.ndarray, crs: object, source: str) -> None:
    """Fail clearly when coordinates cannot be in the declared CRS: degrees given for a metric CRS
    (e.g. lon/lat with ``crs = "EPSG:25833"``) or metres given for a geographic CRS."""
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return
    x, y = x[ok], y[ok]
    looks_degrees = np.mean((np.abs(x) <= 180) & (np.abs(y) <= 90)) >= 0.9
    c = CRS.from_user_input(crs)
    if c.is_projected and looks_degrees:
        raise InputDataError(f"{source}: coordinates look like longitude/latitude in degrees (e.g. {x[0]:g}, {y[0]:g}) "
                             f"but the CRS is {_label(c)}; set crs = \"EPSG:4326\" for lon/lat")
    if c.is_geographic and not looks_degrees:
        raise InputDataError(f"{source}: coordinates look like metres (e.g. {x[0]:g}, {y[0]:g}) but the CRS is "
                             f"geographic ({_label(c)}); set the projected CRS they are in, e.g. \"EPSG:25833\"")


def _label(crs: object) -> str:
    if crs is None:
        return "no CRS"
    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"EPSG:{epsg}" if epsg else c.name
