"""The vectorised disclosure control equals the first, loop-by-loop implementation
(tests/disclosure_reference.py) on the hand-made case and on random worlds with grids.

Equal means: the same reason for every figure of every area and cell, the same published table (rounded
counts, empty cells, shares) and the same disclosure report rows.
"""

import numpy as np
import pandas as pd
import pytest

import coverage.disclosure as disclosure
from coverage.disclosure import (
    best_offer_providers,
    grid_cell_counts,
    grid_units,
    protect_all,
    published,
    report_rows,
)
from coverage.sections import DisclosureRules
from tests import disclosure_reference as reference
from tests.test_publish import hand_made

GROUPS = {"fibre": ("ftth",), "dsl": ("dsl",), "all": ("ftth", "dsl")}
THRESHOLDS = (30.0, 100.0)


def random_world(seed: int):
    """Tables, addresses and offers of a random Land: 3 Kreise, 2-4 Ämter each, 1-6 Gemeinden each;
    1-40 addresses per Gemeinde (many below 5), 0-3 households; 1-3 providers per Gemeinde, often one
    dominating; addresses on a small patch of the grid so that 100 m cells hold several or few."""
    rng = np.random.default_rng(seed)
    rows, offers = [], []
    for k in range(3):
        for a in range(rng.integers(2, 5)):
            for g in range(rng.integers(1, 7)):
                ags, amt = f"13{k}{a}{g:04d}", f"13{k}{a}"
                providers = [f"P{i}" for i in rng.choice(4, rng.integers(1, 4), replace=False)]
                weights = rng.dirichlet(np.ones(len(providers)) * 0.5)
                e0, n0 = rng.integers(0, 40) * 1000, rng.integers(0, 40) * 1000
                for i in range(rng.integers(1, 41)):
                    aid = f"{ags}-{i}"
                    rows.append({"address_id": aid, "households": float(rng.integers(0, 4)),
                                 "businesses": float(rng.random() < 0.2), "ags": ags, "vwg_ars": amt,
                                 "krs_ags": f"13{k}", "land": "13", "east": 4_000_000 + e0 + rng.integers(0, 300),
                                 "north": 3_000_000 + n0 + rng.integers(0, 300)})
                    for p in rng.choice(providers, rng.integers(0, 3), p=weights):
                        tech = str(rng.choice(["ftth", "dsl"]))
                        offers.append({"address_id": aid, "provider": str(p), "technology": tech,
                                       "down_mbps": 1000.0 if tech == "ftth" else float(rng.choice([16, 50, 100])),
                                       "status": str(rng.choice(["current", "current", "planned"]))})
    addresses = pd.DataFrame(rows)
    offers = pd.DataFrame(offers).drop_duplicates(["address_id", "provider", "technology"])
    current = offers[offers["status"] == "current"]
    for g, techs in GROUPS.items():
        mine = current[current["technology"].isin(techs)].sort_values(["down_mbps", "provider"])
        top = mine.drop_duplicates("address_id", keep="last").set_index("address_id")
        addresses[f"best_down_{g}"] = addresses["address_id"].map(top["down_mbps"]).fillna(0.0)
        provider = addresses["address_id"].map(top["provider"]).astype(object)
        addresses[f"best_provider_{g}"] = provider.where(provider.notna(), "").astype(str)
    addresses["fund"] = addresses["best_down_all"] < 100
    tables = {}
    for level, key, parents in (("gemeinde", "ags", ["vwg_ars", "krs_ags", "land"]),
                                ("amt", "vwg_ars", ["krs_ags", "land"]), ("kreis", "krs_ags", ["land"]),
                                ("land", "land", [])):
        by = addresses.groupby(key)
        t = pd.DataFrame({"addresses": by.size().astype(float), "households": by["households"].sum(),
                          "businesses": by["businesses"].sum()})
        for g in GROUPS:
            for th in THRESHOLDS:
                reach = addresses[f"best_down_{g}"] >= th
                t[f"hh_ge_{th:.0f}_{g}"] = (addresses["households"] * reach).groupby(addresses[key]).sum()
                t[f"biz_ge_{th:.0f}_{g}"] = (addresses["businesses"] * reach).groupby(addresses[key]).sum()
        t["hh_fund_x"] = (addresses["households"] * addresses["fund"]).groupby(addresses[key]).sum()
        t["addr_fund_x"] = addresses["fund"].astype(float).groupby(addresses[key]).sum()
        t = t.reset_index()
        first = addresses.drop_duplicates(key).set_index(key)
        for col in parents:
            t[col] = t[key].map(first[col])
        t["display_name"] = "Gebiet " + t[key]
        tables[level] = t
    return tables, addresses, offers


def _grid(addresses, rules):
    unit, _ = grid_units(addresses["east"].to_numpy(float), addresses["north"].to_numpy(float), rules.min_addresses)
    cells = grid_cell_counts(unit, addresses, THRESHOLDS, list(GROUPS))
    is_1km = cells.index.str.startswith("CRS3035RES1km")
    return {"grid_100m": (cells[~is_1km], unit), "grid_1km": (cells[is_1km], unit)}


def _both(tables, addresses, offers, rules, grid, monkeypatch, groups=GROUPS):
    """(vectorised, reference) suppression of the same world."""
    pairs = best_offer_providers(addresses, offers, groups)
    old_pairs = reference.best_offer_providers(addresses, offers, groups)
    assert list(pairs) == list(old_pairs)
    for g, frame in pairs.items():
        pd.testing.assert_frame_equal(frame.drop(columns="row"), old_pairs[g])
        assert (frame["address_id"].to_numpy() == addresses["address_id"].to_numpy()[frame["row"]]).all()
    new = protect_all(tables, addresses, pairs, rules, grid)
    with monkeypatch.context() as m:
        m.setattr(disclosure, "primary", reference.primary)
        m.setattr(disclosure, "complementary", reference.complementary)
        m.setattr(disclosure, "dominance_shares", reference.dominance_shares)
        old = protect_all(tables, addresses, old_pairs, rules, grid)
    return new, old


def _assert_equal(new, old, rules):
    assert list(new.reason) == list(old.reason)
    for level in old.reason:
        pd.testing.assert_frame_equal(new.reason[level], old.reason[level], check_dtype=False, check_index_type=False)
        pd.testing.assert_frame_equal(published(new.counts[level], new.reason[level], rules),
                                      reference.published(old.counts[level], old.reason[level], rules))
        names = {str(k): f"Name {k}" for k in old.reason[level].index}
        assert report_rows(level, new.reason[level], names) == reference.report_rows(level, old.reason[level], names)
        assert report_rows(level, new.reason[level]) == reference.report_rows(level, old.reason[level])


def test_hand_made_case_equals_the_reference(monkeypatch):
    tables, addresses, offers = hand_made()
    rules = DisclosureRules(5, 10, 0.85)
    new, old = _both(tables, addresses, offers, rules, None, monkeypatch, {"fibre": ("FTTH",)})
    _assert_equal(new, old, rules)


@pytest.mark.parametrize("seed", range(4))
def test_random_worlds_equal_the_reference(seed, monkeypatch):
    tables, addresses, offers = random_world(seed)
    rules = DisclosureRules(min_addresses=[3, 5, 4][seed % 3], round_to=[1, 5, 10][seed % 3],
                            dominance_share=[0.85, 0.6, 0.95][seed % 3])
    new, old = _both(tables, addresses, offers, rules, _grid(addresses, rules), monkeypatch)
    _assert_equal(new, old, rules)
    # the case is not trivial: every reason occurs
    reasons = set(np.concatenate([r.to_numpy().ravel() for r in new.reason.values()]))
    assert {"min_addresses", "dominance", "complementary"} <= reasons
    grid = set(np.concatenate([new.reason[n].to_numpy().ravel() for n in ("grid_100m", "grid_1km")]))
    assert len(new.reason["grid_100m"]) and len(new.reason["grid_1km"]) and len(grid) > 1
