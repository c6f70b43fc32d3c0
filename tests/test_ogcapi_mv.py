"""OWSLib (a client nobody here wrote) against ``bbcov serve`` of a package of all 726 MV Gemeinden.

The package is made by ``bbcov publish`` from a run of the real VG5000 boundaries with synthetic
addresses (tests/publish_world.py). The client reads the collections, pages through every Gemeinde
(``limit``/``offset``), and asks a bbox and two property queries; every answer is checked against the
package's own files: the CSV for the figures, the GeoPackage (shapely) for the bbox.
"""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from pipelines.cli import main
from tests.ogcapi_server import serving
from tests.publish_world import PROVIDERS, write_mv_run

TEXT = dict.fromkeys(("ags", "vwg_ars", "krs_ags", "land", "name", "bez", "display_name", "cell_id"), str)


@pytest.fixture(scope="module")
def mv_package(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("mv-pub")
    config, run = write_mv_run(root, shared_data / "bkg-vg5000-2021")
    assert main(["publish", str(run), "--config", str(config), "--out", str(root / "pkg")]) == 0
    return root / "pkg"


@pytest.fixture(scope="module")
def mv_server(mv_package):
    with serving(mv_package) as url:
        yield url


def _csv(package, layer):
    return pd.read_csv(package / "csv" / f"{layer}.csv", dtype=TEXT, keep_default_na=False, na_values=[""])


def _frame(features):
    """Feature properties as a frame, JSON nulls as NaN (as the CSV reads its empty cells)."""
    return pd.DataFrame([f["properties"] for f in features]).fillna(np.nan)


def _same_figures(served: pd.DataFrame, expected: pd.DataFrame, key: str):
    assert sorted(served.columns) == sorted(expected.columns)
    served = served[list(expected.columns)].set_index(key).sort_index()
    expected = expected.set_index(key).sort_index()
    pd.testing.assert_frame_equal(served, expected, check_dtype=False, check_column_type=False,
                                  check_index_type=False)


def test_package_has_every_gemeinde_and_no_provider_or_address(mv_package):
    g = _csv(mv_package, "gemeinde")
    assert len(g) == 726 and g["ags"].is_unique and g["ags"].str.match(r"^13\d{6}$").all()
    assert g["households"].isna().any() and g["households"].notna().sum() > 500  # some suppressed, most not
    for path in (p for p in mv_package.rglob("*") if p.is_file() and p.suffix != ".gpkg"):
        data = path.read_bytes()
        assert not any(name.encode() in data for name in PROVIDERS), path.name
        assert b"MV0" not in data, path.name  # the world's address ids are MV00000 ...
    for gpkg in ("gebiete.gpkg", "grid.gpkg"):  # binary: read its layers' text instead
        for layer in gpd.list_layers(mv_package / gpkg)["name"]:
            frame = gpd.read_file(mv_package / gpkg, layer=layer)
            text = " ".join(map(str, frame.columns)) + " ".join(
                frame.select_dtypes(exclude=["number", "geometry"]).astype(str).to_numpy().ravel())
            assert "address_id" not in text and "MV0" not in text, layer
            assert not any(name in text for name in PROVIDERS), layer


def test_owslib_pages_through_all_726_gemeinden(mv_package, mv_server):
    from owslib.ogcapi.features import Features

    api = Features(mv_server)
    served = {c["id"] for c in api.collections()["collections"]}
    layers = {"gemeinde", "amt", "kreis", "land", "grid_100m", "grid_1km"}
    assert served == {name for name in layers if len(_csv(mv_package, name))}
    assert {"gemeinde", "amt", "kreis", "land", "grid_1km"} <= served
    features, offset, pages = [], 0, 0
    while True:
        page = api.collection_items("gemeinde", limit=100, offset=offset)
        assert page["numberMatched"] == 726
        features += page["features"]
        pages += 1
        if len(page["features"]) < 100:
            break
        offset += 100
    assert pages == 8 and len(features) == 726
    assert len({f["properties"]["ags"] for f in features}) == 726
    _same_figures(_frame(features), _csv(mv_package, "gemeinde"), "ags")
    kreise = api.collection_items("kreis", limit=100)["features"]
    _same_figures(_frame(kreise), _csv(mv_package, "kreis"), "krs_ags")


def _bbox_around(gem: gpd.GeoDataFrame, ags: str) -> list[float]:
    """A bbox (WGS 84) around a Gemeinde's centre, a third of its size, that no other boundary passes
    within 0.001° of its edges: which features it meets does not depend on the last digits."""
    one = gem[gem["ags"] == ags].geometry.iloc[0]
    c = one.representative_point()
    xmin, ymin, xmax, ymax = one.bounds
    for scale in (3, 4, 5, 6, 2, 8):
        dx, dy = (xmax - xmin) / scale, (ymax - ymin) / scale
        box = [c.x - dx, c.y - dy, c.x + dx, c.y + dy]
        small = shapely.box(box[0] + 1e-3, box[1] + 1e-3, box[2] - 1e-3, box[3] - 1e-3)
        large = shapely.box(box[0] - 1e-3, box[1] - 1e-3, box[2] + 1e-3, box[3] + 1e-3)
        if set(gem.loc[gem.intersects(small), "ags"]) == set(gem.loc[gem.intersects(large), "ags"]):
            return box
    raise AssertionError(f"no unambiguous bbox around {ags}")


def test_bbox_and_property_queries(mv_package, mv_server):
    from owslib.ogcapi.features import Features

    api = Features(mv_server)
    gem = gpd.read_file(mv_package / "gebiete.gpkg", layer="gemeinde").to_crs("EPSG:4326")
    assert gem.crs is not None
    # Anklam (Vorpommern-Greifswald) and its neighbours
    box = _bbox_around(gem, "13075005")
    expected = set(gem.loc[gem.intersects(shapely.box(*box)), "ags"])
    answer = api.collection_items("gemeinde", bbox=box, limit=1000)
    assert {f["properties"]["ags"] for f in answer["features"]} == expected
    assert len(expected) >= 2 and "13075005" in expected
    # property filters: one Gemeinde by its key; every Gemeinde of one Amt
    csv = _csv(mv_package, "gemeinde")
    one = api.collection_items("gemeinde", ags="13075005")["features"]
    assert [f["properties"]["ags"] for f in one] == ["13075005"]
    _same_figures(_frame(one), csv[csv["ags"] == "13075005"], "ags")
    amt = csv["vwg_ars"].value_counts().index[0]  # the Amt with the most Gemeinden
    members = api.collection_items("gemeinde", vwg_ars=amt, limit=1000)["features"]
    assert {f["properties"]["ags"] for f in members} == set(csv.loc[csv["vwg_ars"] == amt, "ags"])
    assert len(members) > 5
