"""`bbcov synth --scope germany`: Germany-scale demo inputs, Land by Land, as partitioned Parquet.

Reads the real open data (BKG VG5000 for all Länder, the Zensus 2022 grids, the Breitbandatlas
Gemeinde table of the vintage) from ``sources`` once (the grids are small: 2.2 M + 0.36 M cells),
then generates one Land at a time with :func:`demo.germany.generate_land` and writes it
before the next Land starts, so memory is bounded by the largest Land (NRW). Each Land has its own
random generator ``default_rng([seed, land])``: a Land's output does not depend on which other
Länder are built. Everything is written into a temporary folder next to ``out`` that is renamed
into place at the end (``out`` is either the complete previous or the complete new result).

Output contract (paths relative to ``out``):

- ``addresses/land=LL/part-NNN.parquet`` — GeoParquet, Point geometry EPSG:3035; address_id (str,
  ``DELL-nnnnnnnn``, unique in Germany), households (int32), businesses (int16), site_kind,
  site_name (str, "" if none), ags (str, 8 digits: the Gemeinde the generator placed it in)
- ``providers/{dsl,hfc,fibre}/land=LL/part-NNN.parquet`` — plain Parquet, one row per offer:
  address_id, provider, technology, down_mbps (float32), up_mbps (float32),
  status ("current"/"planned"), planned_date ("" or ISO date)
- ``providers/mobile.tif`` — GeoTIFF EPSG:3035, 100 m INSPIRE-aligned pixels (uint16 Mbit/s, 0 = none,
  deflate, 256 × 256 tiles) over the built Länder: populated cells carry the calibrated mobile download,
  other pixels of a Land an uncalibrated value per 1 km block (as in MV); written strip by strip from
  one piece per Land, so memory stays that of one Land
- parts hold at most :data:`MAX_PART_ROWS` rows (a Land is split evenly into contiguous parts)
- reading a table folder as a pyarrow/geopandas *dataset* adds the hive key ``land`` as a column
  (inferred as an integer: ``4``, not ``"04"``); read the part files, or drop/retype that column
- ``bbcov.toml`` (run configuration), ``synth_manifest.json`` (seed, vintage, sources with SHA-256,
  counts and timings per Land, peak RSS), ``.complete`` (written last)
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from coverage.crs import INSPIRE_GRID_CRS
from coverage.errors import ConfigError, DataSourceError
from coverage.model import Boundaries
from coverage.sources.bkg import read_bkg_bundle
from coverage.sources.breitbandatlas import bba_wide, read_bba_table
from coverage.sources.zensus import grid_bbox, households_1km, read_grid_1km, read_grid_100m
from demo.addresses import _KEY
from demo.build_mv import DEMO_ATTRIBUTIONS, THRESHOLDS, VINTAGES, _digest, _publish, source_paths
from demo.germany import (
    DWELLINGS_PER_ADDRESS,
    GERMANY_PROVIDERS,
    METHOD_VERSION,
    LandData,
    generate_land,
    land_target_of,
)
from demo.providers import _mobile_raster

log = logging.getLogger(__name__)

LAENDER = tuple(f"{i:02d}" for i in range(1, 17))
#: The published Land table per vintage the Länder are fitted to (only mid-2021 is published here).
LAND_TABLES = {"2021-06": "bundesland_privat_2021_1.csv"}
MOBILE_RASTER = "providers/mobile.tif"
#: Rows per strip when the mobile raster is assembled (a multiple of the 256-pixel tile height).
RASTER_STRIP_ROWS = 1024
MAX_PART_ROWS = 2_000_000
OFFER_SCHEMA = pa.schema(
    [
        ("address_id", pa.string()),
        ("provider", pa.string()),
        ("technology", pa.string()),
        ("down_mbps", pa.float32()),
        ("up_mbps", pa.float32()),
        ("status", pa.string()),
        ("planned_date", pa.string()),
    ]
)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_germany(
    sources: Path,
    out: Path,
    vintage: str = "2021-06",
    seed: int = 20210630,
    laender: Sequence[str] | None = None,
) -> dict:
    """Generate Germany-scale demo inputs from the open data in ``sources`` into ``out`` (atomic).

    ``laender`` (two-digit Land keys such as ``"04"``) limits the build to some Länder (tests);
    default all 16. Returns the summary that is also in ``synth_manifest.json``.
    """
    started = time.perf_counter()
    sources = Path(sources)
    out = Path(out)
    if vintage not in VINTAGES:
        raise ConfigError(f"synth vintage {vintage!r} is unknown; available: {sorted(VINTAGES)}")
    laender = _land_keys(laender)
    reference_date = VINTAGES[vintage][1]
    paths = source_paths(sources, vintage)
    if vintage in LAND_TABLES:
        paths["breitbandatlas_land"] = sources / "breitbandatlas" / LAND_TABLES[vintage]
    for name, p in paths.items():
        if not p.exists():
            raise DataSourceError(f"{p}: {name} source not found under {sources}")

    boundaries = read_bkg_bundle(paths["boundaries"], INSPIRE_GRID_CRS)
    grid_100m = read_grid_100m(paths["zensus_100m"])
    grid_1km = read_grid_1km(paths["zensus_1km"])
    wide = bba_wide(read_bba_table(paths["breitbandatlas"]))
    land_wide = bba_wide(read_bba_table(paths["breitbandatlas_land"])) if "breitbandatlas_land" in paths else None
    read_s = time.perf_counter() - started

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    per_land: dict[str, dict] = {}
    try:
        work = tmp / ".mobile-pieces"
        work.mkdir()
        pieces = []
        for land in laender:
            per_land[land], piece = _build_land(tmp, work, land, boundaries, grid_100m, grid_1km, wide, land_wide, seed)
            pieces.append(piece)
        t_raster = time.perf_counter()
        _write_mobile_raster(tmp / MOBILE_RASTER, pieces)
        shutil.rmtree(work)
        raster_s = time.perf_counter() - t_raster
        totals = _totals(per_land)
        manifest = {
            "method_version": METHOD_VERSION,
            "scope": "germany",
            "laender": list(laender),
            "vintage": vintage,
            "reference_date": reference_date,
            "seed": seed,
            "crs": INSPIRE_GRID_CRS,
            "dwellings_per_address": DWELLINGS_PER_ADDRESS,
            "max_part_rows": MAX_PART_ROWS,
            "sources": {name: _digest(p, sources) for name, p in paths.items()},
            "counts": totals,
            "counts_per_land": per_land,
            "land_fit": "Land table" if land_wide is not None else "none (no Land table for this vintage)",
            "timings_s": {
                "read_sources": round(read_s, 1),
                "mobile_raster": round(raster_s, 1),
                "total": round(time.perf_counter() - started, 1),
            },
            "peak_rss_mb": round(peak_rss_mb()),
            "providers_fictional": list(GERMANY_PROVIDERS.values()),
            "note": "Synthetic demo data, approximate on purpose; providers are fictional. "
            "Derived from © GeoBasis-DE / BKG 2021, © Statistisches Bundesamt (Destatis), Zensus 2022, "
            "Breitbandatlas | Gigabit-Grundbuch (data changed).",
        }
        rel = Path(os.path.relpath(paths["boundaries"].resolve(), out.resolve())).as_posix()
        (tmp / "bbcov.toml").write_text(_toml(rel, reference_date), encoding="utf-8")
        (tmp / "synth_manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (tmp / ".complete").write_bytes(b"")
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("synth germany %s seed %d -> %s: %s", vintage, seed, out, totals)
    return manifest


def _land_keys(laender: Sequence[str] | None) -> tuple[str, ...]:
    """Two-digit Land keys to build (default all 16); :class:`ConfigError` for unknown or none."""
    keys = tuple(LAENDER if laender is None else (str(k).zfill(2) for k in laender))
    bad = [k for k in keys if k not in LAENDER]
    if bad or not keys:
        raise ConfigError(f"synth laender {bad or list(keys)} invalid; expected two-digit keys 01..16")
    return keys


def _build_land(
    tmp: Path,
    work: Path,
    land: str,
    boundaries: Boundaries,
    grid_100m: pd.DataFrame,
    grid_1km: pd.DataFrame,
    wide: pd.DataFrame,
    land_wide: pd.DataFrame | None,
    seed: int,
) -> tuple[dict, dict]:
    """Generate one Land with its own ``default_rng([seed, land])`` and write it under ``tmp``.

    The grids are clipped to the Land's bounding box (land and coastal water, whole 1 km cells).
    Returns the Land's counts, part files per table, timings and the peak RSS so far, and its
    mobile raster piece (saved under ``work``, see :func:`_save_piece`).
    """
    t0 = time.perf_counter()
    sub = boundaries.subset((land,))
    frames = [sub.land, sub.coastal_water] if len(sub.coastal_water) else [sub.land]
    b = np.array([f.total_bounds for f in frames])
    bbox = grid_bbox((b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()), INSPIRE_GRID_CRS)
    g100 = _clip(grid_100m, bbox)
    g1 = _clip(grid_1km, bbox)
    rng = np.random.default_rng([seed, int(land)])
    target = None if land_wide is None else land_target_of(land_wide, land, wide)
    data = generate_land(sub, g100, g1, wide, rng, prefix=f"DE{land}", land_target=target)
    t1 = time.perf_counter()
    files = _write_land(tmp, land, data)
    piece = _save_piece(work, land, data, shapely.union_all(sub.land.geometry.values), rng)
    counts: dict[str, object] = dict(data.counts)
    counts["land_fit"] = data.land_fit
    del data
    counts.update(
        {
            "zensus_households": _zensus_households(g1, sub),
            "files": files,
            "generate_s": round(t1 - t0, 1),
            "write_s": round(time.perf_counter() - t1, 1),
            "peak_rss_mb_so_far": round(peak_rss_mb()),
        }
    )
    log.info("synth germany: Land %s done in %.0f s: %s", land, time.perf_counter() - t0, counts)
    return counts, piece


def _save_piece(work: Path, land: str, data: LandData, area: shapely.Geometry, rng: np.random.Generator) -> dict:
    """The Land's mobile raster over its 1 km-aligned bounding box (:func:`demo.providers._mobile_raster`:
    calibrated populated cells, uncalibrated blocks elsewhere in the Land, 0 outside), saved as .npy
    with its calibrated cells, so only one Land's raster is in memory at a time."""
    raster, (left, top, _) = _mobile_raster(data.mobile_cells, data.mobile_down, area, rng)
    path = work / f"land={land}.npy"
    np.save(path, raster)
    cells = work / f"land={land}-cells.npz"
    np.savez(cells, keys=data.mobile_cells, down=data.mobile_down.astype(np.uint16))
    return {"raster": path, "cells": cells, "left": left, "top": top, "height": raster.shape[0],
            "width": raster.shape[1]}


def _write_mobile_raster(path: Path, pieces: Sequence[dict]) -> None:
    """One GeoTIFF over all pieces, written in strips of :data:`RASTER_STRIP_ROWS` rows. Where pieces
    overlap (bounding boxes of neighbouring Länder) the calibrated cell of a Land wins over another
    Land's uncalibrated block (the most of two calibrated values, for a cell on the border)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    left = min(p["left"] for p in pieces)
    top = max(p["top"] for p in pieces)
    right = max(p["left"] + 100.0 * p["width"] for p in pieces)
    bottom = min(p["top"] - 100.0 * p["height"] for p in pieces)
    width, height = round((right - left) / 100), round((top - bottom) / 100)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff", "height": height, "width": width, "count": 1, "dtype": "uint16",
        "crs": INSPIRE_GRID_CRS, "transform": from_origin(left, top, 100.0, 100.0), "nodata": 0,
        "compress": "deflate", "tiled": True, "blockxsize": 256, "blockysize": 256,
    }
    offsets = [(round((top - p["top"]) / 100), round((p["left"] - left) / 100)) for p in pieces]
    with rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, height, RASTER_STRIP_ROWS):
            r1 = min(height, r0 + RASTER_STRIP_ROWS)
            strip = np.zeros((r1 - r0, width), dtype=np.uint16)
            calibrated = np.zeros_like(strip)
            is_cal = np.zeros(strip.shape, dtype=bool)
            for p, (pr, pc) in zip(pieces, offsets, strict=True):
                a, b = max(r0, pr), min(r1, pr + p["height"])
                if a >= b:
                    continue
                part = np.load(p["raster"], mmap_mode="r")[a - pr : b - pr]
                view = strip[a - r0 : b - r0, pc : pc + p["width"]]
                np.maximum(view, part, out=view)
                with np.load(p["cells"]) as cells:
                    keys, down = cells["keys"], cells["down"]
                row = round(top / 100) - 1 - (keys % _KEY)
                col = keys // _KEY - round(left / 100)
                sel = (row >= r0) & (row < r1)
                np.maximum.at(calibrated, (row[sel] - r0, col[sel]), down[sel])
                is_cal[row[sel] - r0, col[sel]] = True
            dst.write(np.where(is_cal, calibrated, strip), 1, window=Window(0, r0, width, r1 - r0))
    log.info("mobile raster %s: %d × %d pixels from %d Länder", path, width, height, len(pieces))


#: Counts summed over the Länder into the manifest's ``counts``.
TOTAL_KEYS = (
    "addresses",
    "households",
    "businesses",
    "sites",
    "dsl_rows",
    "hfc_rows",
    "fibre_rows",
    "fibre_planned_rows",
    "provider_rows",
    "gemeinden",
    "gemeinden_without_bba",
    "mobile_cells",
    "mobile_addresses",
)


def _totals(per_land: dict[str, dict]) -> dict:
    """Germany totals of :data:`TOTAL_KEYS`, Zensus households and provider rows per address."""
    totals: dict[str, float] = {key: int(sum(c[key] for c in per_land.values())) for key in TOTAL_KEYS}
    totals["zensus_households"] = round(sum(c["zensus_households"] for c in per_land.values()))
    totals["provider_rows_per_address"] = round(totals["provider_rows"] / max(totals["addresses"], 1), 3)
    return totals


def _clip(grid: pd.DataFrame, bbox: tuple[float, float, float, float]) -> pd.DataFrame:
    minx, miny, maxx, maxy = bbox
    x = grid["x"].to_numpy()
    y = grid["y"].to_numpy()
    return grid[(x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)].reset_index(drop=True)


def _zensus_households(g1: pd.DataFrame, sub: Boundaries) -> float:
    """Zensus households (einwohner / hh_groesse_d, both positive) of 1 km cells centred in the Land."""
    area = shapely.union_all(np.concatenate([sub.land.geometry.values, sub.coastal_water.geometry.values]))
    inside = shapely.contains_xy(area, g1["x"].to_numpy(float), g1["y"].to_numpy(float))
    return float(households_1km(g1)[inside].sum())


def _parts(n: int) -> list[tuple[int, int]]:
    k = max(1, math.ceil(n / MAX_PART_ROWS))
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _write_land(tmp: Path, land: str, data: LandData) -> dict[str, int]:
    """Write one Land's addresses and offer tables; returns the number of part files per table."""
    files = {}
    folder = tmp / "addresses" / f"land={land}"
    folder.mkdir(parents=True)
    a = data.addresses
    parts = _parts(len(a))
    for i, (lo, hi) in enumerate(parts):
        chunk = a.iloc[lo:hi]
        gdf = gpd.GeoDataFrame(
            chunk.drop(columns=["x", "y"]).reset_index(drop=True),
            geometry=gpd.points_from_xy(chunk["x"].to_numpy(), chunk["y"].to_numpy()),
            crs=INSPIRE_GRID_CRS,
        )
        gdf.to_parquet(folder / f"part-{i:03d}.parquet", index=False, compression="zstd")
    files["addresses"] = len(parts)
    for name in ("dsl", "hfc", "fibre"):
        table = getattr(data, name)
        folder = tmp / "providers" / name / f"land={land}"
        folder.mkdir(parents=True)
        parts = _parts(len(table))
        for i, (lo, hi) in enumerate(parts):
            pt = pa.Table.from_pandas(table.iloc[lo:hi], schema=OFFER_SCHEMA, preserve_index=False)
            pq.write_table(pt, folder / f"part-{i:03d}.parquet", compression="zstd")
        files[name] = len(parts)
    return files


def _toml(boundaries_rel: str, reference_date: str) -> str:
    providers = "".join(
        f'[[providers]]\npath = "providers/{name}"\nformat = "address-table"\n' for name in ("dsl", "hfc", "fibre")
    ) + (
        f'[[providers]]\npath = "{MOBILE_RASTER}"\nformat = "raster"\nprovider = "{GERMANY_PROVIDERS["mobile"]}"\n'
        'technology = "LTE"\n'
    )
    return f"""[boundaries]
path = "{boundaries_rel}"
[addresses]
path = "addresses"
{providers}[analysis]
crs = "EPSG:3035"
thresholds_mbps = [{", ".join(str(t) for t in THRESHOLDS)}]
reference_date = "{reference_date}"
[output]
# Its own run history: change reports compare Germany runs with Germany runs, never with the MV demo.
dir = "../../processed/germany"
reports_dir = "../../../reports/germany"
[report]
title = "Breitbandversorgung Deutschland (Demo, fiktive Anbieter)"
data_date = "{reference_date}"
{DEMO_ATTRIBUTIONS}
"""
