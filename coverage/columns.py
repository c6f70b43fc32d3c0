"""Compact text columns: categoricals instead of tens of millions of string objects.

Provider, technology, status, date, source and match method have a handful of distinct
values per delivery; as categoricals they cost a byte or two per offer and compare as
codes. ``pd.concat`` turns categoricals with different categories into object columns,
so frames of offers are concatenated with :func:`concat_frames`, which unions the
categories first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from coverage.numbers import by_unique


def constant(value: str, index: pd.Index) -> pd.Series:
    """A text column holding one value, as a categorical (one byte per row)."""
    return pd.Series(pd.Categorical.from_codes(np.zeros(len(index), dtype=np.int8), [value]), index=index)


def factorize_sorted(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """``pd.factorize(values, sort=True)``: int64 codes (-1 for missing) and the sorted distinct values.

    A categorical is recoded from its categories (no string per row); unused categories are dropped.
    """
    if not isinstance(values.dtype, pd.CategoricalDtype):
        codes, uniques = pd.factorize(values, sort=True)
        return codes.astype(np.int64, copy=False), pd.Index(uniques)
    codes = values.cat.codes.to_numpy().astype(np.int64)
    used = np.bincount(codes[codes >= 0], minlength=len(values.cat.categories)) > 0
    categories = values.cat.categories[used]
    order = np.argsort(categories.to_numpy(), kind="stable")
    new = np.full(len(used) + 1, -1, dtype=np.int64)  # last entry: missing
    new[np.flatnonzero(used)[order]] = np.arange(len(order))
    return new[codes], categories[order]


def stripped_text(values: pd.Series) -> pd.Series:
    """Text with surrounding blanks removed and missing as ""; cleaned once per distinct value and
    returned as a categorical (delivery and address columns repeat a few values millions of times)."""
    return by_unique(values, lambda u: u.astype("string").str.strip().fillna("").astype(object))


def concat_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """``pd.concat(frames, ignore_index=True)`` keeping categorical columns categorical (union of categories)."""
    frames = [f for f in frames if len(f.columns)]
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    cat_cols = {c for f in frames for c in f.columns if isinstance(f[c].dtype, pd.CategoricalDtype)}
    if cat_cols:
        frames = [f.copy(deep=False) for f in frames]
        for col in cat_cols:
            present = [f[col] for f in frames if col in f.columns]
            values = set()
            for s in present:
                values.update(s.cat.categories if isinstance(s.dtype, pd.CategoricalDtype) else s.dropna().unique())
            dtype = pd.CategoricalDtype(sorted(values, key=str))
            for f in frames:
                if col in f.columns:
                    s = f[col]
                    f[col] = s.cat.set_categories(dtype.categories) if isinstance(s.dtype, pd.CategoricalDtype) \
                        else s.astype(dtype)
    return pd.concat(frames, ignore_index=True)
