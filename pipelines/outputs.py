"""Writes the data outputs of a run: tables, per-address results, offers, quarantine, INSPIRE grid."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from rasterio.transform import from_origin
from shapely import box

from coverage.config import RunConfig
from coverage.crs import INSPIRE_GRID_CRS
from coverage.grid import band_names, dense_band, finish_grid, grid_layout
from coverage.model import OBJECTION_COLUMNS
from pipelines import io
from pipelines.cache import ADDRESSES_FILE, OBJECTIONS_FILE, OFFERS_FILE, UNALLOCATED_FILE
from pipelines.execute import Ledger
from pipelines.stages import RunState, ags_mismatch

log = logging.getLogger(__name__)


def flat_addresses(addresses: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per-address results with x/y columns instead of a geometry (what addresses.parquet holds).

    x/y are the exact coordinates (a later run rebuilds the points from them, see
    :mod:`pipelines.cache`). Built column by column without copying the ~90 result columns (at
    millions of addresses a ``drop`` of the geometry copies gigabytes)."""
    pts = addresses.geometry.values
    columns = {c: addresses[c] for c in addresses.columns if c != addresses.geometry.name}
    flat = pd.DataFrame(columns, copy=False)
    flat.insert(1, "x", shapely.get_x(pts))
    flat.insert(2, "y", shapely.get_y(pts))
    return flat


def offers_table(offers: pd.DataFrame) -> pd.DataFrame:
    """Offers as a partition's part of offers.parquet holds them: without the partition-internal positions."""
    return offers.drop(columns="addr", errors="ignore")


@dataclass
class Written:
    """What write_outputs wrote, and where the cached stage results lie (see :mod:`pipelines.cache`)."""

    files: list[str] = field(default_factory=list)
    offer_rows: dict[str, tuple[int, int]] = field(default_factory=dict)  # delivery -> rows of offers.parquet
    quarantine: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # stage -> [(file, source)]


def write_per_address(state: RunState, run_dir: Path, written: Written) -> None:
    """addresses.parquet and offers.parquet of a single run (a partitioned run writes part files)."""
    assert state.results is not None
    io.write_parquet(run_dir / ADDRESSES_FILE, flat_addresses(state.results))
    start = 0
    for delivery, frame in state.offers.items():
        written.offer_rows[delivery] = (start, start + len(frame))
        start += len(frame)
    io.write_parquet(run_dir / OFFERS_FILE, state.all_offers())


def write_objections(state: RunState, run_dir: Path) -> None:
    """objections.csv: every objection placed at an address, its decision and whether it was applied."""
    parts = list(state.objections.values())
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(OBJECTION_COLUMNS))
    io.write_csv(run_dir / OBJECTIONS_FILE, table[list(OBJECTION_COLUMNS)])
    log.info("%s: %d objections, %d applied", OBJECTIONS_FILE, len(table), int(table["applied"].astype(bool).sum()))


def write_quarantine(ledger: Ledger, run_dir: Path, written: Written) -> pd.DataFrame:
    """One CSV per input file that had rejected rows (``quarantine/<file stem>.csv``); names that
    two inputs would share (``telekom.csv``, ``telekom.txt``) get a numbered suffix."""
    taken: set[str] = set()
    for stage, frame in ledger.quarantine:
        for source, part in frame.groupby("source", sort=True):
            stem = Path(str(source)).stem or "unknown"
            name, i = f"quarantine/{stem}.csv", 1
            while name in taken:
                i += 1
                name = f"quarantine/{stem}_{i}.csv"
            taken.add(name)
            io.write_csv(run_dir / name, part)
            written.files.append(name)
            written.quarantine.setdefault(stage, []).append((name, str(source)))
    return ledger.all_quarantine()


def write_outputs(cfg: RunConfig, state: RunState, ledger: Ledger, run_dir: Path, partitioned: bool,
                  per_address_written: Callable[[], None] = lambda: None) -> Written:
    """Tables, per-address results, offers, quarantine, gap lists and the grid of one run.

    In a partitioned run the partitions have written addresses.parquet/ and offers.parquet/ (folders of
    part files, read like one file) and returned their gap lists and grid counts. A single run writes
    those two first and then calls ``per_address_written`` (the runner starts the lists' worker on them).
    """
    assert state.tables is not None and state.site_tables is not None and state.sites is not None
    written = Written()
    if not partitioned:
        write_per_address(state, run_dir, written)
        per_address_written()
    for level, table in state.tables.items():
        io.write_csv(run_dir / "tables" / f"coverage_{level}.csv", table)
        written.files.append(f"tables/coverage_{level}.csv")
    for level, table in state.site_tables.items():
        io.write_csv(run_dir / "tables" / f"sites_{level}.csv", table)
        written.files.append(f"tables/sites_{level}.csv")
    io.write_csv(run_dir / "sites.csv", state.sites)
    written.files.append("sites.csv")
    if state.unallocated is not None:
        io.write_csv(run_dir / UNALLOCATED_FILE, state.unallocated)
        written.files.append(UNALLOCATED_FILE)
    if cfg.objections and not partitioned:
        write_objections(state, run_dir)
        written.files.append(OBJECTIONS_FILE)
    if (not partitioned and state.results is not None and "ags_cadastre" in state.results
            and state.boundaries is not None):
        written.files.append(write_ags_mismatch(state.results, state.boundaries.hierarchy(), run_dir))
    written.files += [ADDRESSES_FILE, OFFERS_FILE]
    quarantine = write_quarantine(ledger, run_dir, written)
    assert state.forgotten is not None
    written.files += write_gap_lists(state.forgotten, quarantine, run_dir)
    counts, state.grid_counts = state.grid_counts, None  # the summed cells replace the counts (0.9 GB for Germany)
    if counts is not None and len(counts):
        thresholds, groups = cfg.analysis.thresholds_mbps, list(cfg.analysis.groups)
        cells = finish_grid(counts, thresholds, groups)
        del counts
        written.files += write_grid(cells, thresholds, groups, run_dir)
    return written


UNMATCHED_REASONS = ("unknown_address", "address_quarantined", "no_address_nearby", "address_not_found",
                     "missing_locator")


def write_gap_lists(forgotten: pd.DataFrame, quarantine: pd.DataFrame, run_dir: Path) -> list[str]:
    """Both directions of "who is missing": addresses no delivery mentions, and records that reached no address."""
    order = [c for c in ("ags", "street", "house_number", "address_id") if c in forgotten.columns]
    io.write_csv(run_dir / "forgotten_addresses.csv", forgotten.sort_values(order))
    unmatched = quarantine[quarantine["reason"].isin(UNMATCHED_REASONS)]
    io.write_csv(run_dir / "unmatched_provider_records.csv", unmatched)
    log.info("gaps: %d addresses no delivery mentions, %d provider records that reached no address",
             len(forgotten), len(unmatched))
    return ["forgotten_addresses.csv", "unmatched_provider_records.csv"]


def write_ags_mismatch(results: pd.DataFrame, hierarchy: pd.DataFrame, run_dir: Path) -> str:
    """Addresses whose cadastre AGS (HK-DE) differs from the Gemeinde their point falls in, with both names."""
    cols = [c for c in ("address_id", "street", "house_number", "postcode", "locality", "ags_cadastre", "ags")
            if c in results.columns]
    names = hierarchy.set_index("ags")["gemeinde_name"]
    listed = pd.DataFrame(results.loc[ags_mismatch(results).to_numpy(), cols])
    listed["gemeinde_name_cadastre"] = listed["ags_cadastre"].map(names).fillna("")
    listed["gemeinde_name"] = listed["ags"].map(names).fillna("")
    io.write_csv(run_dir / "ags_mismatch.csv", listed.sort_values(["ags_cadastre", "address_id"]))
    log.info("ags_mismatch.csv: %d addresses whose cadastre AGS is another Gemeinde than their point's", len(listed))
    return "ags_mismatch.csv"


def write_grid(cells: pd.DataFrame, thresholds, groups, run_dir: Path, size_m: int = 100,
               rows_per_write: int = 250_000) -> list[str]:
    """Per 100 m INSPIRE cell: a GeoPackage of cell squares and a multi-band GeoTIFF (float32, NaN = no data)."""
    gpkg = run_dir / "grid" / f"grid_{size_m}m.gpkg"
    with io.atomic_path(gpkg) as tmp:
        tmp.unlink()
        # In slices: Germany has 2.3 M populated cells x 150 columns; converting them to squares and
        # Arrow in one go would hold two more copies of the 2.8 GB table.
        for start in range(0, max(len(cells), 1), rows_per_write):
            part = cells.iloc[start:start + rows_per_write]
            e, n = part["east"].to_numpy(), part["north"].to_numpy()
            squares = gpd.GeoDataFrame(part, geometry=box(e, n, e + size_m, n + size_m), crs=INSPIRE_GRID_CRS)
            squares.to_file(tmp, layer=f"grid_{size_m}m", driver="GPKG", engine="pyogrio", use_arrow=True,
                            append=start > 0)
    layout = grid_layout(cells, size_m)
    names = band_names(thresholds, groups)
    tif = run_dir / "grid" / f"grid_{size_m}m.tif"
    with io.atomic_path(tif) as tmp:
        # Band-interleaved: bands are written one after another, and with GDAL's default (pixel
        # interleave) every band write re-compresses every tile (a Germany raster was unfinished after 11 min).
        # Deflate at level 1 on all cores: as readable as any GeoTIFF, ~40 % faster than level 6. No
        # predictor: the floating-point one (3) made the MV raster 2.4 times larger (14.2 against 5.9 MB;
        # most cells are NaN, the shares repeat few values) and its writing 2.3 times slower.
        profile = {"driver": "GTiff", "height": layout.height, "width": layout.width, "count": len(names),
                   "dtype": "float32", "crs": INSPIRE_GRID_CRS, "nodata": np.nan, "compress": "deflate",
                   "zlevel": 1, "interleave": "band", "num_threads": "all_cpus",
                   "tiled": True, "blockxsize": 256, "blockysize": 256,
                   "transform": from_origin(layout.west, layout.north, size_m, size_m)}
        with rasterio.open(tmp, "w", **profile) as dst:
            for i, name in enumerate(names, start=1):
                dst.write(dense_band(cells, name, layout), i)
                dst.set_band_description(i, name)
    log.info("grid: %d populated %d m cells, raster %d x %d with %d bands", len(cells), size_m, layout.width,
             layout.height, len(names))
    return [f"grid/grid_{size_m}m.gpkg", f"grid/grid_{size_m}m.tif"]
