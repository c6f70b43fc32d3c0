"""Writes the change report between two runs (after every run, and for ``bbcov diff``)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from coverage.changes import (
    BY_OBJECTIONS,
    address_changes,
    address_list_changes,
    area_changes,
    funding_changes,
    objection_deltas,
    provider_changes,
    split_by_cause,
)
from coverage.model import LEVEL_KEYS
from pipelines import io

if TYPE_CHECKING:
    from pipelines.runner import RunRecord

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE_PP = 0.5
_COUNT = re.compile(r"^hh_ge_(?P<t>[\d.]+)_(?P<g>[a-z][a-z0-9_]*)$")


@dataclass(frozen=True)
class RunData:
    run_id: str
    tables: dict[str, pd.DataFrame]
    addresses: pd.DataFrame | None  # None for partitioned runs
    offers: pd.DataFrame | None


def load_run(run_dir: Path, run_id: str | None = None) -> RunData:
    """A run's tables, and its per-address results and offers unless the run was partitioned
    (tens of millions of rows: the change report then compares areas only)."""
    keys = dict.fromkeys(LEVEL_KEYS.values(), str)
    tables = {level: pd.read_csv(run_dir / "tables" / f"coverage_{level}.csv", dtype=keys) for level in LEVEL_KEYS}
    if (run_dir / "addresses.parquet").is_dir():
        return RunData(run_id or run_dir.name, tables, None, None)
    return RunData(run_id or run_dir.name, tables, pd.read_parquet(run_dir / "addresses.parquet"),
                   pd.read_parquet(run_dir / "offers.parquet"))


def thresholds_and_groups(*tables: pd.DataFrame) -> tuple[list[float], list[str]]:
    """The (threshold, group) pairs both tables have, read from their ``hh_ge_{t}_{g}`` columns."""
    pairs = None
    for table in tables:
        found = {(float(m["t"]), m["g"]) for c in table.columns if (m := _COUNT.match(c))}
        pairs = found if pairs is None else pairs & found
    pairs = pairs or set()
    return sorted({t for t, _ in pairs}), sorted({g for _, g in pairs})


def write_change_report(a: RunData, b: RunData, out: Path, tolerance_pp: float = DEFAULT_TOLERANCE_PP,
                        keep: dict | None = None) -> list[str]:
    """CSV files under ``out`` (relative names returned) and a short summary.json.

    ``keep``, if given, receives the area tables, provider changes and summary (for the report page).
    """
    thresholds, groups = thresholds_and_groups(a.tables["gemeinde"], b.tables["gemeinde"])
    written = []
    summary: dict = {"run_a": a.run_id, "run_b": b.run_id, "tolerance_pp": tolerance_pp}
    areas = {}
    moved = (address_changes(a.addresses, b.addresses, thresholds, groups)
             if a.addresses is not None and b.addresses is not None else None)
    for level, key in LEVEL_KEYS.items():
        table = area_changes(a.tables[level], b.tables[level], key, thresholds, groups, tolerance_pp)
        deltas = (objection_deltas(moved, b.addresses, key, thresholds)
                  if moved is not None and b.addresses is not None else None)
        table = areas[level] = split_by_cause(table, deltas, key)
        io.write_csv(out / f"changes_{level}.csv", table)
        written.append(f"changes_{level}.csv")
        summary[f"noteworthy_{level}"] = int(table["noteworthy"].sum())
    if moved is None or a.addresses is None or b.addresses is None:
        summary["address_level"] = "not compared: partitioned run (areas only)"
        io.write_json(out / "summary.json", summary)
        if keep is not None:
            keep.update(areas=areas, providers=pd.DataFrame(columns=["provider", "technology", "addresses_a",
                                                                     "addresses_b", "change"]),
                        summary=summary, tolerance_pp=tolerance_pp)
        return [*written, "summary.json"]
    listed = address_list_changes(a.addresses, b.addresses)
    providers = provider_changes(a.offers, b.offers)
    flags = [c for c in b.addresses.columns if c.startswith("fund_")]
    funding = funding_changes(a.addresses, b.addresses, flags)
    for name, frame in (("address_changes", moved), ("address_list_changes", listed),
                        ("provider_changes", providers), ("funding_changes", funding)):
        io.write_csv(out / f"{name}.csv", frame)
        written.append(f"{name}.csv")
    summary.update({
        "addresses_gained": {g: int(((moved["group"] == g) & (moved["direction"] == "gained")).sum()) for g in groups},
        "addresses_lost": {g: int(((moved["group"] == g) & (moved["direction"] == "lost")).sum()) for g in groups},
        "addresses_appeared": int((listed["change"] == "appeared").sum()),
        "addresses_vanished": int((listed["change"] == "vanished").sum()),
        "providers_appeared": providers.loc[providers["change"] == "appeared", ["provider", "technology"]]
        .values.tolist(),
        "providers_disappeared": providers.loc[providers["change"] == "disappeared", ["provider", "technology"]]
        .values.tolist(),
        "funding_changes": len(funding),
        # what the objections layer changed (the rest: deliveries and the address list)
        "addresses_gained_by_objections": {g: int(((moved["group"] == g) & (moved["direction"] == "gained")
                                                   & (moved["cause"] == BY_OBJECTIONS)).sum()) for g in groups},
        "addresses_lost_by_objections": {g: int(((moved["group"] == g) & (moved["direction"] == "lost")
                                                 & (moved["cause"] == BY_OBJECTIONS)).sum()) for g in groups},
        "funding_changes_by_objections": int((funding["cause"] == BY_OBJECTIONS).sum()),
    })
    io.write_json(out / "summary.json", summary)
    if keep is not None:
        keep.update(areas=areas, providers=providers, summary=summary, tolerance_pp=tolerance_pp)
    log.info("changes %s -> %s: %s", a.run_id, b.run_id, {k: v for k, v in summary.items() if "noteworthy" in k})
    return [*written, "summary.json"]


def changes_after_run(previous: Path, record: RunRecord, staging: Path) -> list[str]:
    """The runner's hook: compare the latest published run with the one being built (from memory)."""
    state = record.state
    assert state.tables is not None
    current = (RunData(record.run_id, state.tables, None, None) if record.partitioned else
               RunData(record.run_id, state.tables, state.results, state.all_offers()))
    kept: dict[str, Any] = {}
    written = write_change_report(load_run(previous), current, staging / "changes",
                                  record.cfg.analysis.change_tolerance_pp, keep=kept)
    record.changes = kept
    return [f"changes/{w}" for w in written]
