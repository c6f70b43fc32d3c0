"""Addresses -> municipality (Gemeinde) and so Amt, Kreis and Land.

Rule, documented for users:
1. A point inside or on the border of exactly one Gemeinde belongs to it.
2. A point on a border shared by several Gemeinden (GEOS ``intersects`` with
   more than one) belongs to the one with the smallest AGS — deterministic and
   independent of input order.
3. A point outside every Gemeinde (generalised coastlines, Bodden, lakes) goes
   to the nearest Gemeinde if it is within ``tolerance_m``; it is flagged
   ``locate_method = "nearest"`` with its distance.
4. Anything farther is quarantined (``outside_municipalities``), never dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from coverage.crs import assert_same_crs
from coverage.errors import InputDataError
from coverage.pip import PolygonIndex
from coverage.quarantine import rows as quarantine_rows

log = logging.getLogger(__name__)


def _refuse_swapped_axes(outside: np.ndarray, tree, n_total: int, source: str) -> None:
    """Most points outside, but inside once x and y are exchanged: a swapped-columns mistake, not data."""
    if len(outside) < max(1, n_total // 2):
        return
    swapped = shapely.points(shapely.get_y(outside), shapely.get_x(outside))
    hits = np.unique(tree.query(swapped, predicate="intersects")[0])
    if len(hits) >= 0.9 * len(outside):
        raise InputDataError(f"{source}: {len(outside)} of {n_total} points lie outside every municipality but inside "
                             "once x and y are exchanged: the x and y columns look swapped")


@dataclass(frozen=True)
class Locator:
    """The Gemeinden with their search structures, built once and reused for every partition.

    The grid index holds the polygons sorted by AGS, so the smallest position it returns on a
    shared border is the smallest AGS (rule 2).
    """

    index: PolygonIndex
    by_ags: np.ndarray  # position in the Gemeinde frame of each index polygon
    n_polygons: int

    @classmethod
    def build(cls, gemeinden: gpd.GeoDataFrame) -> Locator:
        by_ags = np.argsort(gemeinden["ags"].to_numpy().astype(str), kind="stable")
        return cls(PolygonIndex.build(gemeinden.geometry.to_numpy()[by_ags]), by_ags, len(gemeinden))


def locate_addresses(addresses: gpd.GeoDataFrame, gemeinden: gpd.GeoDataFrame, tolerance_m: float,
                     source: str = "addresses", locator: Locator | None = None
                     ) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Return (addresses with ags, vwg_ars, krs_ags, land, locate_method, locate_distance_m; quarantine).

    Pass a ``locator`` built for these ``gemeinden`` when locating many partitions (built once).
    """
    assert_same_crs(addresses, gemeinden, names=("addresses", "boundaries"))
    if locator is None or locator.n_polygons != len(gemeinden):
        locator = Locator.build(gemeinden)
    pts = addresses.geometry.to_numpy()
    ags = gemeinden["ags"].to_numpy()
    tree = gemeinden.sindex
    n = len(addresses)

    # Rules 1 and 2 with the exact grid index (equal to GEOS `intersects`).
    by_ags, index = locator.by_ags, locator.index
    is_point = shapely.get_type_id(pts) == 0  # Point; anything else (None, empty, lines) goes through GEOS
    x, y = np.full(n, np.nan), np.full(n, np.nan)
    x[is_point], y[is_point] = shapely.get_x(pts[is_point]), shapely.get_y(pts[is_point])
    pos, maybe_shared, n_geos = index.locate(x, y, with_details=True)
    # Answers are kept as Gemeinde row numbers (-1: none) and become categorical columns at the end.
    row = np.full(n, -1, dtype=np.int64)
    found = np.flatnonzero(pos >= 0)
    row[found] = by_ags[pos[found]]
    method = np.where(row >= 0, _INSIDE, _NONE).astype(np.int8)
    # Border points (covered by more than one Gemeinde) lie on an edge of the one found: count with GEOS.
    check = np.flatnonzero(maybe_shared & (pos >= 0))
    other = np.flatnonzero(~is_point & ~shapely.is_missing(pts))
    if len(other):
        o_pt, o_poly = tree.query(pts[other], predicate="intersects")
        hits = pd.DataFrame({"pt": other[o_pt], "row": o_poly, "ags": ags[o_poly]})
        first = hits.sort_values(["pt", "ags"]).drop_duplicates("pt")
        row[first["pt"].to_numpy()] = first["row"].to_numpy()
        method[first["pt"].to_numpy()] = _INSIDE
        check = np.union1d(check, first["pt"].to_numpy())
    if len(check):
        c_pt, _ = tree.query(pts[check], predicate="intersects")
        shared = check[np.flatnonzero(np.bincount(c_pt, minlength=len(check)) > 1)]
        method[shared] = _BORDER
    distance = np.zeros(n)
    log.debug("locate: grid index %s; %d points answered by GEOS near edges", index.stats(), n_geos)

    outside = np.flatnonzero(row < 0)
    if len(outside) and tolerance_m > 0:  # tolerance 0: no nearest Gemeinde, outside is outside
        (near_pt, near_poly), dist = tree.nearest(pts[outside], max_distance=tolerance_m, return_all=True,
                                                  return_distance=True)
        near = pd.DataFrame({"pt": outside[near_pt], "row": near_poly, "ags": ags[near_poly], "dist": dist})
        near = near.sort_values(["pt", "ags"]).drop_duplicates("pt")
        sel = near["pt"].to_numpy()
        row[sel] = near["row"].to_numpy()
        method[sel] = _NEAREST
        distance[sel] = near["dist"].to_numpy()

    located = row >= 0
    _refuse_swapped_axes(pts[~located], tree, n, source)
    rows = row[located]
    keep = (lambda s: s) if located.all() else (lambda s: s[located])
    result = keep(addresses).reset_index(drop=True).assign(
        ags=_per_gemeinde(gemeinden["ags"], rows),
        locate_method=pd.Categorical.from_codes(method[located], METHODS),
        locate_distance_m=distance[located],
        **{col: _per_gemeinde(gemeinden[col], rows) for col in ("vwg_ars", "krs_ags", "land")})
    rejected = addresses[~located]
    quarantine = quarantine_rows(
        source, rejected["source_row"] if "source_row" in rejected else pd.Series(np.flatnonzero(~located) + 1),
        "geometry", rejected.geometry.to_wkt(rounding_precision=2), "outside_municipalities",
        f"farther than {tolerance_m:g} m from every municipality",
        rejected.get("address_id"))
    log.info("locate: %d addresses in, %d located (%d on borders, %d nearest within %g m), %d quarantined",
             n, int(located.sum()), int((method == _BORDER).sum()), int((method == _NEAREST).sum()),
             tolerance_m, len(quarantine))
    return result, quarantine


METHODS = ("", "inside", "border", "nearest")
_NONE, _INSIDE, _BORDER, _NEAREST = range(4)


def _per_gemeinde(values: pd.Series, rows: np.ndarray) -> pd.Categorical:
    """``values[rows]`` (one value per Gemeinde row) as a categorical column: codes, not strings."""
    codes, uniques = pd.factorize(values.to_numpy(), sort=True)  # missing -> -1 -> NaN
    return pd.Categorical.from_codes(codes[rows], pd.Index(uniques))
