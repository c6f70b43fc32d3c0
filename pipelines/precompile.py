"""Compile the numba kernels ahead, at install (``make`` runs ``python -m pipelines.precompile``).

The kernels (point-in-polygon, string lookups, best service) are compiled on first use and cached next to
their modules (``coverage/__pycache__``, ``cache=True``); compiling them takes 10–30 s, which a first run in a
fresh clone would otherwise pay (issue 15). Calling each through its public function on a tiny world compiles
exactly the signatures a run uses, because those functions convert their inputs to fixed dtypes first.
Where the package folder is not writable numba caches in the user's cache folder instead.
"""

from __future__ import annotations

import logging
import time
from datetime import date

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import box

from coverage.locate import Locator, locate_addresses
from coverage.membership import StringLookup, member
from coverage.service import best_service
from coverage.sources.bkg import boundaries_from_gemeinden
from coverage.technology import DEFAULT_GROUPS

log = logging.getLogger(__name__)

_CRS = "EPSG:25833"


def compile_kernels() -> float:
    """Run every compiled kernel once on a few rows; returns the seconds it took (compiling or loading)."""
    t0 = time.perf_counter()
    x0, y0 = 300_000.0, 5_900_000.0
    gem = gpd.GeoDataFrame({"ags": ["13000001", "13000002"], "name": ["Eins", "Zwei"],
                            "geometry": [box(x0, y0, x0 + 1000, y0 + 1000), box(x0 + 1000, y0, x0 + 2000, y0 + 1000)]},
                           crs=_CRS)
    gemeinden = boundaries_from_gemeinden(gem, _CRS).gemeinde
    ids = [f"A{i}" for i in range(6)]
    xs = x0 + np.array([100.0, 1000.0, 1500.0, 1999.0, 2100.0, 5000.0])  # inside, shared border, near, outside
    addresses = gpd.GeoDataFrame({"address_id": ids, "households": 1.0},
                                 geometry=gpd.points_from_xy(xs, np.full(6, y0 + 500.0)), crs=_CRS)
    locate_addresses(addresses, gemeinden, 500.0, locator=Locator.build(gemeinden))
    lookup = StringLookup(pd.Series(ids))
    lookup.positions(pd.Series(["A1", "B", None]))
    member(pd.Series(["A1", "B"]), pd.Series(ids))
    offers = pd.DataFrame({  # A1: two providers at the same best download (the provider-list kernel)
        "address_id": ["A0", "A0", "A1", "A1", "A2", "X"], "provider": ["P1", "P2", "P1", "P2", "P3", "P1"],
        "technology": ["dsl", "ftth", "hfc", "hfc", "lte", "dsl"],
        "down_mbps": [50.0, 1000.0, 500.0, 500.0, 30.0, 16.0],
        "up_mbps": [10.0, 500.0, np.nan, 50.0, 5.0, 1.0],
        "status": ["current", "planned", "current", "current", "current", "current"],
        "planned_date": ["", "2024-01-01", "", "", "", ""]})
    for planned_until in (date(2025, 6, 30), None):  # offers looked up by id, and linked ones (as a run has them)
        best_service(pd.Series(ids), offers, DEFAULT_GROUPS, planned_until=planned_until)
        linked = offers[offers["address_id"] != "X"].assign(addr=lambda f: f["address_id"].str[1:].astype(int))
        best_service(pd.Series(ids), linked, DEFAULT_GROUPS, planned_until=planned_until)
    return time.perf_counter() - t0


def main() -> int:
    seconds = compile_kernels()
    print(f"compiled kernels ready ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
