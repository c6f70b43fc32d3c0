"""What changed between two runs, where, and why.

All functions compare run A (before) with run B (after) and never drop an area
or address that exists on only one side: such rows carry ``status`` "new" or
"gone". Differences within ``tolerance_pp`` percentage points are kept but not
flagged as noteworthy, so ±0.x pp noise is not news.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from coverage.membership import member
from coverage.model import OfferStatus, threshold_tag
from coverage.objection_effect import from_objection


def area_changes(a: pd.DataFrame, b: pd.DataFrame, key: str, thresholds: Sequence[float], groups: Sequence[str],
                 tolerance_pp: float = 0.5) -> pd.DataFrame:
    """Long table per area, group and threshold: households and shares before/after and the change."""
    both = a.merge(b, on=key, how="outer", suffixes=("_a", "_b"))
    in_a, in_b = member(both[key], a[key]), member(both[key], b[key])
    status = pd.Series(np.select([in_a & in_b, in_a], ["both", "gone"], "new"), index=both.index)
    name = both["name_b"].fillna(both["name_a"])
    for shown in ("display_name_a", "display_name", "display_name_b"):  # the later run's, where it has one
        if shown in both:
            name = both[shown].fillna(name)
    # One long table for every (group, threshold) at once: a frame per pair cost most of the change report.
    pairs = [(g, t) for g in groups for t in thresholds
             if f"hh_ge_{threshold_tag(t)}_{g}_a" in both and f"hh_ge_{threshold_tag(t)}_{g}_b" in both]
    if not pairs:
        raise ValueError("no households-at-threshold column in both runs")  # as pd.concat of no parts did
    n, rows = len(both), np.tile(np.arange(len(both)), len(pairs))

    def stacked(pattern: str, fill: bool) -> np.ndarray:
        columns = [both[pattern.format(tag=threshold_tag(t), g=g)] for g, t in pairs]
        return np.concatenate([(c.fillna(0) if fill else c).to_numpy() for c in columns])

    out = pd.DataFrame({
        key: both[key].take(rows).reset_index(drop=True), "name": name.take(rows).reset_index(drop=True),
        "status": status.take(rows).reset_index(drop=True),
        "group": np.repeat(np.array([g for g, _ in pairs], dtype=object), n),
        "threshold_mbps": np.repeat(np.array([t for _, t in pairs]), n),
        "households_a": np.tile(both["households_a"].fillna(0).to_numpy(), len(pairs)),
        "households_b": np.tile(both["households_b"].fillna(0).to_numpy(), len(pairs)),
        "hh_ge_a": stacked("hh_ge_{tag}_{g}_a", True), "hh_ge_b": stacked("hh_ge_{tag}_{g}_b", True),
        "share_a": stacked("share_ge_{tag}_{g}_a", False), "share_b": stacked("share_ge_{tag}_{g}_b", False),
    })
    out["hh_ge_delta"] = out["hh_ge_b"] - out["hh_ge_a"]
    out["delta_pp"] = out["share_b"] - out["share_a"]
    out["noteworthy"] = (out["delta_pp"].abs() > tolerance_pp) | (out["status"] != "both")
    return out.sort_values([key, "group", "threshold_mbps"]).reset_index(drop=True)


#: ``cause`` of a change: the objections layer, or the deliveries (and everything else: address list, households).
BY_OBJECTIONS, BY_DELIVERIES = "objections", "deliveries"


def _with_objection_columns(frame: pd.DataFrame, groups: Sequence[str]) -> pd.DataFrame:
    """The columns cause attribution reads; a run from before the service stage carried them (or one
    without objections) gets "no objection" values: its changes are the deliveries'."""
    extra = {}
    for g in groups:
        col = f"best_source_{g}"
        extra[f"by_objection_{g}"] = from_objection(frame[col]) if col in frame else np.zeros(len(frame), dtype=bool)
    for col in ("objection_withdrew", "objection_changed"):
        extra[col] = frame[col].to_numpy(dtype=bool) if col in frame else np.zeros(len(frame), dtype=bool)
    return pd.DataFrame({"address_id": frame["address_id"].to_numpy(), **extra})


def address_changes(a: pd.DataFrame, b: pd.DataFrame, thresholds: Sequence[float], groups: Sequence[str]
                    ) -> pd.DataFrame:
    """Addresses present in both runs whose best download crossed a threshold, per group.

    ``crossed`` lists the thresholds crossed; the technology and provider before and after
    say what caused the change (the new best offer on a gain, the lost one on a loss).
    ``cause`` is ``objections`` when the offer that made the difference came from the objections
    layer: on a gain the new winning offer (``best_source_{g}`` of run B) or a withdrawal that run A
    applied and B no longer does; on a loss the old winning offer (A's) or a withdrawal B applies and A
    did not. Otherwise ``deliveries``. ``households_a`` is A's count (``households`` is B's).
    """
    cols = ["address_id", "ags", "households"]
    keep = [*cols, *[f"{p}_{g}" for g in groups for p in ("best_down", "best_tech", "best_provider")]]
    both = a[keep].merge(b[keep], on="address_id", suffixes=("_a", "_b"))
    both = both.merge(_with_objection_columns(a, groups), on="address_id", how="left").merge(
        _with_objection_columns(b, groups), on="address_id", how="left", suffixes=("_a", "_b"))
    ts = np.asarray(sorted(thresholds), dtype="float64")
    parts = []
    for g in groups:
        da, db = both[f"best_down_{g}_a"].to_numpy(), both[f"best_down_{g}_b"].to_numpy()
        ka, kb = np.searchsorted(ts, da, side="right"), np.searchsorted(ts, db, side="right")
        moved = ka != kb
        if not moved.any():
            continue
        lo, hi = np.minimum(ka, kb)[moved], np.maximum(ka, kb)[moved]
        sel = both[moved]
        gained = kb[moved] > ka[moved]
        wa, wb = sel["objection_withdrew_a"].to_numpy(dtype=bool), sel["objection_withdrew_b"].to_numpy(dtype=bool)
        by_objection = np.where(gained, sel[f"by_objection_{g}_b"].to_numpy(dtype=bool) | (wa & ~wb),
                                sel[f"by_objection_{g}_a"].to_numpy(dtype=bool) | (wb & ~wa))
        parts.append(pd.DataFrame({
            "address_id": sel["address_id"], "ags": sel["ags_b"], "households": sel["households_b"], "group": g,
            "direction": np.where(gained, "gained", "lost"),
            "crossed": [";".join(f"{t:g}" for t in ts[i:j]) for i, j in zip(lo, hi, strict=True)],
            "down_a": sel[f"best_down_{g}_a"], "down_b": sel[f"best_down_{g}_b"],
            "tech_a": sel[f"best_tech_{g}_a"], "tech_b": sel[f"best_tech_{g}_b"],
            "provider_a": sel[f"best_provider_{g}_a"], "provider_b": sel[f"best_provider_{g}_b"],
            "cause": np.where(by_objection, BY_OBJECTIONS, BY_DELIVERIES), "households_a": sel["households_a"],
        }))
    columns = ["address_id", "ags", "households", "group", "direction", "crossed", "down_a", "down_b",
               "tech_a", "tech_b", "provider_a", "provider_b", "cause", "households_a"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def address_list_changes(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Addresses that appeared in or vanished from the address list."""
    gone = a[~member(a["address_id"], b["address_id"])].assign(change="vanished")
    new = b[~member(b["address_id"], a["address_id"])].assign(change="appeared")
    return pd.concat([gone, new], ignore_index=True)[["address_id", "ags", "households", "change"]]


def provider_changes(offers_a: pd.DataFrame, offers_b: pd.DataFrame) -> pd.DataFrame:
    """Providers and technologies with the number of addresses they reach, before and after."""
    def reach(offers: pd.DataFrame) -> pd.Series:
        current = offers[offers["status"] == OfferStatus.CURRENT]
        return current.groupby(["provider", "technology"], observed=True)["address_id"].nunique()

    out = pd.concat([reach(offers_a).rename("addresses_a"), reach(offers_b).rename("addresses_b")], axis=1)
    out = out.fillna(0).astype("int64").reset_index()
    out["change"] = np.select([out["addresses_a"] == 0, out["addresses_b"] == 0,
                               out["addresses_a"] != out["addresses_b"]], ["appeared", "disappeared", "changed"],
                              "unchanged")
    return out.sort_values(["provider", "technology"]).reset_index(drop=True)


def funding_changes(a: pd.DataFrame, b: pd.DataFrame, flags: Sequence[str]) -> pd.DataFrame:
    """Addresses whose funding eligibility changed, per rule flag (e.g. ``fund_white``).

    ``cause`` is ``objections`` where accepted objections changed the address' service or verdicts in
    either run (``objection_changed``: the verdict of one side was not the deliveries' alone), else
    ``deliveries``. Approximate: an address where objections changed another rule's verdict, and the
    deliveries this one, counts as changed by objections."""
    flags = [f for f in flags if f in a.columns and f in b.columns]
    both = a[["address_id", *flags]].merge(b[["address_id", "ags", "households", *flags]], on="address_id",
                                           suffixes=("_a", "_b"))
    both = both.merge(_with_objection_columns(a, ()), on="address_id", how="left").merge(
        _with_objection_columns(b, ()), on="address_id", how="left", suffixes=("_a", "_b"))
    by_objection = both["objection_changed_a"].to_numpy(dtype=bool) | both["objection_changed_b"].to_numpy(dtype=bool)
    parts = []
    for f in flags:
        moved = (both[f"{f}_a"] != both[f"{f}_b"]).to_numpy()
        sel = both[moved]
        parts.append(pd.DataFrame({"address_id": sel["address_id"], "ags": sel["ags"], "households": sel["households"],
                                   "rule": f.removeprefix("fund_"), "eligible_a": sel[f"{f}_a"],
                                   "eligible_b": sel[f"{f}_b"],
                                   "cause": np.where(by_objection[moved], BY_OBJECTIONS, BY_DELIVERIES)}))
    columns = ["address_id", "ags", "households", "rule", "eligible_a", "eligible_b", "cause"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def objection_deltas(moved: pd.DataFrame, areas: pd.DataFrame, key: str, thresholds: Sequence[float]
                     ) -> pd.DataFrame:
    """Per area (``key``), group and threshold: the change of households reaching it that objections
    caused (``hh_ge_delta_objections``: + households on a gain, - A's households on a loss), from the
    rows of :func:`address_changes`. ``areas`` maps ``address_id`` to the area (run B's addresses)."""
    columns = [key, "group", "threshold_mbps", "hh_ge_delta_objections"]
    mine = moved[moved["cause"] == BY_OBJECTIONS] if len(moved) else moved
    if not len(mine):
        return pd.DataFrame({c: pd.Series(dtype="float64" if c.startswith(("hh", "thr")) else object)
                             for c in columns})
    where = areas.drop_duplicates("address_id").set_index("address_id")[key].astype(str)
    parts = []
    for t in thresholds:
        hit = mine["crossed"].str.split(";").map(lambda ts, t=t: f"{t:g}" in ts).to_numpy(dtype=bool)
        rows = mine[hit]
        signed = np.where(rows["direction"] == "gained", rows["households"].to_numpy(dtype="float64"),
                          -rows["households_a"].to_numpy(dtype="float64"))
        parts.append(pd.DataFrame({key: rows["address_id"].map(where).to_numpy(), "group": rows["group"].to_numpy(),
                                   "threshold_mbps": float(t), "hh_ge_delta_objections": signed}))
    out = pd.concat(parts, ignore_index=True)
    return out.groupby([key, "group", "threshold_mbps"], as_index=False)["hh_ge_delta_objections"].sum()


def split_by_cause(table: pd.DataFrame, deltas: pd.DataFrame | None, key: str) -> pd.DataFrame:
    """Add ``hh_ge_delta_objections`` and ``hh_ge_delta_deliveries`` (the rest: deliveries, the address list,
    households) to an :func:`area_changes` table; both empty (NaN) when addresses were not compared."""
    if deltas is None:
        return table.assign(hh_ge_delta_objections=np.nan, hh_ge_delta_deliveries=np.nan)
    deltas = deltas.astype({key: str, "threshold_mbps": "float64"})
    out = table.assign(**{key: table[key].astype(str), "threshold_mbps": table["threshold_mbps"].astype("float64")})
    out = out.merge(deltas, on=[key, "group", "threshold_mbps"], how="left")
    out["hh_ge_delta_objections"] = out["hh_ge_delta_objections"].fillna(0.0)
    rest = (out["hh_ge_delta"] - out["hh_ge_delta_objections"]).to_numpy(dtype="float64")
    # fractional (Zensus) households: a difference of two equal sums is rounding noise (1e-13), not a change
    scale = np.maximum(1.0, np.abs(out["hh_ge_delta"].to_numpy(dtype="float64")))
    out["hh_ge_delta_deliveries"] = np.where(np.abs(rest) <= 1e-9 * scale, 0.0, rest)
    return out
