"""Per-area household counts and shares at bandwidth thresholds.

Counts are computed once per Gemeinde and *summed* up the hierarchy
(Amt, Kreis, Land), so levels add up exactly; shares are recomputed from the
counts at every level, never averaged. Every area of the boundaries appears,
including areas without addresses (households 0, shares empty).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from coverage.schemas import LEVEL_KEYS, threshold_tag
from coverage.sources.bkg import Boundaries

log = logging.getLogger(__name__)

BASE_COUNTS = ("households", "addresses", "businesses", "sites")


def count_columns(thresholds: Sequence[float], groups: Iterable[str], prefix: str = "") -> list[str]:
    return [f"{prefix}hh_ge_{threshold_tag(t)}_{g}" for g in groups for t in thresholds]


def gemeinde_counts(addresses: pd.DataFrame, thresholds: Sequence[float], groups: Sequence[str],
                    prefixes: Sequence[str] = ("",), flags: Sequence[str] = ()) -> pd.DataFrame:
    """Sum households (and households at ≥ t per group) per Gemeinde (``ags``).

    ``addresses`` needs ``ags, households, businesses, site_kind`` and
    ``{prefix}best_down_{g}`` per group. Each boolean column named in ``flags``
    (e.g. ``fund_white``) adds ``hh_{flag}`` (households) and ``addr_{flag}`` (addresses).
    """
    hh = addresses["households"].to_numpy(dtype="float64")
    data: dict[str, np.ndarray] = {
        "households": hh,
        "addresses": np.ones(len(addresses)),
        "businesses": addresses["businesses"].to_numpy(dtype="float64"),
        "sites": (addresses["site_kind"].astype(str) != "").to_numpy(dtype="float64"),
    }
    for prefix in prefixes:
        for g in groups:
            down = addresses[f"{prefix}best_down_{g}"].to_numpy(dtype="float64")
            for t in thresholds:
                data[f"{prefix}hh_ge_{threshold_tag(t)}_{g}"] = np.where(down >= t, hh, 0.0)
    for flag in flags:
        mask = addresses[flag].to_numpy(dtype=bool)
        data[f"hh_{flag}"] = np.where(mask, hh, 0.0)
        data[f"addr_{flag}"] = mask.astype("float64")
    frame = pd.DataFrame(data)
    frame["ags"] = addresses["ags"].to_numpy()
    return frame.groupby("ags", sort=True).sum()


def area_tables(counts: pd.DataFrame, boundaries: Boundaries, thresholds: Sequence[float],
                groups: Sequence[str], prefixes: Sequence[str] = ("",)) -> dict[str, pd.DataFrame]:
    """Tables for every level from Gemeinde counts: keys, names, counts, shares, below-threshold counts."""
    hierarchy = boundaries.hierarchy()
    gem = hierarchy.set_index("ags")[["vwg_ars", "krs_ags", "land"]]
    unknown = counts.index.difference(gem.index)
    if len(unknown):
        raise ValueError(f"counts for Gemeinden not in the boundaries: {list(unknown[:5])}")
    count_cols = list(counts.columns)
    full = counts.reindex(gem.index, fill_value=0.0).join(gem)
    tables = {}
    for level, key in LEVEL_KEYS.items():
        if level == "gemeinde":
            summed = full.reset_index()
        else:
            summed = full.groupby(key, sort=True)[count_cols].sum().reset_index()
        areas = boundaries.level(level).drop(columns="geometry")
        names = areas[[key, "name"] + [c for c in ("vwg_ars", "krs_ags", "land") if c in areas and c != key]]
        table = names.merge(summed.drop(columns=[c for c in ("vwg_ars", "krs_ags", "land") if c != key and c in summed
                                                 and c in names]), on=key, how="left")
        table[count_cols] = table[count_cols].fillna(0.0)
        tables[level] = with_shares(table, thresholds, groups, prefixes).sort_values(key).reset_index(drop=True).copy()
    _check_additivity(tables, count_cols)
    return tables


def with_shares(table: pd.DataFrame, thresholds: Sequence[float], groups: Sequence[str],
                prefixes: Sequence[str] = ("",)) -> pd.DataFrame:
    """Add ``share_ge_*`` (percent, NaN without households) and ``hh_lt_*`` columns."""
    hh = table["households"].to_numpy(dtype="float64")
    extra = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for prefix in prefixes:
            for g in groups:
                for t in thresholds:
                    tag = f"{threshold_tag(t)}_{g}"
                    ge = table[f"{prefix}hh_ge_{tag}"].to_numpy(dtype="float64")
                    extra[f"{prefix}share_ge_{tag}"] = np.where(hh > 0, 100.0 * ge / hh, np.nan)
                    extra[f"{prefix}hh_lt_{tag}"] = hh - ge
    return pd.concat([table, pd.DataFrame(extra, index=table.index)], axis=1)


def _check_additivity(tables: dict[str, pd.DataFrame], count_cols: list[str]) -> None:
    """Land = Σ Kreise = Σ Ämter = Σ Gemeinden, exactly; a failure is a bug, not bad input."""
    reference = tables["gemeinde"][count_cols].sum()
    for level in ("amt", "kreis", "land"):
        total = tables[level][count_cols].sum()
        if not np.allclose(total.to_numpy(), reference.to_numpy(), rtol=0, atol=1e-6):
            raise AssertionError(f"aggregate counts of level {level} do not add up to the Gemeinde totals")
