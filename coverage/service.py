"""Best service per address and technology group.

For each group the best offer is the one with the highest download; among
equal downloads the higher upload wins, and the upload reported is that of
the same offer (never the maximum upload of another offer). Addresses without
an offer in a group get ``best_down_{g} = 0`` and ``best_tech_{g} = "none"``:
an explicit "no service", never a missing row.

``plan_*`` columns repeat the computation with planned offers whose
``planned_date`` lies within the horizon added to the current ones.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd

from coverage.membership import member
from coverage.technology import Technology

log = logging.getLogger(__name__)

NO_SERVICE = "none"
PROVIDER_COUNT_THRESHOLDS = (30, 100)


def offers_in_scope(offers: pd.DataFrame, planned_until: date | None) -> dict[str, pd.DataFrame]:
    """Split offers into the current set and current + planned-within-horizon set."""
    current = offers[offers["status"] == "current"]
    if planned_until is None:
        return {"": current, "plan_": current}
    dates = pd.to_datetime(offers["planned_date"].replace("", pd.NA), errors="coerce")
    in_horizon = (offers["status"] == "planned") & (dates.isna() | (dates <= pd.Timestamp(planned_until)))
    return {"": current, "plan_": offers[(offers["status"] == "current") | in_horizon]}


def unmentioned(address_ids: pd.Series, offers: pd.DataFrame) -> np.ndarray:
    """True for addresses that no delivery mentions at all, current or planned ("vergessene Adressen").

    Not the same as "no service": an address a provider lists with 0 Mbit/s was looked at.
    """
    return ~member(address_ids.astype(str), offers["address_id"].astype(str))


def best_service(address_ids: pd.Series, offers: pd.DataFrame, groups: Mapping[str, Sequence[Technology]],
                 planned_until: date | None = None) -> pd.DataFrame:
    """One row per address (same order as ``address_ids``) with best service per group.

    Columns per group ``g`` and prefix ``p`` in ("", "plan_"): ``{p}best_down_{g}``,
    ``{p}best_up_{g}``, ``{p}best_tech_{g}``, ``{p}best_provider_{g}`` (all
    providers giving that best download, ``; ``-joined) and, unprefixed only,
    ``n_prov_ge{t}_{g}`` for t in 30 and 100.
    """
    ids = pd.Index(address_ids.astype(str), name="address_id")
    if ids.has_duplicates:
        raise ValueError("best_service: address_ids must be unique")
    columns: dict[str, np.ndarray] = {}
    for prefix, scope in offers_in_scope(offers, planned_until).items():
        coded = _Coded(scope, ids)
        for group, techs in groups.items():
            columns.update(_best_for_group(coded, [t.value for t in techs], prefix, group, counts=(prefix == "")))
    out = pd.DataFrame(columns, index=ids)
    log.info("best service: %d addresses, %d offers, %d groups", len(ids), len(offers), len(groups))
    return out.reset_index()


class _Coded:
    """Offers as integer codes (address position, provider, technology) for fast numpy grouping."""

    def __init__(self, offers: pd.DataFrame, ids: pd.Index):
        pos = ids.get_indexer(offers["address_id"].astype(str))
        keep = pos >= 0  # offers for addresses not in the list are not counted here
        self.n = len(ids)
        self.addr = pos[keep]
        self.down = offers["down_mbps"].to_numpy(dtype="float64")[keep]
        self.up = offers["up_mbps"].to_numpy(dtype="float64")[keep]
        self.prov_code, self.prov_names = pd.factorize(offers["provider"].astype(str).to_numpy()[keep], sort=True)
        self.tech = offers["technology"].astype(str).to_numpy()[keep]


def _unique_pairs(addr: np.ndarray, prov: np.ndarray, n_prov: int) -> np.ndarray:
    """Distinct (address, provider) pairs as a 2 x n array sorted by address, then provider."""
    keys = np.unique(addr.astype(np.int64) * max(n_prov, 1) + prov)
    return np.stack([keys // max(n_prov, 1), keys % max(n_prov, 1)])


def _best_for_group(c: _Coded, techs: list[str], prefix: str, group: str, counts: bool) -> dict:
    sel = np.flatnonzero(np.isin(c.tech, techs))
    addr, down, prov = c.addr[sel], c.down[sel], c.prov_code[sel]
    up = np.nan_to_num(c.up[sel], nan=-1.0)  # unknown upload ranks below any known one
    order = np.lexsort((-up, -down, addr))  # per address: highest down, then highest up
    first = order[np.unique(addr[order], return_index=True)[1]]
    best_down = np.zeros(c.n)
    best_up = np.zeros(c.n)
    best_tech = np.full(c.n, NO_SERVICE, dtype=object)
    best_down[addr[first]] = down[first]
    best_up[addr[first]] = c.up[sel][first]
    best_tech[addr[first]] = c.tech[sel][first]

    # Every provider whose offer equals the best download, listed once, in name order.
    at_best = down == best_down[addr]
    pairs = _unique_pairs(addr[at_best], prov[at_best], len(c.prov_names))
    providers = np.full(c.n, "", dtype=object)
    n_best = np.bincount(pairs[0], minlength=c.n)
    single = n_best[pairs[0]] == 1
    providers[pairs[0][single]] = c.prov_names[pairs[1][single]]
    multi = pairs[:, ~single]  # sorted by address, then provider (np.unique over columns)
    starts = np.unique(multi[0], return_index=True)[1]
    if len(starts):
        for a, names in zip(multi[0][starts], np.split(c.prov_names[multi[1]], starts[1:]), strict=True):
            providers[a] = "; ".join(names)
    out = {
        f"{prefix}best_down_{group}": best_down,
        f"{prefix}best_up_{group}": best_up,
        f"{prefix}best_tech_{group}": best_tech,
        f"{prefix}best_provider_{group}": providers,
    }
    if counts:
        for t in PROVIDER_COUNT_THRESHOLDS:
            fast = down >= t
            uniq = _unique_pairs(addr[fast], prov[fast], len(c.prov_names))
            out[f"n_prov_ge{t}_{group}"] = np.bincount(uniq[0], minlength=c.n).astype("int64")
    return out
