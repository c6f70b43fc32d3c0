"""Administrative sites (town halls, Amt offices, Kreis administrations, schools).

``site_table`` lists every site with its area names, best service and class;
``site_counts`` counts sites per area, kind and threshold, summed up the
hierarchy like the household counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from coverage.model import LEVEL_KEYS, Boundaries, threshold_tag

SITE_CLASSES = ((1000, "≥ 1000 Mbit/s"), (100, "≥ 100 Mbit/s"), (30, "≥ 30 Mbit/s"), (0, "< 30 Mbit/s"))
SITE_KIND_LABELS = {"gemeinde_office": "Gemeindeverwaltung", "amt_office": "Amtsverwaltung",
                    "kreis_office": "Kreisverwaltung", "school": "Schule"}


def site_class(down: pd.Series) -> pd.Series:
    """Class label of a download speed: the highest class threshold it reaches."""
    values = down.to_numpy(dtype="float64")
    labels = np.full(len(values), SITE_CLASSES[-1][1], dtype=object)
    for t, label in reversed(SITE_CLASSES[:-1]):
        labels[values >= t] = label
    return pd.Series(labels, index=down.index)


def site_table(addresses: pd.DataFrame, boundaries: Boundaries, group: str = "all") -> pd.DataFrame:
    """One row per site (addresses with a ``site_kind``), with names of its Gemeinde, Amt and Kreis."""
    sites = addresses[addresses["site_kind"].astype(str) != ""]
    names = boundaries.hierarchy()[["ags", "gemeinde_name", "amt_name", "kreis_name"]]
    cols = ["address_id", "site_kind", "site_name", "street", "house_number", "postcode", "locality",
            "ags", "vwg_ars", "krs_ags"]
    out = sites[cols].merge(names, on="ags", how="left")
    out["site_kind_label"] = out["site_kind"].map(SITE_KIND_LABELS).fillna(out["site_kind"])
    for col in ("best_down", "best_up", "best_tech", "best_provider"):
        out[col] = sites[f"{col}_{group}"].to_numpy()
    out["plan_best_down"] = sites[f"plan_best_down_{group}"].to_numpy()
    out["service_class"] = site_class(out["best_down"]).to_numpy()
    return out.sort_values(["krs_ags", "vwg_ars", "ags", "site_kind", "site_name"]).reset_index(drop=True)


def site_counts(sites: pd.DataFrame, boundaries: Boundaries, thresholds: Sequence[float]
                ) -> dict[str, pd.DataFrame]:
    """Per level: key, name, site_kind, sites, ``sites_ge_{t}`` and ``share_sites_ge_{t}`` (percent)."""
    kinds = sorted(set(sites["site_kind"]) | set(SITE_KIND_LABELS))
    down = sites["best_down"].to_numpy(dtype="float64")
    data = {"sites": np.ones(len(sites))}
    for t in thresholds:
        data[f"sites_ge_{threshold_tag(t)}"] = (down >= t).astype("float64")
    frame = pd.DataFrame(data)
    frame["ags"] = sites["ags"].to_numpy()
    frame["site_kind"] = sites["site_kind"].to_numpy()
    per_gem = frame.groupby(["ags", "site_kind"]).sum()
    hierarchy = boundaries.hierarchy()
    full_index = pd.MultiIndex.from_product([hierarchy["ags"], kinds], names=["ags", "site_kind"])
    per_gem = per_gem.reindex(full_index, fill_value=0.0).reset_index()
    per_gem = per_gem.merge(hierarchy[["ags", "vwg_ars", "krs_ags", "land"]], on="ags")
    count_cols = [c for c in frame.columns if c.startswith("sites")]
    out = {}
    for level, key in LEVEL_KEYS.items():
        summed = per_gem.groupby([key, "site_kind"], sort=True)[count_cols].sum().reset_index()
        names = boundaries.level(level)[[key, "name"]]
        names = names.assign(display_name=names[key].astype(str).map(boundaries.display_names(level)).to_numpy())
        table = names.merge(summed, on=key, how="left")
        table["site_kind_label"] = table["site_kind"].map(SITE_KIND_LABELS).fillna(table["site_kind"])
        with np.errstate(invalid="ignore", divide="ignore"):
            for t in thresholds:
                tag = threshold_tag(t)
                table[f"share_sites_ge_{tag}"] = np.where(table["sites"] > 0,
                                                          100.0 * table[f"sites_ge_{tag}"] / table["sites"], np.nan)
        out[level] = table.sort_values([key, "site_kind"]).reset_index(drop=True)
    return out
