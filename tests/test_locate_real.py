"""Locate equals GEOS point-in-polygon on the real MV boundaries, on a million points near borders."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from coverage.locate import locate_addresses
from coverage.sources.bkg import read_bkg_bundle
from tests.conftest import BKG

N_POINTS = 1_000_000


@pytest.fixture(scope="module")
def gemeinden():
    return read_bkg_bundle(BKG, "EPSG:25833", land="13").gemeinde


def points_near_borders(gem: gpd.GeoDataFrame, n: int, seed: int = 1) -> gpd.GeoDataFrame:
    """Most points within 200 m of a Gemeinde border (incl. coast and island outlines), some exactly on
    border vertices, the rest anywhere in the bounding box."""
    rng = np.random.default_rng(seed)
    borders = shapely.get_coordinates(gem.boundary.to_numpy())
    n_near, n_vertex = int(n * 0.8), int(n * 0.05)
    pick = rng.integers(0, len(borders), n_near)
    near = borders[pick] + rng.normal(0, 100, (n_near, 2))
    on_vertex = borders[rng.integers(0, len(borders), n_vertex)]
    xmin, ymin, xmax, ymax = gem.total_bounds
    anywhere = np.column_stack([rng.uniform(xmin, xmax, n - n_near - n_vertex),
                                rng.uniform(ymin, ymax, n - n_near - n_vertex)])
    xy = np.vstack([near, on_vertex, anywhere])
    return gpd.GeoDataFrame({"address_id": np.arange(n).astype(str), "source_row": np.arange(n) + 2},
                            geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=gem.crs)


def test_locate_equals_geos_wherever_geos_gives_one_answer(gemeinden):
    pts = points_near_borders(gemeinden, N_POINTS)
    located, rejected = locate_addresses(pts, gemeinden, tolerance_m=500)
    assert len(located) + len(rejected) == N_POINTS  # nothing lost

    reference = gpd.sjoin(pts, gemeinden[["ags", "geometry"]], predicate="within", how="left")
    counts = reference.groupby(level=0)["ags"].count()
    unique = reference[reference.index.isin(counts[counts == 1].index)]
    ours = located.set_index("address_id")["ags"]
    mine = ours.reindex(unique["address_id"]).to_numpy()
    assert len(unique) > 0.5 * N_POINTS
    assert (mine == unique["ags"].to_numpy()).all()
    assert (located.set_index("address_id").loc[unique["address_id"], "locate_method"] == "inside").all()

    # Where GEOS says "within none": either exactly on a border (covered by some Gemeinde) or outside.
    none = pts[pts.index.isin(counts[counts == 0].index)]
    on_border = gpd.sjoin(none, gemeinden[["ags", "geometry"]], predicate="intersects", how="inner")
    smallest = on_border.groupby("address_id")["ags"].min()
    assert (ours.reindex(smallest.index) == smallest).all()  # documented rule: smallest AGS
    assert len(smallest) > 1000  # the vertex sample really hits borders


def test_islands_and_multipart_gemeinden(gemeinden):
    """Every part of a multi-part Gemeinde (Putbus, Ummanz, Greifswald …) and the island Gemeinden
    (Hiddensee, Poel, Usedom) find themselves."""
    islands = gemeinden[gemeinden["name"].isin(["Insel Hiddensee", "Insel Poel", "Heringsdorf", "Zinnowitz",
                                                "Usedom", "Sassnitz"])]
    parts = pd.concat([gemeinden[gemeinden.geom_type == "MultiPolygon"], islands]).explode(index_parts=False)
    inner = parts.geometry.representative_point()
    pts = gpd.GeoDataFrame({"address_id": [f"p{i}" for i in range(len(inner))], "source_row": 2},
                           geometry=inner.to_numpy(), crs=gemeinden.crs)
    located, rejected = locate_addresses(pts, gemeinden, tolerance_m=500)
    assert rejected.empty and len(parts) > len(islands) + 19  # 19 multi-part Gemeinden, each with 2+ parts
    assert located["ags"].tolist() == parts["ags"].tolist()
