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
position through a hash table over the UTF-8 bytes of the ids, provider and
technology codes, a group bit mask per technology, a scope bit mask), put in
address order by a counting sort, and one parallel numba kernel scans the
offers of every address once, filling all groups of both scopes. String
columns are built at the end from codes (Arrow ``take``), never per address in
Python.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from coverage.membership import member
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
    current = (offers["status"] == "current").to_numpy(dtype=bool, na_value=False)
    if planned_until is None:
        return current, current
    planned = (offers["status"] == "planned").to_numpy(dtype=bool, na_value=False)
    # Parse each distinct date once (first-appearance order, so pandas guesses the format from the same value).
    codes, uniques = pd.factorize(offers["planned_date"], use_na_sentinel=True)
    dates = pd.to_datetime(pd.Series(uniques).replace("", pd.NA), errors="coerce")
    ok = (dates.isna() | (dates <= pd.Timestamp(planned_until))).to_numpy(dtype=bool)
    in_horizon = planned & np.where(codes >= 0, ok[np.maximum(codes, 0)] if len(ok) else True, True)
    return current, current | in_horizon


def offers_in_scope(offers: pd.DataFrame, planned_until: date | None) -> dict[str, pd.DataFrame]:
    """Split offers into the current set and current + planned-within-horizon set."""
    current, plan = _scope_masks(offers, planned_until)
    cur = offers[current]
    return {"": cur, "plan_": cur if planned_until is None else offers[plan]}


def unmentioned(address_ids: pd.Series, offers: pd.DataFrame) -> np.ndarray:
    """True for addresses that no delivery mentions at all, current or planned ("vergessene Adressen").

    Not the same as "no service": an address a provider lists with 0 Mbit/s was looked at.
    """
    return ~member(address_ids.astype(str), offers["address_id"].astype(str))


# --------------------------------------------------------------------------------------------------
# String ids -> positions: an open-addressing hash table over the UTF-8 bytes (Arrow buffers), built
# once, probed in parallel. Exact: every hit is confirmed byte by byte. Nulls match nulls.


def _arrow_strings(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets int64[n+1], data uint8, valid bool[n]) of string values (pandas str/object or Arrow)."""
    arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    valid = (np.ones(len(arr), dtype=bool) if arr.null_count == 0
             else pc.is_valid(arr).to_numpy(zero_copy_only=False))
    return offsets, data, valid


@njit(cache=True, parallel=True)
def _hash_strings(offsets, data, valid):
    n = len(offsets) - 1
    out = np.empty(n, dtype=np.uint64)
    for i in prange(n):
        h = np.uint64(14695981039346656037)
        if valid[i]:
            for k in range(offsets[i], offsets[i + 1]):
                h = (h ^ np.uint64(data[k])) * np.uint64(1099511628211)
        else:
            h = np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
        out[i] = h
    return out


@njit(cache=True)
def _same(o1, d1, v1, i, o2, d2, v2, j):
    if v1[i] != v2[j]:
        return False
    if not v1[i]:
        return True
    a, b = o1[i], o2[j]
    la, lb = o1[i + 1] - a, o2[j + 1] - b
    if la != lb:
        return False
    for k in range(la):  # noqa: SIM110 - numba compiles loops, not generator expressions
        if d1[a + k] != d2[b + k]:
            return False
    return True


@njit(cache=True)
def _build_table(hashes, offsets, data, valid, bits):
    """Insert keys 0..n-1; returns (table, number of duplicate keys)."""
    mask = np.uint64((1 << bits) - 1)
    table = np.zeros(1 << bits, dtype=np.uint64)
    dup = 0
    for i in range(len(hashes)):
        h = hashes[i]
        tag = h >> np.uint64(32)
        s = h & mask
        while True:
            e = table[s]
            if e == 0:
                table[s] = (tag << np.uint64(32)) | np.uint64(i + 1)
                break
            if (e >> np.uint64(32)) == tag:
                j = np.int64(e & np.uint64(0xFFFFFFFF)) - 1
                if _same(offsets, data, valid, j, offsets, data, valid, i):
                    dup += 1
                    break
            s = (s + np.uint64(1)) & mask
    return table, dup


@njit(cache=True, parallel=True)
def _probe_table(table, bits, k_off, k_data, k_valid, hashes, offsets, data, valid):
    mask = np.uint64((1 << bits) - 1)
    n = len(hashes)
    out = np.full(n, -1, dtype=np.int64)
    for i in prange(n):
        h = hashes[i]
        tag = h >> np.uint64(32)
        s = h & mask
        while True:
            e = table[s]
            if e == 0:
                break
            if (e >> np.uint64(32)) == tag:
                j = np.int64(e & np.uint64(0xFFFFFFFF)) - 1
                if _same(k_off, k_data, k_valid, j, offsets, data, valid, i):
                    out[i] = j
                    break
            s = (s + np.uint64(1)) & mask
    return out


class _StringLookup:
    """Exact ``Index.get_indexer`` for string ids, fast at tens of millions (-1: not found)."""

    def __init__(self, keys):
        self.offsets, self.data, self.valid = _arrow_strings(keys)
        n = len(self.valid)
        if n >= 2**32 - 1:
            raise ValueError("too many ids for the lookup table")
        self.bits = max(4, int(np.ceil(np.log2(max(n, 1) * 1.6))))
        self.table, self.n_duplicates = _build_table(_hash_strings(self.offsets, self.data, self.valid),
                                                     self.offsets, self.data, self.valid, self.bits)

    def positions(self, values) -> np.ndarray:
        off, data, valid = _arrow_strings(values)
        return _probe_table(self.table, self.bits, self.offsets, self.data, self.valid,
                            _hash_strings(off, data, valid), off, data, valid)


def _factorize_sorted(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes (int64, -1 for missing) and names (object array, sorted as ``pd.factorize(sort=True)``)."""
    enc = pc.dictionary_encode(pa.array(values, from_pandas=True))
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    names = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.argsort(names, kind="stable") if len(names) else np.zeros(0, np.int64)
    rank = np.empty(len(names) + 1, dtype=np.int64)
    rank[order] = np.arange(len(names))
    rank[-1] = -1
    return rank[codes], names[order]


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
def _best_kernel(start, down, upk, up, tmask, prov, tech, flags, n_scopes, n_groups, thresholds):
    """Per (scope, group) row r = scope * n_groups + group and address: best offer and provider counts.

    Offer arrays are in address order (``start`` are the CSR offsets).
    """
    n = len(start) - 1
    nr = n_scopes * n_groups
    best_down = np.zeros((nr, n))
    best_up = np.zeros((nr, n))
    best_tech = np.full((nr, n), -1, dtype=np.int32)
    n_best = np.zeros((nr, n), dtype=np.int32)
    first_prov = np.full((nr, n), -1, dtype=np.int32)
    n_ge = np.zeros((len(thresholds) * n_groups, n), dtype=np.int32)
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
    return best_down, best_up, best_tech, n_best, first_prov, n_ge


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


def _string_dtype():
    """The dtype pandas gives a column of Python strings (``str`` in pandas 3, ``object`` before)."""
    return pd.Series(np.array(["x"], dtype=object)).dtype


def _strings_from_codes(names, codes: np.ndarray, dtype):
    """Column of ``names[codes]`` with the dtype pandas would infer for those strings."""
    if dtype is object or getattr(dtype, "kind", None) == "O":
        return np.asarray(names, dtype=object)[codes]
    taken = pc.take(pa.array(list(names), type=pa.large_string()), pa.array(codes))
    return pd.array(taken, dtype=dtype)


def _provider_lists(n_best, first_prov, prov_names, multi_codes) -> tuple[list, np.ndarray]:
    """Dictionary of provider strings and a code per address ("" / one name / "; "-joined names)."""
    n_names = len(prov_names)
    dictionary = [*prov_names, ""]
    codes = np.where(n_best == 1, first_prov, n_names)
    for addrs, lists in multi_codes:  # one (addresses, matrix of sorted provider codes) per list length
        uniq, inverse = np.unique(lists, axis=0, return_inverse=True)
        codes[addrs] = len(dictionary) + inverse.reshape(-1)
        dictionary.extend("; ".join(prov_names[row]) for row in uniq)
    return dictionary, codes


def best_service(address_ids: pd.Series, offers: pd.DataFrame, groups: Mapping[str, Sequence[Technology]],
                 planned_until: date | None = None) -> pd.DataFrame:
    """One row per address (same order as ``address_ids``) with best service per group.

    Columns per group ``g`` and prefix ``p`` in ("", "plan_"): ``{p}best_down_{g}``,
    ``{p}best_up_{g}``, ``{p}best_tech_{g}``, ``{p}best_provider_{g}`` (all
    providers giving that best download, ``; ``-joined) and, unprefixed only,
    ``n_prov_ge{t}_{g}`` for t in 30 and 100.
    """
    ids = pd.Index(address_ids.astype(str), name="address_id")
    lookup = _StringLookup(ids)
    if lookup.n_duplicates:
        raise ValueError("best_service: address_ids must be unique")
    n = len(ids)
    group_names = list(groups)
    if len(group_names) > 62:
        raise ValueError("best_service: at most 62 technology groups")

    current, plan = _scope_masks(offers, planned_until)
    flags = current.astype(np.int64) * _CURRENT | plan.astype(np.int64) * _PLAN
    pos = lookup.positions(offers["address_id"].astype(str))
    start, order = _address_order(pos, flags, n)

    prov_code, prov_names = _factorize_sorted(offers["provider"].astype(str))
    tech_code, tech_names = _factorize_sorted(offers["technology"].astype(str))
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
    del order, tech_code, prov_code, flags
    thresholds = np.asarray(PROVIDER_COUNT_THRESHOLDS, dtype=np.float64)
    best_down, best_up, best_tech, n_best, first_prov, n_ge = _best_kernel(
        start, down, upk, up, tmask_sorted, prov_sorted, tech, flags_sorted, 2, len(group_names), thresholds)
    del up, upk, tech

    sdtype = _string_dtype()
    tech_dictionary = [*tech_names, NO_SERVICE]
    columns: dict[str, object] = {}
    for s, prefix in enumerate(("", "plan_")):
        for g, group in enumerate(group_names):
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
            columns[f"{prefix}best_tech_{group}"] = _strings_from_codes(tech_dictionary, tcodes, sdtype)
            columns[f"{prefix}best_provider_{group}"] = _strings_from_codes(dictionary, pcodes, sdtype)
            if prefix == "":
                for ti, t in enumerate(PROVIDER_COUNT_THRESHOLDS):
                    columns[f"n_prov_ge{t}_{group}"] = n_ge[ti * len(group_names) + g].astype(np.int64)
    # copy=False: no consolidated copy of ~100 float/int columns (at 22 M addresses that would be GBs).
    out = pd.DataFrame(columns, index=ids, copy=False)
    log.info("best service: %d addresses, %d offers, %d groups", len(ids), len(offers), len(groups))
    return out.reset_index()
