"""Business (Gewerbe) counts and shares per area, on a world small enough to check by hand."""

import numpy as np
import pandas as pd
import pytest

from coverage.aggregate import area_tables, gemeinde_counts
from tests.conftest import tiny_boundaries

GROUPS = ["all", "fibre"]
THRESHOLDS = (30, 100)

#: B1, B2 in G1; B3 in G2 (households, no businesses); B4 in G3 (businesses, no households).
ADDRESSES = pd.DataFrame({
    "ags": ["13000001", "13000001", "13000002", "13000003"],
    "households": [2.0, 1.0, 4.0, 0.0],
    "businesses": [3.0, 1.0, 0.0, 2.0],
    "site_kind": ["", "", "", ""],
    "best_down_all": [100.0, 16.0, 1000.0, 50.0],
    "best_down_fibre": [0.0, 0.0, 1000.0, 0.0],
    "plan_best_down_all": [1000.0, 16.0, 1000.0, 50.0],
    "plan_best_down_fibre": [1000.0, 0.0, 1000.0, 0.0],
    "fund_white": [False, True, False, False],
    "fund_white_plan": [False, True, False, False],
})
FLAGS = ["fund_white", "fund_white_plan"]


@pytest.fixture(scope="module")
def tables():
    counts = gemeinde_counts(ADDRESSES, THRESHOLDS, GROUPS, prefixes=("", "plan_"), flags=FLAGS)
    return area_tables(counts, tiny_boundaries(), THRESHOLDS, GROUPS, prefixes=("", "plan_"))


def test_business_figures_by_hand(tables):
    g = tables["gemeinde"].set_index("ags")
    # G1: 4 businesses; B1's 3 reach 100 Mbit/s (B2's 1 has 16), fibre only planned at B1.
    cols = ["businesses", "biz_ge_30_all", "biz_share_ge_30_all", "biz_share_ge_100_fibre",
            "plan_biz_share_ge_100_fibre", "biz_fund_white", "biz_fund_white_plan"]
    assert g.loc["13000001", cols].tolist() == [4, 3, 75, 0, 75, 1, 1]
    # G2 has households but no businesses: counts 0, shares empty (household shares are not).
    assert g.loc["13000002", "biz_ge_100_all"] == 0 and np.isnan(g.loc["13000002", "biz_share_ge_100_all"])
    assert g.loc["13000002", "share_ge_100_all"] == 100
    # G3: only businesses (2 at 50 Mbit/s): business shares exist, household shares are empty.
    assert g.loc["13000003", ["biz_share_ge_30_all", "biz_share_ge_100_all"]].tolist() == [100, 0]
    assert np.isnan(g.loc["13000003", "share_ge_30_all"])


def test_business_shares_come_from_summed_counts(tables):
    amt = tables["amt"].set_index("vwg_ars")
    assert amt.loc["130000001", ["businesses", "biz_ge_100_all", "biz_share_ge_100_all"]].tolist() == [4, 3, 75]
    land = tables["land"].iloc[0]
    # 3 of 6 businesses reach 100 Mbit/s: 50 % (the mean of the Gemeinde shares 75 and 0 would be 37.5).
    assert (land["businesses"], land["biz_ge_100_all"], land["biz_share_ge_100_all"]) == (6, 3, 50)
    assert land["biz_share_ge_30_all"] == pytest.approx(500 / 6)
    assert land["plan_biz_ge_100_fibre"] == 3 and land["biz_fund_white"] == 1


def test_business_columns_come_after_the_household_columns(tables):
    no_biz = area_tables(gemeinde_counts(ADDRESSES, THRESHOLDS, GROUPS, prefixes=("", "plan_"), flags=FLAGS).filter(
        regex="^(?!(plan_)?biz_)"), tiny_boundaries(), THRESHOLDS, GROUPS, prefixes=("", "plan_"))
    for level, table in tables.items():
        n = len(no_biz[level].columns)
        assert list(table.columns[:n]) == list(no_biz[level].columns), level  # unchanged, in the same order
        new = list(table.columns[n:])
        assert new[:2] == ["biz_ge_30_all", "biz_ge_100_all"] and new[-1] == "plan_biz_share_ge_100_fibre"
        assert len(new) == 2 * 2 * 2 + 2 + 2 * 2 * 2  # counts (prefix × group × threshold), funding, shares


def reference(level_key: str, hierarchy: pd.DataFrame) -> pd.DataFrame:
    """A plain pandas groupby over per-address business columns, shares from the summed counts."""
    a = ADDRESSES.merge(hierarchy[["ags", "vwg_ars", "krs_ags", "land"]], on="ags")
    data = {level_key: a[level_key], "businesses": a["businesses"]}
    for prefix in ("", "plan_"):
        for g in GROUPS:
            for t in THRESHOLDS:
                data[f"{prefix}biz_ge_{t}_{g}"] = a["businesses"].where(a[f"{prefix}best_down_{g}"] >= t, 0.0)
    for flag in FLAGS:
        data[f"biz_{flag}"] = a["businesses"].where(a[flag], 0.0)
    summed = pd.DataFrame(data).groupby(level_key).sum()
    for prefix in ("", "plan_"):
        for g in GROUPS:
            for t in THRESHOLDS:
                ge = summed[f"{prefix}biz_ge_{t}_{g}"]
                summed[f"{prefix}biz_share_ge_{t}_{g}"] = (100.0 * ge / summed["businesses"]).where(
                    summed["businesses"] > 0)
    return summed


@pytest.mark.parametrize(("level", "key"), [("gemeinde", "ags"), ("amt", "vwg_ars"), ("kreis", "krs_ags"),
                                            ("land", "land")])
def test_business_columns_equal_a_plain_groupby(tables, level, key):
    expected = reference(key, tiny_boundaries().hierarchy())
    got = tables[level].set_index(key)[list(expected.columns)]
    got = got.loc[expected.index]  # areas without addresses: all counts 0 (checked above for G2)
    got.index.name = expected.index.name
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
