"""The stage list of a run: what each stage reads, what it makes, and what its result depends on.

::

    boundaries ─ addresses ─ provider <delivery> … ─ objections <file> … ─ service ─ counts ─ aggregate
    (once)       └───────────────────── per address partition ───────────────────┘    (once: the reduce)

An ``objections <file>`` stage ([[objections]]) is a layer on top of the deliveries: its accepted
objections add offers (``offers[<file>]``) and withdrawals (``withdrawals[<file>]``, which the
service stage applies); ``objections[<file>]`` lists every objection placed at an address.

Every stage is a plain function. It takes, as keyword arguments, the :class:`RunState` fields
named in ``Stage.needs`` and its parameters from the configuration (``Stage.params``), and
returns a :class:`StageResult`: the fields named in ``Stage.makes``, its row accounting and its
quarantine rows. The runner (:mod:`pipelines.runner`) fingerprints inputs, parameters and code,
runs or reuses each stage, and checks that every accounting entry balances.

Stages marked ``per_partition`` run once per address partition in a partitioned (Germany-scale)
run, and once over all addresses otherwise; what they make for the later stages is summed or
concatenated by :data:`REDUCE`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from coverage import quarantine as q
from coverage.aggregate import area_tables, gemeinde_counts
from coverage.columns import concat_frames
from coverage.config import HouseholdsConfig, LocatedListConfig, ObjectionsConfig, ProviderConfig, RunConfig
from coverage.errors import InputDataError
from coverage.funding import evaluate_rules_in_scopes
from coverage.grid import grid_counts
from coverage.households import add_unallocated, empty_unallocated, estimate_households, summary_note
from coverage.locate import Locator, locate_addresses
from coverage.match import empty_offers, link_polygons, link_table_records, sample_raster
from coverage.membership import member, same_strings
from coverage.model import Boundaries
from coverage.objection_effect import (
    changed_by_objections,
    check_objection_columns,
    objection_offer_mask,
    offer_sources,
)
from coverage.service import best_service, scope_masks, unmentioned
from coverage.sites import site_counts, site_table
from coverage.sources.address_lists import Linked, link_businesses, link_sites
from coverage.sources.addresses import read_addresses
from coverage.sources.bkg import boundaries_from_gemeinden, read_bkg_bundle
from coverage.sources.objections import link_objections, objection_offers, read_objections, withdrawals_of, withdrawn
from coverage.sources.providers import read_provider_polygons, read_provider_raster, read_provider_table
from coverage.sources.tables import apply_column_map
from coverage.sources.vector import read_vector
from coverage.sources.zensus import grid_bbox, read_grid_1km, read_grid_100m

log = logging.getLogger(__name__)


@dataclass
class Accounting:
    """Rows in, out and quarantined (per reason) of one stage or one input file.

    ``rows_in`` and ``rows_out`` are counted independently (e.g. addresses entering a stage and
    addresses summed up in the Land table), so an entry that does not balance reveals lost rows.
    """

    stage: str
    rows_in: int
    rows_out: int
    quarantined: dict[str, int] = field(default_factory=dict)
    note: str = ""
    #: provider stages: records (polygons; addresses in served raster cells) that reached an address
    linked: int | None = None

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.rows_out + sum(self.quarantined.values())

    def as_dict(self) -> dict[str, Any]:
        entry = {"stage": self.stage, "rows_in": self.rows_in, "rows_out": self.rows_out,
                 "quarantined": self.quarantined, "balanced": self.balanced, "note": self.note}
        return entry if self.linked is None else {**entry, "linked": self.linked}

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> Accounting:
        return cls(str(entry["stage"]), int(entry["rows_in"]), int(entry["rows_out"]),
                   {str(k): int(v) for k, v in entry.get("quarantined", {}).items()}, str(entry.get("note", "")),
                   int(entry["linked"]) if entry.get("linked") is not None else None)


def reasons(quarantine: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in quarantine["reason"].value_counts().sort_index().items()}


@dataclass
class RunState:
    """Everything that flows between the stages of one run (or one partition), field by field."""

    boundaries: Boundaries | None = None
    #: the Gemeinden's point-in-polygon index, built once and shared by every partition
    locator: Locator | None = None
    #: accepted and located addresses (one row per address, Point geometry, ags … land)
    addresses: gpd.GeoDataFrame | None = None
    #: address ids that were quarantined: provider records pointing at them say so
    rejected_ids: pd.Index | None = None
    #: households estimated from Zensus cells that reached no address, per Gemeinde of the cell centre
    #: (``ags, unallocated_households, zensus_households``; empty unless [households] source = "zensus")
    unallocated: pd.DataFrame | None = None
    #: offers linked to addresses, per delivery (the provider stage's name); see model OFFER_COLUMNS
    offers: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: per objections file: the accepted withdrawals (``address_id, provider, source``) the service stage applies
    withdrawals: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: per objections file: every objection placed at an address (coverage.model.OBJECTION_COLUMNS)
    objections: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: the addresses with their best service per group, funding verdicts and ``no_offer``
    results: gpd.GeoDataFrame | None = None
    planned_until: str | None = None  # ISO date up to which planned supply counts
    counts: pd.DataFrame | None = None  # per Gemeinde (index ags): households and addresses at thresholds
    sites: pd.DataFrame | None = None  # one row per site address
    forgotten: pd.DataFrame | None = None  # addresses no delivery mentions
    grid_counts: pd.DataFrame | None = None  # per 100 m cell, summable (None when the grid is off)
    totals: dict[str, float] = field(default_factory=dict)  # counted straight from the addresses
    tables: dict[str, pd.DataFrame] | None = None  # per level: the coverage tables
    site_tables: dict[str, pd.DataFrame] | None = None  # per level: site counts

    def update(self, outputs: Mapping[str, Any]) -> None:
        """Take a stage's outputs; mapping fields (offers) gain entries instead of being replaced."""
        known = {f.name for f in fields(self)}
        for name, value in outputs.items():
            if name not in known:
                raise AssertionError(f"stage output {name!r} is not a field of RunState")
            if name in ("offers", "totals", "withdrawals", "objections"):
                getattr(self, name).update(value)
            else:
                setattr(self, name, value)

    def all_offers(self) -> pd.DataFrame:
        return concat_offers(self.offers)


def concat_offers(offers: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The offers of every delivery, in delivery order."""
    parts = [frame for frame in offers.values() if len(frame)]
    return concat_frames(parts) if parts else empty_offers()


@dataclass
class StageResult:
    outputs: dict[str, Any]
    accounting: list[Accounting] = field(default_factory=list)
    quarantine: list[pd.DataFrame] = field(default_factory=list)


# --- the stage functions -------------------------------------------------------------------------

def read_boundaries(section: Any, crs: Any) -> Boundaries:
    """The areas of ``[boundaries]`` (a BKG bundle or a Gemeinde layer, one Land, the chosen areas), as the
    run reads them; ``bbcov publish`` reads them so again, without building the locator."""
    if section.format == "bkg":
        boundaries = read_bkg_bundle(section.path, crs, land=section.land)
    else:
        gem = apply_column_map(read_vector(section.path, section.layer), dict(section.columns), section.path)
        if section.land and "ags" in gem:
            gem = gem[gem["ags"].astype(str).str.zfill(8).str[:2] == section.land.zfill(2)]
        boundaries = boundaries_from_gemeinden(gem, crs, str(section.path))
    return boundaries.subset(section.areas)


def stage_boundaries(*, section: Any, crs: Any) -> StageResult:
    """Gemeinden, Ämter, Kreise and Land from a BKG bundle or a Gemeinde layer, and their locator."""
    boundaries = read_boundaries(section, crs)
    n = len(boundaries.gemeinde)
    entry = Accounting("boundaries", n, len(boundaries.hierarchy()),
                       note=f"{len(boundaries.amt)} Ämter, {len(boundaries.kreis)} Kreise")
    return StageResult({"boundaries": boundaries, "locator": Locator.build(boundaries.gemeinde)}, [entry])


def address_keys(quarantine: pd.DataFrame, source: str) -> pd.Index:
    """The ids of quarantined rows of the address file ``source`` (how rejected ids are known again on
    reuse); rows of a [businesses] / [sites] list name addresses too, but reject none of them."""
    rows = quarantine[quarantine["source"].astype(str) == source]
    keys = rows["key"].astype(str)
    return pd.Index(keys[keys != ""].unique())


def check_accepted_share(name: str, rows_read: int, accepted: int, rejected: pd.DataFrame, min_share: float) -> None:
    """Stop (one line, exit 2) when a reader accepted fewer than ``min_share`` of a file's rows: a file
    read so badly is a wrong file or a wrong configuration, not something to publish figures from."""
    if rows_read == 0 or accepted >= min_share * rows_read:
        return
    top = (rejected.groupby(["reason", "column"]).size().sort_values(ascending=False, kind="stable").head(3)
           if len(rejected) else pd.Series(dtype="int64"))
    why = ", ".join(f"{reason} {n} (column {column})" for (reason, column), n in top.items()) or "none recorded"
    raise InputDataError(f"{name}: only {accepted} of {rows_read} rows accepted ({accepted / rows_read:.0%}, below "
                         f"analysis.min_accepted_share = {min_share:g}); top reasons: {why}; see bbcov validate")


def stage_addresses(*, boundaries: Boundaries, locator: Locator, section: Any, crs: Any,
                    tolerance_m: float, households: HouseholdsConfig,
                    businesses: LocatedListConfig | None = None, sites: LocatedListConfig | None = None,
                    match_distance_m: float = 25.0, duplicate_ids: frozenset[str] = frozenset(),
                    min_accepted_share: float = 0.5) -> StageResult:
    """Read and check the address list, give every address its Gemeinde (and Amt, Kreis, Land), its
    businesses and sites from [businesses] / [sites] (linked like provider records), and, with
    [households] source = "zensus", its households estimated from the Zensus grids (sites get none).

    ``duplicate_ids``: ids an earlier partition holds (partitioned runs), quarantined like a repeat in one file.
    """
    mode = "required" if not households.estimated else "ignore" if households.replace else "optional"
    addresses, rejected, rows_read = read_addresses(section, crs, mode)
    check_accepted_share(str(section.path), rows_read, len(addresses), rejected, min_accepted_share)
    if duplicate_ids:
        again = addresses["address_id"].astype(str).isin(duplicate_ids)
        rejected = q.concat([rejected, q.rows(
            section.path.name, addresses.loc[again, "source_row"], "address_id", addresses.loc[again, "address_id"],
            "duplicate_address_id", detail="an address_id that an earlier partition holds",
            keys=addresses.loc[again, "address_id"])])
        addresses = addresses[~again.to_numpy()]
    read = Accounting(f"read {section.path.name}", rows_read, len(addresses), reasons(rejected))
    located, outside = locate_addresses(addresses, boundaries.gemeinde, tolerance_m, section.path.name,
                                        locator=locator)
    located = located.reset_index(drop=True)  # positions are the address keys of every later stage
    n_near = int((located["locate_method"] == "nearest").sum())
    note = f"{n_near} assigned to the nearest Gemeinde within tolerance"
    if "ags_cadastre" in located:
        note += f"; {int(ags_mismatch(located).sum())} whose cadastre AGS is another Gemeinde (ags_mismatch.csv)"
    locate = Accounting("locate", len(addresses), len(located), reasons(outside), note=note)
    quarantine = q.concat([rejected, outside])
    entries, unallocated = [read, locate], empty_unallocated()
    for label, list_cfg, link in (("businesses", businesses, link_businesses), ("sites", sites, link_sites)):
        if list_cfg is None:
            continue
        linked = link(list_cfg, located, address_keys(quarantine, section.path.name), crs, match_distance_m)
        replace_columns(located, linked, section.path.name, list_cfg.name)
        entries.append(Accounting(f"{label} {list_cfg.name}", linked.rows_read, linked.linked,
                                  reasons(linked.quarantine), linked.note, linked.linked))
        quarantine = q.concat([quarantine, linked.quarantine])
    if households.estimated and (households.replace or len(addresses) == 0 or addresses["households"].isna().any()):
        estimate, unallocated, summary = zensus_households(located, boundaries, locator, households, tolerance_m)
        located["households"] = estimate
        entries.append(Accounting("households from Zensus", len(located), len(estimate), note=summary_note(summary)))
    elif households.estimated:
        log.info("%s has a households column: kept ([households] replace = true estimates them instead)",
                 section.path.name)
    return StageResult({"addresses": located, "rejected_ids": address_keys(quarantine, section.path.name),
                        "unallocated": unallocated},
                       entries, [quarantine])


def replace_columns(addresses: gpd.GeoDataFrame, linked: Linked, address_file: str, list_file: str) -> None:
    """Set the per-address columns a [businesses] / [sites] list gives; what the address list had there
    is replaced (and the log says what)."""
    for column, values in linked.values.items():
        before = addresses.get(column)
        if before is None:
            had = 0
        elif column == "businesses":
            had = int((before.fillna(0) != 0).sum())
        else:
            had = int((before.astype(str) != "").sum())
        if had:
            log.info("%s: its %s column (%d addresses with a value) is replaced by %s", address_file, column, had,
                     list_file)
        else:
            log.info("%s: %s from %s", address_file, column, list_file)
        addresses[column] = values


def zensus_households(addresses: gpd.GeoDataFrame, boundaries: Boundaries, locator: Locator,
                      households: HouseholdsConfig, tolerance_m: float) -> tuple[pd.Series, pd.DataFrame, dict]:
    """Read the Zensus grids around the run's Gemeinden and estimate households per address."""
    gemeinden = boundaries.gemeinde
    bbox = grid_bbox(gemeinden.total_bounds, gemeinden.crs, margin_m=1000.0 + tolerance_m)
    grid_1km = read_grid_1km(households.grid_1km, bbox)
    grid_100m = read_grid_100m(households.grid_100m, bbox) if households.grid_100m else None
    names = tuple(", ".join(p.name for p in paths) for paths in (households.grid_1km, households.grid_100m))
    return estimate_households(addresses, grid_1km, grid_100m, gemeinden, households.max_distance_m,
                               locator=locator, tolerance_m=tolerance_m, land=boundaries.land,
                               sources=(names[0], names[1]))


def ags_mismatch(addresses: pd.DataFrame) -> pd.Series:
    """Addresses whose cadastre AGS (HK-DE) names another Gemeinde than the one their point falls in;
    the point decides, the list lets the user check. An empty (malformed) cadastre AGS is not compared."""
    cadastre = addresses["ags_cadastre"].astype(str)
    return (cadastre != "") & (cadastre != addresses["ags"].astype(str))


def provider_stage_name(p: ProviderConfig | str) -> str:
    return f"provider {p if isinstance(p, str) else p.name}"


def stage_provider(*, addresses: gpd.GeoDataFrame, rejected_ids: pd.Index, delivery: ProviderConfig, crs: Any,
                   aliases: Any, match_distance_m: float, min_accepted_share: float = 0.5) -> StageResult:
    """Read one delivery and link its records to the addresses (by id, coordinates, street address,
    polygon or raster cell). Records that the reader accepts but that match no address (a delivery
    larger than the area studied) do not count against ``min_accepted_share``."""
    if delivery.format in ("address-csv", "address-table"):
        records, rejected, rows_read = read_provider_table(delivery, crs, aliases)
        check_accepted_share(str(delivery.path), rows_read, len(records), rejected, min_accepted_share)
        linked, unlinked = link_table_records(records, addresses, match_distance_m, rejected_ids)
        rejected = q.concat([rejected, unlinked])
        n_out = n_linked = len(records) - len(unlinked)
        note = f"{len(linked)} offers"
    elif delivery.format == "polygons":
        polygons, rejected, rows_read = read_provider_polygons(delivery, crs, aliases)
        check_accepted_share(str(delivery.path), rows_read, len(polygons), rejected, min_accepted_share)
        linked, unused = link_polygons(polygons, addresses)
        n_out = len(polygons)
        n_linked = len(polygons) - unused
        note = f"{len(linked)} offers; {unused} polygon(s) cover no address"
    else:
        sample = sample_raster(read_provider_raster(delivery, aliases), addresses)
        linked, rejected, rows_read = sample.offers, sample.quarantine, len(addresses)
        # rows = addresses sampled = those with an offer (one each) + those without (counted by id), less
        # those quarantined (under an absurd or negative cell: no offer, but not "no service" either)
        n_out = len(linked) + int(unmentioned(addresses["address_id"], linked).sum()) - len(rejected)
        n_linked = len(linked)
        counts = ", ".join(f"{n} {reason}" for reason, n in reasons(rejected).items())
        bad = f" ({counts})" if counts else ""
        note = (f"{len(linked)} addresses in served cells, {sample.outside} outside the raster, {len(rejected)} "
                f"quarantined{bad}; {sample.blocks_read} block(s) read (rows = addresses sampled)")
    entry = Accounting(provider_stage_name(delivery), rows_read, n_out, reasons(rejected), note, n_linked)
    return StageResult({"offers": {delivery.name: linked}}, [entry], [rejected])


def objections_stage_name(o: ObjectionsConfig | str) -> str:
    return f"objections {o if isinstance(o, str) else o.name}"


def stage_objections(*, addresses: gpd.GeoDataFrame, rejected_ids: pd.Index, offers: dict[str, pd.DataFrame],
                     objections: ObjectionsConfig, aliases: Any) -> StageResult:
    """Read one objections table and place it at the addresses: the offers its accepted objections add,
    the withdrawals they make, and every placed objection (for objections.csv and explain)."""
    records, rejected, rows_read = read_objections(objections, aliases)
    placed, unplaced = link_objections(records, addresses, rejected_ids, concat_offers(offers))
    rejected = q.concat([rejected, unplaced])
    added, gone = objection_offers(placed), withdrawals_of(placed)
    listed = placed.drop(columns="addr")
    decisions = listed["decision"].value_counts()
    note = (f"{len(added)} offers added, {len(gone)} withdrawals; "
            + ", ".join(f"{int(decisions.get(d, 0))} {d}" for d in ("accepted", "rejected", "pending")))
    entry = Accounting(objections_stage_name(objections), rows_read, len(listed), reasons(rejected), note, len(listed))
    return StageResult({"offers": {objections.name: added}, "withdrawals": {objections.name: gone},
                        "objections": {objections.name: listed}}, [entry], [rejected])


def attach_by_position(addresses: gpd.GeoDataFrame, *per_address: pd.DataFrame) -> gpd.GeoDataFrame:
    """Add per-address result columns that come in the addresses' own order (checked, not assumed);
    cheaper than a merge on string keys at tens of millions of rows."""
    ids = addresses["address_id"]
    parts = []
    for frame in per_address:
        if not same_strings(frame["address_id"], ids):
            raise AssertionError("per-address results are not in the order of the addresses")
        parts.append(frame.drop(columns="address_id").set_axis(addresses.index))
    return pd.concat([addresses, *parts], axis=1)


def stage_service(*, addresses: gpd.GeoDataFrame, offers: dict[str, pd.DataFrame],
                  withdrawals: dict[str, pd.DataFrame], objections: dict[str, pd.DataFrame], groups: Any,
                  horizon_years: float, reference_date: date, funding_rules: Any) -> StageResult:
    """Best current and planned service per technology group (with the source of each winning offer),
    funding verdicts, ``no_offer`` (no delivery mentions the address) and the objection columns of
    :data:`coverage.model.OBJECTION_RESULT_COLUMNS`; accepted withdrawals are applied first."""
    horizon = pd.Timestamp(reference_date) + pd.DateOffset(days=round(365.25 * horizon_years))
    mentioned = concat_offers(offers)
    gone = withdrawn(mentioned, concat_frames(list(withdrawals.values())) if withdrawals else
                     pd.DataFrame(columns=["address_id", "provider"]), addresses["address_id"])
    everything = mentioned[~gone].reset_index(drop=True) if gone.any() else mentioned
    ids = addresses["address_id"]
    service = best_service(ids, everything, groups, planned_until=horizon.date(), sources=offer_sources(everything))
    # The scopes as masks over the offers, not filtered copies of them (NRW: 1.1 GB less at the peak).
    funding = evaluate_rules_in_scopes(ids, everything, scope_masks(everything, horizon.date()), funding_rules)
    added = objection_offer_mask(mentioned)
    addr = mentioned["addr"].to_numpy(dtype=np.int64)
    touched = np.concatenate([addr[added], addr[gone]])
    changed = changed_by_objections(ids, mentioned, ~added, touched, service, funding, groups, horizon.date(),
                                    funding_rules)
    results = attach_by_position(addresses, service, funding)
    results["no_offer"] = unmentioned(results["address_id"], mentioned)
    named = [frame["address_id"].astype(str) for frame in objections.values() if len(frame)]
    results["contested"] = member(results["address_id"].astype(str), pd.concat(named) if named else [])
    results["objection_withdrew"] = np.isin(np.arange(len(results)), addr[gone])
    results["objection_changed"] = changed
    check_objection_columns(results, groups)
    entry = Accounting("best service", len(addresses), len(service),
                       note=f"planned supply counted until {horizon.date().isoformat()}"
                            + (f"; {int(gone.sum())} offers withdrawn by objections" if gone.any() else ""))
    return StageResult({"results": results, "planned_until": horizon.date().isoformat()}, [entry])


def funding_flags(cfg: RunConfig) -> list[str]:
    """Boolean per-address columns counted per area (households and addresses); with [[objections]] also
    ``contested`` and ``objection_changed`` (what accepted objections changed)."""
    flags = ["no_offer"] + [f"fund_{r.name}{suffix}" for r in cfg.funding_rules for suffix in ("", "_plan")]
    return [*flags, "contested", "objection_changed"] if cfg.objections else flags


def forgotten_addresses(addresses: pd.DataFrame, hierarchy: pd.DataFrame) -> pd.DataFrame:
    """Addresses no delivery mentions, with the names of their areas."""
    cols = [c for c in ("address_id", "street", "house_number", "postcode", "locality", "households", "site_kind",
                        "ags") if c in addresses.columns]
    names = hierarchy[["ags", "gemeinde_name", "amt_name", "kreis_name"]]
    return addresses.loc[addresses["no_offer"].to_numpy(), cols].merge(names, on="ags", how="left")


def stage_counts(*, results: gpd.GeoDataFrame, unallocated: pd.DataFrame, boundaries: Boundaries, thresholds: Any,
                 groups: Any, flags: list[str], grid: bool) -> StageResult:
    """Per-Gemeinde (and per 100 m cell) counts, the site list and the gap list: everything later
    stages need from the addresses, in a form that sums over partitions."""
    counts = gemeinde_counts(results, thresholds, groups, prefixes=("", "plan_"), flags=flags)
    counts = add_unallocated(counts, unallocated)
    cells = None
    if grid and len(results):
        pts = results.geometry
        cells = grid_counts(pts.x.to_numpy(), pts.y.to_numpy(), results.crs, results, thresholds, groups)
    n_sites = int((results["site_kind"].astype(str) != "").sum()) if "site_kind" in results else 0
    totals = {"addresses": float(len(results)), "households": float(results["households"].sum()),
              "sites": float(n_sites)}
    if len(unallocated):  # households of the in-scope Zensus cells: at addresses + unallocated
        totals["zensus_households"] = float(unallocated["zensus_households"].sum())
    return StageResult({"counts": counts, "grid_counts": cells, "sites": site_table(results, boundaries),
                        "forgotten": forgotten_addresses(results, boundaries.hierarchy()), "totals": totals})


def check_finite_counts(tables: Mapping[str, pd.DataFrame]) -> None:
    """No table publishes an infinite or missing count (shares may be empty: an area without households)."""
    for level, table in tables.items():
        counts = table.select_dtypes("number")
        counts = counts[[c for c in counts.columns if "share" not in c]]
        bad = ~np.isfinite(counts.to_numpy(dtype="float64"))
        if bad.any():
            column = counts.columns[np.flatnonzero(bad.any(axis=0))[0]]
            raise AssertionError(f"{level} table: column {column} has {int(bad.sum())} non-finite count(s)")


def stage_aggregate(*, counts: pd.DataFrame, sites: pd.DataFrame, totals: dict[str, float], boundaries: Boundaries,
                    thresholds: Any, groups: Any) -> StageResult:
    """Tables for every level from the Gemeinde counts; checked against totals counted per address."""
    tables = area_tables(counts, boundaries, thresholds, groups, prefixes=("", "plan_"))
    check_finite_counts(tables)
    land = tables["land"]
    hh_in, hh_out = totals["households"], float(land["households"].sum())
    if abs(hh_in - hh_out) > 1e-6 * max(1.0, hh_in):
        raise AssertionError(f"households lost in aggregation: {hh_in} in, {hh_out} out")
    unallocated = float(land["unallocated_households"].sum())
    if "zensus_households" in totals:
        zensus = totals["zensus_households"]
        if abs(hh_out + unallocated - zensus) > 1e-6 * max(1.0, zensus):
            raise AssertionError(f"Zensus households lost: {hh_out} at addresses + {unallocated} unallocated, "
                                 f"{zensus} in the in-scope cells")
    site_tables = site_counts(sites, boundaries, thresholds)
    accounting = [
        Accounting("aggregate", int(totals["addresses"]), int(land["addresses"].sum()),
                   note=f"{hh_out:.0f} households in {len(tables['gemeinde'])} Gemeinden"
                        + (f", {unallocated:.0f} unallocated (Zensus cells without address)" if unallocated else "")),
        Accounting("sites", int(totals["sites"]), int(site_tables["land"]["sites"].sum()),
                   note="addresses with a site_kind"),
    ]
    return StageResult({"tables": tables, "site_tables": site_tables}, accounting)


# --- the stage list ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    """One step of a run and everything its result depends on.

    The runner fingerprints ``inputs`` (file contents), ``params`` (without folder paths), the
    code of ``fn`` (its import closure) and the keys of the stages it comes after; an unchanged
    fingerprint means the previous run's result can be reused when ``reusable``.
    """

    name: str
    fn: Callable[..., StageResult]
    needs: tuple[str, ...]
    makes: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[Path, ...] = ()
    after: tuple[str, ...] = ()
    per_partition: bool = False
    #: False where recomputing is as cheap as reading back (boundaries, counts, tables)
    reusable: bool = False

    def call(self, state: RunState) -> StageResult:
        missing = [n for n in self.needs if getattr(state, n) is None]
        if missing:
            raise AssertionError(f"stage {self.name} needs {missing}, which no earlier stage made")
        result = self.fn(**{n: getattr(state, n) for n in self.needs}, **self.params)
        if set(result.outputs) != set(self.makes):
            raise AssertionError(f"stage {self.name} made {sorted(result.outputs)}, declared {sorted(self.makes)}")
        return result


def plan(cfg: RunConfig, reference_date: date, duplicate_ids: frozenset[str] = frozenset()) -> list[Stage]:
    """The stages of a run for this configuration, in execution order (one stage per delivery).

    ``duplicate_ids`` (partitioned runs): address ids of this partition that an earlier one holds."""
    b, a, an = cfg.boundaries, cfg.addresses, cfg.analysis
    crs = an.working_crs
    providers = [Stage(provider_stage_name(p), stage_provider, ("addresses", "rejected_ids"), ("offers",),
                       {"delivery": p, "crs": crs, "aliases": cfg.aliases, "match_distance_m": an.match_distance_m,
                        "min_accepted_share": an.min_accepted_share},
                       inputs=(p.path,), after=("addresses",), per_partition=True, reusable=True)
                 for p in cfg.providers]
    layers: list[Stage] = []
    for o in cfg.objections:  # each layer sees the offers of the deliveries and of the layers before it
        layers.append(Stage(objections_stage_name(o), stage_objections, ("addresses", "rejected_ids", "offers"),
                            ("offers", "withdrawals", "objections"), {"objections": o, "aliases": cfg.aliases},
                            inputs=(o.path,), after=("addresses", *(s.name for s in providers + layers)),
                            per_partition=True, reusable=True))
    groups, thresholds = list(an.groups), an.thresholds_mbps
    return [
        Stage("boundaries", stage_boundaries, (), ("boundaries", "locator"), {"section": b, "crs": crs},
              inputs=(b.path,)),
        Stage("addresses", stage_addresses, ("boundaries", "locator"), ("addresses", "rejected_ids", "unallocated"),
              {"section": a, "crs": crs, "tolerance_m": an.locate_tolerance_m, "households": cfg.households,
               "min_accepted_share": an.min_accepted_share,
               **({"businesses": cfg.businesses, "sites": cfg.sites, "match_distance_m": an.match_distance_m}
                  if cfg.businesses or cfg.sites else {}),
               **({"duplicate_ids": duplicate_ids} if duplicate_ids else {})},
              inputs=(a.path, *((a.decode,) if a.decode else ()), *cfg.households.paths,
                      *(s.path for s in (cfg.businesses, cfg.sites) if s is not None)), after=("boundaries",),
              per_partition=True, reusable=True),
        *providers,
        *layers,
        Stage("service", stage_service, ("addresses", "offers", "withdrawals", "objections"),
              ("results", "planned_until"),
              {"groups": an.groups, "horizon_years": an.planned_horizon_years, "reference_date": reference_date,
               "funding_rules": cfg.funding_rules},
              after=("addresses", *(p.name for p in providers + layers)), per_partition=True, reusable=True),
        Stage("counts", stage_counts, ("results", "unallocated", "boundaries"),
              ("counts", "grid_counts", "sites", "forgotten", "totals"),
              {"thresholds": thresholds, "groups": groups, "flags": funding_flags(cfg), "grid": cfg.output.grid},
              after=("service",), per_partition=True),
        Stage("aggregate", stage_aggregate, ("counts", "sites", "totals", "boundaries"), ("tables", "site_tables"),
              {"thresholds": thresholds, "groups": groups}, after=("counts",)),
    ]


#: The stages that only read and check inputs (``bbcov validate``).
VALIDATION_STAGES = ("boundaries", "addresses", "provider", "objections")


def _sum_counts(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(parts).groupby(level=0, sort=True).sum()


def _concat(parts: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    present = [p for p in parts if p is not None]
    return pd.concat(present, ignore_index=True) if present else None


def _sum_unallocated(parts: list[pd.DataFrame]) -> pd.DataFrame:
    present = [p for p in parts if len(p)]
    if not present:
        return parts[0]
    return pd.concat(present).groupby("ags", sort=True, as_index=False)[list(present[0].columns[1:])].sum()


def _sum_totals(parts: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(sum(p[k] for p in parts)) for k in parts[0]}


#: How the outputs of the per-partition stages that later stages need add up over partitions.
#: (Per-address fields are written as part files by each partition and not kept.)
REDUCE: dict[str, Callable[[list[Any]], Any]] = {
    "counts": _sum_counts, "sites": _concat, "forgotten": _concat, "grid_counts": _concat,
    "totals": _sum_totals, "unallocated": _sum_unallocated, "planned_until": lambda parts: parts[0],
}
