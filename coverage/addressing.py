"""Normalising German street addresses so provider wording matches the register.

``Hauptstraße 12 a`` == ``hauptstr. 12A`` == ``Hauptstrasse 12a``. Kept small and
explicit: case, whitespace, ß/ss, umlauts and their transliterations,
Straße/Str./Strasse, house-number suffixes and ranges.
"""

from __future__ import annotations

import pandas as pd

_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def normalise_street(values: pd.Series) -> pd.Series:
    s = values.astype("string").fillna("").str.casefold().str.translate(_UMLAUTS)
    s = s.str.replace(r"str(asse|\.|\b)", "str", regex=True)
    return s.str.replace(r"[^a-z0-9]+", "", regex=True)


def normalise_house_number(values: pd.Series) -> pd.Series:
    """``'12 A'`` -> ``'12a'``; ``'12-14'`` -> ``'12-14'``; leading zeros dropped."""
    s = values.astype("string").fillna("").str.casefold().str.replace(r"\s+", "", regex=True)
    return s.str.replace(r"^0+(?=\d)", "", regex=True).str.replace(r"[–—/]", "-", regex=True)


def normalise_locality(values: pd.Series) -> pd.Series:
    """``'Neuenkirchen (Vorpommern)'`` == ``'neuenkirchen vorpommern'``: case, umlauts, punctuation ignored."""
    s = values.astype("string").fillna("").str.casefold().str.translate(_UMLAUTS)
    return s.str.replace(r"[^a-z0-9]+", "", regex=True)


def address_key(street: pd.Series, house_number: pd.Series, postcode: pd.Series) -> pd.Series:
    """One comparable key per address; the postcode is optional (empty matches any)."""
    plz = postcode.astype("string").fillna("").str.extract(r"(\d{5})", expand=False).fillna("")
    return normalise_street(street) + "|" + normalise_house_number(house_number) + "|" + plz


def strip_postcode(keys: pd.Series) -> pd.Series:
    return keys.str.replace(r"\|\d*$", "|", regex=True)


