"""Benchmark coverage.pip.PolygonIndex against geopandas sjoin (not part of the tests).

    .venv/bin/python -m benchmarks.bench_pip [n_points]

Prints, for MV (726 Gemeinden, EPSG:25833) and Germany (10,997 Gemeinden, EPSG:3035): index build time,
points/s of `locate` on n random points (default 22 M) in the bounding box after a JIT warm-up (best of 3),
and points/s of sjoin(predicate="intersects") on a 1 M subset; plus whether both agree on that subset.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np

from coverage.pip import PolygonIndex, numba

BKG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bkg-vg5000-2021"


def run(name: str, gem: gpd.GeoDataFrame, n: int) -> None:
    gem = gem.sort_values("ags").reset_index(drop=True)
    polys = gem.geometry.to_numpy()
    PolygonIndex.build(polys[:5]).locate(np.zeros(10), np.zeros(10))  # JIT warm-up / cache load
    index = PolygonIndex.build(polys)
    rng = np.random.default_rng(0)
    xmin, ymin, xmax, ymax = gem.total_bounds
    x, y = rng.uniform(xmin, xmax, n), rng.uniform(ymin, ymax, n)
    best = min(_timed(lambda: index.locate(x, y)) for _ in range(3))
    m = 1_000_000
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x[:m], y[:m]), crs=gem.crs)
    t0 = time.perf_counter()
    joined = gpd.sjoin(pts, gem[["ags", "geometry"]], predicate="intersects", how="left")
    sjoin_s = time.perf_counter() - t0
    ref = joined.groupby(level=0)["ags"].min().reindex(range(m)).to_numpy()
    pos = index.locate(x[:m], y[:m])
    ours = np.where(pos >= 0, gem["ags"].to_numpy()[np.maximum(pos, 0)], None)
    agree = all((a == b) or (a is None and b != b) for a, b in zip(ours, ref, strict=True))
    st = index.stats()
    print(f"{name}: {len(polys)} polygons, build {st['build_seconds']:.2f} s (cell {st['cell_size']:.0f} m, "
          f"{st['cells']:,} cells, {st['mixed_share']:.1%} mixed, {st['megabytes']:.0f} MB); "
          f"locate {n:,} points: {n / best / 1e6:.1f} M points/s on {numba.get_num_threads()} threads; "
          f"sjoin 1 M points: {m / sjoin_s / 1e6:.2f} M points/s; agree on 1 M: {agree}")


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main() -> None:
    from coverage.sources.bkg import read_bkg_bundle

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 22_000_000
    run("MV", read_bkg_bundle(BKG, "EPSG:25833", land="13").gemeinde, n)
    de = gpd.read_file(BKG / "VG5000_GEM.shp").to_crs("EPSG:3035").rename(columns={"AGS": "ags"})
    run("Germany", de, n)


if __name__ == "__main__":
    main()
