"""Per-area household (and business) counts and shares at bandwidth thresholds.

Counts are computed once per Gemeinde and *summed* up the hierarchy
(Amt, Kreis, Land), so levels add up exactly; shares are recomputed from the
counts at every level, never averaged. Every area of the boundaries appears,
including areas without addresses (households 0, shares empty).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from coverage.columns import factorize_sorted
from coverage.model import LEVEL_KEYS, Boundaries, threshold_tag

log = logging.getLogger(__name__)


def gemeinde_counts(addresses: pd.DataFrame, thresholds: Sequence[float], groups: Sequence[str],
                    prefixes: Sequence[str] = ("",), flags: Sequence[str] = ()) -> pd.DataFrame:
    """Sum households (and households at ≥ t per group) per Gemeinde (``ags``).

    ``addresses`` needs ``ags, households, businesses, site_kind`` and
    ``{prefix}best_down_{g}`` per group. Each boolean column named in ``flags``
    (e.g. ``fund_white``) adds ``hh_{flag}`` (households) and ``addr_{flag}`` (addresses).
    The same sums over ``businesses`` follow all of these columns, in the same order:
    ``{prefix}biz_ge_{t}_{g}`` and ``biz_{flag}`` (e.g. ``biz_fund_white``).

    Nothing per address is materialised per column: per (prefix, group) every address gets the number of
    thresholds it reaches (a class), households are summed per (Gemeinde, class) with ``np.bincount`` and
    a reverse cumulative sum over classes gives the ≥ t counts. With integer-valued weights (the normal
    case) these sums are exact, hence equal to pandas' ``groupby().sum()``; other weights are summed by
    pandas itself, one column at a time, with the same result as a groupby over all columns at once.
    """
    codes, keys = factorize_sorted(addresses["ags"])  # missing ags: code -1, left out (as groupby does)
    keep = codes >= 0
    codes = codes[keep].astype(np.int64)
    n_gem = len(keys)
    hh = addresses["households"].to_numpy(dtype="float64")[keep]
    hh_sum = GroupSum(codes, n_gem, hh)
    biz_sum = GroupSum(codes, n_gem, addresses["businesses"].to_numpy(dtype="float64")[keep])
    data: dict[str, np.ndarray] = {
        "households": hh_sum.total(),
        "addresses": np.bincount(codes, minlength=n_gem).astype("float64"),
        "businesses": biz_sum.total(),
        "sites": GroupSum(codes, n_gem, (addresses["site_kind"] != "").to_numpy(dtype="float64")[keep]).total(),
    }
    biz: dict[str, np.ndarray] = {}
    for prefix in prefixes:
        for g in groups:
            down = addresses[f"{prefix}best_down_{g}"].to_numpy(dtype="float64")[keep]
            for t, column in households_at_least(hh_sum, down, thresholds).items():
                data[f"{prefix}hh_ge_{threshold_tag(t)}_{g}"] = column
            for t, column in households_at_least(biz_sum, down, thresholds).items():
                biz[f"{prefix}biz_ge_{threshold_tag(t)}_{g}"] = column
    for flag in flags:
        mask = addresses[flag].to_numpy(dtype=bool)[keep]
        data[f"hh_{flag}"] = hh_sum.total(mask)
        data[f"addr_{flag}"] = np.bincount(codes[mask], minlength=n_gem).astype("float64")
        biz[f"biz_{flag}"] = biz_sum.total(mask)
    data.update(biz)  # after the household columns: existing tables only gain columns
    return pd.DataFrame(data, index=pd.Index(keys, name="ags"))


def households_at_least(hh_sum: GroupSum, down: np.ndarray, thresholds: Sequence[float]) -> dict[float, np.ndarray]:
    """Per threshold t: the weights summed per group over rows with ``down >= t`` (NaN reaches none)."""
    t_all = np.asarray(thresholds, dtype="float64")
    t_sorted = np.unique(t_all[~np.isnan(t_all)])
    ge = hh_sum.at_least(down, t_sorted)  # (n, len(t_sorted) + 1): column k = sum over down >= t_k-1
    out = {}
    for t in thresholds:
        k = np.searchsorted(t_sorted, t) + 1 if t == t else -1
        out[t] = ge[:, k] if k >= 0 else np.zeros(hh_sum.n)
    return out


class GroupSum:
    """Sums of one weight column per group code (codes 0..n-1, every code present)."""

    def __init__(self, codes: np.ndarray, n: int, weights: np.ndarray):
        self.codes, self.n = codes, n
        self.weights = np.where(np.isnan(weights), 0.0, weights)  # groupby().sum() skips missing values
        finite = np.isfinite(self.weights).all()
        self.exact = bool(finite and (self.weights == np.round(self.weights)).all()
                          and np.abs(self.weights).sum() < 2.0**53)

    def total(self, mask: np.ndarray | None = None) -> np.ndarray:
        w = self.weights if mask is None else np.where(mask, self.weights, 0.0)
        if self.exact:
            return np.bincount(self.codes, weights=w, minlength=self.n)
        return pd.Series(w).groupby(self.codes, sort=True).sum().reindex(range(self.n), fill_value=0.0).to_numpy()

    def at_least(self, down: np.ndarray, t_sorted: np.ndarray) -> np.ndarray:
        """(n, len(t_sorted) + 1): column k sums the weights of rows reaching the k smallest thresholds."""
        nt = len(t_sorted) + 1
        cls = np.searchsorted(t_sorted, down, side="right")
        cls[np.isnan(down)] = 0  # NaN reaches no threshold
        if self.exact:
            per_class = np.bincount(self.codes * nt + cls, weights=self.weights, minlength=self.n * nt)
            return np.cumsum(per_class.reshape(self.n, nt)[:, ::-1], axis=1)[:, ::-1]
        out = np.empty((self.n, nt))
        for k in range(nt):
            out[:, k] = self.total(cls >= k)
        return out


def area_tables(counts: pd.DataFrame, boundaries: Boundaries, thresholds: Sequence[float],
                groups: Sequence[str], prefixes: Sequence[str] = ("",)) -> dict[str, pd.DataFrame]:
    """Tables for every level from Gemeinde counts: keys, names, counts, shares, below-threshold counts;
    then the business counts and shares (see :func:`gemeinde_counts`, :func:`with_shares`).

    Names: ``name`` as the boundaries give it, ``bez`` (BKG's kind of area: Landkreis, Kreisfreie Stadt,
    Amt, Amtsfreie Gemeinde, Gemeinde, Stadt; not at the Land level) and ``display_name``, the name that
    tells the areas of a level apart (:meth:`coverage.model.Boundaries.display_names`)."""
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
        areas = areas.assign(display_name=areas[key].astype(str).map(boundaries.display_names(level)).to_numpy())
        names = areas[[key, "name", *(["bez"] if "bez" in areas else []), "display_name"]
                      + [c for c in ("vwg_ars", "krs_ags", "land") if c in areas and c != key]]
        table = names.merge(summed.drop(columns=[c for c in ("vwg_ars", "krs_ags", "land") if c != key and c in summed
                                                 and c in names]), on=key, how="left")
        table[count_cols] = table[count_cols].fillna(0.0)
        table = _businesses_last(with_shares(table, thresholds, groups, prefixes))
        tables[level] = table.sort_values(key).reset_index(drop=True).copy()
    _check_additivity(tables, count_cols)
    return tables


def _businesses_last(table: pd.DataFrame) -> pd.DataFrame:
    """Business counts and shares (``biz_*``, ``plan_biz_*``) after every household column, counts first:
    tables of earlier versions only gain columns at their end."""
    biz = [c for c in table.columns if str(c).startswith(("biz_", "plan_biz_"))]
    return table[[c for c in table.columns if c not in set(biz)] + biz]


def with_shares(table: pd.DataFrame, thresholds: Sequence[float], groups: Sequence[str],
                prefixes: Sequence[str] = ("",)) -> pd.DataFrame:
    """Add ``share_ge_*`` (percent, NaN without households) and ``hh_lt_*`` columns, then
    ``biz_share_ge_*`` (percent of ``businesses``, NaN without businesses) where ``biz_ge_*`` is present."""
    hh = table["households"].to_numpy(dtype="float64")
    biz = table["businesses"].to_numpy(dtype="float64") if "businesses" in table else None
    extra, biz_extra = {}, {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for prefix in prefixes:
            for g in groups:
                for t in thresholds:
                    tag = f"{threshold_tag(t)}_{g}"
                    ge = table[f"{prefix}hh_ge_{tag}"].to_numpy(dtype="float64")
                    # ge == hh is exactly 100 %: 100 * x / x exceeds 100 by one ulp for fractional x (Zensus)
                    extra[f"{prefix}share_ge_{tag}"] = np.where(hh > 0, np.where(ge == hh, 100.0, 100.0 * ge / hh),
                                                                 np.nan)
                    extra[f"{prefix}hh_lt_{tag}"] = hh - ge
                    if biz is not None and f"{prefix}biz_ge_{tag}" in table:
                        biz_ge = table[f"{prefix}biz_ge_{tag}"].to_numpy(dtype="float64")
                        biz_extra[f"{prefix}biz_share_ge_{tag}"] = np.where(biz > 0, 100.0 * biz_ge / biz, np.nan)
    extra.update(biz_extra)
    # copy=False: each new column stays its own array (a 2.3 M-cell Germany grid would otherwise hold the
    # 96 new columns twice while they are consolidated into one block)
    return pd.concat([table, pd.DataFrame(extra, index=table.index, copy=False)], axis=1)


def _check_additivity(tables: dict[str, pd.DataFrame], count_cols: list[str]) -> None:
    """Land = Σ Kreise = Σ Ämter = Σ Gemeinden, exactly; a failure is a bug, not bad input."""
    reference = tables["gemeinde"][count_cols].sum()
    for level in ("amt", "kreis", "land"):
        total = tables[level][count_cols].sum()
        if not np.allclose(total.to_numpy(), reference.to_numpy(), rtol=0, atol=1e-6):
            raise AssertionError(f"aggregate counts of level {level} do not add up to the Gemeinde totals")
