"""Runs the stages for one configuration and publishes the run atomically.

A run is built in ``<output>/runs/.<run-id>.partial`` and renamed to
``<output>/runs/<run-id>`` when every stage and every output succeeded; only
then does ``<output>/latest`` move. A crash leaves the previous run and
``latest`` untouched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import coverage
from coverage.config import RunConfig
from pipelines import io
from pipelines.outputs import write_outputs
from pipelines.stages import STAGES, VALIDATION_STAGES, Context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    report_dir: Path | None
    manifest: dict


def validate_inputs(cfg: RunConfig) -> Context:
    """Run only the reading, locating and linking stages: what ``bbcov validate`` reports."""
    ref = date.fromisoformat(cfg.analysis.reference_date) if cfg.analysis.reference_date else date.today()
    ctx = Context(cfg=cfg, reference_date=ref)
    for name, stage in STAGES:
        if name in VALIDATION_STAGES:
            stage(ctx)
    return ctx


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return "run-" + now.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid() % 10000:04d}"


def file_fingerprint(path: Path) -> dict:
    """Size and SHA-256 of a file, or of every file of a folder (bundles)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    size = 0
    for f in files:
        digest.update(f.name.encode())
        with f.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
        size += f.stat().st_size
    return {"path": str(path), "bytes": size, "sha256": digest.hexdigest(), "files": len(files)}


def run_pipeline(cfg: RunConfig, *, run_id: str | None = None,
                 report: Callable[[Context, Path], list[str]] | None = None) -> RunResult:
    """Execute every stage, write the outputs, publish the run and return its manifest."""
    run_id = run_id or new_run_id()
    runs_dir = cfg.output.dir / "runs"
    staging = runs_dir / f".{run_id}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    handler = logging.FileHandler(staging / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        return _run(cfg, run_id, staging, runs_dir, report)
    except BaseException:
        log.error("run %s failed; previous outputs are untouched (partial files in %s)", run_id, staging)
        raise
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _run(cfg: RunConfig, run_id: str, staging: Path, runs_dir: Path, report) -> RunResult:
    ref = date.fromisoformat(cfg.analysis.reference_date) if cfg.analysis.reference_date else date.today()
    ctx = Context(cfg=cfg, reference_date=ref)
    timings = {}
    started = time.perf_counter()
    for name, stage in STAGES:
        t0 = time.perf_counter()
        log.info("stage %s ...", name)
        stage(ctx)
        timings[name] = round(time.perf_counter() - t0, 3)
        last = ctx.accounting[-1]
        log.info("stage %s done in %.1f s (rows in %d, out %d, quarantined %s)", name, timings[name],
                 last.rows_in, last.rows_out, last.quarantined or 0)

    t0 = time.perf_counter()
    outputs = write_outputs(ctx, staging)
    timings["write"] = round(time.perf_counter() - t0, 3)
    report_dir = None
    if report is not None:
        t0 = time.perf_counter()
        report_staging = cfg.output.reports_dir / f".{run_id}.partial"
        if report_staging.exists():
            shutil.rmtree(report_staging)
        report_staging.mkdir(parents=True)
        outputs += [f"reports/{run_id}/{p}" for p in report(ctx, report_staging)]
        timings["report"] = round(time.perf_counter() - t0, 3)
    timings["total"] = round(time.perf_counter() - started, 3)

    manifest = build_manifest(ctx, run_id, timings, outputs)
    io.write_json(staging / "manifest.json", manifest)
    final = runs_dir / run_id
    os.replace(staging, final)
    if report is not None:
        report_dir = cfg.output.reports_dir / run_id
        os.replace(cfg.output.reports_dir / f".{run_id}.partial", report_dir)
        io.point_symlink(cfg.output.reports_dir / "latest", report_dir)
    io.point_symlink(cfg.output.dir / "latest", final)
    log.info("run %s published: %s", run_id, final)
    return RunResult(run_id, final, report_dir, manifest)


def read_manifest(run_dir: Path) -> dict:
    import json

    return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))


def build_manifest(ctx: Context, run_id: str, timings: dict, outputs: list[str]) -> dict:
    cfg = ctx.cfg
    inputs = [file_fingerprint(cfg.boundaries.path), file_fingerprint(cfg.addresses.path)]
    inputs += [file_fingerprint(p.path) for p in cfg.providers]
    config_text = cfg.source.read_text(encoding="utf-8") if cfg.source and cfg.source.exists() else ""
    land = ctx.artefacts["tables"]["land"]
    return {
        "run_id": run_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": coverage.__version__,
        "config_path": str(cfg.source) if cfg.source else None,
        "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
        "config": config_text,
        "reference_date": ctx.reference_date.isoformat(),
        "planned_until": ctx.artefacts["planned_until"],
        "boundaries_date": ctx.artefacts["boundaries"].valid_date,
        "inputs": inputs,
        "accounting": [a.as_dict() for a in ctx.accounting],
        "quarantine_total": len(ctx.artefacts.get("quarantine", [])),
        "totals": {"households": float(land["households"].sum()), "addresses": int(land["addresses"].sum())},
        "timings_s": timings,
        "outputs": outputs,
    }
