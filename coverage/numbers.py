"""Parsing numbers and speeds as German and English deliveries write them, deciding per column.

``100``, ``100,0``, ``1.000,5``, ``1,000.5``, ``100 Mbit/s``, ``1 Gbit/s``, ``16.000 kbit/s``.

A cell's *form* decides what it can mean: ``1,5`` and ``1.000,5`` fit only the decimal comma,
``1.5`` and ``1,000.5`` only the decimal point, ``1000`` and ``1 000`` read the same either way,
``1.000`` and ``1,000`` fit both with different values. A thousands group is exactly three digits
after a first group of one to three (not starting with 0), so ``1.00,5`` fits neither convention
(not a number) and ``10.0000`` only the decimal point. The *column* decides the convention, from all
its cells: those whose form fits only one convention, or the ``decimal`` declared in the config.
Cells that depend on the convention are not guessed: when the column does not settle it (no such
evidence, or both conventions in one undeclared column) or the cell contradicts it, the cell is
flagged as ambiguous and the caller quarantines its row (``ambiguous_number``).

Vectorised and per distinct value: returns NaN for cells that are not numbers (``bad_number``) or
ambiguous, so the caller can quarantine exactly those rows with the original text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

_UNIT_FACTORS = {"": 1.0, "mbit/s": 1.0, "mbit": 1.0, "mbps": 1.0, "mb/s": 1.0, "mbits": 1.0,
                 "gbit/s": 1000.0, "gbit": 1000.0, "gbps": 1000.0, "gb/s": 1000.0,
                 "kbit/s": 0.001, "kbit": 0.001, "kbps": 0.001, "kb/s": 0.001}

_SPACE = "[ \u00a0\u202f]"  # blanks that group thousands: space, no-break space, narrow no-break space
_EXP = "(?:[eE][-+]?[0-9]+)?"


def _form(mark: str, group: str) -> str:
    """Numbers with decimal ``mark`` and thousands separator ``group``: plain (with exponent) or grouped."""
    m, g = "\\" + mark, "\\" + group
    d = "[0-9]"  # not \\d: other scripts' digits are not numbers here
    return (rf"[-+]?(?:(?:{d}+(?:{m}{d}+)?|{m}{d}+){_EXP}"
            rf"|[1-9]{d}{{0,2}}(?:{g}{d}{{3}})+(?:{m}{d}+)?"
            rf"|[1-9]{d}{{0,2}}(?:{_SPACE}{d}{{3}})+(?:{m}{d}+)?)")


_POINT_FORM = _form(".", ",")  # English: 1,000.5
_COMMA_FORM = _form(",", ".")  # German: 1.000,5


class Parsed(NamedTuple):
    """Numbers of a column: ``values`` (float, NaN where not a number or ambiguous) and ``ambiguous``
    (True where the cell is a number whose reading the column does not settle)."""

    values: pd.Series
    ambiguous: pd.Series


def parse_numbers(values: pd.Series, decimal: str | None = None) -> Parsed:
    """Parse a text column to float, deciding the decimal convention from the whole column.

    ``decimal`` is the mark declared in the config (``","`` or ``"."``), or None to decide from the
    cells alone. Typed numeric columns are taken as they are (never ambiguous).
    """
    if decimal not in (None, ".", ","):
        raise ValueError(f"decimal mark must be ',' or '.', got {decimal!r}")
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        out = values.astype("float64")
        return Parsed(out.where(np.isfinite(out)), pd.Series(False, index=values.index))
    # Categoricals (few distinct values) are parsed per category; other columns cell by cell.
    codes, uniques = distinct(values) if isinstance(values.dtype, pd.CategoricalDtype) else (None, values)
    text = uniques.astype("string").str.strip().fillna("")
    point_ok = text.str.fullmatch(_POINT_FORM).fillna(False).to_numpy(dtype=bool)
    comma_ok = text.str.fullmatch(_COMMA_FORM).fillna(False).to_numpy(dtype=bool)
    whole = text.str.fullmatch("[-+]?[0-9]+").fillna(False).to_numpy(dtype=bool)  # the same in both: read once
    as_point = _read_as(text, point_ok & ~whole, group=",", mark=".")
    as_comma = _read_as(text, comma_ok & ~whole, group=".", mark=",")
    if whole.any():
        as_point[whole] = as_comma[whole] = pd.to_numeric(text[whole], errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan)
    p, c = as_point, as_comma
    both = point_ok & comma_ok
    neutral = both & (p == c)
    point_only = point_ok & ~comma_ok
    comma_only = comma_ok & ~point_ok
    depends = both & ~neutral  # 1.000, 1,000: the convention decides the value
    used = np.ones(len(uniques), dtype=bool)
    if codes is not None:  # evidence comes from cells present in the column (categoricals may carry unused ones)
        used[:] = False
        used[codes] = True
    convention = decimal
    mixed = bool((point_only & used).any()) and bool((comma_only & used).any())
    if convention is None and not mixed:
        convention = "." if (point_only & used).any() else "," if (comma_only & used).any() else None
    if convention == ".":
        result, ambiguous = p, comma_only
    elif convention == ",":
        result, ambiguous = c, point_only
    else:  # no evidence, or both conventions in one undeclared column: only cells that read the same either way
        result = np.where(point_ok, p, c)
        ambiguous = depends | point_only | comma_only if mixed else depends
    result = np.where(ambiguous | ~np.isfinite(result), np.nan, result)
    if codes is not None:
        result, ambiguous = result[codes], ambiguous[codes]
    return Parsed(pd.Series(result, index=values.index, dtype="float64"),
                  pd.Series(ambiguous, index=values.index, dtype=bool))


def _read_as(text: pd.Series, ok: np.ndarray, group: str, mark: str) -> np.ndarray:
    """The value of the cells whose form is ``ok`` for this convention (NaN elsewhere)."""
    out = np.full(len(text), np.nan)
    if not ok.any():
        return out
    cells = text[ok] if not ok.all() else text
    cells = cells.str.replace(group, "", regex=False)
    if cells.str.contains(_SPACE, regex=True).any():
        cells = cells.str.replace(_SPACE, "", regex=True)
    if mark != ".":
        cells = cells.str.replace(mark, ".", regex=False)
    out[ok] = pd.to_numeric(cells, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return out


def parse_speeds(values: pd.Series, decimal: str | None = None) -> Parsed:
    """Parse speeds with optional unit to Mbit/s; NaN where unparseable or ambiguous.

    A number without a unit is Mbit/s. The convention is decided over the whole column, units
    aside: ``16.000 kbit/s`` is 16 Mbit/s in a column that shows decimal commas (or declares them),
    0.016 in one that shows decimal points, and ambiguous in a column that shows neither.
    """
    codes, uniques = distinct(values)
    text = uniques.astype("string").str.strip().str.casefold()
    parts = text.str.extract(r"^\s*([-+]?[0-9.,\s]*[0-9](?:e[-+]?[0-9]+)?)\s*([a-z/]*)\s*$")
    unit = parts[1].fillna("").str.replace(" ", "", regex=False)
    factor = unit.map(_UNIT_FACTORS).astype("float64")  # unknown unit -> NaN
    used = np.zeros(len(uniques), dtype=bool)
    used[codes] = True
    # evidence only from cells that are speeds (known unit) present in the column
    numbers, ambiguous = parse_numbers(parts[0].where(factor.notna().to_numpy() & used), decimal)
    speeds = (numbers * factor).to_numpy(dtype="float64")
    return Parsed(pd.Series(speeds[codes], index=values.index, dtype="float64"),
                  pd.Series((ambiguous & factor.notna()).to_numpy(dtype=bool)[codes], index=values.index, dtype=bool))


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
