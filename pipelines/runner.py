"""Runs the stages for one configuration, reusing unchanged results, and publishes the run atomically.

A run is built in ``<output>/runs/.<run-id>.partial`` and renamed to
``<output>/runs/<run-id>`` when every stage and every output succeeded; only
then does ``<output>/latest`` move. A crash (even ``kill -9``) leaves the
previous run and ``latest`` untouched; the next run removes the leftovers.

Incremental: every stage has a key over its input files, parameters, code and
the keys of the stages before it. A stage whose key equals the one recorded by
the latest successful run is not executed; its result is taken from that run's
cache. When no key changed at all, no new run is made ("nothing changed").
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

import coverage
from coverage.config import RunConfig
from coverage.errors import ConfigError, CoverageError, DataSourceError, InputDataError, OutputError
from pipelines import cache, io
from pipelines.execute import Ledger, deliveries_linking_nothing, run_stages
from pipelines.fingerprint import (
    ModuleIndex,
    code_key,
    file_fingerprint,
    input_stamp,
    params_hash,
    stage_key,
)
from pipelines.funding_outputs import funding_job, run_costs, run_lists, write_run_funding
from pipelines.lock import run_lock
from pipelines.outputs import Written, write_outputs
from pipelines.partitioned import (
    Partition,
    cross_partition_duplicates,
    find_partitions,
    map_partitions,
    orphan_provider_parts,
    partition_config,
    quarantine_orphans,
    reduce_partitions,
)
from pipelines.processes import worker_pool
from pipelines.stages import VALIDATION_STAGES, RunState, Stage, StageResult, plan

log = logging.getLogger(__name__)


@dataclass
class RunRecord:
    """What a run computed, handed in memory to the output writers, the change report and the atlas."""

    cfg: RunConfig
    run_id: str
    created: str  # ISO time the run started
    reference_date: date
    state: RunState
    ledger: Ledger
    inputs: list[dict[str, Any]]  # size and SHA-256 of every input, hashed once per run
    partitioned: bool = False
    quarantine: pd.DataFrame | None = None  # every quarantined row, once written
    changes: dict[str, Any] | None = None  # the change report against the previous run, for the atlas
    run_dir: Path | None = None  # the folder the run's files are written to (its tables/, sites.csv)
    #: outputs a worker process is still writing into run_dir: "eligible" (the Amt lists), "costs"
    pending: dict[str, Future[tuple[list[str], float]]] = field(default_factory=dict)
    waited_s: float = 0.0  # how long wait_for blocked

    def wait_for(self, name: str) -> None:
        """Return when output ``name`` of the run is written (at once when no worker writes it); a
        worker's error is raised here. The atlas links the lists and draws the cost trees from run_dir."""
        future = self.pending.get(name)
        if future is not None:
            t0 = time.perf_counter()
            future.result()
            self.waited_s += time.perf_counter() - t0


ReportFn = Callable[[RunRecord, Path], list[str]]
ChangesFn = Callable[[Path, RunRecord, Path], list[str]]


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    report_dir: Path | None
    manifest: dict[str, Any]
    changed: bool = True
    stages: dict[str, str] = field(default_factory=dict)  # stage -> "ran" | "reused"


def reference_date(cfg: RunConfig) -> date:
    return date.fromisoformat(cfg.analysis.reference_date) if cfg.analysis.reference_date else date.today()


def validate_inputs(cfg: RunConfig) -> tuple[RunState, Ledger]:
    """Run only the reading, locating and linking stages: what ``bbcov validate`` reports."""
    state, ledger = RunState(), Ledger()
    run_stages([s for s in plan(cfg, reference_date(cfg)) if s.name.startswith(VALIDATION_STAGES)], state, ledger)
    return state, ledger


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by time, unique even for two runs in the same second."""
    now = now or datetime.now(UTC)
    return "run-" + now.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "manifest.json").read_text(encoding="utf-8")))


def latest_run(cfg: RunConfig) -> Path | None:
    link = cfg.output.dir / "latest"
    return link.resolve() if (link / "manifest.json").exists() else None


@dataclass(frozen=True)
class Engine:
    """Where partitioned work runs: this process (default), a local Dask cluster, or an existing one."""

    workers: int | None = None
    scheduler: str | None = None


def run_pipeline(cfg: RunConfig, *, run_id: str | None = None, report: ReportFn | None = None,
                 changes: ChangesFn | None = None, force: bool = False, from_stage: str | None = None,
                 wait_s: float = 0.0, engine: Engine = Engine()) -> RunResult:
    """Execute the stages that need it, write outputs, publish the run and return its manifest."""
    try:
        # Both folders a run writes are locked: two runs with their own data folders but one reports
        # folder must not remove each other's partial reports.
        with run_lock(cfg.output.dir, wait_s), run_lock(cfg.output.reports_dir, wait_s):
            _remove_leftovers(cfg.output.dir / "runs", cfg.output.reports_dir)
            return _run(cfg, run_id or new_run_id(), report, changes, force, from_stage, engine)
    except OSError as exc:
        if exc.errno not in WRITE_ERRORS or isinstance(exc, CoverageError):
            raise
        where = exc.filename or f"{cfg.output.dir} or {cfg.output.reports_dir}"
        raise OutputError(f"{where}: cannot write the run's outputs ({exc.strerror}); "
                          "earlier runs and 'latest' are untouched") from exc


#: errno values that say an output folder cannot take the run (the user's to fix, not a bug)
WRITE_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def _remove_leftovers(*folders: Path) -> None:
    """Partial folders of crashed runs (we hold the lock, so none is in use)."""
    for folder in folders:
        for partial in folder.glob(".*.partial") if folder.exists() else []:
            log.warning("removing leftovers of an interrupted run: %s", partial)
            shutil.rmtree(partial, ignore_errors=True)


@dataclass(frozen=True)
class Plan:
    """The stages of a run with their keys, and what decides "nothing changed"."""

    stages: list[Stage]
    keys: dict[str, str]
    report_key: str
    inputs: dict[str, dict[str, Any]]  # path -> fingerprint


def _fingerprint_params(params: object) -> object:
    """Parameters as fingerprinted: a file's content counts (inputs), not the folder it lies in."""
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        paths = {f.name: Path() if isinstance(v, Path) else tuple(Path() for _ in v)
                 for f in dataclasses.fields(params)
                 if isinstance(v := getattr(params, f.name), Path)
                 or (isinstance(v, tuple) and v and all(isinstance(p, Path) for p in v))}
        return dataclasses.replace(params, **paths) if paths else params
    if isinstance(params, dict):
        return {k: _fingerprint_params(v) for k, v in params.items()}
    return params


def make_plan(cfg: RunConfig, ref: date, with_report: bool) -> Plan:
    stages = plan(cfg, ref)
    inputs = {str(p): file_fingerprint(p) for s in stages for p in s.inputs}
    keys: dict[str, str] = {}
    modules: ModuleIndex = {}  # each module read and parsed once for all stages, not once per stage
    for s in stages:
        keys[s.name] = stage_key(s.name, [inputs[str(p)] for p in s.inputs], _fingerprint_params(dict(s.params)),
                                 code_key(s.fn, index=modules), [keys[a] for a in s.after])
    # what the outputs after the stages depend on: the report's options (and, for the public atlas, the
    # disclosure rules), the change report's tolerance, the prices of the cost estimate, and the content
    # of the project area and network point files
    extra = [p.path for p in cfg.project_areas] + ([cfg.costs.network_points] if cfg.costs and
                                                   cfg.costs.network_points else [])
    report_key = params_hash([keys["aggregate"], cfg.report, with_report, cfg.analysis.change_tolerance_pp,
                              _fingerprint_params(cfg.costs), cfg.publish if cfg.report.profile == "public" else None,
                              [file_fingerprint(f).get("sha256") for f in extra]])
    return Plan(stages, keys, report_key, inputs)


def _run(cfg: RunConfig, run_id: str, report: ReportFn | None, changes: ChangesFn | None, force: bool,
         from_stage: str | None, engine: Engine) -> RunResult:
    ref = reference_date(cfg)
    p = make_plan(cfg, ref, report is not None)
    names = [s.name for s in p.stages]
    forced = _forced(names, force, from_stage)
    previous = latest_run(cfg)
    before: dict[str, Any] = read_manifest(previous).get("stages", {}) if previous else {}
    if previous is not None and not forced and before.get("report", {}).get("key") == p.report_key and all(
            before.get(n, {}).get("key") == p.keys[n] for n in names):
        log.info("nothing changed since %s (inputs, parameters and code fingerprints are equal)", previous.name)
        return RunResult(previous.name, previous, _report_dir(cfg, previous.name), read_manifest(previous),
                         changed=False, stages=dict.fromkeys(names, "reused"))

    staging = cfg.output.dir / "runs" / f".{run_id}.partial"
    staging.mkdir(parents=True)
    record = RunRecord(cfg, run_id, datetime.now(UTC).isoformat(timespec="seconds"), ref, RunState(), Ledger(),
                       list(p.inputs.values()), run_dir=staging)
    # The worker is closed before the run's log: its log records reach run.log until it ends.
    with _run_log(staging / "run.log", run_id), contextlib.ExitStack() as workers:
        started = time.perf_counter()
        timings: dict[str, float] = {}
        # A single address file is never partitioned: the worker (its fork server imports the atlas
        # modules) is started now, on the second core while the stages run, and ready when the lists start.
        pool = None if cfg.addresses.path.is_dir() else workers.enter_context(worker_pool(1))
        _compute(record, p.stages, _reuse_from(previous, before, forced, p, cfg), staging, engine, timings)

        def start_funding() -> None:
            """Lists and cost estimate in the worker, from the parquet files just written, while this
            process writes the other outputs, the change report and the atlas (a partitioned run's
            lists have their own worker processes)."""
            if pool is not None and not record.partitioned:
                job = funding_job(cfg, record.state, staging)
                record.pending = {"eligible": pool.submit(run_lists, job), "costs": pool.submit(run_costs, job)}

        written_files, written = _timed(timings, "write", lambda: _write(record, staging, start_funding))
        funding: list[str] = []
        if not record.pending:
            funding = _timed(timings, "funding", lambda: write_run_funding(cfg, record.state, staging,
                                                                           record.partitioned))
        _check_inputs_unchanged(record.inputs)
        outputs: list[str] = []
        if changes is not None and previous is not None:
            outputs += _timed(timings, "changes", lambda: changes(previous, record, staging))
        report_staging = None
        if report is not None:
            report_staging = cfg.output.reports_dir / f".{run_id}.partial"
            report_staging.mkdir(parents=True)
            pages = _timed(timings, "report", lambda: report(record, report_staging))
            outputs += [f"reports/{run_id}/{f}" for f in pages]
        if record.pending:
            funding = _collect_funding(record, timings)
        outputs = written_files + funding + outputs
        timings["total"] = round(time.perf_counter() - started, 3)
        manifest = build_manifest(record, timings, outputs)
        manifest["stages"] = _catalog(p, record, written)
        manifest["stages"]["report"] = {"key": p.report_key, "status": "ran" if report else "skipped"}
        manifest["previous_run"] = previous.name if previous else None
        io.write_json(staging / "manifest.json", manifest)
    return _publish(cfg, run_id, staging, report_staging, manifest, record.ledger.status)


T = TypeVar("T")


def _timed(timings: dict[str, float], name: str, step: Callable[[], T]) -> T:
    t0 = time.perf_counter()
    result = step()
    timings[name] = round(time.perf_counter() - t0, 3)
    return result


@contextlib.contextmanager
def _run_log(path: Path, run_id: str) -> Iterator[None]:
    """The run's own log file (besides the console), and one line if the run fails."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        yield
    except BaseException:
        log.error("run %s failed; previous outputs are untouched", run_id)
        raise
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _reuse_from(previous: Path | None, before: dict[str, Any], forced: set[str], p: Plan,
                cfg: RunConfig) -> Callable[[Stage], StageResult | None]:
    """Reuse a stage's result from the previous run when its key is unchanged and it is not forced."""
    def reuse(stage: Stage) -> StageResult | None:
        entry = before.get(stage.name, {})
        if previous is None or stage.name in forced or entry.get("key") != p.keys[stage.name]:
            return None
        return cache.restore(stage, entry, previous, cfg.analysis.working_crs)
    return reuse


def _check_inputs_unchanged(inputs: list[dict[str, Any]]) -> None:
    """Stop (exit 2) when an input was replaced or changed while the run read it: the manifest's
    SHA-256 would otherwise name bytes the results did not come from."""
    for fp in inputs:
        if "stamp" in fp and input_stamp(Path(fp["path"])) != fp["stamp"]:
            raise DataSourceError(f"{fp['path']}: changed while the run was reading it (size or modification time "
                                  "differs from when it was hashed); nothing was published, run again")


def _collect_funding(record: RunRecord, timings: dict[str, float]) -> list[str]:
    """The worker's lists and cost estimate (waited for); "funding" is the worker's time for both,
    "funding wait" how long this process waited for them (in the atlas and here)."""
    for name in record.pending:
        record.wait_for(name)
    results = [record.pending[name].result() for name in ("eligible", "costs")]
    timings["funding"] = round(sum(seconds for _, seconds in results), 3)
    timings["funding wait"] = round(record.waited_s, 3)
    return [f for files, _ in results for f in files]


def _write(record: RunRecord, staging: Path, per_address_written: Callable[[], None]) -> tuple[list[str], Written]:
    written = write_outputs(record.cfg, record.state, record.ledger, staging, record.partitioned,
                            per_address_written)
    record.quarantine = record.ledger.all_quarantine()
    return list(written.files), written


def _compute(record: RunRecord, stages: list[Stage], reuse: Callable[[Stage], StageResult | None], staging: Path,
             engine: Engine, timings: dict[str, float]) -> None:
    """Run the stages: once over all addresses (with reuse), or mapped over address partitions and reduced."""
    cfg, state, ledger = record.cfg, record.state, record.ledger
    first = next(i for i, s in enumerate(stages) if s.per_partition)
    last = max(i for i, s in enumerate(stages) if s.per_partition) + 1
    before, mapped, after = stages[:first], stages[first:last], stages[last:]
    partitions = find_partitions(cfg)
    if partitions is not None and cfg.households.estimated:
        # Each partition would see every cell of the run without its addresses (moved or unallocated twice).
        raise ConfigError(f"[households] source = \"zensus\" does not work with partitioned addresses "
                          f"({cfg.addresses.path}) yet: give the addresses as one file")
    if partitions is not None and cfg.objections:
        raise ConfigError(f"[[objections]] do not work with partitioned addresses ({cfg.addresses.path}) yet: "
                          "give the addresses as one file")
    if partitions is None and (engine.workers or engine.scheduler):
        log.warning("the addresses are not partitioned (a folder of partition folders): --workers/--scheduler "
                    "are not used, the run goes on in this process")
    run_stages(before, state, ledger, reuse)
    if partitions is None:
        run_stages(mapped, state, ledger, reuse)
    else:
        # Germany scale: every per-partition stage per partition (no per-stage reuse), then the reduce.
        record.partitioned = True
        t0 = time.perf_counter()
        ref = record.reference_date

        repeats = cross_partition_duplicates(cfg, partitions)

        def stages_of(part: Partition) -> list[Stage]:
            narrowed = partition_config(cfg, part)
            return [s for s in plan(narrowed, ref, repeats.get(part.name, frozenset())) if s.per_partition]

        results = map_partitions(partitions, stages_of, state, staging, workers=engine.workers,
                                 scheduler=engine.scheduler)
        reduce_partitions(results, state, ledger)
        quarantine_orphans(cfg, orphan_provider_parts(cfg, partitions), ledger)
        ledger.status.update(dict.fromkeys((s.name for s in mapped), "ran"))
        timings["partitions"] = round(time.perf_counter() - t0, 3)
        timings.update({f"partition {r.name}": round(r.seconds, 3) for r in results})
    silent = deliveries_linking_nothing(ledger, [p.name for p in cfg.providers])
    if silent is not None:  # never publish a run in which a whole delivery counts for nothing
        raise InputDataError(silent + "; the run is not published")
    run_stages(after, state, ledger, reuse)
    timings.update(ledger.seconds)


def _catalog(p: Plan, record: RunRecord, written: Written) -> dict[str, Any]:
    """Per stage: key, status, and (single runs) where its results lie, for reuse by a later run."""
    catalog: dict[str, Any] = {}
    for s in p.stages:
        item: dict[str, Any] = {"key": p.keys[s.name], "status": record.ledger.status.get(s.name, "ran")}
        if s.reusable and not record.partitioned:
            outputs = {name: getattr(record.state, name) for name in s.makes}
            if "offers" in outputs:
                own = (s.params.get("delivery") or s.params["objections"]).name
                outputs["offers"] = {d: f for d, f in outputs["offers"].items() if d == own}
            for layered in ("withdrawals", "objections"):
                if layered in outputs:
                    outputs[layered] = {d: f for d, f in outputs[layered].items() if d == s.params["objections"].name}
            item["outputs"] = cache.locations(s, outputs, written.offer_rows)
            item["quarantine"] = written.quarantine.get(s.name, [])
            item["accounting"] = _stage_accounting(record, s.name)
        catalog[s.name] = item
    return catalog


def _publish(cfg: RunConfig, run_id: str, staging: Path, report_staging: Path | None, manifest: dict[str, Any],
             status: dict[str, str]) -> RunResult:
    """Rename the finished folders into place and move ``latest`` (each step atomic)."""
    final = cfg.output.dir / "runs" / run_id
    os.replace(staging, final)
    report_dir = None
    if report_staging is not None:
        report_dir = cfg.output.reports_dir / run_id
        os.replace(report_staging, report_dir)
        io.point_symlink(cfg.output.reports_dir / "latest", report_dir)
    io.point_symlink(cfg.output.dir / "latest", final)
    log.info("run %s published: %s (%d stage(s) ran, %d reused)", run_id, final,
             sum(v == "ran" for v in status.values()), sum(v == "reused" for v in status.values()))
    return RunResult(run_id, final, report_dir, manifest, changed=True, stages=dict(status))


def _forced(names: list[str], force: bool, from_stage: str | None) -> set[str]:
    if from_stage is not None and not any(n == from_stage or n.startswith(from_stage + " ") for n in names):
        raise ConfigError(f"--from {from_stage!r}: no such stage; stages are {names}")
    if force:
        return set(names)
    if from_stage is None:
        return set()
    first = next(i for i, n in enumerate(names) if n == from_stage or n.startswith(from_stage + " "))
    return set(names[first:])


def _report_dir(cfg: RunConfig, run_id: str) -> Path | None:
    path = cfg.output.reports_dir / run_id
    return path if path.exists() else None


def code_version() -> str:
    """Package version plus the git commit when run from a checkout."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent, check=False).stdout.strip()
        if rev:
            return f"{coverage.__version__}+{rev}"
    return coverage.__version__


def build_manifest(record: RunRecord, timings: dict[str, float], outputs: list[str]) -> dict[str, Any]:
    cfg, state = record.cfg, record.state
    assert state.tables is not None and state.boundaries is not None
    rows = {a.stage: a.rows_in for a in record.ledger.accounting}
    inputs = []
    for fp in record.inputs:
        path = Path(fp["path"])
        entry = {k: v for k, v in fp.items() if k != "stamp"}
        entry["rows"] = next((n for stage, n in rows.items() if stage.endswith(path.name)), None)
        if path.exists():
            entry["modified"] = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
        inputs.append(entry)
    land = state.tables["land"]
    return {
        "run_id": record.run_id,
        "created": record.created,
        "code_version": code_version(),
        "config_path": str(cfg.source) if cfg.source else None,
        "config_sha256": hashlib.sha256(cfg.source_bytes).hexdigest(),
        "config": cfg.source_text,
        "reference_date": record.reference_date.isoformat(),
        "data_date": cfg.report.data_date,
        "planned_until": state.planned_until,
        "boundaries_date": state.boundaries.valid_date,
        "inputs": inputs,
        "accounting": [a.as_dict() for a in record.ledger.accounting],
        "quarantine_total": len(record.quarantine) if record.quarantine is not None else 0,
        "totals": {"households": float(land["households"].sum()), "addresses": int(land["addresses"].sum()),
                   "unallocated_households": float(land["unallocated_households"].sum())},
        "timings_s": timings,
        "outputs": outputs,
    }


def _stage_accounting(record: RunRecord, stage: str) -> list[dict[str, Any]]:
    """The accounting entries a stage recorded (a stage may record several: read, then locate)."""
    return [a.as_dict() for a in record.ledger.by_stage.get(stage, [])]
