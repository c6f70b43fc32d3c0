"""Businesses and sites from their own lists, linked to the addresses like provider records.

An address list from the cadastre (HK-DE) has no businesses and no sites. ``[businesses]`` gives
business locations (``businesses``: a count, 1 per row when the column is absent), summed per
address into its ``businesses`` column; ``[sites]`` gives administrative sites and schools
(``site_kind`` from :data:`coverage.sites.SITE_KIND_LABELS`, ``site_name``), set on their address.
Rows are linked by :func:`coverage.match.link_table_records` (address_id, nearest address within
``match_distance_m``, normalised street address); rows that reach no address are quarantined with
the same reasons as provider records. Rows read = rows linked + rows quarantined.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from coverage.config import LocatedListConfig
from coverage.match import link_table_records
from coverage.numbers import parse_numbers
from coverage.quarantine import RowFilter, concat, rows
from coverage.sites import SITE_KIND_LABELS
from coverage.sources.located import read_located_table

log = logging.getLogger(__name__)

SITE_KINDS = tuple(SITE_KIND_LABELS)


@dataclass
class Linked:
    """One list linked to the addresses: per-address values (in the addresses' order), the counts
    for its accounting entry and its quarantine rows."""

    values: dict[str, np.ndarray]
    rows_read: int
    linked: int
    quarantine: pd.DataFrame
    note: str


def _linked_rows(records: pd.DataFrame, positions: np.ndarray, addresses: pd.DataFrame, method: str,
                 distance: np.ndarray | float = 0.0) -> pd.DataFrame:
    """The records themselves with the position of their address (``addr``) and how they were linked."""
    out = records.reset_index(drop=True)
    out["addr"] = np.asarray(positions, dtype=np.int64)
    out["match_method"] = method
    out["match_distance_m"] = distance
    return out


def _link(records: pd.DataFrame, addresses: pd.DataFrame, max_distance_m: float,
          rejected_ids: pd.Index | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    linked, unlinked = link_table_records(records, addresses, max_distance_m, rejected_ids, build=_linked_rows)
    return linked.sort_values("source_row", kind="stable").reset_index(drop=True), unlinked


def _business_counts(frame: pd.DataFrame, decimal: str | None, checks: RowFilter) -> dict[str, pd.Series]:
    if "businesses" not in frame:
        return {"businesses": pd.Series(1.0, index=frame.index)}
    raw = frame["businesses"]
    if pd.api.types.is_numeric_dtype(raw):
        blank, count = raw.isna(), raw.astype("float64")
        text = raw.astype("string").fillna("")
    else:
        text = raw.astype("string").str.strip().fillna("")
        count, unsure = parse_numbers(text, decimal)  # the column's convention decided over all its cells
        blank = text == ""
        checks.reject(unsure, "businesses", "ambiguous_number", values=text)
    checks.reject(blank, "businesses", "missing_value", values=text)
    checks.reject(count.isna(), "businesses", "bad_number", values=text)
    checks.reject(count < 0, "businesses", "negative_value", values=text)
    return {"businesses": count}


def link_businesses(cfg: LocatedListConfig, addresses: pd.DataFrame, rejected_ids: pd.Index | None,
                    working_crs: object, max_distance_m: float) -> Linked:
    """Business counts per address (``values["businesses"]``, float, 0 where none is linked)."""
    records, rejected, rows_read = read_located_table(cfg, "businesses", working_crs, _business_counts)
    linked, unlinked = _link(records, addresses, max_distance_m, rejected_ids)
    per_address = np.bincount(linked["addr"].to_numpy(dtype=np.int64), weights=linked["businesses"].to_numpy(),
                              minlength=len(addresses)).astype("float64")
    n_at = int((per_address > 0).sum())
    note = f"{per_address.sum():g} businesses at {n_at} addresses"
    return Linked({"businesses": per_address}, rows_read, len(linked), concat([rejected, unlinked]), note)


def _site_fields(frame: pd.DataFrame, decimal: str | None, checks: RowFilter) -> dict[str, pd.Series]:
    raw = frame["site_kind"].astype("string").str.strip().fillna("")
    kind = raw.str.lower()
    checks.reject(raw == "", "site_kind", "missing_value", values=raw)
    checks.reject(~kind.isin(SITE_KINDS), "site_kind", "unknown_site_kind", values=raw,
                  detail=f"site_kind is none of {', '.join(SITE_KINDS)}")
    name = (frame["site_name"].astype("string").str.strip().fillna("") if "site_name" in frame
            else pd.Series("", index=frame.index, dtype="string"))
    return {"site_kind": kind.astype(object), "site_name": name.astype(object)}


def link_sites(cfg: LocatedListConfig, addresses: pd.DataFrame, rejected_ids: pd.Index | None,
               working_crs: object, max_distance_m: float) -> Linked:
    """``site_kind``/``site_name`` per address ("" where none). A second site at an address already
    holding one (in file order) is quarantined as ``duplicate_site``: one address is one site."""
    records, rejected, rows_read = read_located_table(cfg, "sites", working_crs, _site_fields, ("site_kind",))
    linked, unlinked = _link(records, addresses, max_distance_m, rejected_ids)
    again = linked["addr"].duplicated(keep="first").to_numpy()
    first, second = linked[~again], linked[again]
    held = first.set_index("addr")
    at = second["addr"]
    ids = addresses["address_id"].take(at.to_numpy()).astype(str).set_axis(second.index)
    duplicates = rows(cfg.name, second["source_row"], "site_kind",
                      second["site_kind"].astype(str) + " " + second["site_name"].astype(str), "duplicate_site",
                      keys=ids)
    if len(second):
        duplicates["detail"] = ("address " + ids + " already holds the site of row " + at.map(held["source_row"])
                                .astype(str) + " (" + at.map(held["site_kind"]).astype(str) + ")").to_numpy()
    kind = np.full(len(addresses), "", dtype=object)
    name = np.full(len(addresses), "", dtype=object)
    pos = first["addr"].to_numpy(dtype=np.int64)
    kind[pos] = first["site_kind"].to_numpy(dtype=object)
    name[pos] = first["site_name"].to_numpy(dtype=object)
    counts = first["site_kind"].value_counts().sort_index()
    note = f"{len(first)} sites (" + ", ".join(f"{n} {k}" for k, n in counts.items()) + ")"
    return Linked({"site_kind": kind, "site_name": name}, rows_read, len(first),
                  concat([rejected, unlinked, duplicates]), note)
