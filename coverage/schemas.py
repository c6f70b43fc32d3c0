"""Column contracts at stage boundaries.

``validate`` gathers every problem first and raises once, so a user sees all
missing columns of a file in one message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from coverage.errors import SchemaError

#: Addresses after reading (geometry: Point in the working CRS).
ADDRESS_REQUIRED = ("address_id", "households")
ADDRESS_OPTIONAL = ("businesses", "site_kind", "site_name", "street", "house_number", "postcode", "locality")
#: Added by :func:`coverage.locate.locate_addresses`.
LOCATED = ("ags", "vwg_ars", "krs_ags", "land", "locate_method", "locate_distance_m")

#: Provider offers linked to addresses: one row per (address, offer).
OFFER_COLUMNS = ("address_id", "provider", "technology", "down_mbps", "up_mbps", "status", "planned_date",
                 "source", "match_method")

#: Canonical names of the area key column per level.
LEVEL_KEYS = {"gemeinde": "ags", "amt": "vwg_ars", "kreis": "krs_ags", "land": "land"}
LEVELS = tuple(LEVEL_KEYS)


def threshold_tag(t: float) -> str:
    """``100`` -> ``'100'``, ``0.5`` -> ``'0.5'``: the threshold as it appears in column names."""
    return f"{t:g}"


def validate(frame: pd.DataFrame, required: Iterable[str], source: str,
             dtypes: Mapping[str, str] | None = None) -> None:
    """Raise one :class:`SchemaError` listing every missing or mistyped column."""
    problems = []
    missing = [c for c in required if c not in frame.columns]
    if missing:
        problems.append(f"missing column(s) {missing}")
    for col, kind in (dtypes or {}).items():
        if col in frame.columns and not _is_kind(frame[col], kind):
            problems.append(f"column '{col}' should be {kind}, found {frame[col].dtype}")
    if problems:
        raise SchemaError(f"{source}: " + "; ".join(problems) + f" (found columns: {list(frame.columns)})")


def _is_kind(series: pd.Series, kind: str) -> bool:
    if kind == "number":
        return pd.api.types.is_numeric_dtype(series)
    if kind == "string":
        return pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series)
    raise ValueError(f"unknown kind {kind}")
