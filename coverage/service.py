"""Best service per address and technology group.

For each group the best offer is the one with the highest download; among
equal downloads the higher upload wins (an unknown upload ranks below any known
one; among full ties the first offer in input order wins), and the upload
reported is that of the same offer (never the maximum upload of another offer).
Addresses without an offer in a group get ``best_down_{g} = 0`` and
``best_tech_{g} = "none"``: an explicit "no service", never a missing row.

``plan_*`` columns repeat the computation with planned offers whose
``planned_date`` lies within the horizon added to the current ones.

Method (Germany: 22 M addresses, ~55 M offers): offers are coded once (address
position as linked, ``addr``, else through a hash table over the ids; provider and
technology codes, a group bit mask per technology, a scope bit mask), put in
address order by a counting sort, and one parallel numba kernel scans the
offers of every address once, filling all groups of both scopes. String
columns are categoricals built at the end from codes, never a string per address.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd

from coverage.columns import factorize_sorted
from coverage.membership import StringLookup
from coverage.model import OfferStatus
from coverage.pip import _import_numba
from coverage.technology import Technology

numba = _import_numba()
njit, prange = numba.njit, numba.prange

log = logging.getLogger(__name__)

NO_SERVICE = "none"
PROVIDER_COUNT_THRESHOLDS = (30, 100)

_CURRENT, _PLAN = 1, 2  # scope bits per offer


def _scope_masks(offers: pd.DataFrame, planned_until: date | None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (current, current + planned within the horizon) over ``offers``."""
    current = (offers["status"] == OfferStatus.CURRENT).to_numpy(dtype=bool, na_value=False)
    if planned_until is None:
        return current, current
    planned = (offers["status"] == OfferStatus.PLANNED).to_numpy(dtype=bool, na_value=False)
    # Parse each distinct date once (first-appearance order, so pandas guesses the format from the same value).
    codes, uniques = pd.factorize(offers["planned_date"], use_na_sentinel=True)
    dates = pd.to_datetime(pd.Series(uniques).replace("", pd.NA), errors="coerce")
    ok = (dates.isna() | (dates <= pd.Timestamp(planned_until))).to_numpy(dtype=bool)
    in_horizon = planned & np.where(codes >= 0, ok[np.maximum(codes, 0)] if len(ok) else True, True)
    return current, current | in_horizon


def scope_masks(offers: pd.DataFrame, planned_until: date | None) -> dict[str, np.ndarray]:
    """The scopes of :func:`offers_in_scope` as boolean masks over ``offers`` ("" and "plan_")."""
    current, plan = _scope_masks(offers, planned_until)
    return {"": current, "plan_": plan}


def offers_in_scope(offers: pd.DataFrame, planned_until: date | None) -> dict[str, pd.DataFrame]:
    """Split offers into the current set and current + planned-within-horizon set."""
    current, plan = _scope_masks(offers, planned_until)
    # No copy where a scope is every offer, and one frame for both where no planned offer counts: NRW's
    # 16 M offers in two filtered copies were 1.1 GB of a worker's peak.
    cur = offers if current.all() else offers[current]
    return {"": cur, "plan_": cur if planned_until is None or np.array_equal(plan, current) else offers[plan]}


def address_positions(address_ids: pd.Series, offers: pd.DataFrame) -> np.ndarray:
    """Row of each offer's address in ``address_ids`` (-1: not among them).

    Linked offers carry it as ``addr`` (set when they were linked to these addresses); a spot check
    of evenly spaced offers guards against positions from another address list. Offers without it
    are looked up by id.
    """
    n = len(address_ids)
    if "addr" not in offers.columns:
        lookup = StringLookup(address_ids)
        if lookup.n_duplicates:
            raise ValueError("address_ids must be unique")
        return lookup.positions(offers["address_id"])
    pos = offers["addr"].to_numpy(dtype=np.int64)
    if len(pos) and (pos.min() < 0 or pos.max() >= n):
        raise AssertionError("offer positions do not fit the address list")
    if len(pos) and "address_id" in offers.columns:
        probe = np.unique(np.linspace(0, len(pos) - 1, min(len(pos), 1000)).astype(np.int64))
        here = address_ids.iloc[pos[probe]].astype(str).to_numpy()
        theirs = offers["address_id"].iloc[probe].astype(str).to_numpy()
        if not (here == theirs).all():
            raise AssertionError("offer positions belong to another address list")
    return pos


def unmentioned(address_ids: pd.Series, offers: pd.DataFrame) -> np.ndarray:
    """True for addresses that no delivery mentions at all, current or planned ("vergessene Adressen").

    Not the same as "no service": an address a provider lists with 0 Mbit/s was looked at.
    """
    pos = address_positions(address_ids, offers)
    mentioned = np.zeros(len(address_ids), dtype=bool)
    mentioned[pos[pos >= 0]] = True
    return ~mentioned


# --------------------------------------------------------------------------------------------------
# The per-address kernel.


@njit(cache=True)
def _address_order(pos, flags, n):
    """Counting sort (stable) of the offers with pos >= 0 and a scope bit: (start[n+1], offer indices)."""
    start = np.zeros(n + 1, dtype=np.int64)
    for i in range(len(pos)):
        if pos[i] >= 0 and flags[i] != 0:
            start[pos[i] + 1] += 1
    for a in range(n):
        start[a + 1] += start[a]
    cursor = start[:-1].copy()
    order = np.empty(start[n], dtype=np.int64)
    for i in range(len(pos)):
        if pos[i] >= 0 and flags[i] != 0:
            order[cursor[pos[i]]] = i
            cursor[pos[i]] += 1
    return start, order


@njit(cache=True)
def _better(dj, uj, db, ub):
    """Offer j ranks strictly above the best so far (NaN download ranks last, as ``np.lexsort``)."""
    if dj != dj:
        return db != db and uj > ub
    if db != db:
        return True
    return dj > db or (dj == db and uj > ub)


@njit(cache=True, parallel=True)
def _best_kernel(start, down, upk, up, tmask, prov, tech, flags, n_scopes, n_groups, thresholds, src, want_src):
    """Per (scope, group) row r = scope * n_groups + group and address: best offer and provider counts.

    Offer arrays are in address order (``start`` are the CSR offsets). With ``want_src`` the code in
    ``src`` of each winning offer (its source) is returned too (-1: no offer), else an empty array.
    """
    n = len(start) - 1
    nr = n_scopes * n_groups
    best_down = np.zeros((nr, n))
    best_up = np.zeros((nr, n))
    best_tech = np.full((nr, n), -1, dtype=np.int32)
    n_best = np.zeros((nr, n), dtype=np.int32)
    first_prov = np.full((nr, n), -1, dtype=np.int32)
    n_ge = np.zeros((len(thresholds) * n_groups, n), dtype=np.int32)
    best_src = np.full((nr if want_src else 0, n if want_src else 0), -1, dtype=np.int16)
    for a in prange(n):
        lo, hi = start[a], start[a + 1]
        for s in range(n_scopes):
            sbit = 1 << s
            for g in range(n_groups):
                gbit = np.int64(1) << g
                r = s * n_groups + g
                bi = -1
                for j in range(lo, hi):
                    if ((flags[j] & sbit) and (tmask[j] & gbit)
                            and (bi < 0 or _better(down[j], upk[j], down[bi], upk[bi]))):
                        bi = j
                if bi < 0:
                    continue
                bd = down[bi]
                best_down[r, a] = bd
                best_up[r, a] = up[bi]
                best_tech[r, a] = tech[bi]
                if want_src:
                    best_src[r, a] = src[bi]
                cnt = 0
                low = -1
                for j in range(lo, hi):
                    if (flags[j] & sbit) and (tmask[j] & gbit) and down[j] == bd:
                        seen = False
                        for i in range(lo, j):
                            if prov[i] == prov[j] and (flags[i] & sbit) and (tmask[i] & gbit) and down[i] == bd:
                                seen = True
                                break
                        if not seen:
                            cnt += 1
                            if low < 0 or prov[j] < low:
                                low = prov[j]
                n_best[r, a] = cnt
                first_prov[r, a] = low
                if s == 0:
                    for ti in range(len(thresholds)):
                        t = thresholds[ti]
                        c = 0
                        for j in range(lo, hi):
                            if (flags[j] & 1) and (tmask[j] & gbit) and down[j] >= t:
                                seen = False
                                for i in range(lo, j):
                                    if prov[i] == prov[j] and (flags[i] & 1) and (tmask[i] & gbit) and down[i] >= t:
                                        seen = True
                                        break
                                if not seen:
                                    c += 1
                        n_ge[ti * n_groups + g, a] = c
    return best_down, best_up, best_tech, n_best, first_prov, n_ge, best_src


@njit(cache=True, parallel=True)
def _best_providers(addrs, out_start, start, down, tmask, prov, flags, sbit, gbit, best_down):
    """For the given addresses: the distinct providers at the best download, ascending (CSR by out_start)."""
    out = np.empty(out_start[-1], dtype=np.int32)
    for k in prange(len(addrs)):
        a = addrs[k]
        bd = best_down[a]
        o0 = out_start[k]
        m = 0
        for j in range(start[a], start[a + 1]):
            if (flags[j] & sbit) and (tmask[j] & gbit) and down[j] == bd:
                p = prov[j]
                seen = False
                for q in range(m):
                    if out[o0 + q] == p:
                        seen = True
                        break
                if not seen:  # insertion into the sorted prefix
                    q = m
                    while q > 0 and out[o0 + q - 1] > p:
                        out[o0 + q] = out[o0 + q - 1]
                        q -= 1
                    out[o0 + q] = p
                    m += 1
    return out


# --------------------------------------------------------------------------------------------------


def _categorical(dictionary: list, codes: np.ndarray) -> pd.Categorical:
    """``dictionary[codes]`` as a categorical (codes, not a string object per address); repeated
    dictionary entries are merged first."""
    cats, remap = np.unique(np.asarray(dictionary, dtype=object).astype(str), return_inverse=True)
    return pd.Categorical.from_codes(remap.reshape(-1)[codes], pd.Index(cats))


def _unique_rows(lists: np.ndarray, n_names: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(lists, axis=0, return_inverse=True)`` for small non-negative codes: each row packed
    into one integer first (sorting a structured view of millions of rows is ~20x slower)."""
    k = lists.shape[1]
    base = max(n_names, 2)
    if k * np.log2(base) >= 62:
        uniq, inverse = np.unique(lists, axis=0, return_inverse=True)
        return uniq, inverse.reshape(-1)
    weights = base ** np.arange(k - 1, -1, -1, dtype=np.int64)
    keys = lists.astype(np.int64) @ weights
    ukeys, inverse = np.unique(keys, return_inverse=True)
    uniq = (ukeys[:, None] // weights[None, :]) % base
    return uniq, inverse.reshape(-1)


def _provider_lists(n_best, first_prov, prov_names, multi_codes) -> tuple[list, np.ndarray]:
    """Dictionary of provider strings and a code per address ("" / one name / "; "-joined names)."""
    n_names = len(prov_names)
    dictionary = [*prov_names, ""]
    codes = np.where(n_best == 1, first_prov, n_names)
    for addrs, lists in multi_codes:  # one (addresses, matrix of sorted provider codes) per list length
        uniq, inverse = _unique_rows(lists, n_names)
        codes[addrs] = len(dictionary) + inverse
        dictionary.extend("; ".join(prov_names[row]) for row in uniq)
    return dictionary, codes


def best_service(address_ids: pd.Series, offers: pd.DataFrame, groups: Mapping[str, Sequence[Technology]],
                 planned_until: date | None = None, sources: pd.Series | None = None) -> pd.DataFrame:
    """One row per address (same order as ``address_ids``) with best service per group.

    Columns per group ``g`` and prefix ``p`` in ("", "plan_"): ``{p}best_down_{g}``,
    ``{p}best_up_{g}``, ``{p}best_tech_{g}``, ``{p}best_provider_{g}`` (all
    providers giving that best download, ``; ``-joined) and, unprefixed only,
    ``n_prov_ge{t}_{g}`` for t in 30 and 100. With ``sources`` (one label per offer, in the
    offers' order), also ``{p}best_source_{g}``: the label of the winning offer (the one whose
    down/up/technology are reported), "" where the group has no offer.
    """
    ids = address_ids.reset_index(drop=True)
    n = len(ids)
    group_names = list(groups)
    if len(group_names) > 62:
        raise ValueError("best_service: at most 62 technology groups")

    current, plan = _scope_masks(offers, planned_until)
    # No planned offer counts (the Germany demo): the plan_ columns are the current ones, computed once
    # (half the kernel's work, and its per-address outputs, 0.9 GB for NRW's 4.6 M addresses, once).
    one_scope = bool(np.array_equal(current, plan))
    flags = current.astype(np.int64) * _CURRENT | plan.astype(np.int64) * _PLAN
    pos = address_positions(ids, offers)
    start, order = _address_order(pos, flags, n)

    prov_code, prov_names = factorize_sorted(offers["provider"])
    tech_code, tech_names = factorize_sorted(offers["technology"])
    group_bits = np.zeros(len(tech_names) + 1, dtype=np.int64)  # last entry: missing technology
    for g, techs in enumerate(groups.values()):
        group_bits[:-1] |= np.isin(tech_names, [t.value for t in techs]).astype(np.int64) << g

    # Offer attributes in address order (compact dtypes: at 55 M offers every byte per offer is 55 MB).
    del pos
    down = offers["down_mbps"].to_numpy(dtype="float64")[order]
    up = offers["up_mbps"].to_numpy(dtype="float64")[order]
    upk = np.nan_to_num(up, nan=-1.0)  # unknown upload ranks below any known one (as before: same ranking)
    tech = tech_code[order].astype(np.int32)
    tmask_sorted = group_bits[tech]
    prov_sorted = prov_code[order].astype(np.int32)
    flags_sorted = flags[order].astype(np.int8)
    del tech_code, prov_code, flags
    thresholds = np.asarray(PROVIDER_COUNT_THRESHOLDS, dtype=np.float64)
    if sources is not None:
        src_code, src_names = factorize_sorted(sources.reset_index(drop=True))
        if len(src_names) > np.iinfo(np.int16).max:
            raise ValueError("best_service: at most 32767 distinct offer sources")
        src_sorted = src_code[order].astype(np.int16)
        del src_code
    else:
        src_sorted, src_names = np.zeros(0, dtype=np.int16), pd.Index([])
    del order
    best_down, best_up, best_tech, n_best, first_prov, n_ge, best_src = _best_kernel(
        start, down, upk, up, tmask_sorted, prov_sorted, tech, flags_sorted, 1 if one_scope else 2, len(group_names),
        thresholds, src_sorted, sources is not None)
    del up, upk, tech, src_sorted

    tech_dictionary = [*tech_names, NO_SERVICE]
    columns: dict[str, object] = {}
    for s, prefix in enumerate(("", "plan_")):
        for g, group in enumerate(group_names):
            if s == 1 and one_scope:
                for name in ("best_down", "best_up", "best_tech", "best_provider",
                             *(("best_source",) if sources is not None else ())):
                    columns[f"plan_{name}_{group}"] = columns[f"{name}_{group}"]
                continue
            r = s * len(group_names) + g
            multi = []
            for k in np.unique(n_best[r][n_best[r] >= 2]):
                addrs = np.flatnonzero(n_best[r] == k)
                lists = _best_providers(addrs, np.arange(len(addrs) + 1, dtype=np.int64) * k, start, down,
                                        tmask_sorted, prov_sorted, flags_sorted, 1 << s, np.int64(1) << g,
                                        best_down[r])
                multi.append((addrs, lists.reshape(len(addrs), k)))
            dictionary, pcodes = _provider_lists(n_best[r], first_prov[r], prov_names, multi)
            columns[f"{prefix}best_down_{group}"] = best_down[r]
            columns[f"{prefix}best_up_{group}"] = best_up[r]
            tcodes = np.where(best_tech[r] >= 0, best_tech[r], len(tech_names))
            columns[f"{prefix}best_tech_{group}"] = _categorical(tech_dictionary, tcodes)
            columns[f"{prefix}best_provider_{group}"] = _categorical(dictionary, pcodes)
            if sources is not None:
                scodes = np.where(best_src[r] >= 0, best_src[r], len(src_names)).astype(np.int64)
                columns[f"{prefix}best_source_{group}"] = _categorical([*map(str, src_names), ""], scodes)
            if prefix == "":
                for ti, t in enumerate(PROVIDER_COUNT_THRESHOLDS):
                    columns[f"n_prov_ge{t}_{group}"] = n_ge[ti * len(group_names) + g]
    # copy=False: no consolidated copy of ~100 float/int columns (at 22 M addresses that would be GBs).
    out = pd.DataFrame({"address_id": ids, **columns}, copy=False)
    log.info("best service: %d addresses, %d offers, %d groups", len(ids), len(offers), len(groups))
    return out
