"""The run's own outputs are its cache: a small catalog says where each stage's results lie.

A single (unpartitioned) run writes ``addresses.parquet`` (located addresses and their results,
exact x/y), ``offers.parquet`` (every delivery's offers, one after the other) and
``quarantine/*.csv`` (and ``unallocated_households.csv``, households of Zensus cells that reached no
address). The manifest's ``stages`` section is the catalog: per stage its key, its
accounting, its quarantine files and where its outputs are, e.g.::

    "provider dsl.csv": {"key": "…", "outputs": {"offers": {"file": "offers.parquet", "rows": [0, 260141]}},
                         "quarantine": ["quarantine/dsl.csv"], "accounting": [...]}

A later run whose stage key is unchanged reads the result back from there: no pickles, nothing
stored twice, readable by any later version (Parquet, CSV, JSON).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from coverage import quarantine as q
from coverage.households import UNALLOCATED_COLUMNS
from coverage.sources.objections import read_back, withdrawals_of
from pipelines.stages import Accounting, Stage, StageResult, address_keys

log = logging.getLogger(__name__)

ADDRESSES_FILE = "addresses.parquet"
OFFERS_FILE = "offers.parquet"
UNALLOCATED_FILE = "unallocated_households.csv"
OBJECTIONS_FILE = "objections.csv"


def locations(stage: Stage, outputs: dict[str, Any], offer_rows: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Where the outputs a reusable stage made are found in the run folder."""
    found: dict[str, Any] = {}
    for name, value in outputs.items():
        if name == "addresses" or name == "results":
            found[name] = {"file": ADDRESSES_FILE, "columns": [str(c) for c in value.columns]}
        elif name == "offers":
            found[name] = {delivery: {"file": OFFERS_FILE, "rows": list(offer_rows[delivery])} for delivery in value}
        elif name == "rejected_ids":
            found[name] = {"from": "quarantine keys"}
        elif name == "unallocated":
            found[name] = {"file": UNALLOCATED_FILE}
        elif name in ("withdrawals", "objections"):
            found[name] = {source: {"file": OBJECTIONS_FILE} for source in value}
        elif name == "planned_until":
            found[name] = {"value": value}
        else:
            raise AssertionError(f"stage {stage.name}: no place in the run folder for output {name!r}")
    return found


def restore(stage: Stage, entry: dict[str, Any], run_dir: Path, crs: Any) -> StageResult | None:
    """The stage's result as an earlier run (``run_dir``) wrote it, or None if it cannot be read back."""
    outputs = entry.get("outputs")
    if not outputs or set(outputs) != set(stage.makes):
        return None
    try:
        quarantine = [_read_quarantine(run_dir / name, source) for name, source in entry.get("quarantine", [])]
        values: dict[str, Any] = {}
        for name, where in outputs.items():
            if name in ("addresses", "results"):
                values[name] = _read_addresses(run_dir / where["file"], where["columns"], crs)
            elif name == "offers":
                values[name] = {d: _read_rows(run_dir / w["file"], *w["rows"]) for d, w in where.items()}
            elif name == "rejected_ids":
                values[name] = address_keys(q.concat(quarantine), stage.params["section"].path.name)
            elif name == "unallocated":
                values[name] = _read_unallocated(run_dir / where["file"])
            elif name == "objections":
                values[name] = {s: read_back(run_dir / w["file"], s) for s, w in where.items()}
            elif name == "withdrawals":
                values[name] = {s: withdrawals_of(read_back(run_dir / w["file"], s)) for s, w in where.items()}
            else:
                values[name] = where["value"]
    except (OSError, KeyError, ValueError) as exc:
        log.warning("stage %s: the previous run's results cannot be read back (%s); running it", stage.name, exc)
        return None
    return StageResult(values, [Accounting.from_dict(a) for a in entry.get("accounting", [])], quarantine)


def _read_addresses(path: Path, columns: list[str], crs: Any) -> gpd.GeoDataFrame:
    """Addresses (or results) from addresses.parquet, with their points rebuilt from the exact x/y."""
    wanted = [c for c in columns if c != "geometry"]
    table = pq.read_table(path, columns=[*wanted, "x", "y"])
    frame = table.to_pandas()
    points = gpd.points_from_xy(frame.pop("x").to_numpy(), frame.pop("y").to_numpy(), crs=crs)
    restored = gpd.GeoDataFrame(frame, geometry=points, crs=crs)
    return restored[columns] if "geometry" in columns else restored


def _read_unallocated(path: Path) -> pd.DataFrame:
    """unallocated_households.csv: ags as text (leading zeros), the counts as float64."""
    frame = pd.read_csv(path, dtype={"ags": str}, keep_default_na=False)
    missing = set(UNALLOCATED_COLUMNS) - set(frame.columns)
    if missing:
        raise KeyError(f"{path.name} lacks {sorted(missing)}")
    return frame.astype(dict.fromkeys(UNALLOCATED_COLUMNS[1:], "float64"))[list(UNALLOCATED_COLUMNS)]


def _read_rows(path: Path, start: int, stop: int) -> pd.DataFrame:
    """Rows [start, stop) of a Parquet file; categories limited to the values these rows use."""
    frame = pq.read_table(path).slice(start, stop - start).to_pandas()
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].cat.remove_unused_categories()
    return frame


def _read_quarantine(path: Path, source: str) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = frame[frame["source"] == source].reset_index(drop=True)
    rows = pd.to_numeric(frame["row"], errors="coerce")
    if rows.notna().all():
        frame["row"] = rows.astype(np.int64)
    return frame[list(q.QUARANTINE_COLUMNS)]
