"""Run-to-Breitbandatlas comparison of per-Gemeinde shares.

Only Gemeinden whose AGS appears in both are compared; keys present on one
side only (municipal mergers dissolve AGS between releases) are reported,
never silently dropped. Shares are in percent; differences in percentage points.
Household tables (``…_privat_…``) are compared with the run's ``share_ge_*``,
business tables (``…_gew_…``) with its ``biz_share_ge_*`` (see :data:`KINDS`).
The Kreis table (``2021_BBA_Kreisdaten.xls``) is compared per Kreis
(:func:`compare_kreise_with_bba`): households, businesses and schools (the run's
``school`` sites, best service of all technologies). The Land table (``bundesland_privat_…``, two-digit
keys) is compared per Land (:func:`compare_laender_with_bba`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from coverage.model import threshold_tag

#: kind -> (share column prefix, count column of the run's table)
KINDS = {"households": ("share_ge", "households"), "businesses": ("biz_share_ge", "businesses")}


def kind_of_file(path: str | Path) -> str:
    """``businesses`` for a Breitbandatlas business table (``…_gew_…`` in the file name), else ``households``."""
    return "businesses" if re.search(r"(^|_)gew(_|$)", Path(path).stem.casefold()) else "households"


@dataclass(frozen=True)
class BBAComparison:
    """``summary``: one row per (group, threshold) with n, mean/median absolute difference and the
    two aggregate shares (weighted by households, or businesses for ``kind="businesses"``:
    ``bba_share_biz_weighted``); ``detail``: per Gemeinde;
    ``only_in_run`` / ``only_in_bba``: AGS keys without a partner."""

    summary: pd.DataFrame
    detail: pd.DataFrame
    only_in_run: list[str]
    only_in_bba: list[str]


def compare_with_bba(gemeinden: pd.DataFrame, bba_long: pd.DataFrame, land: str | None = None,
                     kind: str = "households") -> BBAComparison:
    """Compare a run's ``coverage_gemeinde`` table with a long Breitbandatlas table of ``kind``
    (``households``: ``share_ge_*``; ``businesses``: ``biz_share_ge_*``, Gemeinden with businesses)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, not {kind!r}")
    share, weight = KINDS[kind]
    bba = bba_long[bba_long["key"].str.len() == 8]
    if land:
        bba = bba[bba["key"].str.startswith(land)]
        gemeinden = gemeinden[gemeinden["ags"].astype(str).str.startswith(land)]
    run_keys = set(gemeinden["ags"].astype(str))
    bba_keys = set(bba["key"])
    rows = []
    for (group, t), part in bba.groupby(["group", "threshold_mbps"], sort=True):
        col = f"{share}_{threshold_tag(t)}_{group}"
        if col not in gemeinden:
            continue
        run = gemeinden[["ags", weight, col]].rename(columns={"ags": "key", col: "run_share"})
        both = run.merge(part[["key", "share"]].rename(columns={"share": "bba_share"}), on="key", how="inner")
        both = both[both[weight] > 0]
        both = both.assign(group=group, threshold_mbps=t, diff_pp=both["run_share"] - both["bba_share"])
        rows.append(both)
    detail = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["key", weight, "run_share", "bba_share", "group", "threshold_mbps", "diff_pp"])
    summary = (detail.groupby(["group", "threshold_mbps"], sort=True)
               .apply(_summarise, weight, include_groups=False).reset_index()) if len(detail) else pd.DataFrame()
    return BBAComparison(summary, detail, sorted(run_keys - bba_keys), sorted(bba_keys - run_keys))


def _summarise(part: pd.DataFrame, weight: str = "households") -> pd.Series:
    w = part[weight].to_numpy(dtype=float)
    absdiff = part["diff_pp"].abs()
    return pd.Series({
        "gemeinden": len(part),
        "mean_abs_diff_pp": absdiff.mean(),
        "median_abs_diff_pp": absdiff.median(),
        "run_share_total": np.average(part["run_share"], weights=w),
        "bba_share_hh_weighted" if weight == "households" else "bba_share_biz_weighted":
            np.average(part["bba_share"], weights=w),
    })


def summary_by_group(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean absolute difference per technology group over all compared thresholds."""
    return (summary.groupby("group")
            .apply(lambda s: pd.Series({
                "thresholds": ", ".join(f"{t:g}" for t in s["threshold_mbps"]),
                "mean_abs_diff_pp": float(np.average(s["mean_abs_diff_pp"])),
                "gemeinden": int(s["gemeinden"].max())}), include_groups=False)
            .reset_index())


def compare_kreise_with_bba(kreise: pd.DataFrame, sites_kreis: pd.DataFrame, kreis_long: pd.DataFrame,
                            land: str | None = None) -> BBAComparison:
    """Compare a run's ``coverage_kreis`` and ``sites_kreis`` tables with the Breitbandatlas Kreis table
    (long form with a ``kind`` column: households, businesses, schools; :func:`read_bba_kreis_table`).

    Households and businesses as in :func:`compare_with_bba` (per Kreis); schools: the run's
    ``share_sites_ge_*`` of ``site_kind == "school"`` against the published school shares (group
    ``all``), weighted by the run's school count. ``summary`` has a ``kind`` column and
    ``kreise``, ``mean_abs_diff_pp``, ``max_abs_diff_pp``, ``run_share_total``, ``bba_share_weighted``.
    """
    bba = kreis_long[kreis_long["key"].str.len() == 5]
    kreise = kreise.assign(krs_ags=kreise["krs_ags"].astype(str).str.zfill(5))
    schools = sites_kreis[sites_kreis["site_kind"] == "school"]
    schools = schools.assign(krs_ags=schools["krs_ags"].astype(str).str.zfill(5))
    if land:
        bba = bba[bba["key"].str.startswith(land)]
        kreise = kreise[kreise["krs_ags"].str.startswith(land)]
        schools = schools[schools["krs_ags"].str.startswith(land)]
    runs = {"households": (kreise, "share_ge", "households"), "businesses": (kreise, "biz_share_ge", "businesses"),
            "schools": (schools, "share_sites_ge", "sites")}
    rows = []
    for (kind, group, t), part in bba.groupby(["kind", "group", "threshold_mbps"], sort=True):
        table, share, weight = runs[str(kind)]
        col = f"{share}_{threshold_tag(t)}" + ("" if kind == "schools" else f"_{group}")
        if col not in table or (kind == "schools" and group != "all"):
            continue
        run = table[["krs_ags", weight, col]].rename(columns={"krs_ags": "key", weight: "weight", col: "run_share"})
        both = run.merge(part[["key", "share"]].rename(columns={"share": "bba_share"}), on="key", how="inner")
        both = both[both["weight"] > 0]
        rows.append(both.assign(kind=kind, group=group, threshold_mbps=t,
                                diff_pp=both["run_share"] - both["bba_share"]))
    cols = ["key", "weight", "run_share", "bba_share", "kind", "group", "threshold_mbps", "diff_pp"]
    detail = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)
    summary = (detail.groupby(["kind", "group", "threshold_mbps"], sort=True)
               .apply(_summarise_kreise, include_groups=False).reset_index()) if len(detail) else pd.DataFrame()
    run_keys = set(kreise["krs_ags"])
    bba_keys = set(bba["key"])
    return BBAComparison(summary, detail, sorted(run_keys - bba_keys), sorted(bba_keys - run_keys))


def _summarise_kreise(part: pd.DataFrame) -> pd.Series:
    w = part["weight"].to_numpy(dtype=float)
    absdiff = part["diff_pp"].abs()
    return pd.Series({
        "kreise": len(part),
        "mean_abs_diff_pp": absdiff.mean(),
        "max_abs_diff_pp": absdiff.max(),
        "run_share_total": np.average(part["run_share"], weights=w),
        "bba_share_weighted": np.average(part["bba_share"], weights=w),
    })
def spread_by_group(detail: pd.DataFrame) -> pd.DataFrame:
    """Per technology group: mean, 95th percentile and maximum of the absolute differences over all
    (Gemeinde, threshold) pairs, and how many Gemeinden are off by more than 5 / 10 pp at some threshold
    (the means hide single Gemeinden far off)."""
    if detail.empty:
        return pd.DataFrame(columns=["group", "gemeinden", "mean_abs_diff_pp", "p95_abs_diff_pp", "max_abs_diff_pp",
                                     "gemeinden_over_5pp", "gemeinden_over_10pp"])
    absdiff = detail.assign(abs_pp=detail["diff_pp"].abs())
    worst = absdiff.groupby(["group", "key"])["abs_pp"].max()
    out = absdiff.groupby("group")["abs_pp"].agg(
        mean_abs_diff_pp="mean", p95_abs_diff_pp=lambda v: float(np.quantile(v, 0.95)), max_abs_diff_pp="max")
    out.insert(0, "gemeinden", worst.groupby(level="group").size())
    out["gemeinden_over_5pp"] = (worst > 5).groupby(level="group").sum()
    out["gemeinden_over_10pp"] = (worst > 10).groupby(level="group").sum()
    return out.reset_index()


#: A Land off by more than this (pp) at some threshold is listed by :func:`laender_off` (issue 19: within 1 pp).
LAND_TOLERANCE_PP = 1.0


def is_land_table(bba_long: pd.DataFrame) -> bool:
    """A Breitbandatlas table of Länder (``bundesland_…``): every key is a two-digit Land key."""
    keys = bba_long["key"].astype(str)
    return bool(len(keys)) and bool((keys.str.len() == 2).all())


def compare_laender_with_bba(laender: pd.DataFrame, land_long: pd.DataFrame,
                             kind: str = "households") -> BBAComparison:
    """Compare a run's ``coverage_land`` table with the Breitbandatlas Land table (long form, two-digit
    keys; :func:`coverage.sources.breitbandatlas.read_bba_table`) per group and published threshold the
    run has. Länder without households in the run (not built, or outside its area) are not compared.
    ``summary``: per (group, threshold) ``laender``, ``mean_abs_diff_pp``, ``max_abs_diff_pp``,
    ``worst_land``, ``run_share_total``, ``bba_share_weighted``; ``detail``: per Land."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, not {kind!r}")
    share, weight = KINDS[kind]
    bba = land_long[land_long["key"].astype(str).str.len() == 2]
    run = laender.assign(land=laender["land"].astype(str).str.zfill(2))
    run = run[pd.to_numeric(run[weight], errors="coerce").fillna(0) > 0]
    rows = []
    for (group, t), part in bba.groupby(["group", "threshold_mbps"], sort=True):
        col = f"{share}_{threshold_tag(t)}_{group}"
        if col not in run:
            continue
        mine = run[["land", weight, col]].rename(columns={"land": "key", weight: "weight", col: "run_share"})
        both = mine.merge(part[["key", "share"]].rename(columns={"share": "bba_share"}), on="key", how="inner")
        rows.append(both.assign(group=group, threshold_mbps=t, diff_pp=both["run_share"] - both["bba_share"]))
    cols = ["key", "weight", "run_share", "bba_share", "group", "threshold_mbps", "diff_pp"]
    detail = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)
    summary = (detail.groupby(["group", "threshold_mbps"], sort=True)
               .apply(_summarise_laender, include_groups=False).reset_index()) if len(detail) else pd.DataFrame()
    run_keys, bba_keys = set(run["land"]), set(bba["key"].astype(str))
    return BBAComparison(summary, detail, sorted(run_keys - bba_keys), sorted(bba_keys - run_keys))


def _summarise_laender(part: pd.DataFrame) -> pd.Series:
    absdiff = part["diff_pp"].abs()
    w = part["weight"].to_numpy(dtype=float)
    return pd.Series({
        "laender": len(part),
        "mean_abs_diff_pp": absdiff.mean(),
        "max_abs_diff_pp": absdiff.max(),
        "worst_land": str(part["key"].iloc[int(np.argmax(absdiff.to_numpy()))]),
        "run_share_total": np.average(part["run_share"], weights=w),
        "bba_share_weighted": np.average(part["bba_share"], weights=w),
    })


def laender_by_group(detail: pd.DataFrame) -> pd.DataFrame:
    """Per technology group: Länder compared, thresholds, mean and maximum absolute difference over all
    (Land, threshold) pairs, and how many Länder are off by more than :data:`LAND_TOLERANCE_PP` somewhere."""
    cols = ["group", "laender", "thresholds", "mean_abs_diff_pp", "max_abs_diff_pp", "laender_over_1pp"]
    if detail.empty:
        return pd.DataFrame(columns=cols)
    d = detail.assign(abs_pp=detail["diff_pp"].abs())
    worst = d.groupby(["group", "key"])["abs_pp"].max()
    out = d.groupby("group").agg(
        laender=("key", "nunique"),
        thresholds=("threshold_mbps", lambda t: ", ".join(f"{v:g}" for v in sorted(set(t)))),
        mean_abs_diff_pp=("abs_pp", "mean"), max_abs_diff_pp=("abs_pp", "max"))
    out["laender_over_1pp"] = (worst > LAND_TOLERANCE_PP).groupby(level="group").sum()
    return out.reset_index()[cols]


def laender_off(detail: pd.DataFrame, tolerance_pp: float = LAND_TOLERANCE_PP) -> pd.DataFrame:
    """The (Land, group, threshold) rows off by more than ``tolerance_pp``, largest first."""
    if detail.empty:
        return detail
    off = detail[detail["diff_pp"].abs() > tolerance_pp]
    return off.reindex(off["diff_pp"].abs().sort_values(ascending=False).index).reset_index(drop=True)
