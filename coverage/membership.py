"""Exact lookups of string ids at tens of millions of rows.

pandas' hash tables over Arrow-backed strings first turn every value into a Python
object (seconds per ten million ids). :class:`StringLookup` instead hashes the
UTF-8 bytes of the Arrow buffers in compiled code: an open-addressing table built
once over the keys and probed in parallel; every hit is confirmed byte by byte,
so the answer is exact. Nulls match nulls. Building the table also tells which
keys repeat an earlier one (``duplicated``, as ``Series.duplicated(keep="first")``).

Measured on the NRW partition (4.6 M address ids, 7.7 M provider ids, 2 cores):
build 0.2–0.4 s, probe 0.65 s; ``pyarrow.compute.index_in`` 1.3–1.5 s,
``Index.get_indexer`` about 13 s.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from coverage.pip import _import_numba

numba = _import_numba()
njit, prange = numba.njit, numba.prange


def _large_strings(values) -> pa.Array:
    """String values (pandas, numpy or Arrow) as one Arrow large_string array (no copy where possible)."""
    if isinstance(values, pd.Index):
        values = values.to_series(index=pd.RangeIndex(len(values)))
    if isinstance(values, pd.Series) and not (pd.api.types.is_string_dtype(values.dtype)
                                              or isinstance(values.dtype, pd.CategoricalDtype)):
        values = values.astype(str)
    arr = pa.array(values, from_pandas=True) if not isinstance(values, (pa.Array, pa.ChunkedArray)) else values
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary.take(arr.indices)
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    return arr


def _arrow_strings(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets int64[n+1], data uint8, valid bool[n]) of string values (pandas, numpy or Arrow)."""
    arr = _large_strings(values)
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
    """Insert keys 0..n-1 (first occurrence wins); returns (table, key repeats an earlier one)."""
    mask = np.uint64((1 << bits) - 1)
    table = np.zeros(1 << bits, dtype=np.uint64)
    repeated = np.zeros(len(hashes), dtype=np.bool_)
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
                    repeated[i] = True
                    break
            s = (s + np.uint64(1)) & mask
    return table, repeated


# The probing loop is written out again here rather than shared with _build_table: as a shared numba
# helper returning (slot, key) the table build measured 3x slower (0.26 s -> 0.74 s for 4 M ids).
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


class StringLookup:
    """Exact ``Index.get_indexer`` for string ids: position of the first equal key, -1 when absent."""

    def __init__(self, keys):
        self.offsets, self.data, self.valid = _arrow_strings(keys)
        n = len(self.valid)
        if n >= 2**32 - 1:
            raise ValueError("too many ids for the lookup table")
        self.bits = max(4, int(np.ceil(np.log2(max(n, 1) * 1.6))))
        self.table, self.duplicated = _build_table(_hash_strings(self.offsets, self.data, self.valid),
                                                   self.offsets, self.data, self.valid, self.bits)

    @property
    def n_duplicates(self) -> int:
        return int(self.duplicated.sum())

    def positions(self, values) -> np.ndarray:
        off, data, valid = _arrow_strings(values)
        return _probe_table(self.table, self.bits, self.offsets, self.data, self.valid,
                            _hash_strings(off, data, valid), off, data, valid)


def member(values, pool) -> np.ndarray:
    """Boolean array: is each of ``values`` in ``pool``? (strings; both may hold repeats)"""
    if len(pool) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    return StringLookup(pool).positions(values) >= 0


def same_strings(a, b) -> bool:
    """Are two string columns equal element by element (in order)? Compared as Arrow buffers."""
    return len(a) == len(b) and _large_strings(a).equals(_large_strings(b))


def string_hashes(values) -> np.ndarray:
    """64-bit hashes of string values (equal strings, equal hashes): a quick check that ids repeat nowhere."""
    return _hash_strings(*_arrow_strings(values))


def all_distinct(hashes: np.ndarray) -> bool:
    """True when no two of ``hashes`` are equal, so the strings they came from are all distinct too
    (equal hashes say nothing: the caller checks those strings exactly)."""
    ordered = np.sort(hashes, kind="quicksort")
    return not bool((ordered[1:] == ordered[:-1]).any())
