"""Address -> Gemeinde: inside, on a shared border, just outside (nearest), far outside (quarantine)."""

import geopandas as gpd
import numpy as np
import pytest

from coverage.errors import CRSMismatchError
from coverage.locate import locate_addresses
from tests.conftest import CRS, pt, tiny_boundaries


def points(*xy):
    return gpd.GeoDataFrame({"address_id": [f"P{i}" for i in range(len(xy))], "households": 1.0,
                             "source_row": np.arange(len(xy)) + 2}, geometry=[pt(x, y) for x, y in xy], crs=CRS)


def test_points_inside_get_their_gemeinde_and_parents():
    located, rejected = locate_addresses(points((100, 100), (1500, 900), (1999, 1999)), tiny_boundaries().gemeinde, 500)
    assert located["ags"].tolist() == ["13000001", "13000002", "13000003"]
    assert located["vwg_ars"].tolist() == ["130000001", "130000001", "130000002"]
    assert set(located["krs_ags"]) == {"13000"} and set(located["land"]) == {"13"}
    assert (located["locate_method"] == "inside").all()
    assert rejected.empty


def test_point_on_shared_border_goes_to_smallest_ags():
    # x = 1000 is the border of G1 and G2; (1000, 1000) is the corner of all three.
    located, _ = locate_addresses(points((1000, 500), (1000, 1000)), tiny_boundaries().gemeinde, 500)
    assert located["ags"].tolist() == ["13000001", "13000001"]
    assert (located["locate_method"] == "border").all()


def test_point_just_outside_goes_to_nearest_within_tolerance_and_far_point_is_quarantined():
    located, rejected = locate_addresses(points((-100, 500), (2000 + 499, 500), (-600, 500)),
                                         tiny_boundaries().gemeinde, 500)
    assert located["address_id"].tolist() == ["P0", "P1"]
    assert located["ags"].tolist() == ["13000001", "13000002"]
    assert located["locate_method"].tolist() == ["nearest", "nearest"]
    assert located["locate_distance_m"].tolist() == pytest.approx([100, 499])
    assert rejected["reason"].tolist() == ["outside_municipalities"]
    assert rejected["row"].tolist() == [4]


def test_crs_mismatch_raises():
    with pytest.raises(CRSMismatchError, match="addresses is EPSG:4326 but boundaries is EPSG:25833"):
        locate_addresses(points((1, 1)).to_crs("EPSG:4326"), tiny_boundaries().gemeinde, 500)


def test_zero_tolerance_quarantines_what_lies_outside_instead_of_failing():
    from tests.conftest import tiny_addresses

    addresses = tiny_addresses()
    addresses.loc[0, "geometry"] = pt(-10, 100)  # 10 m west of G1
    located, outside = locate_addresses(addresses, tiny_boundaries().gemeinde, 0.0)
    assert sorted(located["address_id"]) == ["A2", "A3", "A4"]
    assert outside[["value", "reason"]].values.tolist()[0][1] == "outside_municipalities"
