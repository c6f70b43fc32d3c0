"""The INSPIRE grid counts equal the straightforward pandas computation (a column per threshold, groupby)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio

from coverage.crs import INSPIRE_GRID_CRS
from coverage.grid import finish_grid, grid_counts
from coverage.model import threshold_tag
from pipelines.outputs import write_grid

THRESHOLDS = (2, 16, 30, 100, 1000)
GROUPS = ("all", "fibre")


def reference_counts(x, y, frame, thresholds, groups, size_m=100):
    e0 = (np.floor(x / size_m) * size_m).astype(np.int64)
    n0 = (np.floor(y / size_m) * size_m).astype(np.int64)
    hh = frame["households"].to_numpy(dtype="float64")
    data = {"east": e0, "north": n0, "households": hh, "addresses": np.ones(len(hh))}
    for g in groups:
        down = frame[f"best_down_{g}"].to_numpy(dtype="float64")
        for t in thresholds:
            data[f"hh_ge_{threshold_tag(t)}_{g}"] = np.where(down >= t, hh, 0.0)
    return pd.DataFrame(data).groupby(["north", "east"], sort=True).sum().reset_index()


@pytest.mark.parametrize("fractional", [False, True])
def test_grid_counts_equal_reference(fractional):
    rng = np.random.default_rng(7)
    n = 200_000
    # EPSG:3035 coordinates in a 30 x 30 km square: many addresses per cell, cells on both sides of 0 mod 100
    x = 4_500_000 + rng.uniform(-15_000, 15_000, n)
    y = 3_300_000 + rng.uniform(-15_000, 15_000, n)
    x[:100] = np.round(x[:100], -2)  # exactly on cell edges
    hh = rng.integers(0, 9, n).astype(float)
    if fractional:
        hh = hh / 3.0
        hh[::50] = np.nan
    frame = pd.DataFrame({"households": hh,
                          "best_down_all": rng.choice([0.0, 2.0, 16.0, 50.0, 100.0, 1000.0, np.nan], n),
                          "best_down_fibre": rng.choice([0.0, 1000.0, 30.0], n)})
    fast = grid_counts(x, y, INSPIRE_GRID_CRS, frame, THRESHOLDS, GROUPS)
    ref = reference_counts(x, y, frame, THRESHOLDS, GROUPS)
    pd.testing.assert_frame_equal(fast[ref.columns], ref, check_exact=not fractional)
    # partitions sum to the whole (a cell on a partition border adds up)
    half = n // 2
    parts = pd.concat([grid_counts(x[:half], y[:half], INSPIRE_GRID_CRS, frame.iloc[:half], THRESHOLDS, GROUPS),
                       grid_counts(x[half:], y[half:], INSPIRE_GRID_CRS, frame.iloc[half:], THRESHOLDS, GROUPS)])
    whole = finish_grid(fast, THRESHOLDS, GROUPS)
    pd.testing.assert_frame_equal(finish_grid(parts, THRESHOLDS, GROUPS), whole, check_exact=not fractional)


def test_grid_files_written_in_slices_hold_every_cell_once(tmp_path):
    rng = np.random.default_rng(3)
    n = 5_000
    x, y = 4_500_000 + rng.uniform(0, 5_000, n), 3_300_000 + rng.uniform(0, 5_000, n)
    frame = pd.DataFrame({"households": np.ones(n), "best_down_all": rng.choice([2.0, 100.0], n),
                          "best_down_fibre": rng.choice([0.0, 1000.0], n)})
    cells = finish_grid(grid_counts(x, y, INSPIRE_GRID_CRS, frame, THRESHOLDS, GROUPS), THRESHOLDS, GROUPS)
    write_grid(cells, THRESHOLDS, GROUPS, tmp_path, rows_per_write=700)  # several GeoPackage slices
    squares = pyogrio.read_dataframe(tmp_path / "grid" / "grid_100m.gpkg")
    assert squares["cell_id"].tolist() == cells["cell_id"].tolist()
    assert np.allclose(squares.geometry.area, 100 * 100)
    with rasterio.open(tmp_path / "grid" / "grid_100m.tif") as tif:
        households = tif.read(1)
    assert np.nansum(households) == n and np.count_nonzero(~np.isnan(households)) == len(cells)
