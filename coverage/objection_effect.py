"""What accepted objections (Stellungnahmen) changed at each address.

The service stage labels every offer with its source (:func:`offer_sources`): the delivery's name,
or ``objection:<objections file>`` for an offer an accepted objection added. The best-service
kernel carries the label of each winning offer (``best_source_{g}``), so a change report can tell
"changed by deliveries" from "changed by objections". :func:`changed_by_objections` recomputes best
service and funding verdicts from the deliveries alone at the few addresses objections touch (an
added offer or a withdrawal) and says where the result differs: ``objection_changed``.

Column contract of the service stage's objection columns (per address, all present in every run,
with or without ``[[objections]]``): see :data:`coverage.model.OBJECTION_RESULT_COLUMNS` and
:func:`check_objection_columns`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd

from coverage.columns import factorize_sorted
from coverage.funding import FundingRule, evaluate_rules
from coverage.model import OBJECTION_METHOD, OBJECTION_RESULT_COLUMNS, OBJECTION_SOURCE_PREFIX, source_columns
from coverage.service import best_service, offers_in_scope
from coverage.technology import Technology

log = logging.getLogger(__name__)


def objection_offer_mask(offers: pd.DataFrame) -> np.ndarray:
    """True for the offers an accepted objection added (match method ``objection``)."""
    if "match_method" not in offers.columns:
        return np.zeros(len(offers), dtype=bool)
    return (offers["match_method"] == OBJECTION_METHOD).to_numpy(dtype=bool, na_value=False)


def offer_sources(offers: pd.DataFrame) -> pd.Series:
    """Per offer (categorical, offers' order): the delivery name, or ``objection:<file>`` for offers an
    accepted objection added. Built from the categories (a few), not a string per offer."""
    codes, names = factorize_sorted(offers["source"])
    obj = objection_offer_mask(offers)
    combined = np.where(codes >= 0, codes * 2 + obj, -1)
    dictionary = [label for name in map(str, names) for label in (name, OBJECTION_SOURCE_PREFIX + name)]
    return pd.Series(pd.Categorical.from_codes(combined, dictionary))


def from_objection(labels: pd.Series) -> np.ndarray:
    """Which ``best_source`` labels name an objections layer (the others: a delivery, or "" for no offer)."""
    if isinstance(labels.dtype, pd.CategoricalDtype):
        cats = np.asarray(labels.cat.categories.astype(str).str.startswith(OBJECTION_SOURCE_PREFIX), dtype=bool)
        codes = labels.cat.codes.to_numpy()
        return np.where(codes >= 0, np.append(cats, False)[codes], False)
    return labels.astype(str).str.startswith(OBJECTION_SOURCE_PREFIX).to_numpy(dtype=bool)


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Element-wise equality where two missing values are equal (unknown upload on both sides)."""
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        x, y = a.to_numpy(dtype="float64"), b.to_numpy(dtype="float64")
        return (x == y) | (np.isnan(x) & np.isnan(y))
    return a.astype(str).to_numpy() == b.astype(str).to_numpy()


def changed_by_objections(address_ids: pd.Series, offers: pd.DataFrame, delivered: np.ndarray, touched: np.ndarray,
                          service: pd.DataFrame, funding: pd.DataFrame,
                          groups: Mapping[str, Sequence[Technology]], planned_until: date,
                          rules: Iterable[FundingRule]) -> np.ndarray:
    """Boolean per address: accepted objections changed its best download, upload or technology (any
    group, current or planned) or a funding verdict, compared with the deliveries alone.

    ``offers``: every offer before any withdrawal (``addr`` positions into ``address_ids``), ``delivered``
    the mask of the deliveries' ones among them; ``touched``: positions of the addresses an objection added
    an offer to or withdrew one from (only these can differ; without any, nothing is computed or copied);
    ``service`` / ``funding``: the stage's results with objections, in address order.
    """
    changed = np.zeros(len(address_ids), dtype=bool)
    touched = np.unique(np.asarray(touched, dtype=np.int64))
    if not len(touched):
        return changed
    remap = np.full(len(address_ids), -1, dtype=np.int64)
    remap[touched] = np.arange(len(touched))
    pos = offers["addr"].to_numpy(dtype=np.int64)
    here = offers[delivered & (remap[pos] >= 0)].copy()  # only the touched addresses' offers are copied
    here["addr"] = remap[here["addr"].to_numpy(dtype=np.int64)]
    ids = address_ids.iloc[touched].reset_index(drop=True)
    alone = best_service(ids, here.reset_index(drop=True), groups, planned_until=planned_until)
    rules = list(rules)
    needed = here[["addr", "technology", "down_mbps", "up_mbps", "status", "planned_date"]].reset_index(drop=True)
    verdicts = evaluate_rules(ids, offers_in_scope(needed, planned_until), rules)
    differs = np.zeros(len(touched), dtype=bool)
    compared = [f"{p}best_{w}_{g}" for p in ("", "plan_") for g in groups for w in ("down", "up", "tech")]
    for col in compared:
        differs |= ~_same(alone[col], service[col].iloc[touched].reset_index(drop=True))
    for col in [c for c in verdicts.columns if c.startswith("fund_")]:
        differs |= verdicts[col].to_numpy(dtype=bool) != funding[col].to_numpy(dtype=bool)[touched]
    changed[touched] = differs
    log.info("objections: %d addresses touched, %d with a changed best service or funding verdict",
             len(touched), int(differs.sum()))
    return changed


def check_objection_columns(results: pd.DataFrame, groups: Iterable[str]) -> None:
    """The service stage's objection columns are all there with their types (the column contract)."""
    problems = []
    for col in OBJECTION_RESULT_COLUMNS:
        if col not in results.columns:
            problems.append(f"{col} missing")
        elif results[col].dtype != bool:
            problems.append(f"{col} is {results[col].dtype}, not bool")
    for col in source_columns(groups):
        if col not in results.columns:
            problems.append(f"{col} missing")
        elif not isinstance(results[col].dtype, pd.CategoricalDtype):
            problems.append(f"{col} is {results[col].dtype}, not categorical text")
    if problems:
        raise AssertionError("service results break their column contract: " + "; ".join(problems))
