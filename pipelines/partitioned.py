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

Execution: by default on :data:`PARTITION_WORKERS` worker processes of this machine (largest partition
first, each worker one partition at a time, its numba kernels on one thread: the cores are used by
partitions side by side rather than by one partition's loops, which leave much of a partition serial);
with one worker, in this process; or on Dask with ``--workers N`` (a local cluster of N worker processes
on loopback) or ``--scheduler tcp://HOST:PORT`` (an existing cluster; then inputs and the output folder
must be on storage every worker can reach).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from coverage import quarantine as q
from coverage.config import ProviderConfig, RunConfig
from coverage.errors import ConfigError
from coverage.membership import all_distinct, string_hashes
from coverage.sources.providers import read_provider_table
from pipelines import io
from pipelines.execute import Ledger, run_stages
from pipelines.outputs import flat_addresses, offers_table
from pipelines.processes import die_with_parent, peak_rss, release_memory, reset_peak_rss
from pipelines.stages import REDUCE, Accounting, RunState, Stage, StageResult, concat_offers, reasons

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Partition:
    name: str  # e.g. "land=05"
    addresses: Path
    providers: dict[str, Path | None]  # delivery name -> its part (or the whole file for polygons/rasters)
    size: int  # bytes of the address files, to schedule large partitions first
    rows: int = 0  # addresses in its files (Parquet metadata): what bounds the memory of partitions side by side


@dataclass
class PartitionResult:
    """What one partition hands to the reduce: the outputs named in REDUCE, and its ledger."""

    name: str
    outputs: dict[str, Any]
    ledger: Ledger
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
    lists = [f"[{key}]" for key in ("businesses", "sites") if getattr(cfg, key) is not None]
    if lists:
        raise ConfigError(f"{' and '.join(lists)}: not supported with partitioned addresses ({root}) yet: their rows "
                          "would be linked only within one partition; give the addresses as one file")
    parts = []
    for folder in folders:
        providers: dict[str, Path | None] = {}
        for p in cfg.providers:
            if p.format in ("polygons", "raster"):
                providers[p.name] = p.path
            elif _partitioned(p.path):
                # partitioned like the addresses; without this partition there are no records here
                providers[p.name] = p.path / folder.name if (p.path / folder.name).is_dir() else None
            else:
                raise ConfigError(
                    f"providers: {p.path} is not partitioned like the addresses ({root}/{folder.name}); "
                    f"store it as {p.path}/{folder.name}/*.parquet, or give the addresses as one file")
        files = sorted(folder.rglob("*.parquet"))
        size = sum(f.stat().st_size for f in files)
        parts.append(Partition(folder.name, folder, providers, size, sum(_parquet_rows(f) for f in files)))
    return parts


def _parquet_rows(path: Path) -> int:
    """Rows of a Parquet file from its footer (0 when it cannot be read: the address stage says why)."""
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, pa.ArrowInvalid):
        return 0


def _partitioned(path: Path) -> bool:
    """A folder of partition folders only (files beside them would be read by no partition)."""
    if not path.is_dir():
        return False
    entries = list(path.iterdir())
    return any(e.is_dir() for e in entries) and not any(e.is_file() and e.suffix == ".parquet" for e in entries)


def orphan_provider_parts(cfg: RunConfig, parts: list[Partition]) -> list[tuple[ProviderConfig, Path]]:
    """Provider partitions for which there is no address partition (``providers/dsl/land=99`` without
    ``addresses/land=99``): their records can reach no address, and must not vanish unseen."""
    names = {p.name for p in parts}
    found = []
    for p in cfg.providers:
        if p.format in ("address-csv", "address-table") and _partitioned(p.path):
            found += [(p, d) for d in sorted(p.path.iterdir()) if d.is_dir() and d.name not in names]
    return found


def quarantine_orphans(cfg: RunConfig, orphans: list[tuple[ProviderConfig, Path]], ledger: Ledger) -> None:
    """Read each orphan provider partition and quarantine all its records as ``unknown_address``."""
    crs, aliases = cfg.analysis.working_crs, cfg.aliases
    for p, folder in orphans:
        delivery = dataclasses.replace(p, path=folder, label=p.name)
        records, rejected, rows_read = read_provider_table(delivery, crs, aliases)
        ids = records["address_id"] if "address_id" in records else pd.Series("", index=records.index)
        unknown = q.rows(p.name, records["source_row"], "address_id", ids, "unknown_address",
                         detail=f"no address partition {folder.name} for this provider partition",
                         keys=None)
        quarantine = q.concat([rejected, unknown])
        name = f"{folder.name}: provider {p.name}"
        entry = Accounting(name, rows_read, 0, reasons(quarantine), linked=0)  # these records reach no address
        ledger.record(name, StageResult({}, [entry], [quarantine]), "ran", 0.0)
        log.warning("%s: %d record(s) in %s, for which there is no address partition, quarantined as unknown_address",
                    p.name, len(records), folder)


def cross_partition_duplicates(cfg: RunConfig, parts: list[Partition]) -> dict[str, frozenset[str]]:
    """Address ids that an earlier partition (in name order) already holds, per later partition: they
    are quarantined there as ``duplicate_address_id``, as a repeat within one file is. Reads only
    the id column; the common case (no repeats) costs one pass of 64-bit hashes and a sort (all
    distinct: no repeats) instead of a hash table of every id string (Germany: 21.3 M), and only equal
    hashes lead to the exact comparison of the strings."""
    column = dict(cfg.addresses.columns).get("address_id", "address_id")
    ids = {part.name: pq.read_table(part.addresses, columns=[column]).column(0).cast(pa.large_string())
           for part in sorted(parts, key=lambda part: part.name)}
    if all_distinct(np.concatenate([string_hashes(c) for c in ids.values()] or [np.zeros(0, np.uint64)])):
        return {}
    seen: set[str] = set()
    repeats: dict[str, frozenset[str]] = {}
    for name, column_ids in ids.items():
        mine = set(column_ids.to_pylist())
        if mine & seen:
            repeats[name] = frozenset(mine & seen)
        seen |= mine
    return repeats


def partition_config(cfg: RunConfig, part: Partition) -> RunConfig:
    """The run's configuration narrowed to one partition's address and provider files."""
    providers = tuple(dataclasses.replace(p, path=path, label=p.name) for p in cfg.providers
                      if (path := part.providers.get(p.name)) is not None)
    return dataclasses.replace(cfg, addresses=dataclasses.replace(cfg.addresses, path=part.addresses),
                               providers=providers)


def run_partition(part: Partition, stages: Sequence[Stage], shared: RunState, run_dir: Path,
                  defer_write: bool = False, between: Callable[[], None] | None = None) -> PartitionResult:
    """Run the per-partition stages (the partition's own plan) and keep what the reduce needs.

    The per-address part files are written before returning, or, with ``defer_write``, by the
    returned ``result.write`` (so a caller can write them while the next partition is computed).
    """
    t0 = time.perf_counter()
    state = RunState(boundaries=shared.boundaries, locator=shared.locator)
    ledger = Ledger()
    # The service stage joins every delivery's offers into one frame while the per-delivery frames are
    # still held (NRW: 16 M offers twice): joined once after the last stage that adds offers, they are held once.
    last = max((i for i, s in enumerate(stages) if "offers" in s.makes), default=-1)
    run_stages(stages[:last + 1], state, ledger, label=f"{part.name}: ", between=between)
    if len(state.offers) > 1:
        state.offers = {JOINED_OFFERS: concat_offers(state.offers)}
        if between is not None:
            between()
    run_stages(stages[last + 1:], state, ledger, label=f"{part.name}: ", between=between)
    results, offers = state.results, state.offers
    assert results is not None
    outputs = {name: getattr(state, name) for name in REDUCE}
    del state  # its addresses (the results hold them again) are not needed for writing

    def write() -> None:
        # one table at a time: the addresses' Arrow table is gone before the offers are joined and converted
        io.write_parquet_parts(run_dir / "addresses.parquet", part.name, flat_addresses(results))
        io.write_parquet_parts(run_dir / "offers.parquet", part.name, offers_table(concat_offers(offers)))

    result = PartitionResult(part.name, outputs, ledger, time.perf_counter() - t0)
    if defer_write:
        result.write = write
    else:
        write()
        result.seconds = time.perf_counter() - t0
    log.info("partition %s: %d addresses in %.1f s%s", part.name, len(results), result.seconds,
             " (part files written in the background)" if defer_write else "")
    return result


Work = Callable[[Partition], Sequence[Stage]]

#: The key of a partition's offers once every delivery's are joined (in delivery order, as the service
#: stage and the offers part files take them); no later per-partition stage needs them per delivery.
JOINED_OFFERS = "*"

#: Worker processes that run the partitions of a run on this machine (its 2 cores). Each holds one
#: partition at a time: the Germany demo's two largest, NRW and Bayern, side by side stay within 8 GB.
PARTITION_WORKERS = 2
#: Addresses of the partitions that run side by side, at most (a larger partition runs alone).
ADDRESSES_AT_ONCE = 4_600_000


def map_partitions(parts: list[Partition], stages_of: Work, shared: RunState, run_dir: Path,
                   workers: int | None = None, scheduler: str | None = None,
                   processes: int | None = None) -> list[PartitionResult]:
    """Run every partition, largest first: on ``processes`` worker processes (default
    :data:`PARTITION_WORKERS`; one: in this process), or as Dask tasks."""
    parts = sorted(parts, key=lambda p: p.size, reverse=True)
    processes = PARTITION_WORKERS if processes is None else processes
    if not workers and not scheduler:
        if processes > 1 and len(parts) > 1:
            return _in_pool(parts, stages_of, shared, run_dir, min(processes, len(parts)))
        return _in_process(parts, stages_of, shared, run_dir)
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, memory_limit=0)
        client = Client(cluster)
        client.run(die_with_parent, os.getpid())  # local workers end with this process, even after kill -9
    try:
        log.info("dask: %s with %d worker(s)", client.scheduler_info().get("address", "?"),
                 len(client.scheduler_info()["workers"]))
        state, folder = client.scatter([shared, run_dir], broadcast=True)
        futures = [client.submit(run_partition, p, stages_of(p), state, folder, key=f"partition-{p.name}",
                                 pure=False) for p in parts]
        return list(client.gather(futures))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _in_pool(parts: list[Partition], stages_of: Work, shared: RunState, run_dir: Path,
             processes: int) -> list[PartitionResult]:
    """Partitions on ``processes`` worker processes, largest first; each writes its own part files and
    hands back only the small results. A partition starts beside the running ones only while their
    addresses together stay within :data:`ADDRESSES_AT_ONCE` (the largest always starts, alone if need
    be), which bounds memory. The shared state (boundaries, locator: 150 MB for Germany, about 1 s to
    unpickle) is written once to a file that each worker loads once, not sent with every partition."""
    from pipelines.processes import worker_pool

    release_memory()  # what reading the id columns of every partition left in this process
    pending, results = list(parts), []
    running: dict[Future[PartitionResult], Partition] = {}
    with tempfile.TemporaryDirectory(prefix="bbcov-shared-") as tmp:
        shared_file = Path(tmp) / "shared.pickle"
        shared_file.write_bytes(pickle.dumps(RunState(boundaries=shared.boundaries, locator=shared.locator),
                                             protocol=pickle.HIGHEST_PROTOCOL))
        log.info("partitions: %d on %d worker processes, at most %d addresses at once", len(parts), processes,
                 ADDRESSES_AT_ONCE)
        with worker_pool(processes) as pool:
            try:
                while pending or running:
                    while len(running) < processes and (pick := _next_partition(pending, running.values())):
                        pending.remove(pick)
                        running[pool.submit(_run_in_worker, pick, list(stages_of(pick)), shared_file,
                                            run_dir)] = pick
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        del running[future]
                        results.append(future.result())
            except BaseException:
                for future in running:
                    future.cancel()
                raise
    return results


def _next_partition(pending: list[Partition], running: Iterable[Partition]) -> Partition | None:
    """The largest pending partition that fits beside the running ones (any, when none runs)."""
    held = [p.rows for p in running]
    if not held:
        return pending[0] if pending else None
    return next((p for p in pending if sum(held) + p.rows <= ADDRESSES_AT_ONCE), None)


def _run_in_worker(part: Partition, stages: Sequence[Stage], shared_file: Path, run_dir: Path) -> PartitionResult:
    """One partition in a worker process: its kernels on one thread (the other worker has the other core)."""
    from coverage.pip import numba

    numba.set_num_threads(1)
    measured = reset_peak_rss()
    try:
        result = run_partition(part, stages, _load_shared(shared_file), run_dir, between=release_memory)
    finally:
        release_memory()  # before the next partition, or while this worker waits for none
    if measured and (peak := peak_rss()) is not None:
        log.info("partition %s: peak RSS of its worker process %.2f GB", part.name, peak / 1e9)
    return result


@functools.lru_cache(maxsize=1)
def _load_shared(shared_file: Path) -> RunState:
    """The run's shared state, read once per worker process and run (the file is the run's own)."""
    state = pickle.loads(shared_file.read_bytes())
    assert isinstance(state, RunState)
    return state


def _in_process(parts: list[Partition], stages_of: Work, shared: RunState, run_dir: Path) -> list[PartitionResult]:
    """Partitions one after the other; a partition's part files are written by a background thread
    while the next one is computed (Parquet encoding releases the GIL, so the second core does it).
    At most one partition's results wait to be written, which bounds memory."""
    results: list[PartitionResult] = []
    with ThreadPoolExecutor(max_workers=1) as background:
        pending: Future[None] | None = None
        for p in parts:
            try:
                result = run_partition(p, stages_of(p), shared, run_dir, defer_write=True)
            except BaseException:
                if pending is not None and pending.exception() is not None:  # waits for the write
                    log.error("writing the previous partition failed as well: %s", pending.exception())
                raise
            if pending is not None:
                pending.result()
            assert result.write is not None
            pending = background.submit(result.write)
            result.write = None
            results.append(result)
        if pending is not None:
            pending.result()
    return results


def reduce_partitions(results: list[PartitionResult], state: RunState, ledger: Ledger) -> None:
    """Sum and concatenate the partitions' outputs into the run's state (in partition-name order)."""
    results = sorted(results, key=lambda r: r.name)
    for name, combine in REDUCE.items():
        setattr(state, name, combine([r.outputs[name] for r in results]))
    for r in results:
        r.outputs.clear()  # the grid counts of Germany's partitions alone are 0.9 GB
        ledger.merge(r.ledger, r.name)
    log.info("combined %d partitions: %d addresses, %d quarantined rows", len(results),
             int(state.totals.get("addresses", 0)), sum(len(f) for _, f in ledger.quarantine))
