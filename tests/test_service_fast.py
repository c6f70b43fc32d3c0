"""The fast best_service / evaluate_rules / gemeinde_counts equal straightforward reference versions.

The references below are the former pandas/numpy implementations (lexsort + unique per group, a
groupby over per-address columns), kept here verbatim as the specification.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from coverage.aggregate import gemeinde_counts
from coverage.funding import DEFAULT_RULES, FundingRule, disqualifying_offers, evaluate_rules
from coverage.model import threshold_tag
from coverage.service import NO_SERVICE, PROVIDER_COUNT_THRESHOLDS, best_service, numba, offers_in_scope
from coverage.technology import DEFAULT_GROUPS, Technology
from tests.test_service_aggregate import OFFERS

HORIZON = date(2024, 6, 30)


# ----------------------------------------------------------------------------- reference implementations

def ref_offers_in_scope(offers, planned_until):
    current = offers[offers["status"] == "current"]
    if planned_until is None:
        return {"": current, "plan_": current}
    dates = pd.to_datetime(offers["planned_date"].replace("", pd.NA), errors="coerce")
    in_horizon = (offers["status"] == "planned") & (dates.isna() | (dates <= pd.Timestamp(planned_until)))
    return {"": current, "plan_": offers[(offers["status"] == "current") | in_horizon]}


class RefCoded:
    def __init__(self, offers, ids):
        pos = ids.get_indexer(offers["address_id"].astype(str))
        keep = pos >= 0
        self.n = len(ids)
        self.addr = pos[keep]
        self.down = offers["down_mbps"].to_numpy(dtype="float64")[keep]
        self.up = offers["up_mbps"].to_numpy(dtype="float64")[keep]
        self.prov_code, self.prov_names = pd.factorize(offers["provider"].astype(str).to_numpy()[keep], sort=True)
        self.tech = offers["technology"].astype(str).to_numpy()[keep]


def ref_unique_pairs(addr, prov, n_prov):
    keys = np.unique(addr.astype(np.int64) * max(n_prov, 1) + prov)
    return np.stack([keys // max(n_prov, 1), keys % max(n_prov, 1)])


def ref_best_for_group(c, techs, prefix, group, counts):
    sel = np.flatnonzero(np.isin(c.tech, techs))
    addr, down, prov = c.addr[sel], c.down[sel], c.prov_code[sel]
    up = np.nan_to_num(c.up[sel], nan=-1.0)
    order = np.lexsort((-up, -down, addr))
    first = order[np.unique(addr[order], return_index=True)[1]]
    best_down = np.zeros(c.n)
    best_up = np.zeros(c.n)
    best_tech = np.full(c.n, NO_SERVICE, dtype=object)
    best_down[addr[first]] = down[first]
    best_up[addr[first]] = c.up[sel][first]
    best_tech[addr[first]] = c.tech[sel][first]
    at_best = down == best_down[addr]
    pairs = ref_unique_pairs(addr[at_best], prov[at_best], len(c.prov_names))
    providers = np.full(c.n, "", dtype=object)
    n_best = np.bincount(pairs[0], minlength=c.n)
    single = n_best[pairs[0]] == 1
    providers[pairs[0][single]] = c.prov_names[pairs[1][single]]
    multi = pairs[:, ~single]
    starts = np.unique(multi[0], return_index=True)[1]
    if len(starts):
        for a, names in zip(multi[0][starts], np.split(c.prov_names[multi[1]], starts[1:]), strict=True):
            providers[a] = "; ".join(names)
    out = {f"{prefix}best_down_{group}": best_down, f"{prefix}best_up_{group}": best_up,
           f"{prefix}best_tech_{group}": best_tech, f"{prefix}best_provider_{group}": providers}
    if counts:
        for t in PROVIDER_COUNT_THRESHOLDS:
            fast = down >= t
            uniq = ref_unique_pairs(addr[fast], prov[fast], len(c.prov_names))
            out[f"n_prov_ge{t}_{group}"] = np.bincount(uniq[0], minlength=c.n).astype("int64")
    return out


def ref_best_service(address_ids, offers, groups, planned_until=None):
    ids = pd.Index(address_ids.astype(str), name="address_id")
    columns = {}
    for prefix, scope in ref_offers_in_scope(offers, planned_until).items():
        coded = RefCoded(scope, ids)
        for group, techs in groups.items():
            columns.update(ref_best_for_group(coded, [t.value for t in techs], prefix, group, counts=(prefix == "")))
    return pd.DataFrame(columns, index=ids).reset_index()


def ref_evaluate_rules(address_ids, scopes, rules):
    ids = pd.Index(address_ids.astype(str))
    out = {"address_id": ids.to_numpy()}
    positions = {prefix: ids.get_indexer(scope["address_id"].astype(str)) for prefix, scope in scopes.items()}
    for rule in rules:
        for prefix, suffix in (("", ""), ("plan_", "_plan")):
            pos = positions[prefix]
            hit = disqualifying_offers(scopes[prefix], rule).to_numpy() & (pos >= 0)
            disqualified = np.zeros(len(ids), dtype=bool)
            disqualified[pos[hit]] = True
            out[f"fund_{rule.name}{suffix}"] = ~disqualified
    return pd.DataFrame(out)


def ref_gemeinde_counts(addresses, thresholds, groups, prefixes=("",), flags=()):
    hh = addresses["households"].to_numpy(dtype="float64")
    data = {"households": hh, "addresses": np.ones(len(addresses)),
            "businesses": addresses["businesses"].to_numpy(dtype="float64"),
            "sites": (addresses["site_kind"].astype(str) != "").to_numpy(dtype="float64")}
    for prefix in prefixes:
        for g in groups:
            down = addresses[f"{prefix}best_down_{g}"].to_numpy(dtype="float64")
            for t in thresholds:
                data[f"{prefix}hh_ge_{threshold_tag(t)}_{g}"] = np.where(down >= t, hh, 0.0)
    for flag in flags:
        mask = addresses[flag].to_numpy(dtype=bool)
        data[f"hh_{flag}"] = np.where(mask, hh, 0.0)
        data[f"addr_{flag}"] = mask.astype("float64")
    biz = data["businesses"]
    for prefix in prefixes:
        for g in groups:
            down = addresses[f"{prefix}best_down_{g}"].to_numpy(dtype="float64")
            for t in thresholds:
                data[f"{prefix}biz_ge_{threshold_tag(t)}_{g}"] = np.where(down >= t, biz, 0.0)
    for flag in flags:
        data[f"biz_{flag}"] = np.where(addresses[flag].to_numpy(dtype=bool), biz, 0.0)
    frame = pd.DataFrame(data)
    frame["ags"] = addresses["ags"].to_numpy()
    return frame.groupby("ags", sort=True).sum()


# ----------------------------------------------------------------------------- random data

PROVIDERS = ["Telekom", "Vodafone", "1&1", "O2", "b-net", "Ärger GmbH", "zz", "ZZ", "WEMAG", "Stadtwerke A",
             "Stadtwerke B", "epcan", "Deutsche Glasfaser", "Kabel Plus", "Funk Nord", "Sat One"]
DOWNS = np.array([0, 0.5, 2, 16, 29.9, 30, 50, 100, 100, 250, 500, 1000, 1000, np.nan])
UPS = np.array([0.5, 1, 10, 40, 50, 100, 500, np.nan, np.nan])
DATES = np.array(["", "2023-01-01", "2024-06-30", "2024-07-01", "2031-01-01", "kein Datum"])


def random_world(seed, n_addr=50_000, n_offers=200_000):
    rng = np.random.default_rng(seed)
    ids = pd.Series([f"DE{i:07d}" for i in rng.permutation(n_addr)])
    addr = rng.integers(0, int(n_addr * 1.05), n_offers)  # ~5 % for unknown addresses; some addresses have none
    addr[: n_offers // 10] = addr[n_offers // 10: n_offers // 5]  # denser addresses: more ties per address
    status = np.where(rng.random(n_offers) < 0.8, "current", "planned")
    offers = pd.DataFrame({
        "address_id": [f"DE{a:07d}" for a in addr],
        "provider": np.array(PROVIDERS)[rng.integers(0, len(PROVIDERS), n_offers)],
        "technology": np.array([t.value for t in Technology])[rng.integers(0, len(Technology), n_offers)],
        "down_mbps": DOWNS[rng.integers(0, len(DOWNS), n_offers)],
        "up_mbps": UPS[rng.integers(0, len(UPS), n_offers)],
        "status": status,
        "planned_date": np.where(status == "planned", DATES[rng.integers(0, len(DATES), n_offers)], ""),
    })
    return ids, offers


@pytest.fixture(scope="module")
def world():
    return random_world(1)


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """The fast result with its compact dtypes widened (categorical text -> str, int32 -> int64), as the
    reference builds them: the values must be identical, the storage may differ."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(str)
        elif out[col].dtype == np.int32:
            out[col] = out[col].astype("int64")
    return out


def plain_service(*args, **kwargs) -> pd.DataFrame:
    return plain(best_service(*args, **kwargs))


def test_text_columns_are_categorical(world):
    ids, offers = world
    new = best_service(ids, offers, DEFAULT_GROUPS, planned_until=HORIZON)
    assert isinstance(new["best_tech_all"].dtype, pd.CategoricalDtype)
    assert isinstance(new["plan_best_provider_fibre"].dtype, pd.CategoricalDtype)


def test_random_world_equals_reference(world):
    ids, offers = world
    new = best_service(ids, offers, DEFAULT_GROUPS, planned_until=HORIZON)
    pd.testing.assert_frame_equal(plain(new), ref_best_service(ids, offers, DEFAULT_GROUPS, planned_until=HORIZON))
    # the random world does exercise the hard cases
    assert (new["best_provider_all"].str.count("; ") >= 2).any()
    assert new["best_up_dsl"].isna().any() and new["best_down_all"].isna().any()
    assert ((new["best_down_all"] == 0) & (new["best_tech_all"] != NO_SERVICE)).any()
    assert (new["best_tech_all"] == NO_SERVICE).any()
    assert (new["plan_best_down_fibre"] != new["best_down_fibre"]).any()


def test_without_horizon_and_with_custom_groups(world):
    ids, offers = world
    groups = {"sat": (Technology.SATELLITE,), "fwa_dsl": (Technology.FWA, Technology.DSL), "empty": ()}
    pd.testing.assert_frame_equal(plain_service(ids[:5000], offers, groups),
                                  ref_best_service(ids[:5000], offers, groups))


def test_thread_count_does_not_change_the_answer(world):
    ids, offers = world
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = best_service(ids, offers, DEFAULT_GROUPS, planned_until=HORIZON)
    finally:
        numba.set_num_threads(before)
    pd.testing.assert_frame_equal(one, best_service(ids, offers, DEFAULT_GROUPS, planned_until=HORIZON))


def test_hand_built_offers_equal_reference():
    ids = pd.Series(["A1", "A2", "A3", "A4"])
    for horizon in (None, HORIZON):
        pd.testing.assert_frame_equal(plain_service(ids, OFFERS, DEFAULT_GROUPS, planned_until=horizon),
                                      ref_best_service(ids, OFFERS, DEFAULT_GROUPS, planned_until=horizon))
    empty = OFFERS.iloc[:0]
    pd.testing.assert_frame_equal(plain_service(ids, empty, DEFAULT_GROUPS, planned_until=HORIZON),
                                  ref_best_service(ids, empty, DEFAULT_GROUPS, planned_until=HORIZON))


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="unique"):
        best_service(pd.Series(["A1", "A1"]), OFFERS, DEFAULT_GROUPS)


def test_offers_in_scope_equals_reference(world):
    _, offers = world
    for horizon in (None, HORIZON):
        new, ref = offers_in_scope(offers, horizon), ref_offers_in_scope(offers, horizon)
        for prefix in ("", "plan_"):
            pd.testing.assert_frame_equal(new[prefix], ref[prefix])


def test_funding_flags_equal_reference(world):
    ids, offers = world
    scopes = offers_in_scope(offers, HORIZON)
    rules = (*DEFAULT_RULES, FundingRule("mobile", "m", "v", ((50, 10),), (Technology.LTE, Technology.NR5G)))
    pd.testing.assert_frame_equal(evaluate_rules(ids, scopes, rules), ref_evaluate_rules(ids, scopes, rules))


@pytest.mark.parametrize(("fractional", "categorical"), [(False, False), (True, False), (False, True)])
def test_gemeinde_counts_equal_reference(world, fractional, categorical):
    ids, offers = world
    service = best_service(ids, offers, DEFAULT_GROUPS, planned_until=HORIZON)
    rng = np.random.default_rng(2)
    n = len(service)
    hh = rng.integers(0, 30, n).astype(float)
    if fractional:
        hh = hh / 3.0
        hh[::97] = np.nan
    addresses = service.assign(
        ags=np.array(["13003000", "13071001", "13072002", "13075003", "01001000"])[rng.integers(0, 5, n)],
        households=hh, businesses=rng.integers(0, 3, n).astype(float),
        site_kind=np.where(rng.random(n) < 0.01, "school", ""), fund_white=rng.random(n) < 0.3)
    addresses.loc[addresses.index[::1000], "ags"] = None  # not located: left out, as groupby does
    if categorical:  # as the locate stage gives them, with an unused category in the middle
        categories = ["01001000", "09999999", "13003000", "13071001", "13072002", "13075003"]
        addresses["ags"] = pd.Categorical(addresses["ags"], categories=categories[::-1])
    thresholds = (2, 16, 30, 100, 1000, 30)
    args = (thresholds, list(DEFAULT_GROUPS))
    kwargs = {"prefixes": ("", "plan_"), "flags": ["fund_white"]}
    pd.testing.assert_frame_equal(gemeinde_counts(addresses, *args, **kwargs),
                                  ref_gemeinde_counts(addresses, *args, **kwargs))


def test_best_source_names_the_winning_offer(world):
    """``sources`` labels every offer; ``best_source_{g}`` is the label of the offer the reference picks
    (highest download, then upload, unknown upload last, first in input order on a full tie)."""
    ids, offers = world
    ids = ids[:5000]  # a slice of the random world keeps the test fast
    offers = offers[offers["address_id"].astype(str).isin(set(ids.astype(str)))].reset_index(drop=True)
    labels = pd.Series([f"o{i % 20000}" for i in range(len(offers))])  # at most 32767 distinct sources
    new = best_service(ids, offers, DEFAULT_GROUPS, planned_until=HORIZON, sources=labels)
    plain_cols = [c for c in new.columns if "best_source" not in c]
    pd.testing.assert_frame_equal(new[plain_cols], best_service(ids, offers, DEFAULT_GROUPS, planned_until=HORIZON))
    index = pd.Index(ids.astype(str))
    for prefix, scope in ref_offers_in_scope(offers, HORIZON).items():
        for group, techs in DEFAULT_GROUPS.items():
            sel = scope[scope["technology"].astype(str).isin([t.value for t in techs])]
            pos = index.get_indexer(sel["address_id"].astype(str))
            sel, pos = sel[pos >= 0], pos[pos >= 0]
            up = np.nan_to_num(sel["up_mbps"].to_numpy(dtype="float64"), nan=-1.0)
            order = np.lexsort((-up, -sel["down_mbps"].to_numpy(dtype="float64"), pos))
            first = order[np.unique(pos[order], return_index=True)[1]]
            expected = np.full(len(ids), "", dtype=object)
            expected[pos[first]] = labels.to_numpy()[sel.index.to_numpy()[first]]
            got = new[f"{prefix}best_source_{group}"].astype(str).to_numpy()
            assert (got == expected).all(), (prefix, group, int((got != expected).sum()))


def test_scopes_without_planned_offers_are_one_frame_and_fund_as_the_reference(world):
    """Only current offers: both scopes are the offers themselves (no filtered copies of tens of millions of
    rows), and the funding flags equal the reference over two separate scopes."""
    ids, offers = world
    current = offers[offers["status"] == "current"].reset_index(drop=True)
    assert len(current) < len(offers)  # the world has planned offers: this test takes them out
    scopes = offers_in_scope(current, HORIZON)
    assert scopes[""] is current and scopes["plan_"] is current
    ref = ref_offers_in_scope(current, HORIZON)
    for prefix in ("", "plan_"):
        pd.testing.assert_frame_equal(scopes[prefix], ref[prefix])
    pd.testing.assert_frame_equal(evaluate_rules(ids, scopes, DEFAULT_RULES),
                                  ref_evaluate_rules(ids, ref, DEFAULT_RULES))


def test_only_current_offers_computed_once_equal_reference(world):
    """No planned offer within the horizon: the plan_ columns are computed once from the current scope and
    still equal the reference's (which evaluates both scopes), with sources too."""
    ids, offers = world
    current = offers[offers["status"] == "current"].reset_index(drop=True)
    new = best_service(ids, current, DEFAULT_GROUPS, planned_until=HORIZON)
    pd.testing.assert_frame_equal(plain(new), ref_best_service(ids, current, DEFAULT_GROUPS, planned_until=HORIZON))
    labels = pd.Series([f"o{i % 300}" for i in range(len(current))])
    sourced = best_service(ids, current, DEFAULT_GROUPS, planned_until=HORIZON, sources=labels)
    for group in DEFAULT_GROUPS:
        assert (sourced[f"plan_best_source_{group}"].astype(str) == sourced[f"best_source_{group}"].astype(str)).all()
    assert list(sourced.drop(columns=[c for c in sourced if "best_source" in c]).columns) == list(new.columns)


def test_funding_over_scope_masks_equals_funding_over_scope_copies(world):
    from coverage.funding import evaluate_rules_in_scopes
    from coverage.service import scope_masks

    ids, offers = world
    rules = (*DEFAULT_RULES, FundingRule("mobile", "m", "v", ((50, 10),), (Technology.LTE, Technology.NR5G)))
    for horizon in (None, HORIZON):
        masks = scope_masks(offers, horizon)
        assert horizon is None or masks["plan_"].sum() > masks[""].sum()  # planned offers count here
        pd.testing.assert_frame_equal(evaluate_rules_in_scopes(ids, offers, masks, rules),
                                      ref_evaluate_rules(ids, ref_offers_in_scope(offers, horizon), rules))
