"""Households per address estimated from the Zensus 2022 grids, for address lists without them.

Method (documented for users in the README, ``[households] source = "zensus"``):

1. Households of a 1 km cell = inhabitants ÷ average household size, where both are known and
   positive (0 where the cell has 0 inhabitants). A cell where either is missing or suppressed
   (negative codes) has **no estimate**: it is counted with its known inhabitants, never filled in.
2. A cell is *in scope* when its centre lies in a Gemeinde of the run (located like the
   addresses, :mod:`coverage.locate`, the nearest Gemeinde within the tolerance only for centres
   outside the Land's land area: coastal water); other cells belong to neighbouring areas and are
   ignored (counted). Addresses are binned to 1 km cells by the INSPIRE grid in EPSG:3035
   (cell = ``floor(x / 1000), floor(y / 1000)``; the Zensus x/y are cell centres, checked).
3. A cell's households are spread over its addresses in proportion to the dwellings of each
   address's 100 m cell (shared evenly by the addresses of that 100 m cell). Where an address's
   100 m cell has no dwellings figure, or the weights of the 1 km cell sum to 0, the cell's
   households are spread evenly over its addresses. Sites (``site_kind`` not empty) get none.
4. The households of a cell without an address go to the nearest address within
   ``max_distance_m`` of the cell centre (working CRS, metres); farther, they are counted as
   unallocated in the Gemeinde of the cell centre.

Every in-scope cell's estimate is preserved: the households at its addresses (plus those moved
to a nearest address, plus the unallocated ones) add up to it. Values are floats (fractions of
households), exact up to floating-point rounding (relative 1e-12).
"""

from __future__ import annotations

import logging
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from coverage.crs import INSPIRE_GRID_CRS, transform_xy
from coverage.errors import InputDataError
from coverage.locate import Locator, locate_addresses

log = logging.getLogger(__name__)

#: Per Gemeinde (of the cell centres): households of the in-scope cells, and those that reached no address.
UNALLOCATED_COLUMNS = ("ags", "unallocated_households", "zensus_households")


def empty_unallocated() -> pd.DataFrame:
    return pd.DataFrame({"ags": pd.Series(dtype=str), "unallocated_households": pd.Series(dtype="float64"),
                         "zensus_households": pd.Series(dtype="float64")})


def per_gemeinde(cells: pd.DataFrame, estimated: np.ndarray, lost: np.ndarray) -> pd.DataFrame:
    """Per Gemeinde of the cell centres: Zensus households of its cells with an estimate, and the unallocated."""
    if not estimated.any():
        return empty_unallocated()
    unallocated = np.zeros(len(cells))
    unallocated[lost] = cells["households"].to_numpy()[lost]
    frame = pd.DataFrame({"ags": cells["ags"].to_numpy()[estimated].astype(str),
                          "unallocated_households": unallocated[estimated],
                          "zensus_households": cells["households"].to_numpy()[estimated]})
    return frame.groupby("ags", sort=True, as_index=False)[["unallocated_households", "zensus_households"]].sum()


def add_unallocated(counts: pd.DataFrame, unallocated: pd.DataFrame) -> pd.DataFrame:
    """Per-Gemeinde counts (index ags) with ``unallocated_households`` after ``households`` (0 where none)."""
    extra = unallocated.groupby(unallocated["ags"].astype(str))["unallocated_households"].sum()
    out = counts.reindex(counts.index.union(extra.index), fill_value=0.0) if len(extra) else counts.copy()
    out.index.name = counts.index.name
    out.insert(out.columns.get_loc("households") + 1, "unallocated_households",
               extra.reindex(out.index, fill_value=0.0).to_numpy(dtype="float64"))
    return out


def cell_households(grid_1km: pd.DataFrame) -> pd.Series:
    """Households per 1 km cell: einwohner / hh_groesse_d (both positive), 0 for 0 inhabitants, else NaN."""
    ein, size = grid_1km["einwohner"], grid_1km["hh_groesse_d"]
    estimate = (ein / size).where((ein > 0) & (size > 0))
    return estimate.mask(ein == 0, 0.0).astype("float64").rename("households")


def _cell_index(x: np.ndarray, y: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.floor(x / size).astype(np.int64), np.floor(y / size).astype(np.int64)


def _key(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    return ix * (1 << 32) + iy  # unique for |iy| < 2**31 (EPSG:3035 in cells is far below)


def _check_centres(grid: pd.DataFrame, size: int, source: str) -> None:
    """The Zensus x/y are cell centres (…500 for 1 km, …50 for 100 m) and each cell occurs once."""
    for col in ("x", "y"):
        off = grid[col].to_numpy() % size != size // 2
        if off.any():
            value = int(grid[col].to_numpy()[np.argmax(off)])
            raise InputDataError(f"{source}: column {col} value {value} is not a {size} m cell centre "
                                 f"(expected …{size // 2} in EPSG:3035; lower-left corners given?)")
    dup = grid.duplicated(["x", "y"])
    if dup.any():
        first = grid[dup].iloc[0]
        raise InputDataError(f"{source}: cell x={int(first['x'])} y={int(first['y'])} occurs more than once")


def estimate_households(addresses: gpd.GeoDataFrame, grid_1km: pd.DataFrame, grid_100m: pd.DataFrame | None,
                        gemeinden: gpd.GeoDataFrame, max_distance_m: float, *, locator: Locator | None = None,
                        tolerance_m: float = 0.0, land: gpd.GeoDataFrame | None = None,
                        sources: tuple[str, str] = ("1 km grid", "100 m grid")
                        ) -> tuple[pd.Series, pd.DataFrame, dict[str, Any]]:
    """Households per address from the Zensus grids (see the module docstring).

    ``addresses``: located addresses (working CRS, ``site_kind``); ``grid_1km``: ``x, y, einwohner,
    hh_groesse_d`` (cell centres, EPSG:3035; NaN = missing/suppressed); ``grid_100m``: ``x, y,
    dwellings`` or None; ``gemeinden`` (and their ``locator``): the run's scope. ``tolerance_m`` is
    the locate tolerance for cell centres outside every Gemeinde; with ``land`` (the Land's land area)
    it applies only to centres outside it (coast, neighbouring Länder), so a run over some Kreise does
    not claim the cells of the Kreise next to them.

    Returns (households per address aligned to ``addresses``, float64; unallocated households per
    Gemeinde ``ags, unallocated_households``; a summary of counts).
    """
    if max_distance_m <= 0:
        raise ValueError("max_distance_m must be positive")
    _check_centres(grid_1km, 1000, sources[0])
    if grid_100m is not None:
        _check_centres(grid_100m, 100, sources[1])
    crs = addresses.crs
    n = len(addresses)
    pts = addresses.geometry.to_numpy()
    ax, ay = transform_xy(shapely.get_x(pts), shapely.get_y(pts), crs, INSPIRE_GRID_CRS)
    eligible = (addresses["site_kind"].astype(str) == "").to_numpy() if "site_kind" in addresses else np.ones(n, bool)

    # The cells: estimate, scope (Gemeinde of the centre).
    cells = pd.DataFrame({"x": grid_1km["x"].to_numpy(dtype="float64"), "y": grid_1km["y"].to_numpy(dtype="float64"),
                          "einwohner": grid_1km["einwohner"].to_numpy(dtype="float64"),
                          "households": cell_households(grid_1km).to_numpy()})
    cx, cy = transform_xy(cells["x"].to_numpy(), cells["y"].to_numpy(), INSPIRE_GRID_CRS, crs)
    centres = gpd.GeoDataFrame({"source_row": np.arange(len(cells)) + 1, "address_id": np.arange(len(cells))},
                               geometry=gpd.points_from_xy(cx, cy), crs=crs)
    # (locate_addresses cannot search the nearest Gemeinde within 0 m: 1 µm is "on the border")
    located, _ = locate_addresses(centres, gemeinden, max(tolerance_m, 1e-6), f"{sources[0]} cell centres",
                                  locator=locator)
    if land is not None and len(located):
        area = shapely.union_all(land.geometry.to_numpy())
        shapely.prepare(area)
        near = (located["locate_method"] == "nearest").to_numpy()
        located = located[~(near & shapely.intersects(area, located.geometry.to_numpy()))]
    cells["ags"] = pd.Series(pd.NA, index=cells.index, dtype="string")
    cells.loc[located["address_id"].to_numpy(), "ags"] = located["ags"].astype(str).to_numpy()
    in_scope = cells["ags"].notna().to_numpy()
    known = cells["households"].notna().to_numpy()
    cells["key"] = _key(*_cell_index(cells["x"].to_numpy(), cells["y"].to_numpy(), 1000))

    # Each eligible address's 1 km cell (row of `cells`, -1: no Zensus record for it).
    a_key = _key(*_cell_index(ax, ay, 1000))
    row = pd.Index(cells["key"]).get_indexer(a_key)
    row[~eligible] = -1
    has_cell = row >= 0
    a_scope = np.zeros(n, bool)
    a_known = np.zeros(n, bool)
    a_scope[has_cell] = in_scope[row[has_cell]]
    a_known[has_cell] = known[row[has_cell]]
    takes = eligible & a_scope & a_known  # addresses that receive their cell's households

    # Weights: dwellings of the address's 100 m cell, shared by the eligible addresses in it.
    weight = np.full(n, np.nan)
    if grid_100m is not None and takes.any():
        k100 = _key(*_cell_index(ax, ay, 100))
        dwell = pd.Series(grid_100m["dwellings"].to_numpy(dtype="float64"),
                          index=_key(*_cell_index(grid_100m["x"].to_numpy(dtype="float64"),
                                                  grid_100m["y"].to_numpy(dtype="float64"), 100)))
        sharing = pd.Series(k100[takes]).map(pd.Series(k100[takes]).value_counts()).to_numpy()
        weight[takes] = dwell.reindex(k100[takes]).to_numpy() / sharing
    t_row = row[takes]
    t_weight = weight[takes]
    per_cell = pd.DataFrame({"row": t_row, "w": t_weight})
    grouped = per_cell.groupby("row")["w"]
    weighted = (grouped.count() == grouped.size()) & (grouped.sum() > 0)  # every weight known, not all 0
    use_w = weighted.reindex(t_row).to_numpy()
    w = np.where(use_w, t_weight, 1.0)
    w_sum = pd.Series(w).groupby(t_row).transform("sum").to_numpy()
    share = np.zeros(n)
    share[takes] = cells["households"].to_numpy()[t_row] * w / w_sum

    # In-scope cells with households but no address of their own: nearest address, or unallocated.
    occupied = np.zeros(len(cells), bool)
    occupied[t_row] = True
    orphan = np.flatnonzero(in_scope & known & ~occupied & (cells["households"].to_numpy() > 0))
    moved = np.zeros(n)
    to_nearest = np.zeros(len(orphan), bool)
    candidates = np.flatnonzero(eligible)
    if len(orphan) and len(candidates):
        tree = shapely.STRtree(pts[candidates])
        (o_i, a_i), dist = tree.query_nearest(shapely.points(cx[orphan], cy[orphan]), max_distance=max_distance_m,
                                              return_distance=True, all_matches=True)
        pick = pd.DataFrame({"o": o_i, "a": candidates[a_i], "d": dist}).sort_values(["o", "a"])
        pick = pick.drop_duplicates("o")  # equally near: the first address in the list
        np.add.at(moved, pick["a"].to_numpy(), cells["households"].to_numpy()[orphan[pick["o"].to_numpy()]])
        to_nearest[pick["o"].to_numpy()] = True
    lost = orphan[~to_nearest]
    unallocated = per_gemeinde(cells, in_scope & known, lost)

    households = pd.Series(share + moved, index=addresses.index, name="households", dtype="float64")
    hh = cells["households"].to_numpy()
    summary: dict[str, Any] = {
        "cells_read": len(cells),
        "cells_in_scope": int(in_scope.sum()),
        "cells_out_of_scope": int((~in_scope).sum()),
        "households_out_of_scope": float(np.nansum(hh[~in_scope])),
        "cells_used": int((in_scope & known).sum()),
        "cells_without_estimate": int((in_scope & ~known).sum()),
        "inhabitants_without_estimate": float(np.nansum(cells["einwohner"].to_numpy()[in_scope & ~known])),
        "cells_weighted": int(weighted.sum()),
        "cells_spread_evenly": int((~weighted).sum()),
        "cells_to_nearest": int(to_nearest.sum()),
        "cells_unallocated": len(lost),
        "households_in_scope": float(np.nansum(hh[in_scope])),
        "households_at_own_cell": float(share.sum()),
        "households_to_nearest": float(moved.sum()),
        "households_unallocated": float(unallocated["unallocated_households"].sum()),
        "addresses_estimated": int(takes.sum()),
        "addresses_without_estimate": int((eligible & ~takes & (~has_cell | a_scope)).sum()),
        "addresses_in_out_of_scope_cells": int((eligible & has_cell & ~a_scope).sum()),
        "sites": int((~eligible).sum()),
    }
    summary["households_estimated"] = float(households.sum())
    total = summary["households_estimated"] + summary["households_unallocated"]
    if abs(total - summary["households_in_scope"]) > 1e-9 * max(1.0, summary["households_in_scope"]):
        raise AssertionError(f"households lost in the estimate: {total} placed, {summary['households_in_scope']} "
                             "in the in-scope cells")
    log.info("households from Zensus: %.1f in %d in-scope cells (%d without estimate, %.0f inhabitants there); "
             "%.1f at addresses (%.1f moved from %d cells without address), %.1f unallocated from %d cells; "
             "%d cells outside the run's Gemeinden ignored", summary["households_in_scope"], summary["cells_in_scope"],
             summary["cells_without_estimate"], summary["inhabitants_without_estimate"],
             summary["households_estimated"], summary["households_to_nearest"], summary["cells_to_nearest"],
             summary["households_unallocated"], summary["cells_unallocated"], summary["cells_out_of_scope"])
    return households, unallocated, summary


def summary_note(summary: dict[str, Any]) -> str:
    """One line for the manifest's accounting."""
    return (f"{summary['households_estimated']:.1f} households estimated from {summary['cells_used']} Zensus 1 km "
            f"cells ({summary['cells_spread_evenly']} spread evenly, {summary['cells_to_nearest']} moved to the "
            f"nearest address); {summary['households_unallocated']:.1f} unallocated from "
            f"{summary['cells_unallocated']} cells; {summary['cells_without_estimate']} cells without estimate "
            f"({summary['inhabitants_without_estimate']:.0f} inhabitants, {summary['addresses_without_estimate']} "
            f"addresses get none); {summary['cells_out_of_scope']} cells outside the run's Gemeinden ignored "
            f"({summary['addresses_in_out_of_scope_cells']} addresses in them get none)")
