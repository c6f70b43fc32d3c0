"""Invariants that must hold for any addresses and offers (hypothesis)."""

from datetime import date

import geopandas as gpd
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coverage.aggregate import area_tables, gemeinde_counts
from coverage.locate import locate_addresses
from coverage.service import best_service
from coverage.technology import DEFAULT_GROUPS, Technology
from tests.conftest import CRS, pt, tiny_boundaries

THRESHOLDS = (2, 16, 30, 100, 1000)
TECHS = [t.value for t in Technology]
BOUNDARIES = tiny_boundaries()

addresses_st = st.lists(
    st.tuples(st.floats(-300, 2300), st.floats(-300, 2300), st.integers(0, 40)), min_size=1, max_size=40)
offers_st = st.lists(
    st.tuples(st.integers(0, 39), st.sampled_from(["P1", "P2", "P3"]), st.sampled_from(TECHS),
              st.sampled_from([0.5, 2, 16, 29.9, 30, 50, 100, 250, 1000, 2000]), st.sampled_from([0.5, 10, 50, 500]),
              st.sampled_from(["current", "planned"])), max_size=120)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(addresses_st, offers_st)
def test_rows_kept_shares_bounded_monotone_additive(addr_rows, offer_rows):
    addresses = gpd.GeoDataFrame({
        "address_id": [f"A{i}" for i in range(len(addr_rows))],
        "households": [float(h) for _, _, h in addr_rows], "businesses": 0.0, "site_kind": "",
        "source_row": np.arange(len(addr_rows)) + 2,
    }, geometry=[pt(x, y) for x, y, _ in addr_rows], crs=CRS)
    offers = pd.DataFrame([(f"A{a}", p, t, d, min(u, d), s, "2022-01-01" if s == "planned" else "")
                           for a, p, t, d, u, s in offer_rows if a < len(addr_rows)],
                          columns=["address_id", "provider", "technology", "down_mbps", "up_mbps", "status",
                                   "planned_date"])

    located, rejected = locate_addresses(addresses, BOUNDARIES.gemeinde, tolerance_m=500)
    assert len(located) + len(rejected) == len(addresses)  # every row somewhere

    service = best_service(located["address_id"], offers, DEFAULT_GROUPS, planned_until=date(2024, 1, 1))
    assert len(service) == len(located) and (service["address_id"] == located["address_id"]).all()
    for g in DEFAULT_GROUPS:
        assert (service[f"plan_best_down_{g}"] >= service[f"best_down_{g}"]).all()  # planning never removes

    merged = located.merge(service, on="address_id")
    counts = gemeinde_counts(merged, THRESHOLDS, list(DEFAULT_GROUPS), prefixes=("", "plan_"))
    tables = area_tables(counts, BOUNDARIES, THRESHOLDS, list(DEFAULT_GROUPS), prefixes=("", "plan_"))
    total = located["households"].sum()
    for level, table in tables.items():
        assert table["households"].sum() == total, level  # levels add up
        for g in DEFAULT_GROUPS:
            shares = table[[f"share_ge_{t}_{g}" for t in THRESHOLDS]]
            assert ((shares >= 0) & (shares <= 100) | shares.isna()).all().all()
            ge = table[[f"hh_ge_{t}_{g}" for t in THRESHOLDS]].to_numpy()
            assert (np.diff(ge, axis=1) <= 0).all()  # monotone: more at 2 than at 1000
            assert (table[[f"hh_ge_{t}_all" for t in THRESHOLDS]].to_numpy() >= ge).all()  # all >= any group
            below = table[[f"hh_lt_{t}_{g}" for t in THRESHOLDS]].to_numpy()
            assert np.allclose(ge + below, table[["households"]].to_numpy())
