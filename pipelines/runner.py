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
import json
import logging
import os
import pickle
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import coverage
from coverage.config import RunConfig
from coverage.errors import ConfigError
from pipelines import io
from pipelines.fingerprint import file_fingerprint, params_hash, stage_key
from pipelines.lock import run_lock
from pipelines.outputs import write_outputs
from pipelines.partitioned import combine, find_partitions, map_partitions
from pipelines.stages import VALIDATION_STAGES, Context, Stage, all_offers, plan

log = logging.getLogger(__name__)

ReportFn = Callable[[Context, Path], list[str]]
ChangesFn = Callable[[Path, Context, Path], list[str]]


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    report_dir: Path | None
    manifest: dict
    changed: bool = True
    stages: dict[str, str] = field(default_factory=dict)  # stage -> "ran" | "reused"


def reference_date(cfg: RunConfig) -> date:
    return date.fromisoformat(cfg.analysis.reference_date) if cfg.analysis.reference_date else date.today()


def validate_inputs(cfg: RunConfig) -> Context:
    """Run only the reading, locating and linking stages: what ``bbcov validate`` reports."""
    ctx = Context(cfg=cfg, reference_date=reference_date(cfg))
    for stage in plan(cfg):
        if stage.name.startswith(VALIDATION_STAGES):
            stage.run(ctx)
    ctx.artefacts["offers"] = all_offers(ctx)
    return ctx


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by time, unique even for two runs in the same second."""
    now = now or datetime.now(UTC)
    return "run-" + now.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def read_manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))


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
    with run_lock(cfg.output.dir, wait_s):
        _remove_leftovers(cfg.output.dir / "runs", cfg.output.reports_dir)
        return _run(cfg, run_id or new_run_id(), report, changes, force, from_stage, engine)


def _remove_leftovers(*folders: Path) -> None:
    """Partial folders of crashed runs (we hold the lock, so none is in use)."""
    for folder in folders:
        for partial in folder.glob(".*.partial") if folder.exists() else []:
            log.warning("removing leftovers of an interrupted run: %s", partial)
            shutil.rmtree(partial, ignore_errors=True)


def _run(cfg: RunConfig, run_id: str, report: ReportFn | None, changes: ChangesFn | None, force: bool,
         from_stage: str | None, engine: Engine) -> RunResult:
    stages = plan(cfg)
    names = [s.name for s in stages]
    if from_stage is not None and not any(n == from_stage or n.startswith(from_stage + " ") for n in names):
        raise ConfigError(f"--from {from_stage!r}: no such stage; stages are {names}")
    previous = latest_run(cfg)
    before = read_manifest(previous).get("stages", {}) if previous else {}

    started = time.perf_counter()
    fingerprints = {str(p): file_fingerprint(p) for s in stages for p in s.inputs}
    keys: dict[str, str] = {}
    for s in stages:
        keys[s.name] = stage_key(s.name, [fingerprints[str(p)] for p in s.inputs], s.params, s.modules,
                                 [keys[a] for a in s.after])
    report_key = params_hash([keys["aggregate"], cfg.report, report is not None])
    forced = _forced(names, force, from_stage)
    unchanged = (previous is not None and not forced
                 and all(before.get(n, {}).get("key") == keys[n] for n in names)
                 and before.get("report", {}).get("key") == report_key)
    if unchanged:
        log.info("nothing changed since %s (inputs, parameters and code fingerprints are equal)", previous.name)
        return RunResult(previous.name, previous, _report_dir(cfg, previous.name), read_manifest(previous),
                         changed=False, stages=dict.fromkeys(names, "reused"))

    staging = cfg.output.dir / "runs" / f".{run_id}.partial"
    staging.mkdir(parents=True)
    handler = logging.FileHandler(staging / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        ctx = Context(cfg=cfg, reference_date=reference_date(cfg))
        ctx.artefacts["created"] = datetime.now(UTC).isoformat(timespec="seconds")
        status, timings = {}, {}
        partitions = find_partitions(cfg)
        if partitions is None and (engine.workers or engine.scheduler):
            log.warning("the addresses are not partitioned (a folder of partition folders): --workers/--scheduler "
                        "are not used, the run goes on in this process")
        if partitions is not None:
            # Germany scale: boundaries here, then every other stage per partition (no per-stage reuse).
            t0 = time.perf_counter()
            _execute(ctx, stages[0], staging / "cache" / _cache_name(stages[0].name))
            results = map_partitions(partitions, cfg, ctx.artefacts["boundaries"], ctx.reference_date, staging,
                                     workers=engine.workers, scheduler=engine.scheduler)
            combine(ctx, results)
            status = dict.fromkeys(names, "ran")
            timings["partitions"] = round(time.perf_counter() - t0, 3)
            timings.update({f"partition {r.name}": round(r.seconds, 3) for r in results})
        for s in stages if partitions is None else ():
            t0 = time.perf_counter()
            cached = previous / "cache" / _cache_name(s.name) if previous else None
            if (s.name not in forced and before.get(s.name, {}).get("key") == keys[s.name]
                    and cached is not None and cached.exists()):
                _restore(ctx, cached)
                _link_or_copy(cached, staging / "cache" / _cache_name(s.name))
                status[s.name] = "reused"
            else:
                _execute(ctx, s, staging / "cache" / _cache_name(s.name))
                status[s.name] = "ran"
            timings[s.name] = round(time.perf_counter() - t0, 3)
            log.info("stage %s %s in %.1f s", s.name, status[s.name], timings[s.name])

        t0 = time.perf_counter()
        outputs = write_outputs(ctx, staging)
        timings["write"] = round(time.perf_counter() - t0, 3)
        if changes is not None and previous is not None:
            t0 = time.perf_counter()
            outputs += changes(previous, ctx, staging)
            timings["changes"] = round(time.perf_counter() - t0, 3)
        report_staging = None
        if report is not None:
            t0 = time.perf_counter()
            report_staging = cfg.output.reports_dir / f".{run_id}.partial"
            report_staging.mkdir(parents=True)
            outputs += [f"reports/{run_id}/{p}" for p in report(ctx, report_staging)]
            timings["report"] = round(time.perf_counter() - t0, 3)
        timings["total"] = round(time.perf_counter() - started, 3)

        manifest = build_manifest(ctx, run_id, timings, outputs, fingerprints)
        manifest["stages"] = {n: {"key": keys[n], "status": status[n]} for n in names}
        manifest["stages"]["report"] = {"key": report_key, "status": "ran" if report else "skipped"}
        manifest["previous_run"] = previous.name if previous else None
        io.write_json(staging / "manifest.json", manifest)
    except BaseException:
        log.error("run %s failed; previous outputs are untouched", run_id)
        raise
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()

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
    return RunResult(run_id, final, report_dir, manifest, changed=True, stages=status)


def _forced(names: list[str], force: bool, from_stage: str | None) -> set[str]:
    if force:
        return set(names)
    if from_stage is None:
        return set()
    first = next(i for i, n in enumerate(names) if n == from_stage or n.startswith(from_stage + " "))
    return set(names[first:])


def _report_dir(cfg: RunConfig, run_id: str) -> Path | None:
    path = cfg.output.reports_dir / run_id
    return path if path.exists() else None


def _cache_name(stage: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stage) + ".pkl"


def _execute(ctx: Context, stage: Stage, cache: Path) -> None:
    """Run a stage and store what it added to the context, for reuse by later runs."""
    n_acc, n_q = len(ctx.accounting), len(ctx.quarantine)
    stage.run(ctx)
    result = {"artefacts": {k: ctx.artefacts[k] for k in stage.produces},
              "accounting": ctx.accounting[n_acc:], "quarantine": ctx.quarantine[n_q:]}
    with io.atomic_path(cache) as tmp, tmp.open("wb") as fh:
        pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _restore(ctx: Context, cache: Path) -> None:
    """Put a stage result from an earlier run back into the context (our own cache files only)."""
    with cache.open("rb") as fh:
        result = pickle.load(fh)
    ctx.artefacts.update(result["artefacts"])
    for entry in result["accounting"]:
        ctx.account(entry)
    ctx.quarantine.extend(result["quarantine"])


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def code_version() -> str:
    """Package version plus the git commit when run from a checkout."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent, check=False).stdout.strip()
        if rev:
            return f"{coverage.__version__}+{rev}"
    return coverage.__version__


def build_manifest(ctx: Context, run_id: str, timings: dict, outputs: list[str], fingerprints: dict) -> dict:
    cfg = ctx.cfg
    config_text = cfg.source.read_text(encoding="utf-8") if cfg.source and cfg.source.exists() else ""
    rows = {a.stage: a.rows_in for a in ctx.accounting}
    inputs = []
    for fp in fingerprints.values():
        path = Path(fp["path"])
        entry = dict(fp)
        entry["rows"] = next((n for stage, n in rows.items() if stage.endswith(path.name)), None)
        if path.exists():
            entry["modified"] = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
        inputs.append(entry)
    land = ctx.artefacts["tables"]["land"]
    return {
        "run_id": run_id,
        "created": ctx.artefacts["created"],
        "code_version": code_version(),
        "config_path": str(cfg.source) if cfg.source else None,
        "config_sha256": params_hash(config_text),
        "config": config_text,
        "reference_date": ctx.reference_date.isoformat(),
        "data_date": cfg.report.data_date,
        "planned_until": ctx.artefacts["planned_until"],
        "boundaries_date": ctx.artefacts["boundaries"].valid_date,
        "inputs": inputs,
        "accounting": [a.as_dict() for a in ctx.accounting],
        "quarantine_total": len(ctx.artefacts.get("quarantine", [])),
        "totals": {"households": float(land["households"].sum()), "addresses": int(land["addresses"].sum())},
        "timings_s": timings,
        "outputs": outputs,
    }
