"""Objections and their decisions (Stellungnahmen): their own layer on top of the deliveries.

An objections table (CSV/XLSX/Parquet, ``[[objections]]``) claims, per address, that an offer exists
(``claim = offer``: provider, technology, down/up Mbit/s, status, planned_date) or that a named
provider's offer there does not (``claim = no_offer``), who submitted it, its evidence, and the
decision (``accepted``, ``rejected``, ``pending``) with ``decided_by`` and ``decided_on``.

Accepted offer claims become offers of their own (``source`` = the objections file, ``match_method``
= ``objection``); accepted no_offer claims are withdrawals that the service stage applies (every
delivery offer of that provider at that address is dropped). Rejected and pending objections are
listed (objections.csv) and change nothing. Rows that cannot be read or placed are quarantined.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from coverage import quarantine as q
from coverage.columns import constant
from coverage.config import ObjectionsConfig, ProviderConfig
from coverage.errors import SchemaError
from coverage.match import empty_offers, link_table_records
from coverage.membership import StringLookup
from coverage.model import OBJECTION_COLUMNS, OBJECTION_METHOD, OFFER_COLUMNS, ProviderFormat
from coverage.quarantine import RowFilter
from coverage.sources.providers import _offer_fields
from coverage.sources.tables import apply_column_map, read_text_table, reject_unreadable
from coverage.technology import Technology

CLAIMS = ("offer", "no_offer")
DECISIONS = ("accepted", "rejected", "pending")
_TEXT = ("claim", "provider", "submitted_by", "evidence", "decision", "decided_by", "decided_on", "address_id",
         "street", "house_number", "postcode", "locality", "ags")


def read_objections(cfg: ObjectionsConfig, aliases: Mapping[str, Technology]
                    ) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Read an objections table. Returns (records, quarantine, rows read); records have the columns
    of :data:`OBJECTION_COLUMNS` (but address_id is the given one) plus the locator columns."""
    path = Path(cfg.path)
    table = read_text_table(path, cfg.table)
    frame = apply_column_map(table.frame, dict(cfg.columns), path).reset_index(drop=True)
    needed = [c for c in ("claim", "provider", "decision") if c not in frame]
    has_locator = "address_id" in frame or {"street", "house_number"} <= set(frame.columns)
    if needed or not has_locator:
        what = ", ".join(repr(c) for c in needed) + ("" if has_locator else
                                                     (" and " if needed else "") + "a locator: 'address_id', or "
                                                     "'street' and 'house_number'")
        raise SchemaError(f"{path}: missing column(s) {what}; found {', '.join(map(repr, table.frame.columns))} "
                          "(name the file's columns in its [[objections]] table, e.g. columns = { claim = \"…\" })")
    rows = pd.Series(np.arange(len(frame)) + table.first_data_row, index=frame.index)
    checks = RowFilter(frame, cfg.name, rows)
    reject_unreadable(table, checks)
    text = {c: (frame[c].astype("string").str.strip().fillna("") if c in frame else constant("", frame.index))
            for c in _TEXT}
    claim, decision = text["claim"].str.casefold(), text["decision"].str.casefold()
    checks.reject(claim == "", "claim", "missing_value")
    checks.reject(~claim.isin(CLAIMS), "claim", "unknown_claim")
    checks.reject(decision == "", "decision", "missing_value")
    checks.reject(~decision.isin(DECISIONS), "decision", "unknown_decision")
    checks.reject(text["provider"] == "", "provider", "missing_value")
    decided = decision.isin(("accepted", "rejected"))
    checks.reject(decided & (text["decided_by"] == ""), "decided_by", "missing_value")
    checks.reject(decided & (text["decided_on"] == ""), "decided_on", "missing_value")
    on = pd.to_datetime(text["decided_on"].replace("", pd.NA), errors="coerce", format="%Y-%m-%d")
    checks.reject((text["decided_on"] != "") & on.isna(), "decided_on", "bad_date",
                  detail="decided_on is not an ISO date (YYYY-MM-DD)")
    # What an offer claim says is checked like a delivery's record (technology, speeds, status, date).
    stand_in = ProviderConfig(path=path, format=ProviderFormat.ADDRESS_CSV)
    is_offer = (claim == "offer") & checks.ok
    offer_checks = RowFilter(frame[is_offer], cfg.name, rows[is_offer])
    fields = _offer_fields(frame[is_offer], stand_in, table.decimal, aliases, offer_checks)
    no_offer_fields = pd.DataFrame({"technology": "", "down_mbps": np.nan, "up_mbps": np.nan, "status": "",
                                    "planned_date": ""}, index=frame.index[~is_offer])
    offer_part = fields.drop(columns="provider").astype({"technology": object, "status": object,
                                                         "planned_date": object})
    both = pd.concat([offer_part, no_offer_fields]).sort_index()
    ok = checks.ok & ~(is_offer & ~offer_checks.ok.reindex(frame.index, fill_value=True))
    has_id = text["address_id"] != ""
    has_street = (text["street"] != "") & (text["house_number"] != "")
    missing_locator = ok & ~has_id & ~has_street
    located = RowFilter(frame, cfg.name, rows)
    located.reject(missing_locator, "address_id", "missing_locator")
    ok &= ~missing_locator
    records = pd.DataFrame({
        "claim": claim, "provider": text["provider"], **{c: both[c] for c in both.columns},
        **{c: text[c] for c in ("submitted_by", "evidence", "decided_by", "decided_on")}, "decision": decision,
        **{c: text[c] for c in ("address_id", "street", "house_number", "postcode", "locality", "ags")},
        "locator": np.where(has_id, "address_id", "address"), "source": cfg.name, "source_row": rows,
    })[ok.to_numpy()].reset_index(drop=True)
    quarantine = q.concat([checks.quarantine, offer_checks.quarantine, located.quarantine])
    return records, quarantine, len(frame)


def _linked(records: pd.DataFrame, positions: np.ndarray, addresses: pd.DataFrame, method: str,
            distance: np.ndarray | float = 0.0) -> pd.DataFrame:
    out = records.reset_index(drop=True).copy()
    out["address_id"] = addresses["address_id"].take(np.asarray(positions, dtype=np.int64)).to_numpy()
    out["addr"] = np.asarray(positions, dtype=np.int64)
    out["match_method"] = method
    return out


def _provider_key(values: pd.Series) -> pd.Series:
    return values.astype(str).str.strip().str.casefold()


def link_objections(records: pd.DataFrame, addresses: gpd.GeoDataFrame, rejected_ids: pd.Index | None,
                    offers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Place the objections at their addresses; returns (objections, quarantine).

    An accepted no_offer claim naming a provider that has no offer at that address (in the deliveries
    and earlier objection layers) would withdraw nothing: quarantined as ``no_offer_to_withdraw``."""
    linked, quarantine = link_table_records(records, addresses, 0.0, rejected_ids, build=_linked)
    if not len(linked):
        return pd.DataFrame({c: pd.Series(dtype="object") for c in (*OBJECTION_COLUMNS, "addr")}), quarantine
    linked = linked.sort_values("source_row", kind="stable").reset_index(drop=True)
    withdraw = (linked["claim"] == "no_offer") & (linked["decision"] == "accepted")
    present = set(zip(offers["addr"].to_numpy(dtype=np.int64), _provider_key(offers["provider"]), strict=True))
    pairs = zip(linked["addr"].to_numpy(dtype=np.int64), _provider_key(linked["provider"]), strict=True)
    empty = withdraw & ~pd.Series([pair in present for pair in pairs], index=linked.index)
    quarantine = q.concat([quarantine, q.rows(
        str(linked["source"].iloc[0]), linked.loc[empty, "source_row"], "provider", linked.loc[empty, "provider"],
        "no_offer_to_withdraw", keys=linked.loc[empty, "address_id"])])
    linked = linked[~empty].reset_index(drop=True)
    linked["applied"] = linked["decision"] == "accepted"
    out = linked.rename(columns={"source_row": "row", "match_method": "matched_by"})
    return out[[*OBJECTION_COLUMNS, "addr"]], quarantine


def objection_offers(objections: pd.DataFrame) -> pd.DataFrame:
    """The offers the accepted offer claims add (``source`` the objections file, ``match_method`` objection)."""
    added = objections[(objections["claim"] == "offer") & objections["applied"].astype(bool)]
    if not len(added):
        return empty_offers()
    out = added[[c for c in OFFER_COLUMNS if c not in ("match_method",)]].reset_index(drop=True)
    out = out.astype({"down_mbps": "float64", "up_mbps": "float64", "addr": "int64"})
    out["match_method"] = OBJECTION_METHOD
    out["match_distance_m"] = 0.0
    return out[[*OFFER_COLUMNS, "match_distance_m"]]


def withdrawals_of(objections: pd.DataFrame) -> pd.DataFrame:
    """The withdrawals the accepted no_offer claims make: ``address_id, provider, source``."""
    gone = objections[(objections["claim"] == "no_offer") & objections["applied"].astype(bool)]
    return gone[["address_id", "provider", "source"]].reset_index(drop=True)


def withdrawn(offers: pd.DataFrame, withdrawals: pd.DataFrame, address_ids: pd.Series) -> np.ndarray:
    """Boolean per offer: dropped by a withdrawal (same address, same provider, caseless; offers that an
    objections layer added are not withdrawn by another objection)."""
    if not len(withdrawals) or not len(offers):
        return np.zeros(len(offers), dtype=bool)
    pos = StringLookup(address_ids).positions(withdrawals["address_id"].astype(str))
    gone = set(zip(pos, _provider_key(withdrawals["provider"]), strict=True))
    addr = offers["addr"].to_numpy(dtype=np.int64)
    hit = np.isin(addr, pos) & (offers["match_method"].astype(str) != OBJECTION_METHOD).to_numpy()
    idx = np.flatnonzero(hit)
    providers = _provider_key(offers["provider"].iloc[idx]).to_numpy()
    hit[idx] = [(a, p) in gone for a, p in zip(addr[idx], providers, strict=True)]
    return hit


def read_back(path: Path, source: str) -> pd.DataFrame:
    """The rows of objections.csv from ``source`` with their types (for reuse by a later run)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = frame[frame["source"] == source].reset_index(drop=True)
    missing = set(OBJECTION_COLUMNS) - set(frame.columns)
    if missing:
        raise KeyError(f"{path.name} lacks {sorted(missing)}")
    return frame.astype({"row": "int64"}).assign(
        down_mbps=pd.to_numeric(frame["down_mbps"]).astype("float64"),
        up_mbps=pd.to_numeric(frame["up_mbps"]).astype("float64"),
        applied=frame["applied"].str.casefold() == "true")[list(OBJECTION_COLUMNS)]


