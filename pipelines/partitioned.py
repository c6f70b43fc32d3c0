"""Partitioned execution: the same stage functions mapped over address partitions.

Used when the address dataset is a folder of partition folders (``addresses/land=05/part-*.parquet``).
Each provider table must be partitioned the same way (``providers/dsl/land=05/…``): a record is
linked only within its partition, so a table that is not partitioned like the addresses is a
configuration error rather than a source of wrong "unknown address" rows. Coverage polygons and
rasters are sampled per partition.

A partition returns only small results (Gemeinde counts, sites, gap list, grid counts, accounting,
quarantine); its per-address results and offers are written as part files of ``addresses.parquet/``
and ``offers.parquet/`` in the run folder. Counts are summed over partitions, so the tables equal those
of a single-process run exactly.

Execution: in this process by default (numba kernels use every core), or on Dask with
``--workers N`` (a local cluster of N worker processes on loopback) or ``--scheduler tcp://HOST:PORT``
(an existing cluster; then inputs and the output folder must be on storage every worker can reach).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from coverage import quarantine as q
from coverage.aggregate import area_tables, gemeinde_counts
from coverage.config import RunConfig
from coverage.errors import ConfigError
from coverage.grid import grid_counts
from coverage.locate import Locator
from coverage.model import Boundaries
from coverage.sites import site_counts, site_table
from pipelines import io
from pipelines.outputs import flat_addresses, forgotten_addresses, offers_table
from pipelines.stages import Accounting, Context, funding_flags, stage_addresses, stage_provider, stage_service

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Partition:
    name: str  # e.g. "land=05"
    addresses: Path
    providers: dict[str, Path]  # delivery name -> its part (or the whole file for polygons/rasters)
    size: int  # bytes of the address files, to schedule large partitions first


@dataclass
class PartitionResult:
    name: str
    counts: pd.DataFrame
    sites: pd.DataFrame
    forgotten: pd.DataFrame
    grid: pd.DataFrame | None
    accounting: list[Accounting]
    quarantine: list[pd.DataFrame]
    planned_until: str
    seconds: float
    write: Callable[[], None] | None = None  # deferred writing of the part files (in process only)


def find_partitions(cfg: RunConfig) -> list[Partition] | None:
    """Partitions of the address dataset, or None when it is a single file or an unpartitioned folder."""
    root = cfg.addresses.path
    if not root.is_dir():
        return None
    folders = sorted(d for d in root.iterdir() if d.is_dir() and any(d.rglob("*.parquet")))
    if len(folders) < 2:
        return None
    parts = []
    for folder in folders:
        providers = {}
        for p in cfg.providers:
            if p.format in ("polygons", "raster"):
                providers[p.name] = p.path
            elif p.path.is_dir() and (p.path / folder.name).is_dir():
                providers[p.name] = p.path / folder.name
            elif p.path.is_dir() and not any(d.is_dir() for d in p.path.iterdir()):
                providers[p.name] = None  # partitioned dataset without this partition: no records here
            else:
                raise ConfigError(
                    f"providers: {p.path} is not partitioned like the addresses ({root}/{folder.name}); "
                    f"store it as {p.path}/{folder.name}/*.parquet, or give the addresses as one file")
        size = sum(f.stat().st_size for f in folder.rglob("*.parquet"))
        parts.append(Partition(folder.name, folder, providers, size))
    return parts


def run_partition(part: Partition, cfg: RunConfig, boundaries: Boundaries, locator: Locator, ref: date,
                  run_dir: Path, defer_write: bool = False) -> PartitionResult:
    """Read, locate, link and evaluate one partition with the ordinary stage functions.

    The per-address part files are written before returning, or, with ``defer_write``, by the
    returned ``result.write`` (so a caller can write them while the next partition is computed).
    """
    t0 = time.perf_counter()
    providers = tuple(dataclasses.replace(p, path=part.providers[p.name], label=p.name) for p in cfg.providers
                      if part.providers.get(p.name) is not None)
    sub_cfg = dataclasses.replace(cfg, addresses=dataclasses.replace(cfg.addresses, path=part.addresses),
                                  providers=providers)
    ctx = Context(cfg=sub_cfg, reference_date=ref)
    ctx.artefacts.update(boundaries=boundaries, locator=locator)
    stage_addresses(ctx)
    for p in providers:
        stage_provider(ctx, p)
    stage_service(ctx)
    addresses, offers = ctx.artefacts["addresses"], ctx.artefacts["offers"]

    def write() -> None:
        io.write_parquet_parts(run_dir / "addresses.parquet", part.name, flat_addresses(addresses))
        io.write_parquet_parts(run_dir / "offers.parquet", part.name, offers_table(offers))

    groups, thresholds = list(cfg.analysis.groups), cfg.analysis.thresholds_mbps
    counts = gemeinde_counts(addresses, thresholds, groups, prefixes=("", "plan_"), flags=funding_flags(cfg))
    grid = (grid_counts(addresses.geometry.x.to_numpy(), addresses.geometry.y.to_numpy(), addresses.crs, addresses,
                        thresholds, groups) if cfg.output.grid and len(addresses) else None)
    for entry in ctx.accounting:
        entry.stage = f"{part.name}: {entry.stage}"
    result = PartitionResult(part.name, counts, site_table(addresses, boundaries),
                             forgotten_addresses(addresses, boundaries.hierarchy()), grid, ctx.accounting,
                             ctx.quarantine, ctx.artefacts["planned_until"], time.perf_counter() - t0)
    if defer_write:
        result.write = write
    else:
        write()
        result.seconds = time.perf_counter() - t0
    log.info("partition %s: %d addresses in %.1f s%s", part.name, len(addresses), result.seconds,
             " (part files written in the background)" if defer_write else "")
    return result


def map_partitions(parts: list[Partition], cfg: RunConfig, boundaries: Boundaries, ref: date, run_dir: Path,
                   workers: int | None = None, scheduler: str | None = None) -> list[PartitionResult]:
    """Run every partition, largest first; in process, or as Dask tasks."""
    locator = Locator.build(boundaries.gemeinde)
    parts = sorted(parts, key=lambda p: p.size, reverse=True)
    if not workers and not scheduler:
        return _in_process(parts, cfg, boundaries, locator, ref, run_dir)
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, memory_limit=0)
        client = Client(cluster)
    try:
        log.info("dask: %s with %d worker(s)", client.scheduler.address, len(client.scheduler_info()["workers"]))
        shared = client.scatter([cfg, boundaries, locator, ref, run_dir], broadcast=True)
        futures = [client.submit(run_partition, p, *shared, key=f"partition-{p.name}", pure=False) for p in parts]
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _in_process(parts: list[Partition], cfg: RunConfig, boundaries: Boundaries, locator: Locator, ref: date,
                run_dir: Path) -> list[PartitionResult]:
    """Partitions one after the other; a partition's part files are written by a background thread
    while the next one is computed (Parquet encoding releases the GIL, so the second core does it).
    At most one partition's results wait to be written, which bounds memory."""
    results: list[PartitionResult] = []
    with ThreadPoolExecutor(max_workers=1) as background:
        pending: Future | None = None
        for p in parts:
            try:
                result = run_partition(p, cfg, boundaries, locator, ref, run_dir, defer_write=True)
            except BaseException:
                if pending is not None and pending.exception() is not None:  # waits for the write
                    log.error("writing the previous partition failed as well: %s", pending.exception())
                raise
            if pending is not None:
                pending.result()
            pending = background.submit(result.write)
            result.write = None
            results.append(result)
        if pending is not None:
            pending.result()
    return results


def combine(ctx: Context, results: list[PartitionResult]) -> None:
    """Sum partition results into the run's artefacts (tables, sites, gap list, grid counts, accounting)."""
    cfg = ctx.cfg
    boundaries = ctx.artefacts["boundaries"]
    groups, thresholds = list(cfg.analysis.groups), cfg.analysis.thresholds_mbps
    results = sorted(results, key=lambda r: r.name)
    counts = pd.concat([r.counts for r in results]).groupby(level=0, sort=True).sum()
    tables = area_tables(counts, boundaries, thresholds, groups, prefixes=("", "plan_"))
    sites = pd.concat([r.sites for r in results], ignore_index=True)
    ctx.artefacts.update(
        tables=tables, sites=sites, site_tables=site_counts(sites, boundaries, thresholds),
        forgotten=pd.concat([r.forgotten for r in results], ignore_index=True),
        grid_counts=pd.concat([r.grid for r in results if r.grid is not None]) if cfg.output.grid else None,
        planned_until=results[0].planned_until, partitions=[r.name for r in results])
    for r in results:
        r.grid = None  # concatenated above; the per-partition copies (0.9 GB for Germany) are not needed again
        for entry in r.accounting:
            ctx.account(entry)
        ctx.quarantine.extend(r.quarantine)
    n = int(tables["land"]["addresses"].sum())
    ctx.account(Accounting("aggregate", n, n, note=f"{len(results)} partitions, "
                           f"{tables['land']['households'].sum():.0f} households"))
    log.info("combined %d partitions: %d addresses, %d quarantined rows", len(results), n,
             len(q.concat(ctx.quarantine)))
