"""Best service per address and technology group.

For each group the best offer is the one with the highest download; among
equal downloads the higher upload wins, and the upload reported is that of
the same offer (never the maximum upload of another offer). Addresses without
an offer in a group get ``best_down_{g} = 0`` and ``best_tech_{g} = "none"``:
an explicit "no service", never a missing row.

``plan_*`` columns repeat the computation with planned offers whose
``planned_date`` lies within the horizon added to the current ones.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd

from coverage.technology import Technology

log = logging.getLogger(__name__)

NO_SERVICE = "none"
PROVIDER_COUNT_THRESHOLDS = (30, 100)


def offers_in_scope(offers: pd.DataFrame, planned_until: date | None) -> dict[str, pd.DataFrame]:
    """Split offers into the current set and current + planned-within-horizon set."""
    current = offers[offers["status"] == "current"]
    if planned_until is None:
        return {"": current, "plan_": current}
    dates = pd.to_datetime(offers["planned_date"].replace("", pd.NA), errors="coerce")
    in_horizon = (offers["status"] == "planned") & (dates.isna() | (dates <= pd.Timestamp(planned_until)))
    return {"": current, "plan_": offers[(offers["status"] == "current") | in_horizon]}


def best_service(address_ids: pd.Series, offers: pd.DataFrame, groups: Mapping[str, Sequence[Technology]],
                 planned_until: date | None = None) -> pd.DataFrame:
    """One row per address (same order as ``address_ids``) with best service per group.

    Columns per group ``g`` and prefix ``p`` in ("", "plan_"): ``{p}best_down_{g}``,
    ``{p}best_up_{g}``, ``{p}best_tech_{g}``, ``{p}best_provider_{g}`` (all
    providers giving that best download, ``; ``-joined) and, unprefixed only,
    ``n_prov_ge{t}_{g}`` for t in 30 and 100.
    """
    ids = pd.Index(address_ids.astype(str), name="address_id")
    if ids.has_duplicates:
        raise ValueError("best_service: address_ids must be unique")
    columns: dict[str, pd.Series | np.ndarray] = {}
    for prefix, scope in offers_in_scope(offers, planned_until).items():
        scope = scope[scope["address_id"].isin(ids)]
        for group, techs in groups.items():
            in_group = scope[scope["technology"].isin([t.value for t in techs])]
            columns.update(_best_for_group(ids, in_group, f"{prefix}", group, counts=(prefix == "")))
    out = pd.DataFrame(columns, index=ids)
    log.info("best service: %d addresses, %d offers, %d groups", len(ids), len(offers), len(groups))
    return out.reset_index()


def _best_for_group(ids: pd.Index, offers: pd.DataFrame, prefix: str, group: str, counts: bool) -> dict:
    ranked = offers.sort_values(["address_id", "down_mbps", "up_mbps"], ascending=[True, False, False],
                                na_position="last", kind="mergesort")
    best = ranked.drop_duplicates("address_id").set_index("address_id")
    top = offers["down_mbps"].to_numpy() == offers["address_id"].map(best["down_mbps"]).to_numpy()
    providers = (offers.loc[top, ["address_id", "provider"]].drop_duplicates().sort_values(["address_id", "provider"])
                 .groupby("address_id")["provider"].agg("; ".join))
    out = {
        f"{prefix}best_down_{group}": best["down_mbps"].reindex(ids).fillna(0.0).to_numpy(),
        f"{prefix}best_up_{group}": np.where(ids.isin(best.index), best["up_mbps"].reindex(ids), 0.0),
        f"{prefix}best_tech_{group}": best["technology"].reindex(ids).fillna(NO_SERVICE).to_numpy(),
        f"{prefix}best_provider_{group}": providers.reindex(ids).fillna("").to_numpy(),
    }
    if counts:
        for t in PROVIDER_COUNT_THRESHOLDS:
            n = offers[offers["down_mbps"] >= t].groupby("address_id")["provider"].nunique()
            out[f"n_prov_ge{t}_{group}"] = n.reindex(ids).fillna(0).astype("int64").to_numpy()
    return out
