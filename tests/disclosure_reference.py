"""The first, loop-by-loop implementation of the disclosure rules (coverage/disclosure.py before it was
vectorised), kept as the reference the vectorised one must equal (tests/test_disclosure_equal.py).

Slow (a Python loop per parent, figure and unit) but plain to read; not used by the package.
"""

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from coverage.disclosure import (
    COMPLEMENTARY,
    DOMINANCE,
    MIN_ADDRESSES,
    Suppression,
    _ordered,
    figure_group,
    round_counts,
    share_of,
)
from coverage.sections import DisclosureRules


def primary(counts: pd.DataFrame, dominance: pd.DataFrame | None, rules: DisclosureRules) -> pd.DataFrame:
    """Reasons of the primary suppressions of one level: min_addresses, then dominance."""
    reason = pd.DataFrame("", index=counts.index, columns=counts.columns)
    small = counts["addresses"].to_numpy(float) < rules.min_addresses
    reason.loc[small, :] = MIN_ADDRESSES
    if dominance is not None:
        dom = dominance.reindex(counts.index)
        for c in counts.columns:
            key = figure_group(c)
            if key is None or key not in dom.columns:
                continue
            hit = (dom[key].to_numpy(float) > rules.dominance_share) & ~small
            reason.loc[hit, c] = DOMINANCE
    return reason


def complementary(s: Suppression, sums: Sequence[tuple[str, str, np.ndarray]]) -> None:
    """Suppress second terms until no published sum has exactly one suppressed term (see the module text).

    ``sums``: (child level, parent level, parent position of every child row)."""
    columns = list(next(iter(s.counts.values())).columns)
    for c in columns:
        sup = {lv: (s.reason[lv][c] != "").to_numpy().copy() for lv in s.counts}
        val = {lv: s.counts[lv][c].to_numpy(float) for lv in s.counts}
        keys = {lv: np.array([str(k) for k in s.counts[lv].index]) for lv in s.counts}
        changed = True
        while changed:
            changed = False
            for child, parent, pos in sums:
                n_parent = len(sup[parent])
                unknown = np.bincount(pos[sup[child]], minlength=n_parent) + sup[parent]
                for p in np.flatnonzero(unknown == 1):
                    rows = np.flatnonzero((pos == p) & ~sup[child])
                    if len(rows):
                        v = val[child][rows]
                        order = np.lexsort((keys[child][rows], v, ~(v > 0)))
                        pick = rows[order[0]]
                        sup[child][pick] = True
                        s.reason[child].iloc[pick, s.reason[child].columns.get_loc(c)] = COMPLEMENTARY
                    else:
                        sup[parent][p] = True
                        s.reason[parent].iloc[p, s.reason[parent].columns.get_loc(c)] = COMPLEMENTARY
                    changed = True


def published(counts: pd.DataFrame, reason: pd.DataFrame, rules: DisclosureRules) -> pd.DataFrame:
    """Rounded counts, suppressed cells empty, shares (percent, one decimal) from the rounded counts."""
    out = pd.DataFrame(index=counts.index)
    rounded = {}
    for c in counts.columns:
        r = round_counts(counts[c].to_numpy(float), rules.round_to)
        r[(reason[c] != "").to_numpy()] = np.nan
        rounded[c] = r
        out[c] = pd.array(np.where(np.isnan(r), 0, r).astype(np.int64), dtype="Int64")
        out.loc[np.isnan(r), c] = pd.NA
    for c in counts.columns:
        share = share_of(c)
        if share is None or share[1] not in rounded:
            continue
        den = rounded[share[1]]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[share[0]] = np.round(np.where(den > 0, 100.0 * rounded[c] / den, np.nan), 1)
    return out[_ordered(list(out.columns))]


def report_rows(level: str, reason: pd.DataFrame, names: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """One row per (unit, reason): the figures suppressed for it ("all" when every one is)."""
    rows = []
    for key, r in reason.iterrows():
        for why in (MIN_ADDRESSES, DOMINANCE, COMPLEMENTARY):
            cols = [c for c, v in r.items() if v == why]
            if cols:
                rows.append({"level": level, "id": str(key), "name": (names or {}).get(str(key), ""),
                             "reason": why, "figures": "all" if len(cols) == len(r) else ";".join(cols)})
    return rows


def dominance_shares(units: pd.Series, addresses: pd.DataFrame, pairs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per unit (index: the unit keys of ``units``, aligned with ``addresses``): columns ``(kind, group)``,
    the largest share of one provider in the served households (kind hh) or businesses (kind biz); NaN where
    nothing is served."""
    frame = pd.DataFrame({"unit": units.astype(str).to_numpy(), "address_id": addresses["address_id"].astype(str),
                          "hh": addresses["households"].to_numpy(float),
                          "biz": (addresses["businesses"] if "businesses" in addresses else pd.Series(
                              0.0, index=addresses.index)).to_numpy(float)})
    frame = frame.fillna({"hh": 0.0, "biz": 0.0})
    columns = {}
    for g, p in pairs.items():
        served_ids = p["address_id"].drop_duplicates()
        served = frame[frame["address_id"].isin(served_ids)]
        by_provider = p.merge(served, on="address_id")
        for kind in ("hh", "biz"):
            total = served.groupby("unit")[kind].sum()
            top = by_provider.groupby(["unit", "provider"])[kind].sum().groupby(level="unit").max()
            with np.errstate(invalid="ignore", divide="ignore"):
                share = (top.reindex(total.index) / total).where(total > 0)
            columns[(kind, g)] = share
    index = pd.Index(sorted(frame["unit"].unique()), name="unit")
    return pd.DataFrame({k: v.reindex(index) for k, v in columns.items()}, index=index)


def best_offer_providers(addresses: pd.DataFrame, offers: pd.DataFrame, groups: Mapping[str, Sequence[str]]
                         ) -> dict[str, pd.DataFrame]:
    """Per group: (address_id, provider) pairs of every served address's best offers (ties: every provider).

    ``addresses``: address_id and ``best_down_{g}`` (optionally ``best_provider_{g}``); ``offers``: address_id,
    provider, technology, down_mbps, status."""
    current = offers[offers["status"].astype(str) == "current"]
    out = {}
    for g, techs in groups.items():
        col = f"best_down_{g}"
        if col not in addresses:
            continue
        best = addresses[["address_id", col]].rename(columns={col: "best"})
        best = best[best["best"].fillna(0) > 0]
        in_group = current[current["technology"].astype(str).isin({str(t) for t in techs})]
        pairs = in_group[["address_id", "provider", "down_mbps"]].merge(best, on="address_id")
        pairs = pairs.loc[np.isclose(pairs["down_mbps"].to_numpy(float), pairs["best"].to_numpy(float),
                                     rtol=1e-9, atol=1e-9), ["address_id", "provider"]]
        if f"best_provider_{g}" in addresses:
            own = addresses.loc[addresses[col].fillna(0) > 0, ["address_id", f"best_provider_{g}"]]
            own = own.rename(columns={f"best_provider_{g}": "provider"})
            pairs = pd.concat([pairs, own[own["provider"].astype(str) != ""]])
        pairs = pairs.astype({"address_id": str, "provider": str})
        out[g] = pairs.drop_duplicates().reset_index(drop=True)
    return out
