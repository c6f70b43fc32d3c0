"""Figures per cell of the INSPIRE statistical grid (EPSG:3035), like the Breitbandatlas map.

Cells are addressed by their lower-left corner; the official id is
``CRS3035RES100mN{north}E{east}`` (metres, e.g. ``CRS3035RES100mN3400000E4500000``).
Shares are computed from the cell's household counts, never averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyproj import Transformer

from coverage.aggregate import GroupSum, households_at_least, with_shares
from coverage.crs import INSPIRE_GRID_CRS
from coverage.model import threshold_tag


def cell_id(east: np.ndarray, north: np.ndarray, size_m: int) -> np.ndarray:
    """Official INSPIRE cell ids from lower-left corners."""
    res = f"{size_m // 1000}km" if size_m >= 1000 and size_m % 1000 == 0 else f"{size_m}m"
    north_s = pd.Series(north.astype(np.int64)).astype(str)
    east_s = pd.Series(east.astype(np.int64)).astype(str)
    return (f"CRS3035RES{res}N" + north_s + "E" + east_s).to_numpy()


def grid_counts(x: np.ndarray, y: np.ndarray, source_crs: object, frame: pd.DataFrame, thresholds: Sequence[float],
                groups: Sequence[str], size_m: int = 100) -> pd.DataFrame:
    """Counts per cell (no shares), so partitions can be summed: a cell on a partition border adds up."""
    east, north = Transformer.from_crs(source_crs, INSPIRE_GRID_CRS, always_xy=True).transform(x, y)
    e0 = (np.floor(np.asarray(east) / size_m) * size_m).astype(np.int64)
    n0 = (np.floor(np.asarray(north) / size_m) * size_m).astype(np.int64)
    # Cells numbered in (north, east) order through one integer key; sums per cell as in gemeinde_counts
    # (a class per address and threshold, one bincount per group: no column per threshold and address).
    span = int(e0.max() - e0.min()) // size_m + 1 if len(e0) else 1
    key = (n0 - (n0.min() if len(n0) else 0)) // size_m * span + (e0 - (e0.min() if len(e0) else 0)) // size_m
    _, first, codes = np.unique(key, return_index=True, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    hh_sum = GroupSum(codes, len(first), frame["households"].to_numpy(dtype="float64"))
    data = {"north": n0[first], "east": e0[first], "households": hh_sum.total(),
            "addresses": np.bincount(codes, minlength=len(first)).astype("float64")}
    for g in groups:
        down = frame[f"best_down_{g}"].to_numpy(dtype="float64")
        for t, column in households_at_least(hh_sum, down, thresholds).items():
            data[f"hh_ge_{threshold_tag(t)}_{g}"] = column
    return pd.DataFrame(data)


def finish_grid(counts: pd.DataFrame, thresholds: Sequence[float], groups: Sequence[str], size_m: int = 100
                ) -> pd.DataFrame:
    """Sum counts of the same cell (from several partitions), add official ids and shares."""
    cells = counts.groupby(["north", "east"], sort=True).sum().reset_index()
    cells.insert(0, "cell_id", cell_id(cells["east"].to_numpy(), cells["north"].to_numpy(), size_m))
    return with_shares(cells, thresholds, groups)


@dataclass(frozen=True)
class GridLayout:
    """Where the populated cells sit in a dense raster: top-left corner, shape and each cell's row/col."""

    west: float
    north: float
    height: int
    width: int
    rows: np.ndarray
    cols: np.ndarray
    size_m: int


def grid_layout(cells: pd.DataFrame, size_m: int = 100) -> GridLayout:
    west, south = int(cells["east"].min()), int(cells["north"].min())
    east, north = int(cells["east"].max()) + size_m, int(cells["north"].max()) + size_m
    cols = ((cells["east"].to_numpy() - west) // size_m).astype(np.int64)
    rows = ((north - size_m - cells["north"].to_numpy()) // size_m).astype(np.int64)  # row 0 = northernmost
    return GridLayout(float(west), float(north), (north - south) // size_m, (east - west) // size_m, rows, cols, size_m)


def band_names(thresholds: Sequence[float], groups: Sequence[str]) -> list[str]:
    """Households first, then the share (percent) per threshold and group."""
    return ["households"] + [f"share_ge_{threshold_tag(t)}_{g}" for g in groups for t in thresholds]


def dense_band(cells: pd.DataFrame, column: str, layout: GridLayout) -> np.ndarray:
    """One band as a float32 array; cells without addresses (and shares without households) are NaN.

    Built one band at a time so a Land-wide raster never holds every band in memory.
    """
    band = np.full((layout.height, layout.width), np.nan, dtype="float32")
    band[layout.rows, layout.cols] = cells[column].to_numpy(dtype="float32")
    return band
