"""Funding rules per offer, and administrative sites, on hand-made offers."""

import numpy as np
import pandas as pd
import pytest

from coverage.errors import ConfigError
from coverage.funding import DEFAULT_RULES, evaluate_rules, rules_from_config
from coverage.locate import locate_addresses
from coverage.service import best_service
from coverage.sites import site_class, site_counts, site_table
from coverage.technology import DEFAULT_GROUPS
from tests.conftest import offers, tiny_addresses, tiny_boundaries

IDS = pd.Series(["A1", "A2", "A3", "A4"])


def flags(rows, planned_rows=()):
    current = offers(rows)
    with_planned = pd.concat([current, offers(list(planned_rows))]) if planned_rows else current
    return evaluate_rules(IDS, {"": current, "plan_": with_planned}, DEFAULT_RULES).set_index("address_id")


def test_symmetric_rule_is_evaluated_per_offer_not_per_address():
    f = flags([("A1", "P1", "hfc", 500, 50), ("A1", "P2", "ftth", 100, 100)])
    # 500 down reaches the 500 Mbit/s condition of 2023 -> not eligible; no single offer is 300/150 -> eligible in 2024.
    assert f.loc["A1", ["fund_white", "fund_grey", "fund_gigabit_2023", "fund_gigabit_2024"]].tolist() == [
        False, False, False, True]
    f = flags([("A1", "P1", "hfc", 400, 50), ("A1", "P2", "ftth", 100, 100)])
    assert f.loc["A1", "fund_gigabit_2023"]  # neither 200/200 nor 500 in one offer


def test_thresholds_are_inclusive_and_mobile_never_disqualifies():
    f = flags([("A1", "P1", "dsl", 30, 5), ("A2", "P2", "lte", 300, 150), ("A2", "P3", "5g", 1000, 200),
               ("A3", "P4", "ftth", 200, 200)])
    assert not f.loc["A1", "fund_white"] and f.loc["A1", "fund_grey"]
    assert f.loc["A2", ["fund_white", "fund_grey", "fund_gigabit_2023", "fund_gigabit_2024"]].all()
    assert not f.loc["A3", "fund_gigabit_2023"] and f.loc["A3", "fund_gigabit_2024"]
    assert f.loc["A4"].all()  # no offer at all: eligible everywhere


def test_unknown_upload_cannot_meet_a_symmetric_condition():
    f = flags([("A1", "P1", "fwa", 300, np.nan)])
    assert f.loc["A1", "fund_gigabit_2024"] and not f.loc["A1", "fund_grey"]


def test_planned_supply_changes_only_the_plan_flags():
    f = flags([("A1", "P1", "dsl", 16, 1)], planned_rows=[("A1", "P2", "ftth", 1000, 500, "planned", "2023-01-01")])
    assert f.loc["A1", "fund_white"] and not f.loc["A1", "fund_white_plan"]


def test_rules_from_config_and_their_errors():
    (rule,) = rules_from_config([{"name": "bayern", "label": "Bayern", "disqualifying": [[100, 20]]}])
    assert rule.disqualifying == ((100.0, 20.0),) and "≥ 100/20 Mbit/s" in rule.describe()
    with pytest.raises(ConfigError, match="lower-case identifier"):
        rules_from_config([{"name": "Bad Name", "disqualifying": [[1, 0]]}])
    with pytest.raises(ConfigError, match="unknown key"):
        rules_from_config([{"name": "x", "disqualifying": [[1, 0]], "colour": "red"}])


def test_site_classes_and_counts_up_the_hierarchy():
    assert site_class(pd.Series([0, 29.9, 30, 99, 100, 999, 1000])).tolist() == [
        "< 30 Mbit/s", "< 30 Mbit/s", "≥ 30 Mbit/s", "≥ 30 Mbit/s", "≥ 100 Mbit/s", "≥ 100 Mbit/s", "≥ 1000 Mbit/s"]
    b = tiny_boundaries()
    located, _ = locate_addresses(tiny_addresses(), b.gemeinde, 500)
    located.loc[located["address_id"] == "A2", ["site_kind", "site_name"]] = ["gemeinde_office", "Gemeindeamt Eins"]
    service = best_service(located["address_id"], offers([("A2", "P1", "dsl", 100, 40), ("A4", "P2", "dsl", 16, 1)]),
                           DEFAULT_GROUPS)
    sites = site_table(located.merge(service, on="address_id"), b)
    shown = ["address_id", "site_kind", "gemeinde_name", "amt_name", "best_down", "service_class"]
    assert sites[shown].values.tolist() == [
        ["A2", "gemeinde_office", "Eins", "Amt A", 100.0, "≥ 100 Mbit/s"],
        ["A4", "school", "Drei", "Drei", 16.0, "< 30 Mbit/s"]]
    counts = site_counts(sites, b, (30, 100))
    land = counts["land"].set_index("site_kind")
    assert land.loc["school", ["sites", "sites_ge_30", "share_sites_ge_30"]].tolist() == [1, 0, 0]
    assert land.loc["gemeinde_office", ["sites", "sites_ge_100", "share_sites_ge_100"]].tolist() == [1, 1, 100]
    assert np.isnan(land.loc["kreis_office", "share_sites_ge_30"])  # no site of that kind: empty share
    amt = counts["amt"]
    assert amt["sites"].sum() == counts["gemeinde"]["sites"].sum() == 2
