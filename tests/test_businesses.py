"""Business (Gewerbe) counts and shares per area, on a world small enough to check by hand."""

import re

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


def test_german_labels_of_business_columns():
    from coverage.report.labels import german_label

    assert german_label("biz_ge_100_all") == "Unternehmen ≥ 100 Mbit/s (alle Technologien)"
    assert german_label("plan_biz_share_ge_1000_fibre") == \
        "Anteil Unternehmen ≥ 1000 Mbit/s (Glasfaser (FTTH/B)) in %, mit Planung"
    assert german_label("biz_fund_white_plan", {"white": "Weißer Fleck"}) == \
        "Unternehmen förderfähig: Weißer Fleck, mit Planung"
    assert german_label("share_ge_100_all") == "Anteil ≥ 100 Mbit/s (alle Technologien) in %"  # unchanged


def test_funding_rules_sheet_counts_businesses(tables):
    from coverage.funding import DEFAULT_RULES
    from pipelines.export import funding_rules_frame

    frame = funding_rules_frame(DEFAULT_RULES[:1], tables["land"])
    assert list(frame.columns[-2:]) == ["biz_fund", "biz_fund_plan"]
    assert frame[["hh_fund", "addr_fund", "biz_fund", "biz_fund_plan"]].iloc[0].tolist() == [1, 1, 1, 1]


EVIL = "<script>alert(1)</script>"
META = {"thresholds": list(THRESHOLDS), "groups": GROUPS, "title": "Test"}


def _section(page: str, section: str = "gewerbe") -> str:
    return page.split(f'<section id="{section}">')[1].split("</section>")[0]


def test_gewerbe_section_of_an_area_page(tables):
    from coverage.funding import DEFAULT_RULES
    from coverage.report.atlas import atlas_data, render_area_page
    from pipelines.report import SITE_COLUMNS

    sites = pd.DataFrame({c: pd.Series(dtype="object") for c in SITE_COLUMNS})
    evil = {level: t.assign(name=EVIL) if level == "gemeinde" else t for level, t in tables.items()}
    data = atlas_data(evil, sites, DEFAULT_RULES[:1], META)
    page = render_area_page(data, "gemeinde", "13000001", None)
    assert '<a href="#gewerbe">Gewerbe</a>' in page and "<script>alert" not in page
    gewerbe = _section(page)
    assert "4 Unternehmen im Gebiet" in gewerbe
    # rows: all (≥ 30: 75 %, ≥ 100: 75 %, with planning ≥ 100: 75 %), fibre (0 %, 0 %, planned 75 %)
    cells = re.findall(r'data-value="([^"]+)"', gewerbe)
    assert cells[:6] == ["75.0", "75.0", "75.0", "0.0", "0.0", "75.0"]
    assert "75,0\u00a0%" in gewerbe
    assert cells[6:] == ["1.0", "1.0"]  # B2's business is at a white spot, with and without planning
    # an area without businesses says so instead of a table of dashes
    assert "Keine Unternehmen" in _section(render_area_page(data, "gemeinde", "13000002", None))
    amt = _section(render_area_page(data, "amt", "130000001", None))
    assert re.findall(r'data-value="([^"]+)"', amt)[:2] == ["75.0", "75.0"]


def test_gewerbe_section_of_the_overview(tables):
    from coverage.report import render_overview

    index = render_overview(tables, {}, META)
    gewerbe = _section(index)
    assert "6 Unternehmen im Gebiet" in gewerbe
    # Land: ≥ 30 Mbit/s 5 of 6 (83.33 %), ≥ 100 Mbit/s 3 of 6 (50 %), recomputed from the counts
    cells = re.findall(r'data-value="([^"]+)"', gewerbe)
    assert cells[:3] == [repr(round(500 / 6, 6)), "50.0", "50.0"]
    assert "83,3\u00a0%" in gewerbe
    old = {level: t.drop(columns=[c for c in t.columns if "biz_" in c]) for level, t in tables.items()}
    assert 'id="gewerbe"' not in render_overview(old, {}, META)  # tables of older runs: no section


RUN_TABLE = pd.DataFrame({
    "ags": ["13000001", "13000002", "13000003", "13000004"],
    "households": [10.0, 5.0, 0.0, 3.0],
    "businesses": [4.0, 0.0, 2.0, 1.0],
    "share_ge_100_wired": [90.0, 100.0, np.nan, 100.0],
    "share_ge_1000_fibre": [50.0, 0.0, np.nan, 0.0],
    "biz_share_ge_100_wired": [75.0, np.nan, 100.0, 100.0],
    "biz_share_ge_1000_fibre": [25.0, np.nan, 50.0, 0.0],
})
BBA_GEW = ('"AGS","leitungsg. Technologien ≥ 100 Mbit/s","FTTH/B ≥ 1000 Mbit/s"\n'
           '"13000001",70.00,20.00\n"13000002",50.00,0.00\n"13000003",90.00,60.00\n"13000009",10.00,10.00\n')


def test_kind_of_breitbandatlas_file():
    from coverage.compare import kind_of_file

    assert kind_of_file("data/gemeinde_bezirke_gew_2021_mitte.csv") == "businesses"
    assert kind_of_file("gemeinde_bezirke_privat_2021_mitte.csv") == "households"
    assert kind_of_file("gewerbegebiete_privat.csv") == "households"


def _compare_cli(tmp_path, *extra):
    from pipelines.cli import main

    run = tmp_path / "run"
    (run / "tables").mkdir(parents=True, exist_ok=True)
    (run / "manifest.json").write_text("{}", encoding="utf-8")
    RUN_TABLE.to_csv(run / "tables" / "coverage_gemeinde.csv", index=False)
    bba = tmp_path / "gemeinde_bezirke_gew_test.csv"
    bba.write_text(BBA_GEW, encoding="utf-8")
    out = tmp_path / "cmp"
    assert main(["compare-bba", str(run), str(bba), "--out", str(out), *extra]) == 0
    summary = pd.read_csv(out / "bba_gemeinde_bezirke_gew_test_summary.csv").set_index(["group", "threshold_mbps"])
    unmatched = pd.read_csv(out / "bba_gemeinde_bezirke_gew_test_unmatched.csv", dtype={"ags": str})
    return summary, unmatched


def test_compare_bba_compares_business_shares_of_a_gew_table(tmp_path, capsys):
    summary, unmatched = _compare_cli(tmp_path)
    assert "Compared businesses (biz_share_ge_*)" in capsys.readouterr().out
    # G1 (75 vs 70) and G3 (100 vs 90); G2 has no businesses; 13000004 / 13000009 have no partner
    wired = summary.loc[("wired", 100.0)]
    assert wired["gemeinden"] == 2 and wired["mean_abs_diff_pp"] == pytest.approx(7.5)
    assert wired["run_share_total"] == pytest.approx((75 * 4 + 100 * 2) / 6)
    assert wired["bba_share_biz_weighted"] == pytest.approx((70 * 4 + 90 * 2) / 6)
    fibre = summary.loc[("fibre", 1000.0)]  # +5 and −10
    assert (fibre["mean_abs_diff_pp"], fibre["median_abs_diff_pp"]) == (7.5, 7.5)
    assert unmatched.to_numpy().tolist() == [["13000004", "run"], ["13000009", "breitbandatlas"]]


def test_compare_bba_kind_overrides_the_file_name(tmp_path):
    summary, _ = _compare_cli(tmp_path, "--kind", "households")
    # households: G1 (90 vs 70) and G2 (100 vs 50); G3 has no households
    wired = summary.loc[("wired", 100.0)]
    assert wired["gemeinden"] == 2 and wired["mean_abs_diff_pp"] == pytest.approx(35.0)
    assert "bba_share_hh_weighted" in summary.columns


def test_compare_bba_spread_per_group_counts_gemeinden_far_off(tmp_path, capsys):
    """The per-Gemeinde spread: mean, 95th percentile, max and Gemeinden off by > 5 / > 10 pp."""
    from coverage.compare import spread_by_group

    detail = pd.DataFrame({
        "key": ["A", "A", "B", "B", "C"], "group": ["wired"] * 4 + ["dsl"],
        "threshold_mbps": [16.0, 100.0, 16.0, 100.0, 16.0], "diff_pp": [1.0, -12.0, 5.0, 0.0, 6.0]})
    spread = spread_by_group(detail).set_index("group")
    assert spread.loc["wired", "gemeinden"] == 2
    assert spread.loc["wired", "mean_abs_diff_pp"] == pytest.approx(4.5)
    assert spread.loc["wired", "max_abs_diff_pp"] == 12.0
    assert spread.loc["wired", "p95_abs_diff_pp"] == pytest.approx(np.quantile([1, 12, 5, 0], 0.95))
    # A is off by 12 at 100 (> 10); B by exactly 5 (not more); C by 6 (dsl)
    assert (spread.loc["wired", "gemeinden_over_5pp"], spread.loc["wired", "gemeinden_over_10pp"]) == (1, 1)
    assert (spread.loc["dsl", "gemeinden_over_5pp"], spread.loc["dsl", "gemeinden_over_10pp"]) == (1, 0)
    _compare_cli(tmp_path)
    assert "gemeinden_over_5pp" in capsys.readouterr().out
