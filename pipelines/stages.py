"""The stage list: each stage reads what earlier stages produced and returns new artefacts.

Stages are thin: they call the pure functions of :mod:`coverage` and record
rows in / out / quarantined per reason, so the runner can prove nothing was lost.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from coverage import quarantine as q
from coverage.aggregate import area_tables, gemeinde_counts
from coverage.columns import concat_frames
from coverage.config import ProviderConfig, RunConfig
from coverage.funding import evaluate_rules
from coverage.locate import locate_addresses
from coverage.match import empty_offers, link_polygons, link_table_records, sample_raster
from coverage.membership import same_strings
from coverage.service import best_service, offers_in_scope, unmentioned
from coverage.sites import site_counts, site_table
from coverage.sources.addresses import read_addresses
from coverage.sources.bkg import boundaries_from_gemeinden, read_bkg_bundle
from coverage.sources.providers import read_provider_polygons, read_provider_raster, read_provider_table
from coverage.sources.tables import apply_column_map
from coverage.sources.vector import read_vector

log = logging.getLogger(__name__)


@dataclass
class Accounting:
    """Rows in, out and quarantined (per reason) of one stage or one input file."""

    stage: str
    rows_in: int
    rows_out: int
    quarantined: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.rows_out + sum(self.quarantined.values())

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "rows_in": self.rows_in, "rows_out": self.rows_out,
                "quarantined": self.quarantined, "balanced": self.balanced, "note": self.note}


def _reasons(quarantine: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in quarantine["reason"].value_counts().sort_index().items()}


@dataclass
class Context:
    """What the stages of one run share; the runner owns it."""

    cfg: RunConfig
    reference_date: date
    artefacts: dict[str, Any] = field(default_factory=dict)
    accounting: list[Accounting] = field(default_factory=list)
    quarantine: list[pd.DataFrame] = field(default_factory=list)

    def account(self, entry: Accounting) -> None:
        self.accounting.append(entry)
        if not entry.balanced:
            raise AssertionError(f"row accounting does not add up in {entry.stage}: {entry.as_dict()}")


def stage_boundaries(ctx: Context) -> None:
    b = ctx.cfg.boundaries
    crs = ctx.cfg.analysis.working_crs
    if b.format == "bkg":
        boundaries = read_bkg_bundle(b.path, crs, land=b.land)
    else:
        gem = apply_column_map(read_vector(b.path, b.layer), dict(b.columns), b.path)
        if b.land and "ags" in gem:
            gem = gem[gem["ags"].astype(str).str.zfill(8).str[:2] == b.land.zfill(2)]
        boundaries = boundaries_from_gemeinden(gem, crs, str(b.path))
    boundaries = boundaries.subset(b.areas)
    ctx.artefacts["boundaries"] = boundaries
    n = len(boundaries.gemeinde)
    ctx.account(Accounting("boundaries", n, n, note=f"{len(boundaries.amt)} Ämter, {len(boundaries.kreis)} Kreise"))


def stage_addresses(ctx: Context) -> None:
    cfg = ctx.cfg
    addresses, rejected, rows_read = read_addresses(cfg.addresses, cfg.analysis.working_crs)
    ctx.quarantine.append(rejected)
    ctx.account(Accounting(f"read {cfg.addresses.path.name}", rows_read, len(addresses), _reasons(rejected)))
    located, outside = locate_addresses(addresses, ctx.artefacts["boundaries"].gemeinde,
                                        cfg.analysis.locate_tolerance_m, cfg.addresses.path.name,
                                        locator=ctx.artefacts.get("locator"))
    ctx.quarantine.append(outside)
    keys = pd.concat([rejected["key"], outside["key"]]).astype(str)
    ctx.artefacts["rejected_address_ids"] = pd.Index(keys[keys != ""].unique())
    n_near = int((located["locate_method"] == "nearest").sum())
    ctx.account(Accounting("locate", len(addresses), len(located), _reasons(outside),
                           note=f"{n_near} assigned to the nearest Gemeinde within tolerance"))
    ctx.artefacts["addresses"] = located


def provider_stage_name(p: ProviderConfig) -> str:
    return f"provider {p.name}"


def stage_provider(ctx: Context, p: ProviderConfig) -> None:
    """Read one delivery and link it to the addresses; its offers become ``offers:<name>``."""
    cfg = ctx.cfg
    addresses: gpd.GeoDataFrame = ctx.artefacts["addresses"]
    crs, aliases = cfg.analysis.working_crs, cfg.aliases
    if p.format in ("address-csv", "address-table"):
        records, rejected, rows_read = read_provider_table(p, crs, aliases)
        linked, unlinked = link_table_records(records, addresses, cfg.analysis.match_distance_m,
                                              ctx.artefacts["rejected_address_ids"])
        rejected = q.concat([rejected, unlinked])
        n_out = len(records) - len(unlinked)
        note = f"{len(linked)} offers"
    elif p.format == "polygons":
        polygons, rejected, rows_read = read_provider_polygons(p, crs, aliases)
        linked, unused = link_polygons(polygons, addresses)
        n_out = len(polygons)
        note = f"{len(linked)} offers; {unused} polygon(s) cover no address"
    else:
        delivery = read_provider_raster(p, aliases)
        linked = sample_raster(delivery, addresses)
        rejected, rows_read, n_out = q.empty(), len(addresses), len(addresses)
        note = f"{len(linked)} addresses in served cells (rows = addresses sampled)"
    ctx.quarantine.append(rejected)
    ctx.artefacts[f"offers:{p.name}"] = linked
    ctx.account(Accounting(provider_stage_name(p), rows_read, n_out, _reasons(rejected), note))


def all_offers(ctx: Context) -> pd.DataFrame:
    parts = [ctx.artefacts[f"offers:{p.name}"] for p in ctx.cfg.providers]
    parts = [p for p in parts if len(p)]
    return concat_frames(parts) if parts else empty_offers()


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


def stage_service(ctx: Context) -> None:
    cfg = ctx.cfg
    addresses = ctx.artefacts["addresses"]
    horizon = pd.Timestamp(ctx.reference_date) + pd.DateOffset(days=round(365.25 * cfg.analysis.planned_horizon_years))
    offers = all_offers(ctx)
    ctx.artefacts["offers"] = offers
    ctx.artefacts["planned_until"] = horizon.date().isoformat()
    service = best_service(addresses["address_id"], offers, cfg.analysis.groups, planned_until=horizon.date())
    # Funding needs neither ids nor names: filtering only these columns keeps the scope split cheap.
    needed = offers[["addr", "technology", "down_mbps", "up_mbps", "status", "planned_date"]]
    funding = evaluate_rules(addresses["address_id"], offers_in_scope(needed, horizon.date()), cfg.funding_rules)
    merged = attach_by_position(addresses, service, funding)
    merged["no_offer"] = unmentioned(merged["address_id"], offers)
    ctx.account(Accounting("best service", len(addresses), len(merged),
                           note=f"planned supply counted until {horizon.date().isoformat()}"))
    ctx.artefacts["addresses"] = merged


def funding_flags(cfg: RunConfig) -> list[str]:
    """Boolean per-address columns counted per area (households and addresses)."""
    return ["no_offer"] + [f"fund_{r.name}{suffix}" for r in cfg.funding_rules for suffix in ("", "_plan")]


def stage_aggregate(ctx: Context) -> None:
    cfg = ctx.cfg
    addresses = ctx.artefacts["addresses"]
    boundaries = ctx.artefacts["boundaries"]
    groups = list(cfg.analysis.groups)
    thresholds = cfg.analysis.thresholds_mbps
    counts = gemeinde_counts(addresses, thresholds, groups, prefixes=("", "plan_"), flags=funding_flags(cfg))
    tables = area_tables(counts, boundaries, thresholds, groups, prefixes=("", "plan_"))
    ctx.artefacts["tables"] = tables
    hh_in = float(addresses["households"].sum())
    hh_out = float(tables["land"]["households"].sum())
    if abs(hh_in - hh_out) > 1e-6 * max(1.0, hh_in):
        raise AssertionError(f"households lost in aggregation: {hh_in} in, {hh_out} out")
    ctx.account(Accounting("aggregate", len(addresses), len(addresses),
                           note=f"{hh_out:.0f} households in {len(tables['gemeinde'])} Gemeinden"))
    sites = site_table(addresses, boundaries)
    ctx.artefacts["sites"] = sites
    ctx.artefacts["site_tables"] = site_counts(sites, boundaries, thresholds)
    ctx.account(Accounting("sites", len(sites), len(sites), note="addresses with a site_kind"))


@dataclass(frozen=True)
class Stage:
    """One step of a run and everything its result depends on.

    The runner fingerprints ``inputs`` (files), ``params`` (JSON-able), the source of
    ``modules`` and the keys of the stages it comes after; an unchanged fingerprint
    means the previous run's result can be reused.
    """

    name: str
    run: Callable[[Context], None]
    produces: tuple[str, ...]
    after: tuple[str, ...] = ()
    inputs: tuple[Path, ...] = ()
    params: object = None
    modules: tuple[str, ...] = ()


_READ = ("coverage.sources.tables", "coverage.sources.vector", "coverage.numbers", "coverage.quarantine",
         "coverage.crs", "coverage.config", "coverage.errors")


def _without_path(section: object) -> object:
    """A config section for fingerprinting: the file's content counts (inputs), not where it lies."""
    return dataclasses.replace(section, path=Path())


def plan(cfg: RunConfig) -> list[Stage]:
    """The stages of a run for this configuration, in execution order (one stage per delivery)."""
    b, a, an = cfg.boundaries, cfg.addresses, cfg.analysis
    stages = [
        Stage("boundaries", stage_boundaries, ("boundaries",), inputs=(b.path,),
              params=[_without_path(b), an.crs], modules=("coverage.sources.bkg", *_READ)),
        Stage("addresses", stage_addresses, ("addresses", "rejected_address_ids"), after=("boundaries",),
              inputs=(a.path,), params=[_without_path(a), an.crs, an.locate_tolerance_m],
              modules=("coverage.sources.addresses", "coverage.locate", "coverage.pip", *_READ)),
    ]
    providers = []
    for p in cfg.providers:
        name = provider_stage_name(p)
        providers.append(name)
        stages.append(Stage(name, lambda ctx, p=p: stage_provider(ctx, p), (f"offers:{p.name}",),
                            after=("addresses",), inputs=(p.path,),
                            params=[_without_path(p), an.crs, an.match_distance_m, dict(cfg.technology_aliases)],
                            modules=("coverage.sources.providers", "coverage.match", "coverage.addressing",
                                     "coverage.technology", *_READ)))
    stages += [
        Stage("service", stage_service, ("addresses", "offers", "planned_until"),
              after=("addresses", *providers),
              params=[an.groups, an.planned_horizon_years, an.reference_date, cfg.funding_rules],
              modules=("coverage.service", "coverage.funding", "coverage.technology")),
        Stage("aggregate", stage_aggregate, ("tables", "sites", "site_tables"), after=("service",),
              params=[an.thresholds_mbps, list(an.groups), cfg.funding_rules],
              modules=("coverage.aggregate", "coverage.sites", "coverage.schemas")),
    ]
    return stages


#: The stages that only read and check inputs (``bbcov validate``).
VALIDATION_STAGES = ("boundaries", "addresses", "provider")
