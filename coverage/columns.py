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


def constant(value: str, index: pd.Index) -> pd.Series:
    """A text column holding one value, as a categorical (one byte per row)."""
    return pd.Series(pd.Categorical.from_codes(np.zeros(len(index), dtype=np.int8), [value]), index=index)


def categorical(values, index: pd.Index | None = None) -> pd.Series:
    """Text values as a categorical column (unchanged if already one)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        return values
    return pd.Series(pd.Categorical(values), index=index)


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
