"""Best service per address and per-area counts, on a world small enough to check by hand."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from coverage.aggregate import area_tables, gemeinde_counts
from coverage.locate import locate_addresses
from coverage.service import best_service
from coverage.technology import DEFAULT_GROUPS
from tests.conftest import offers, tiny_addresses, tiny_boundaries

GROUPS = DEFAULT_GROUPS
OFFERS = offers([
    ("A1", "P1", "dsl", 50, 10),
    ("A1", "P2", "hfc", 500, 50),
    ("A1", "P3", "ftth", 100, 100),
    ("A2", "P1", "dsl", 100, 40),
    ("A2", "P4", "dsl", 100, 20),
    ("A2", "P5", "lte", 30, np.nan),
    ("A3", "P3", "ftth", 1000, 500, "planned", "2023-01-01"),
    ("A3", "P3", "ftth", 1000, 500, "planned", "2031-01-01"),  # beyond the horizon
])


@pytest.fixture(scope="module")
def service():
    return best_service(pd.Series(["A1", "A2", "A3", "A4"]), OFFERS, GROUPS, planned_until=date(2024, 6, 30))


def row(service, address_id):
    return service.set_index("address_id").loc[address_id]


def test_best_offer_is_highest_download_with_its_own_upload(service):
    a1 = row(service, "A1")
    best = ["best_down_all", "best_up_all", "best_tech_all", "best_provider_all"]
    assert a1[best].tolist() == [500, 50, "hfc", "P2"]
    assert (a1["best_down_fibre"], a1["best_up_fibre"]) == (100, 100)
    assert (a1["best_down_dsl"], a1["best_up_dsl"]) == (50, 10)
    assert a1["n_prov_ge30_all"] == 3 and a1["n_prov_ge100_all"] == 2


def test_equal_downloads_list_every_provider_and_keep_the_better_upload(service):
    a2 = row(service, "A2")
    assert (a2["best_down_dsl"], a2["best_up_dsl"], a2["best_provider_dsl"]) == (100, 40, "P1; P4")
    assert a2["best_down_mobile"] == 30 and np.isnan(a2["best_up_mobile"])  # raster-like: upload unknown
    assert a2["n_prov_ge100_wired"] == 2


def test_address_without_offer_has_explicit_no_service(service):
    a4 = row(service, "A4")
    assert (a4["best_down_all"], a4["best_up_all"], a4["best_tech_all"], a4["best_provider_all"]) == (0, 0, "none", "")
    assert len(service) == 4  # nobody dropped


def test_planned_supply_counts_only_inside_the_horizon(service):
    a3 = row(service, "A3")
    assert a3["best_down_all"] == 0 and a3["best_tech_all"] == "none"
    assert a3["plan_best_down_fibre"] == 1000 and a3["plan_best_tech_fibre"] == "ftth"
    assert row(service, "A1")["plan_best_down_all"] == 500  # current offers stay in the planned view


@pytest.fixture(scope="module")
def tables(service):
    b = tiny_boundaries()
    located, _ = locate_addresses(tiny_addresses(), b.gemeinde, 500)
    addresses = located.merge(service, on="address_id")
    counts = gemeinde_counts(addresses, (30, 100), list(GROUPS), prefixes=("", "plan_"))
    return area_tables(counts, b, (30, 100), list(GROUPS), prefixes=("", "plan_"))


def test_gemeinde_shares_by_hand(tables):
    g = tables["gemeinde"].set_index("ags")
    # G1: A1 (3 hh, 500 Mbit/s) + A2 (2 hh, 100 Mbit/s DSL) -> 5 of 5 at >= 100.
    columns = ["households", "addresses", "hh_ge_100_all", "share_ge_100_all"]
    assert g.loc["13000001", columns].tolist() == [5, 2, 5, 100]
    # Only A1's 3 households have fibre (100 Mbit/s): >= 100 counts (threshold is >=).
    assert g.loc["13000001", "share_ge_100_fibre"] == pytest.approx(60.0)
    assert g.loc["13000001", "hh_lt_100_dsl"] == 3  # A1's DSL is 50
    # G2: A3 has nothing today, 1000 planned within the horizon.
    assert g.loc["13000002", ["share_ge_30_all", "plan_share_ge_100_fibre"]].tolist() == [0, 100]
    # G3: only a school without households: counted as address and site, shares empty.
    assert g.loc["13000003", ["households", "addresses", "sites"]].tolist() == [0, 1, 1]
    assert np.isnan(g.loc["13000003", "share_ge_30_all"])


def test_levels_add_up_and_shares_come_from_counts(tables):
    amt = tables["amt"].set_index("vwg_ars")
    assert amt.loc["130000001", ["households", "hh_ge_100_all", "share_ge_100_all"]].tolist() == [10, 5, 50]
    land = tables["land"].iloc[0]
    assert (land["households"], land["addresses"], land["hh_ge_100_all"], land["share_ge_100_all"]) == (10, 4, 5, 50)
    assert land["businesses"] == 1
    for level in ("amt", "kreis", "land"):
        assert tables[level]["hh_ge_30_wired"].sum() == tables["gemeinde"]["hh_ge_30_wired"].sum()


def test_a_table_never_publishes_an_infinite_or_missing_count():
    import numpy as np
    import pandas as pd
    import pytest

    from pipelines.stages import check_finite_counts

    good = pd.DataFrame({"ags": ["1"], "households": [3.0], "share_ge_30_all": [np.nan]})  # empty share: fine
    check_finite_counts({"gemeinde": good})
    with pytest.raises(AssertionError, match="gemeinde table: column households has 1 non-finite count"):
        check_finite_counts({"gemeinde": good.assign(households=[np.inf])})
