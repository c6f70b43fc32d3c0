"""PolygonIndex equals GEOS `intersects` with the smallest-position rule: hand-built cases, then millions
of points on the real MV and Germany boundaries, concentrated on and near borders."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from coverage.pip import PolygonIndex, numba
from coverage.sources.bkg import read_bkg_bundle
from tests.conftest import BKG

MISSING = np.iinfo(np.int64).max


def geos_smallest(geoms, x, y) -> tuple[np.ndarray, np.ndarray]:
    """GEOS reference: smallest position of the geometries a point intersects (-1: none), and hit counts."""
    tree = shapely.STRtree(geoms)
    pt, poly = tree.query(shapely.points(x, y), predicate="intersects")
    best = np.full(len(x), MISSING)
    np.minimum.at(best, pt, poly)
    best[best == MISSING] = -1
    return best, np.bincount(pt, minlength=len(x))


def locate(geoms, xy, **kw):
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    return PolygonIndex.build(np.array(geoms, dtype=object), **kw).locate(xy[:, 0], xy[:, 1]).tolist()


# --- hand-built cases ------------------------------------------------------------------------------------

def test_square_with_hole():
    ring = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], holes=[[(4, 4), (6, 4), (6, 6), (4, 6)]])
    pts = [(1, 1), (5, 5), (4, 5), (6, 6), (5, 4.0), (0, 0), (10, 5), (11, 5), (5, 10)]
    assert locate([ring], pts) == [0, -1, 0, 0, 0, 0, 0, -1, 0]
    assert locate([ring], pts, cell_size=0.7) == [0, -1, 0, 0, 0, 0, 0, -1, 0]


def test_shared_edge_goes_to_smaller_position_whatever_the_order():
    left, right = box(0, 0, 1, 1), box(1, 0, 2, 1)
    pts = [(1, 0.5), (1, 0), (1, 1), (0.5, 0.5), (1.5, 0.5), (1.0000001, 0.5)]
    assert locate([left, right], pts) == [0, 0, 0, 0, 1, 1]
    assert locate([right, left], pts) == [0, 0, 0, 1, 0, 0]


def test_multipolygon_with_island_and_vertices():
    mainland = Polygon([(0, 0), (8, 0), (8, 3), (3, 8), (0, 8)])
    island = Polygon([(10, 10), (12, 10), (11, 12)])
    multi = MultiPolygon([mainland, island])
    other = box(20, 20, 30, 30)
    pts = [(11, 11), (10, 10), (11, 12), (11, 10), (9, 9), (5.5, 5.5), (5.6, 5.6), (8, 3), (3, 8), (25, 25)]
    expected = [0, 0, 0, 0, -1, 0, -1, 0, 0, 1]
    assert locate([multi, other], pts) == expected
    assert locate([multi, other], pts, cell_size=0.3) == expected


def test_empty_and_missing_geometries_never_match_nan_points_give_minus_one():
    square = box(0, 0, 1, 1)
    geoms = [Polygon(), None, square, MultiPolygon()]
    pts = [(0.5, 0.5), (np.nan, 0.5), (0.5, np.nan), (np.inf, 0), (-np.inf, 0.5), (2, 2)]
    assert locate(geoms, pts) == [2, -1, -1, -1, -1, -1]
    assert locate([None, Polygon()], [(0, 0)]) == [-1]


def test_non_polygonal_and_self_touching_geometries_follow_geos():
    # ring touching itself at (2, 2) (GEOS: invalid) and a line: both answered as GEOS answers
    touching = Polygon([(0, 0), (4, 0), (4, 4), (2, 2), (0, 4), (2, 2)])
    line = LineString([(5, 0), (5, 5)])
    geoms = np.array([touching, line, box(3, 3, 6, 6)], dtype=object)
    g = np.linspace(-0.5, 6.5, 57)
    x, y = (a.ravel() for a in np.meshgrid(g, g))
    assert not shapely.is_valid(touching)
    got = PolygonIndex.build(geoms, cell_size=0.9).locate(x, y)
    assert (got == geos_smallest(geoms, x, y)[0]).all()
    assert (got == 1).sum() > 0


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="cell_size"):
        PolygonIndex.build([box(0, 0, 1, 1)], cell_size=0)
    with pytest.raises(ValueError, match="equal length"):
        PolygonIndex.build([box(0, 0, 1, 1)]).locate(np.zeros(2), np.zeros(3))


# --- real boundaries -------------------------------------------------------------------------------------

def border_points(geoms: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, dict[str, slice]]:
    """n points: near edges, exactly on vertices, on edge midpoints and on edges of shared borders,
    on the horizontal/vertical lines through vertices (rays through vertices), anywhere in the bbox."""
    rng = np.random.default_rng(seed)
    rings = shapely.get_rings(shapely.get_parts(geoms))
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    first = np.flatnonzero(ring[:-1] == ring[1:])
    a, b = xy[first], xy[first + 1]
    # shared edges: the same segment in two polygons (in either direction)
    _, inverse, counts = np.unique(np.column_stack([np.minimum(a, b)[:, 0], np.maximum(a, b)[:, 0],
                                                    np.minimum(a, b)[:, 1], np.maximum(a, b)[:, 1]]),
                                   axis=0, return_inverse=True, return_counts=True)
    shared = np.flatnonzero(counts[inverse.ravel()] > 1)
    assert len(shared) > 100
    share = {"near": 0.45, "vertex": 0.08, "midpoint": 0.08, "on_edge": 0.08, "vertex_lines": 0.06}
    sizes = {k: int(v * n) for k, v in share.items()}
    sizes["anywhere"] = n - sum(sizes.values())
    e = rng.integers(0, len(a), sizes["near"])
    t = rng.uniform(0, 1, (len(e), 1))
    near = a[e] + t * (b[e] - a[e]) + rng.normal(0, 100, (len(e), 2)) * rng.choice([1e-6, 1e-2, 1.0], (len(e), 1))
    vertex = xy[rng.integers(0, len(xy), sizes["vertex"])]
    s = shared[rng.integers(0, len(shared), sizes["midpoint"])]
    midpoint = (a[s] + b[s]) / 2
    s = shared[rng.integers(0, len(shared), sizes["on_edge"])]
    on_edge = a[s] + rng.uniform(0, 1, (len(s), 1)) * (b[s] - a[s])
    v = xy[rng.integers(0, len(xy), sizes["vertex_lines"])]
    jitter = rng.normal(0, 300, len(v))
    half = len(v) // 2
    vertex_lines = np.vstack([np.column_stack([v[:half, 0] + jitter[:half], v[:half, 1]]),
                              np.column_stack([v[half:, 0], v[half:, 1] + jitter[half:]])])
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    anywhere = np.column_stack([rng.uniform(xmin - 1000, xmax + 1000, sizes["anywhere"]),
                                rng.uniform(ymin - 1000, ymax + 1000, sizes["anywhere"])])
    parts = {"near": near, "vertex": vertex, "midpoint": midpoint, "on_edge": on_edge, "vertex_lines": vertex_lines,
             "anywhere": anywhere}
    slices, start = {}, 0
    for k, p in parts.items():
        slices[k] = slice(start, start + len(p))
        start += len(p)
    return np.vstack(list(parts.values())), slices


def assert_equal_to_geos(geoms: np.ndarray, n: int, seed: int, **build) -> dict:
    xy, slices = border_points(geoms, n, seed)
    index = PolygonIndex.build(geoms, **build)
    got, maybe_shared, n_geos = index.locate(xy[:, 0], xy[:, 1], with_details=True)
    want, hits = geos_smallest(geoms, xy[:, 0], xy[:, 1])
    wrong = np.flatnonzero(got != want)
    assert len(wrong) == 0, f"{len(wrong)} of {n} differ from GEOS, e.g. {xy[wrong[:5]].tolist()}"
    assert not (~maybe_shared & (hits > 1)).any()  # every point GEOS puts in several polygons is flagged
    summary = {"points": n, "several": int((hits > 1).sum()), "one": int((hits == 1).sum()),
               "none": int((hits == 0).sum()), "fallback": n_geos}
    summary.update({f"several_{k}": int((hits[s] > 1).sum()) for k, s in slices.items()})
    return summary


@pytest.fixture(scope="module")
def mv() -> np.ndarray:
    gem = read_bkg_bundle(BKG, "EPSG:25833", land="13").gemeinde.sort_values("ags")
    return gem.geometry.to_numpy()


@pytest.fixture(scope="module")
def germany() -> np.ndarray:
    gem = gpd.read_file(BKG / "VG5000_GEM.shp").to_crs("EPSG:3035").sort_values("AGS")
    return gem.geometry.to_numpy()


@pytest.mark.slow
def test_mv_one_million_points_on_and_near_borders_equal_geos(mv):
    summary = assert_equal_to_geos(mv, 1_000_000, seed=1)
    assert summary["several_vertex"] > 30_000 and summary["several"] > 60_000, summary
    assert summary["one"] > 500_000 and summary["none"] > 10_000, summary


@pytest.mark.slow
@pytest.mark.parametrize("cell_size", [40.0, 1500.0])
def test_mv_other_cell_sizes_equal_geos(mv, cell_size):
    assert_equal_to_geos(mv, 200_000, seed=2, cell_size=cell_size, block=3)


@pytest.mark.slow
def test_germany_one_million_points_equal_geos(germany):
    assert len(germany) == 10_997
    summary = assert_equal_to_geos(germany, 1_000_000, seed=3)
    assert summary["several_vertex"] > 40_000 and summary["one"] > 500_000, summary


def test_deterministic_and_independent_of_thread_count(mv):
    xy, _ = border_points(mv, 300_000, seed=4)
    index = PolygonIndex.build(mv)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = index.locate(xy[:, 0], xy[:, 1])
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = index.locate(xy[:, 0], xy[:, 1])
    finally:
        numba.set_num_threads(before)
    again = PolygonIndex.build(mv).locate(xy[:, 0], xy[:, 1])
    assert (one == many).all() and (many == again).all()
    assert (one >= 0).sum() > 200_000


def test_points_far_outside_and_on_grid_edges():
    geoms = np.array([box(0, 0, 10, 10), Point(0, 0).buffer(3)], dtype=object)
    x = np.array([-1e300, 1e300, 10, 10, 0, -3, 13, 5])
    y = np.array([0, 0, 10, 10.000000001, -3, 0, 0, 5])
    index = PolygonIndex.build(geoms, cell_size=1.0)
    assert index.locate(x, y).tolist() == geos_smallest(geoms, x, y)[0].tolist()
