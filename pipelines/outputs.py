"""Writes the data outputs of a run: tables, per-address results, offers, quarantine, INSPIRE grid."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from rasterio.transform import from_origin
from shapely import box

from coverage import quarantine as q
from coverage.crs import INSPIRE_GRID_CRS
from coverage.grid import band_names, dense_band, finish_grid, grid_counts, grid_layout
from pipelines import io
from pipelines.stages import Context

log = logging.getLogger(__name__)


def flat_addresses(addresses: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per-address results with x/y columns instead of a geometry (what addresses.parquet holds).

    Built column by column without copying the ~90 result columns (at millions of addresses a
    ``drop`` of the geometry copies gigabytes)."""
    pts = addresses.geometry.values
    columns = {c: addresses[c] for c in addresses.columns if c != addresses.geometry.name}
    flat = pd.DataFrame(columns, copy=False)
    flat.insert(1, "x", np.round(shapely.get_x(pts), 2))
    flat.insert(2, "y", np.round(shapely.get_y(pts), 2))
    return flat


def offers_table(offers: pd.DataFrame) -> pd.DataFrame:
    """Offers as offers.parquet holds them: without the run-internal address positions."""
    return offers.drop(columns="addr", errors="ignore")


def forgotten_addresses(addresses: pd.DataFrame, hierarchy: pd.DataFrame) -> pd.DataFrame:
    """Addresses no delivery mentions, with the names of their areas."""
    cols = [c for c in ("address_id", "street", "house_number", "postcode", "locality", "households", "site_kind",
                        "ags") if c in addresses.columns]
    names = hierarchy[["ags", "gemeinde_name", "amt_name", "kreis_name"]]
    return addresses.loc[addresses["no_offer"].to_numpy(), cols].merge(names, on="ags", how="left")


def write_outputs(ctx: Context, run_dir: Path) -> list[str]:
    """Tables, per-address results, offers, quarantine, gap lists and the grid of one run.

    In a partitioned run the partitions have written addresses.parquet/ and offers.parquet/ (folders of
    part files, read like one file) and returned their gap lists and grid counts.
    """
    written = []
    for level, table in ctx.artefacts["tables"].items():
        io.write_csv(run_dir / "tables" / f"coverage_{level}.csv", table)
        written.append(f"tables/coverage_{level}.csv")
    for level, table in ctx.artefacts["site_tables"].items():
        io.write_csv(run_dir / "tables" / f"sites_{level}.csv", table)
        written.append(f"tables/sites_{level}.csv")
    io.write_csv(run_dir / "sites.csv", ctx.artefacts["sites"])
    written.append("sites.csv")
    cfg = ctx.cfg
    thresholds, groups = cfg.analysis.thresholds_mbps, list(cfg.analysis.groups)
    if "partitions" in ctx.artefacts:
        # popped: the summed grid replaces the partitions' counts (0.9 GB for Germany) before it is written
        forgotten, counts = ctx.artefacts["forgotten"], ctx.artefacts.pop("grid_counts", None)
    else:
        addresses = ctx.artefacts["addresses"]
        io.write_parquet(run_dir / "addresses.parquet", flat_addresses(addresses))
        io.write_parquet(run_dir / "offers.parquet", offers_table(ctx.artefacts["offers"]))
        forgotten = forgotten_addresses(addresses, ctx.artefacts["boundaries"].hierarchy())
        counts = (grid_counts(addresses.geometry.x.to_numpy(), addresses.geometry.y.to_numpy(), addresses.crs,
                              addresses, thresholds, groups) if cfg.output.grid and len(addresses) else None)
    written += ["addresses.parquet", "offers.parquet"]
    quarantine = q.concat(ctx.quarantine)
    for source, part in quarantine.groupby("source", sort=True):
        name = f"quarantine/{Path(str(source)).stem or 'unknown'}.csv"
        io.write_csv(run_dir / name, part)
        written.append(name)
    ctx.artefacts["quarantine"] = quarantine
    written += write_gap_lists(forgotten, quarantine, run_dir)
    if counts is not None and len(counts):
        cells = finish_grid(counts, thresholds, groups)
        del counts
        written += write_grid(cells, thresholds, groups, run_dir)
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
        # Deflate at level 1 on all cores: as readable as any GeoTIFF, ~40 % faster than level 6.
        profile = {"driver": "GTiff", "height": layout.height, "width": layout.width, "count": len(names),
                   "dtype": "float32", "crs": INSPIRE_GRID_CRS, "nodata": np.nan, "compress": "deflate",
                   "zlevel": 1, "predictor": 3, "interleave": "band", "num_threads": "all_cpus",
                   "tiled": True, "blockxsize": 256, "blockysize": 256,
                   "transform": from_origin(layout.west, layout.north, size_m, size_m)}
        with rasterio.open(tmp, "w", **profile) as dst:
            for i, name in enumerate(names, start=1):
                dst.write(dense_band(cells, name, layout), i)
                dst.set_band_description(i, name)
    log.info("grid: %d populated %d m cells, raster %d x %d with %d bands", len(cells), size_m, layout.width,
             layout.height, len(names))
    return [f"grid/grid_{size_m}m.gpkg", f"grid/grid_{size_m}m.tif"]
