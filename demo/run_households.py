"""The households a demo run will count per address, so that the provider calibration targets them.

The demo config estimates households from the Zensus grids (``[households] source = "zensus"``,
:func:`coverage.households.estimate_households`) instead of reading the generator's own integer
``households`` column; the two differ per address (the estimate shares a 1 km cell's households
evenly over the addresses of each 100 m cell), and so per Gemeinde. The estimate is deterministic,
so the generator computes it with the same library function and the run's defaults
(:class:`coverage.config.HouseholdsConfig`, :class:`coverage.config.AnalysisConfig`) and calibrates
the offers against it: the run then counts what was calibrated.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from coverage.config import AnalysisConfig, HouseholdsConfig
from coverage.households import estimate_households
from coverage.model import Boundaries


def run_households(
    addresses: pd.DataFrame, boundaries: Boundaries, grid_1km: pd.DataFrame, grid_100m: pd.DataFrame | None
) -> np.ndarray:
    """Households per row of ``addresses`` (x, y in the boundaries' CRS, ``site_kind``) as the run
    estimates them from the Zensus grids; coordinates rounded to the 2 decimals the demo files carry."""
    pts = gpd.GeoDataFrame(
        {"site_kind": addresses["site_kind"].astype(str).to_numpy()},
        geometry=gpd.points_from_xy(
            np.round(addresses["x"].to_numpy(float), 2), np.round(addresses["y"].to_numpy(float), 2)
        ),
        crs=boundaries.gemeinde.crs,
    )
    households, _, _ = estimate_households(
        pts,
        grid_1km,
        grid_100m,
        boundaries.gemeinde,
        HouseholdsConfig().max_distance_m,
        tolerance_m=AnalysisConfig().locate_tolerance_m,
        land=boundaries.land,
    )
    return households.to_numpy(float)
