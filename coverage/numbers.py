"""Parsing numbers and speeds as German deliveries write them.

``100``, ``100,0``, ``1.000,5``, ``100 Mbit/s``, ``1 Gbit/s``, ``16.000 kbit/s``.
Vectorised: returns NaN for cells that cannot be parsed, so the caller can
quarantine exactly those rows with the original text.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

_UNIT_FACTORS = {"": 1.0, "mbit/s": 1.0, "mbit": 1.0, "mbps": 1.0, "mb/s": 1.0, "mbits": 1.0,
                 "gbit/s": 1000.0, "gbit": 1000.0, "gbps": 1000.0, "gb/s": 1000.0,
                 "kbit/s": 0.001, "kbit": 0.001, "kbps": 0.001, "kb/s": 0.001}


def parse_numbers(values: pd.Series, decimal: str = ".") -> pd.Series:
    """Parse a text column to float; ``decimal=","`` treats ``.`` as thousands separator."""
    text = values.astype("string").str.strip().str.replace("\u00a0", "", regex=False).str.replace(" ", "", regex=False)
    if decimal == ",":
        text = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    else:
        text = text.str.replace(",", "", regex=False)
    out = pd.to_numeric(text.replace("", pd.NA), errors="coerce").astype("float64")
    return out.where(np.isfinite(out))


def parse_speeds(values: pd.Series, decimal: str = ".") -> pd.Series:
    """Parse speeds with optional unit to Mbit/s; NaN where unparseable.

    A number without a unit is Mbit/s. With a unit and ambiguous separators
    (``16.000 kbit/s``) the German reading is used when ``decimal == ","``.
    """
    text = values.astype("string").str.strip().str.casefold()
    parts = text.str.extract(r"^\s*([-+]?[\d.,\s]*\d)\s*([a-z/]*)\s*$")
    numbers = parse_numbers(parts[0], decimal)
    unit = parts[1].fillna("").str.replace(" ", "", regex=False)
    factor = unit.map(_UNIT_FACTORS).astype("float64")  # unknown unit -> NaN
    return (numbers * factor).astype("float64")


def distinct(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """(codes, distinct values) with ``values == uniques[codes]``; a missing value is one of the uniques.

    Categorical columns (Parquet dictionary columns arrive so) cost nothing; others are factorised once.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        categories = values.cat.categories
        uniques = pd.Series(categories.to_numpy(), dtype=categories.dtype)
        if (codes < 0).any():
            codes = np.where(codes < 0, len(uniques), codes)
            uniques = pd.concat([uniques, pd.Series([None], dtype=uniques.dtype)], ignore_index=True)
        return codes, uniques
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return codes, pd.Series(uniques, dtype=values.dtype)


def by_unique(values: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Apply ``fn`` (Series -> Series) to the distinct values only and spread the result back.

    Provider columns have few distinct values (products, technologies, dates), so this turns
    per-row parsing of tens of millions of rows into a lookup. Text results come back as a
    categorical column (codes, not tens of millions of string objects); numbers and dates as they are.
    """
    codes, uniques = distinct(values)
    mapped = fn(uniques)
    if pd.api.types.is_string_dtype(mapped.dtype) or mapped.dtype == object:
        mapped = mapped.to_numpy(dtype=object, na_value=None)
        try:  # sorted categories: sorting the column sorts alphabetically, as for plain text
            mcodes, muniques = pd.factorize(mapped, use_na_sentinel=True, sort=True)
        except TypeError:  # values that do not compare (mixed types): first-seen order
            mcodes, muniques = pd.factorize(mapped, use_na_sentinel=True)
        return pd.Series(pd.Categorical.from_codes(mcodes[codes], pd.Index(muniques)),
                         index=values.index)
    return pd.Series(mapped.to_numpy()[codes], index=values.index)
