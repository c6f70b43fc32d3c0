"""Eligible-address lists and the cost estimate (Schätzung), on inputs whose answers are worked out by hand."""

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from coverage.costs import _unique_points, area_costs, euclidean_mst
from coverage.errors import ConfigError
from coverage.sections import CostConfig, costs_from_config
from pipelines.cli import main
from tests.conftest import CRS, X0, Y0
from tests.world import write_world

PRICES = CostConfig(price_per_m=100.0, price_per_connection=1000.0, price_per_household=50.0,
                    share_federal=0.5, share_land=0.4, share_municipal=0.1)
# Four eligible addresses and one served one (S at (-10, 0)):
#   E1 (0, 0) — 30 m — E2 (30, 0) — 40 m — E3 (30, 40) — 70 m — E4 (100, 40)
ELIGIBLE = pd.DataFrame({"area": "P", "address_id": ["E1", "E2", "E3", "E4"], "x": [0.0, 30.0, 30.0, 100.0],
                         "y": [0.0, 0.0, 40.0, 40.0], "households": [1.0, 2.0, 3.0, 4.0]})
SERVED = np.array([[-10.0, 0.0]])


def test_trench_is_the_hand_computed_tree_plus_link_and_priced_as_configured():
    result = area_costs(ELIGIBLE, "area", SERVED, PRICES)
    row = result.table.iloc[0]
    assert row["tree_m"] == pytest.approx(30 + 40 + 70) and row["link_m"] == pytest.approx(10)  # E1 -> S
    assert row["metres"] == pytest.approx(150) and row["trees"] == 1
    assert row["cost"] == pytest.approx(150 * 100 + 4 * 1000 + 10 * 50)  # 19 500
    assert row["cost_per_household"] == pytest.approx(1950)
    assert row[["cost_federal", "cost_land", "cost_municipal"]].sum() == pytest.approx(row["cost"])
    assert row["cost_federal"] == pytest.approx(9750) and row["cost_municipal"] == pytest.approx(1950)
    assert sorted(result.edges["kind"]) == ["link", "tree", "tree", "tree"]
    assert "Schätzung" in row["note"]


def test_long_edges_are_cut_and_each_tree_linked_and_isolated_addresses_have_their_own_cost():
    cfg = CostConfig(**{**PRICES.__dict__, "max_link_m": 50.0, "isolated_m": 60.0})
    result = area_costs(ELIGIBLE, "area", SERVED, cfg)
    row = result.table.iloc[0]
    link_e4 = math.hypot(110, 40)  # E4 alone, to S
    assert row["trees"] == 2 and row["tree_m"] == pytest.approx(70)
    assert row["link_m"] == pytest.approx(10 + link_e4)
    assert row["cost"] == pytest.approx((80 + link_e4) * 100 + 4000 + 500)
    iso = result.isolated
    assert iso["address_id"].tolist() == ["E4"] and row["isolated_addresses"] == 1
    assert iso["metres"].iloc[0] == pytest.approx(70)  # cheaper than the 117 m to S
    assert iso["cost"].iloc[0] == pytest.approx(70 * 100 + 1000 + 4 * 50)


def test_mst_is_exact_with_duplicates_and_collinear_points():
    rng = np.random.default_rng(3)
    from scipy.sparse.csgraph import minimum_spanning_tree
    from scipy.spatial.distance import pdist, squareform
    for pts in (rng.integers(0, 15, (200, 2)).astype(float), np.c_[np.arange(8.0), np.arange(8.0) * 2],
                np.array([[1.0, 1.0], [1.0, 1.0]])):
        i, _, length = euclidean_mst(pts)
        assert len(i) == len(pts) - 1
        unique = np.unique(pts, axis=0)
        expected = minimum_spanning_tree(squareform(pdist(unique))).sum() if len(unique) > 1 else 0.0
        assert length.sum() == pytest.approx(expected)


def test_fast_unique_points_equal_numpys_rowwise_unique():
    rng = np.random.default_rng(5)
    for pts in (rng.integers(0, 6, (300, 2)).astype(float), rng.random((50, 2)), np.zeros((0, 2)),
                np.array([[-0.0, 1.0], [0.0, 1.0], [2.0, -1.0]])):
        unique, first, inverse = np.unique(pts, axis=0, return_index=True, return_inverse=True)
        got = _unique_points(pts)
        assert np.array_equal(got[0].reshape(-1, 2), unique.reshape(-1, 2)) and np.array_equal(got[1], first)
        assert np.array_equal(got[2], inverse.reshape(-1))


def test_reused_trees_give_the_same_costs_as_building_them_again():
    cfg = CostConfig(**{**PRICES.__dict__, "max_link_m": 50.0, "isolated_m": 60.0})
    two = pd.concat([ELIGIBLE, ELIGIBLE.assign(area="Q", x=ELIGIBLE["x"] + 500)], ignore_index=True)
    reuse: dict = {}
    first = area_costs(two, "area", SERVED, cfg, reuse)
    again = area_costs(two.rename(columns={"area": "amt"}), "amt", SERVED, cfg, reuse)
    assert len(reuse) == 2  # the second call built nothing
    plain = area_costs(two.rename(columns={"area": "amt"}), "amt", SERVED, cfg)
    for a, b in ((again.table, plain.table), (again.edges, plain.edges), (again.isolated, plain.isolated)):
        pd.testing.assert_frame_equal(a, b)
    assert first.table["metres"].tolist() == plain.table["metres"].tolist()


def test_isolated_addresses_of_several_areas_are_each_areas_with_their_own_area():
    """Areas with and without isolated addresses in one call: each isolated address once, under its area,
    with the columns of one isolated address alone (the table is built once for all areas)."""
    cfg = CostConfig(**{**PRICES.__dict__, "max_link_m": 50.0, "isolated_m": 60.0})
    close = ELIGIBLE.iloc[:2].assign(area="B", x=ELIGIBLE["x"].iloc[:2] + 500)  # 30 m apart: none isolated
    three = pd.concat([ELIGIBLE, close, ELIGIBLE.assign(area="C", y=ELIGIBLE["y"] + 900)], ignore_index=True)
    iso = area_costs(three, "area", SERVED, cfg).isolated
    assert iso["area"].tolist() == ["C", "P"] and iso["address_id"].tolist() == ["E4", "E4"]
    alone = area_costs(ELIGIBLE, "area", SERVED, cfg).isolated
    pd.testing.assert_frame_equal(iso[iso["area"] == "P"].reset_index(drop=True), alone)
    assert area_costs(close, "area", SERVED, cfg).isolated.empty


def test_list_text_from_codes_is_astype_str():
    """The list's text columns from category codes equal ``astype(str)`` (missing values stay missing)."""
    from coverage.eligible import _text, _text_of_codes

    names = np.array(["Küstennetz", "=x", "nan", ""], dtype=object)
    codes = np.array([0, -1, 1, 2, 3, 0, -1])
    expected = pd.Series(pd.Categorical.from_codes(codes, names).astype(str))
    pd.testing.assert_series_equal(pd.Series(_text_of_codes(codes, names)), expected)
    for values in (pd.Series(pd.Categorical(["b", None, "a", "b"])), pd.Series(pd.Categorical([3, 1, None])),
                   pd.Series(["x", None, "y"]), pd.Series([1.5, np.nan])):
        pd.testing.assert_series_equal(_text(values), values.astype(str))


def test_deciding_offers_take_the_offers_positions_only_when_they_name_the_same_addresses():
    """Offers with ``addr`` (a single run's) are placed by it when it names each offer's address, else
    by their ids: a wrong ``addr`` changes nothing."""
    from coverage.eligible import _positions, deciding_offers
    from coverage.funding import DEFAULT_RULES

    ids = pd.Series(["A1", "A2", "A3"])
    offers = pd.DataFrame({"address_id": ["A3", "A1", "A3", "A9"], "provider": ["P", "Q", "R", "S"],
                           "technology": ["ftth", "dsl", "dsl", "ftth"], "down_mbps": [1000.0, 50.0, 16.0, 1000.0],
                           "up_mbps": [200.0, 10.0, 1.0, 200.0], "status": "current"})
    rules = list(DEFAULT_RULES)
    plain = deciding_offers(ids, offers, rules)
    known = offers.iloc[:3]  # A9 is no address of the list: no position names it
    right = deciding_offers(ids, known.assign(addr=[2, 0, 2]), rules)
    pd.testing.assert_frame_equal(right, deciding_offers(ids, known, rules))
    pd.testing.assert_frame_equal(deciding_offers(ids, offers.assign(addr=[0, 1, 2, 0]), rules), plain)
    index = pd.Index(ids)
    assert _positions(index, known.assign(addr=[2, 0, 2])).tolist() == [2, 0, 2]
    assert _positions(index, offers.assign(addr=[2, 0, 2, 0])).tolist() == [2, 0, 2, -1]  # by id
    assert _positions(index, known.assign(addr=[2, 0, 1])).tolist() == [2, 0, 2]
    rule = rules[0].name
    assert plain.loc["A3", f"{rule}_provider"] == "P" and pd.isna(plain.loc["A2", f"{rule}_provider"])


@pytest.mark.parametrize(("change", "message"), [
    ({"share_land": 0.5}, "must be 1"), ({"price_per_m": -1}, "≥ 0"), ({"rule": "nope"}, "unknown funding rule")])
def test_costs_config_is_checked(tmp_path, change, message):
    raw = {"price_per_m": 1, "price_per_connection": 1, "price_per_household": 0, "share_federal": 0.5,
           "share_land": 0.4, "share_municipal": 0.1, **change}
    with pytest.raises(ConfigError, match=message):
        costs_from_config(raw, tmp_path, ["gigabit_2024"])
    with pytest.raises(ConfigError, match="no built-in prices"):
        costs_from_config({"price_per_m": 1}, tmp_path, ["gigabit_2024"])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("funding")
    config = write_world(root)
    gpd.GeoDataFrame({"name": ["Projekt Süd"]}, geometry=[box(X0, Y0, X0 + 2000, Y0 + 1000)], crs=CRS).to_file(
        root / "projekte.gpkg")
    config.write_text(config.read_text(encoding="utf-8") + """
[[project_areas]]
path = "projekte.gpkg"
[costs]
label = "Testwerte"
price_per_m = 100
price_per_connection = 1000
price_per_household = 50
share_federal = 0.5
share_land = 0.4
share_municipal = 0.1
""", encoding="utf-8")
    assert main(["run", "--config", str(config), "--no-report"]) == 0
    return root, config


def test_list_holds_exactly_the_areas_addresses_with_their_verdicts(world, capsys):
    root, config = world
    out = root / "eins.csv"
    assert main(["eligible", "--config", str(config), "--area", "Eins", "--out", str(out)]) == 0
    frame = pd.read_csv(out, dtype={"ags": str}).set_index("address_id")
    assert sorted(frame.index) == ["A1", "A2"] and set(frame["ags"]) == {"13000001"}
    # A1 has FTTH 1000/500 (not eligible, decided by it); A2 SVDSL 100/40 (eligible; its best offer)
    assert frame.loc["A1", "fund_gigabit_2024"] == False  # noqa: E712 - a CSV value
    assert frame.loc["A1", ["gigabit_2024_technology", "gigabit_2024_down_mbps"]].tolist() == ["ftth", 1000]
    assert frame.loc["A2", "fund_gigabit_2024"] == True  # noqa: E712
    assert frame.loc["A2", ["gigabit_2024_technology", "gigabit_2024_up_mbps"]].tolist() == ["dsl", 40]
    south = root / "sued.xlsx"
    assert main(["eligible", "--config", str(config), "--area", "projekt süd", "--rule", "gigabit_2024",
                 "--out", str(south)]) == 0
    sheet = pd.read_excel(south)
    assert sorted(sheet["Adress-ID"]) == ["A2", "A3"]  # A1 is served; A4 lies outside the polygon
    assert "Förderfähig: Gigabit-Richtlinie 2024 (Änderung)" in sheet.columns


def test_unknown_area_is_a_one_line_error(world, capsys):
    root, config = world
    assert main(["eligible", "--config", str(config), "--area", "Nirgendwo", "--out", str(root / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "Nirgendwo" in err and "\n" not in err and not (root / "x.csv").exists()


def test_run_writes_lists_per_amt_and_the_costs(world):
    root, _ = world
    run = root / "out" / "latest"
    lists = sorted(p.name for p in (run / "eligible").glob("*.csv"))
    assert lists == ["130000001.csv", "130000002.csv"]
    assert sorted(pd.read_csv(run / "eligible" / "130000001.csv")["address_id"]) == ["A1", "A2", "A3"]
    project = pd.read_csv(run / "costs" / "costs_project.csv").iloc[0]
    # eligible A2 (500, 500) and A3 (1500, 500): one 1000 m edge, linked from A2 to the served A1 (100.5, 100)
    link = math.hypot(399.5, 400)
    assert project["metres"] == pytest.approx(1000 + link)
    assert project["cost"] == pytest.approx((1000 + link) * 100 + 2 * 1000 + (2 + 5) * 50)
    trees = gpd.read_file(run / "costs" / "costs_tree.gpkg")
    assert set(trees["level"]) == {"gemeinde", "project"}


def test_the_lists_need_only_the_address_columns_a_worker_reads(world):
    """The run's worker reads only :func:`list_input_columns` of addresses.parquet: the list from those
    equals the list from every column (and the run's own lists)."""
    import pyarrow.parquet as pq

    from coverage.config import load_config
    from coverage.eligible import OFFER_FIELDS, eligible_list, list_input_columns
    from pipelines.funding_outputs import gemeinde_names

    root, config = world
    run = root / "out" / "latest"
    cfg = load_config(config)
    groups, rules = list(cfg.analysis.groups), cfg.funding_rules
    full = pd.read_parquet(run / "addresses.parquet")
    columns = list_input_columns(pq.read_schema(run / "addresses.parquet").names, groups, rules)
    assert len(columns) < len(full.columns) and "fund_gigabit_2024" in columns
    offers = pd.read_parquet(run / "offers.parquet", columns=["address_id", "addr", *OFFER_FIELDS, "status"])
    names = gemeinde_names({"gemeinde": pd.read_csv(run / "tables" / "coverage_gemeinde.csv", dtype={"ags": str})})
    subset = eligible_list(full[columns], offers, groups, rules, names)
    pd.testing.assert_frame_equal(subset, eligible_list(full, offers, groups, rules, names))
    written = pd.read_csv(run / "eligible" / "130000001.csv", dtype=str, keep_default_na=False)
    assert written["address_id"].tolist() == ["A1", "A2", "A3"] and list(written.columns) == list(subset.columns)
