"""Set membership for large string columns.

pandas' ``isin`` on Arrow-backed strings walks the value set in Python (seconds
for a few hundred thousand ids); a hash lookup through ``Index.get_indexer``
does the same in milliseconds. Use :func:`member` whenever the pool is large.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def member(values: pd.Series | pd.Index | np.ndarray, pool: pd.Series | pd.Index | np.ndarray) -> np.ndarray:
    """Boolean array: is each of ``values`` in ``pool``?"""
    index = pd.Index(pool)
    if not index.is_unique:
        index = index.drop_duplicates()
    return index.get_indexer(pd.Index(values)) >= 0
