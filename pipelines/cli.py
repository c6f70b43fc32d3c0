"""The ``bbcov`` command.

Exit codes: 0 success (a new run was published), 3 success with nothing changed,
2 a problem with the user's input or configuration (one line on stderr, no
traceback), 4 another run holds the lock, 1 an internal failure.

What reaches the terminal from the data (names in ``explain`` and ``validate``, values quoted in
error and log lines) has its control characters escaped (``\x1b``; :mod:`coverage.text`), and
an error is printed on one line even when a parser's message has several.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from coverage.errors import CoverageError
from coverage.text import terminal_line, terminal_text
from pipelines.lock import LockedError

log = logging.getLogger("bbcov")

EXIT_OK, EXIT_FAILURE, EXIT_INPUT, EXIT_UNCHANGED, EXIT_LOCKED = 0, 1, 2, 3, 4
DEMO_DIR = Path("data/raw/mv-2021-06")
DEFAULT_SOURCES = Path(os.environ.get("BBCOV_SOURCES", "../shared/data"))


class _TerminalFormatter(logging.Formatter):
    """Log lines with control characters escaped: a message quoting data stays one harmless line."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return terminal_text(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name (ei: an exc_info tuple)
        return "\n".join(terminal_text(line) for line in super().formatException(ei).splitlines())


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_TerminalFormatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("pyogrio", "fiona", "rasterio", "matplotlib", "distributed", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_run(args: argparse.Namespace) -> int:
    from coverage.config import load_config
    from pipelines.changes import changes_after_run
    from pipelines.runner import Engine, run_pipeline

    config = args.config
    if config is None:
        config = DEMO_DIR / "bbcov.toml"
        if not (DEMO_DIR / ".complete").exists():
            log.info("no --config given and no demo data yet: building the MV demo into %s", DEMO_DIR)
            _build_demo(args.sources, DEMO_DIR, "2021-06", None)
    cfg = load_config(config)
    if args.pdf:
        cfg = dataclasses.replace(cfg, report=dataclasses.replace(cfg.report, pdf=True))
    if cfg.report.pdf and not args.no_report:
        from pipelines.pdf import require_chromium

        require_chromium()  # before the stages run, not after minutes of work
    if args.no_grid:
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, grid=False))
    result = run_pipeline(cfg, report=None if args.no_report else _render_report, changes=changes_after_run,
                          force=args.force, from_stage=args.from_stage, wait_s=args.wait,
                          engine=Engine(workers=args.workers, scheduler=args.scheduler))
    if not result.changed:
        print(f"nothing changed since {result.run_id}: inputs, parameters and code are the same")
        return EXIT_UNCHANGED
    totals = result.manifest["totals"]
    print(f"run {result.run_id}: {totals['addresses']} addresses, {totals['households']:.0f} households")
    ran = [s for s, v in result.stages.items() if v == "ran"]
    print(f"stages run: {', '.join(ran)}; reused: {len(result.stages) - len(ran)}")
    print(f"tables:  {result.run_dir / 'tables'}")
    if (result.run_dir / "changes").exists():
        print(f"changes: {result.run_dir / 'changes'} (against {result.manifest['previous_run']})")
    if result.report_dir is not None:
        print(f"report:  {(cfg.output.reports_dir / 'latest' / 'index.html')}")
    return EXIT_OK


def _render_report(record: Any, folder: Path) -> list[str]:
    """The atlas (:func:`pipelines.report.render_report`), imported only by runs that build it: the
    report's modules import matplotlib and jinja2, a second or more of a run without the report."""
    from pipelines.report import render_report

    return render_report(record, folder)


def _resolve_atlas(run: str, config: Path | None) -> Path:
    """An atlas folder given as a path, or as ``latest`` / a run id under the reports folder of ``config``
    (its ``[output] reports_dir``; without a config, ./reports as the demo writes it)."""
    from coverage.config import load_config

    reports = Path("reports") if config is None else load_config(config).output.reports_dir
    for candidate in (reports / run, Path(run)):
        if (candidate / "index.html").is_file():
            return candidate.resolve()
    raise CoverageError(f"{run}: not an atlas folder (no index.html); give a path, or 'latest' or a run id "
                        f"under {reports}" + ("" if config else " (or --config FILE for its reports)"))


def cmd_report(args: argparse.Namespace) -> int:
    from pipelines.lock import run_lock
    from pipelines.pdf import print_pdfs, require_chromium, steckbrief_jobs

    if not args.pdf:
        raise CoverageError("bbcov report: give --pdf (the atlas itself is built by `bbcov run`; "
                            "`bbcov run --force` rebuilds it)")
    atlas = _resolve_atlas(args.run, args.config)
    require_chromium()
    jobs = steckbrief_jobs(atlas)
    if not jobs:
        raise CoverageError(f"{atlas}: the atlas has no Steckbrief pages (steckbrief/*.html; atlases built "
                            "before they existed): rebuild it with `bbcov run --force`")
    with run_lock(atlas.parent, args.wait):  # a run must not replace the atlas while it is printed
        seconds = print_pdfs(jobs)
    print(f"pdf: {len(jobs)} Steckbriefe in {atlas / 'pdf'} ({seconds:.1f} s)")
    return EXIT_OK


def _build_demo(sources: Path, out: Path, vintage: str, seed: int | None) -> dict:
    from demo.build_mv import build_demo

    if seed is None:  # build_demo's own default seed
        return build_demo(sources, out, scope="mv", vintage=vintage)
    return build_demo(sources, out, scope="mv", vintage=vintage, seed=seed)


def cmd_validate(args: argparse.Namespace) -> int:
    from coverage.config import load_config
    from coverage.errors import InputDataError
    from pipelines.execute import deliveries_linking_nothing
    from pipelines.runner import validate_inputs

    cfg = load_config(args.config or DEMO_DIR / "bbcov.toml")
    _, ledger = validate_inputs(cfg)
    rows = [{"file / stage": terminal_text(a.stage.removeprefix("read ").removeprefix("provider ")),
             "rows read": a.rows_in, "accepted": a.rows_out, "quarantined": sum(a.quarantined.values()),
             "by reason": terminal_text(", ".join(f"{k} {v}" for k, v in a.quarantined.items()) or "-")}
            for a in ledger.accounting]
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(pd.DataFrame(rows).to_string(index=False))
    total = sum(sum(a.quarantined.values()) for a in ledger.accounting)
    print(f"\n{total} row(s) quarantined" + (" — run `bbcov run` to write them to quarantine/*.csv" if total else ""))
    silent = deliveries_linking_nothing(ledger, [p.name for p in cfg.providers])
    if silent is not None:  # the table above is printed; this line says why the inputs are not usable
        raise InputDataError(silent)
    return EXIT_OK


def cmd_synth(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if args.scope == "germany":
        from demo.build_germany import build_germany

        kwargs = {} if args.seed is None else {"seed": args.seed}
        summary = build_germany(args.sources, args.out, vintage=args.vintage, laender=args.land or None, **kwargs)
        summary = summary.get("counts", summary)
    else:
        summary = _build_demo(args.sources, args.out, args.vintage, args.seed)
    print(f"demo data for {args.scope} ({args.vintage}) written to {args.out} in {time.perf_counter() - t0:.1f} s")
    for key, value in summary.items():
        if not isinstance(value, dict | list):
            print(f"  {key}: {value}")
    return EXIT_OK


def cmd_compare_bba(args: argparse.Namespace) -> int:
    from coverage.compare import (
        KINDS,
        compare_with_bba,
        is_land_table,
        kind_of_file,
        spread_by_group,
        summary_by_group,
    )
    from coverage.sources.breitbandatlas import is_kreis_table, read_bba_table
    from pipelines import io

    run_dir = _resolve_run(args.run, args.config)
    if is_kreis_table(args.file):
        return _compare_bba_kreise(args, run_dir)
    bba = read_bba_table(args.file)
    if is_land_table(bba):
        return _compare_bba_laender(args, run_dir, bba)
    gemeinden = pd.read_csv(run_dir / "tables" / "coverage_gemeinde.csv", dtype={"ags": str})
    land = args.land or str(gemeinden["ags"].str[:2].mode().iloc[0])
    kind = args.kind or kind_of_file(args.file)
    share = KINDS[kind][0]
    if not any(str(c).startswith(f"{share}_") for c in gemeinden.columns):
        print(f"the run's Gemeinde table has no {share}_* columns to compare {kind} with "
              "(a run made before business figures existed: run it again)")
        return EXIT_INPUT
    result = compare_with_bba(gemeinden, bba, land=land, kind=kind)
    out = _write_comparison(args, run_dir, result.summary, result.detail, "Gemeinden", "gemeinden")
    if out is None:
        return EXIT_INPUT
    io.write_csv(out / f"bba_{Path(args.file).stem}_unmatched.csv", pd.DataFrame(
        {"ags": result.only_in_run + result.only_in_bba,
         "only_in": ["run"] * len(result.only_in_run) + ["breitbandatlas"] * len(result.only_in_bba)}))
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(f"Compared {kind} ({share}_*) with {args.file} (Land {land}); shares in %, differences in "
              "percentage points")
        print(result.summary.round(2).to_string(index=False))
        print()
        print(summary_by_group(result.summary).round(2).to_string(index=False))
        print()
        print("Per Gemeinde (absolute differences over all Gemeinden and thresholds; Gemeinden off by more "
              "than 5 / 10 pp at some threshold):")
        print(spread_by_group(result.detail).round(2).to_string(index=False))
    print(f"\nGemeinden only in the run: {len(result.only_in_run)}; only in the Breitbandatlas table: "
          f"{len(result.only_in_bba)} (AGS changed by municipal mergers; listed in {out})")
    return EXIT_OK


def _write_comparison(args: argparse.Namespace, run_dir: Path, summary: pd.DataFrame, detail: pd.DataFrame,
                      areas: str, name: str) -> Path | None:
    """Write a compare-bba result's summary and detail CSVs (``bba_<table>_summary.csv``,
    ``bba_<table>_<name>.csv``) into the run's ``compare`` folder or ``--out``, and return that folder;
    None (said in one line) when the run and the table have no ``areas`` or thresholds in common."""
    from pipelines import io

    if summary.empty:
        print(f"no common {areas} or thresholds to compare")
        return None
    out: Path = run_dir / "compare" if args.out is None else args.out
    stem = Path(args.file).stem
    io.write_csv(out / f"bba_{stem}_summary.csv", summary)
    io.write_csv(out / f"bba_{stem}_{name}.csv", detail)
    return out


def _compare_bba_laender(args: argparse.Namespace, run_dir: Path, bba: pd.DataFrame) -> int:
    """compare-bba with the Land table (``bundesland_privat_…``): the run's Land shares, per group and threshold."""
    from coverage.compare import (
        LAND_TOLERANCE_PP,
        compare_laender_with_bba,
        kind_of_file,
        laender_by_group,
        laender_off,
    )

    laender = pd.read_csv(run_dir / "tables" / "coverage_land.csv", dtype={"land": str})
    if args.land:
        laender = laender[laender["land"].str.zfill(2) == str(args.land).zfill(2)]
    kind = args.kind or kind_of_file(args.file)
    result = compare_laender_with_bba(laender, bba, kind=kind)
    if _write_comparison(args, run_dir, result.summary, result.detail, "Länder", "laender") is None:
        return EXIT_INPUT
    off = laender_off(result.detail)
    with pd.option_context("display.width", 160, "display.max_rows", 300):
        print(f"Compared {kind} per Land with {args.file}; shares in %, differences in percentage points")
        print(result.summary.round(2).to_string(index=False))
        print()
        print(laender_by_group(result.detail).round(2).to_string(index=False))
        print()
        if off.empty:
            print(f"No Land is off by more than {LAND_TOLERANCE_PP:g} pp at any compared threshold.")
        else:
            print(f"Länder off by more than {LAND_TOLERANCE_PP:g} pp ({len(off)} Land × group × threshold):")
            print(off.round(2).to_string(index=False))
    print(f"\nLänder compared: {result.detail['key'].nunique()}; Länder in the table without households in "
          f"the run: {len(result.only_in_bba)}")
    return EXIT_OK


def _compare_bba_kreise(args: argparse.Namespace, run_dir: Path) -> int:
    """compare-bba with the Kreis table (.xls): households, businesses and schools per Kreis."""
    from coverage.compare import compare_kreise_with_bba
    from coverage.sources.breitbandatlas import read_bba_kreis_table

    kreise = pd.read_csv(run_dir / "tables" / "coverage_kreis.csv", dtype={"krs_ags": str, "land": str})
    sites_path = run_dir / "tables" / "sites_kreis.csv"
    sites = (pd.read_csv(sites_path, dtype={"krs_ags": str}) if sites_path.exists()
             else pd.DataFrame(columns=["krs_ags", "site_kind", "sites"]))
    land = args.land or str(kreise["krs_ags"].str[:2].mode().iloc[0])
    result = compare_kreise_with_bba(kreise, sites, read_bba_kreis_table(args.file), land=land)
    if _write_comparison(args, run_dir, result.summary, result.detail, "Kreise", "kreise") is None:
        return EXIT_INPUT
    by_group = (result.summary.groupby(["kind", "group"], sort=True)
                .agg(thresholds=("threshold_mbps", lambda t: ", ".join(f"{v:g}" for v in t)),
                     mean_abs_diff_pp=("mean_abs_diff_pp", "mean"), max_abs_diff_pp=("max_abs_diff_pp", "max"),
                     kreise=("kreise", "max"))
                .reset_index())
    with pd.option_context("display.width", 160, "display.max_rows", 300):
        print(f"Compared per Kreis (households, businesses, schools) with {args.file} (Land {land}); shares in %, "
              "differences in percentage points")
        print(result.summary.round(2).to_string(index=False))
        print()
        print(by_group.round(2).to_string(index=False))
        schools = result.detail[result.detail["kind"] == "schools"]
        if len(schools):
            print("\nSchools per Kreis (run):")
            print(schools.groupby("key")["weight"].first().astype(int).to_string())
    print(f"\nKreise only in the run: {len(result.only_in_run)}; only in the Breitbandatlas table: "
          f"{len(result.only_in_bba)}")
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    import tomllib

    from coverage.config import config_from_dict
    from coverage.explain import explain_address
    from pipelines.runner import read_manifest

    run_dir = _resolve_run(args.run, args.config)
    manifest = read_manifest(run_dir)
    cfg = config_from_dict(tomllib.loads(manifest["config"]), base_dir=Path(manifest["config_path"]).parent)
    addresses = pd.read_parquet(run_dir / "addresses.parquet", filters=[("address_id", "==", args.address_id)])
    if addresses.empty:
        raise CoverageError(f"{args.address_id}: no such address in run {run_dir.name} "
                            "(quarantined addresses are listed in its quarantine/ folder)")
    offers = pd.read_parquet(run_dir / "offers.parquet", filters=[("address_id", "==", args.address_id)])
    objections = None
    if (run_dir / "objections.csv").exists():
        listed = pd.read_csv(run_dir / "objections.csv", dtype=str, keep_default_na=False)
        objections = listed[listed["address_id"] == args.address_id].assign(
            applied=lambda f: f["applied"].str.casefold() == "true")
    lines = explain_address(addresses.iloc[0], offers, cfg.analysis.groups, cfg.funding_rules,
                            manifest.get("planned_until", "?"), objections)
    print("\n".join(lines))
    return EXIT_OK


def cmd_eligible(args: argparse.Namespace) -> int:
    import tomllib

    from coverage.config import config_from_dict, load_config
    from coverage.eligible import area_catalog, area_mask, eligible_list, list_labels, resolve_area
    from pipelines.funding_outputs import (
        gemeinde_names,
        project_polygons,
        run_withdrawals,
        without_withdrawn,
        write_list,
    )
    from pipelines.runner import read_manifest

    if args.out.suffix.lower() not in (".xlsx", ".csv", ".gpkg"):
        raise CoverageError(f"{args.out}: --out must end in .xlsx, .csv or .gpkg")
    run_dir = _resolve_run(args.run, args.config)
    manifest = read_manifest(run_dir)
    cfg = load_config(args.config) if args.config else config_from_dict(
        tomllib.loads(manifest["config"]), base_dir=Path(manifest["config_path"]).parent)
    rules = {r.name: r for r in cfg.funding_rules}
    if args.rule is not None and args.rule not in rules:
        raise CoverageError(f"--rule {args.rule}: unknown funding rule; known: {', '.join(rules)}")
    tables = {level: pd.read_csv(run_dir / "tables" / f"coverage_{level}.csv", dtype=str, keep_default_na=False)
              for level in ("gemeinde", "amt", "kreis", "land")}
    polygons = project_polygons(cfg)
    addresses = pd.read_parquet(run_dir / "addresses.parquet")
    area = resolve_area(args.area, area_catalog(tables, list(polygons)),
                        lambda a: area_mask(addresses, a, polygons))
    chosen = addresses[area_mask(addresses, area, polygons)]
    if args.rule is not None:
        chosen = chosen[chosen[f"fund_{args.rule}" + ("_plan" if args.plan else "")].to_numpy(dtype=bool)]
    offers = pd.read_parquet(run_dir / "offers.parquet", filters=[("address_id", "in", chosen["address_id"].tolist())]
                             ) if len(chosen) else pd.read_parquet(run_dir / "offers.parquet").head(0)
    offers = without_withdrawn(offers, run_withdrawals(run_dir), addresses["address_id"])
    groups = list(cfg.analysis.groups)
    frame = eligible_list(chosen, offers, groups, cfg.funding_rules, gemeinde_names(tables))
    write_list(args.out, frame, list_labels(list(frame.columns), groups, cfg.funding_rules),
               cfg.analysis.working_crs, "Adressen")
    which = f"eligible under {args.rule}" + (" (with planned supply)" if args.plan else "") if args.rule else "all"
    print(f"{area.describe()}: {len(frame)} addresses ({which}) written to {args.out}")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from pipelines.changes import load_run, write_change_report

    a, b = _resolve_run(args.run_a, args.config), _resolve_run(args.run_b, args.config)
    out = args.out or (b / "changes" / f"vs-{a.name}")
    written = write_change_report(load_run(a), load_run(b), out, args.tolerance_pp)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    print(f"changes {a.name} -> {b.name} (tolerance ±{args.tolerance_pp:g} pp), written to {out}:")
    for key, value in summary.items():
        if key not in ("run_a", "run_b", "tolerance_pp"):
            print(f"  {key}: {value}")
    print(f"  files: {', '.join(written)}")
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    from pipelines.publish import build_package, load_run_config, publish_settings, write_package
    from pipelines.runner import read_manifest

    run_dir = _resolve_run(args.run, args.config)
    manifest = read_manifest(run_dir)
    run_cfg = load_run_config(run_dir, manifest)
    settings = publish_settings(args.config, run_cfg)
    settings.metadata_contact()  # a missing contact stops here, before any work
    pkg = build_package(run_dir, settings, run_cfg, manifest)
    files = write_package(pkg, args.out)
    suppressed = len(pkg.report) - 1
    print(f"published run {pkg.run_id} to {args.out}: {len(files)} files; {suppressed} suppression(s) listed in "
          "disclosure_report.csv")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from pipelines.serve import serve

    serve(args.package, host=args.host, port=args.port, url=args.url)
    return EXIT_OK


DEFAULT_OUTPUT = Path("data/processed")


def _resolve_run(run: str, config: Path | None = None) -> Path:
    """A run folder given as a path, or as ``latest`` / a run id under the output folder of ``config``
    (its ``[output] dir``; without a config, ./data/processed as the demo writes it)."""
    from coverage.config import load_config

    output = DEFAULT_OUTPUT if config is None else load_config(config).output.dir
    path = Path(run)
    named = (output / "runs" / run, output / run)
    for candidate in (*named, path) if config is not None else (path, *named):
        if (candidate / "manifest.json").exists():
            return candidate.resolve()
    raise CoverageError(f"{run}: not a run folder (no manifest.json); give a path, or 'latest' or a run id "
                        f"under {output / 'runs'}" + ("" if config else " (or --config FILE for its runs)"))


CONFIG_RUNS_HELP = ("TOML run configuration whose runs to use: run ids and 'latest' are looked up under its "
                    "[output] dir (default: ./data/processed)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bbcov", description="Broadband coverage analysis for municipalities.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run every stage for a configuration (default: the MV demo)",
                         description="Run every stage. Without --config, runs the MV demo "
                                     f"({DEMO_DIR}/bbcov.toml), building its inputs first if missing.")
    run.add_argument("--config", type=Path, help="TOML run configuration")
    run.add_argument("--sources", type=Path, default=DEFAULT_SOURCES,
                     help="open-data folder for building the demo (default: %(default)s or $BBCOV_SOURCES)")
    run.add_argument("--no-report", action="store_true", help="skip the HTML report")
    run.add_argument("--pdf", action="store_true",
                     help="also print a PDF Steckbrief per Kreis and Amt into reports/<run>/pdf/ (headless "
                          "Chromium; the same as [report] pdf = true)")
    run.add_argument("--force", action="store_true", help="run every stage even if nothing changed")
    run.add_argument("--from", dest="from_stage", metavar="STAGE",
                     help="rerun this stage and every later one (boundaries, addresses, provider, service, aggregate)")
    run.add_argument("--no-grid", action="store_true", help="skip the 100 m INSPIRE grid outputs")
    run.add_argument("--workers", type=int, metavar="N",
                     help="partitioned data: start a local Dask cluster with N worker processes")
    run.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                     help="partitioned data: run the partitions on this existing Dask cluster")
    run.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="wait up to SECONDS for another run's lock instead of exiting with code 4")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="print the PDF Steckbriefe (one per Kreis and Amt) of a finished run's atlas",
                         description="Print the Steckbrief page of every Kreis and Amt of an atlas "
                                     "(reports/<run>/steckbrief/) to reports/<run>/pdf/ with headless Chromium. "
                                     "The atlas itself is built by `bbcov run` (with --pdf or [report] pdf = true "
                                     "it prints the PDFs too).")
    rep.add_argument("run", nargs="?", default="latest",
                     help="atlas folder, or 'latest' or a run id under the reports folder (default: %(default)s)")
    rep.add_argument("--config", type=Path, help="TOML run configuration whose [output] reports_dir to use "
                                                  "(default: ./reports)")
    rep.add_argument("--pdf", action="store_true", help="print the PDF Steckbriefe")
    rep.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="wait up to SECONDS for a run's lock on the reports folder instead of exiting with code 4")
    rep.set_defaults(func=cmd_report)

    validate = sub.add_parser("validate", help="read and check every input; print rows read/accepted/quarantined",
                              description="Read the boundaries, addresses and provider deliveries, locate and link "
                                          "them, and print per file the rows read, accepted and quarantined by "
                                          "reason. Writes nothing.")
    validate.add_argument("--config", type=Path, help=f"TOML run configuration (default: {DEMO_DIR}/bbcov.toml)")
    validate.set_defaults(func=cmd_validate)

    synth = sub.add_parser("synth", help="build realistic demo inputs from real open data",
                           description="Generate deterministic demo addresses and fictional provider deliveries, "
                                       "calibrated to the published Breitbandatlas shares.")
    synth.add_argument("--scope", choices=["mv", "germany"], default="mv",
                       help="mv: the MV demo (CSV/GPKG/GeoTIFF deliveries); germany: > 20 M addresses as "
                            "partitioned GeoParquet, Land by Land in bounded memory (default: %(default)s)")
    synth.add_argument("--land", action="append", metavar="LL",
                       help="with --scope germany: only these Länder (two-digit key; repeatable)")
    synth.add_argument("--vintage", default="2021-06", help="Breitbandatlas vintage to calibrate to: "
                       "2019-12, 2020-06, 2020-12 or 2021-06 (default: %(default)s)")
    synth.add_argument("--out", type=Path, required=True, help="output folder (replaced atomically)")
    synth.add_argument("--seed", type=int, default=None, help="random seed (default: fixed)")
    synth.add_argument("--sources", type=Path, default=DEFAULT_SOURCES,
                       help="folder with bkg-vg5000-2021/, zensus2022/, breitbandatlas/ (default: %(default)s)")
    synth.set_defaults(func=cmd_synth)

    cmp_ = sub.add_parser("compare-bba", help="compare a run's Gemeinde shares with a Breitbandatlas table",
                          description="Mean absolute differences per technology group and threshold between a "
                                      "run and a published Breitbandatlas Gemeinde table (households or, for a "
                                      "Gewerbe table, businesses), per Kreis against the Kreis table (.xls: "
                                      "households, businesses and schools), or per Land against the Land table "
                                      "(bundesland_privat_2021_1.csv: mean/max per group, Länder off by > 1 pp).")
    cmp_.add_argument("run", help="run folder, run id or 'latest' (e.g. data/processed/latest)")
    cmp_.add_argument("file", type=Path, help="Breitbandatlas CSV (e.g. gemeinde_bezirke_privat_2021_mitte.csv), or "
                      "the Kreis table 2021_BBA_Kreisdaten.xls (households, businesses and schools per Kreis), or the "
                      "Land table bundesland_privat_2021_1.csv (per Land; chosen by its two-digit keys)")
    cmp_.add_argument("--land", help="two-digit Land key (default: the run's; with the Land table: every Land)")
    cmp_.add_argument("--kind", choices=["households", "businesses"],
                      help="compare household shares (share_ge_*) or business shares (biz_share_ge_*); default: "
                           "businesses for a Gewerbe table (…_gew_… in the file name), else households")
    cmp_.add_argument("--out", type=Path, help="folder for the comparison CSVs (default: RUN/compare)")
    cmp_.add_argument("--config", type=Path, help=CONFIG_RUNS_HELP)
    cmp_.set_defaults(func=cmd_compare_bba)
    diff = sub.add_parser("diff", help="what changed between two runs, where and why",
                          description="Change report between two runs: per Gemeinde/Amt/Kreis share changes (with a "
                                      "tolerance band), addresses that crossed a threshold and the offer that "
                                      "caused it, providers/technologies and addresses that appeared or vanished, "
                                      "funding-class changes.")
    diff.add_argument("run_a", help="earlier run (folder or id)")
    diff.add_argument("run_b", help="later run (folder or id)")
    diff.add_argument("--tolerance-pp", type=float, default=0.5, help="share changes within ± this are not flagged")
    diff.add_argument("--out", type=Path, help="folder for the CSVs (default: RUN_B/changes/vs-RUN_A)")
    diff.add_argument("--config", type=Path, help=CONFIG_RUNS_HELP)
    diff.set_defaults(func=cmd_diff)

    explain = sub.add_parser("explain", help="show every offer, the best service and funding verdicts of one address",
                             description="Explain one address of a run: offers and how they were matched, best "
                                         "service per technology group, and each funding rule's verdict.")
    explain.add_argument("address_id", help="address_id as in the address list")
    explain.add_argument("--run", default="latest",
                         help="run folder, run id or 'latest' (default: %(default)s, of --config's output folder "
                              "or ./data/processed)")
    explain.add_argument("--config", type=Path, help=CONFIG_RUNS_HELP)
    explain.set_defaults(func=cmd_explain)

    pub = sub.add_parser("publish", help="open-data package of a run (INSPIRE grid, areas, metadata), privacy-safe",
                         description="Build an open-data package from a finished run: Gemeinde, Amt, Kreis and "
                                     "Land figures and the INSPIRE grid as GeoPackage and CSV, ISO 19139 / DCAT "
                                     "metadata, after the disclosure rules of [publish] (README: Publication).")
    pub.add_argument("run", nargs="?", default="latest", help="run folder, run id or 'latest' (default)")
    pub.add_argument("--out", type=Path, required=True, help="package folder (replaced atomically)")
    pub.add_argument("--config", type=Path, help="TOML configuration whose [publish] section and runs to use "
                                                "(default: the run's own configuration)")
    pub.set_defaults(func=cmd_publish)

    srv = sub.add_parser("serve", help="serve a published package as OGC API – Features (pygeoapi)",
                         description="Serve a package made by `bbcov publish` as OGC API – Features. Binds to "
                                     "127.0.0.1 unless told otherwise; put a web server in front for the public.")
    srv.add_argument("package", nargs="?", type=Path, default=Path(), help="package folder (default: .)")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    srv.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    srv.add_argument("--url", help="public URL the clients use (behind a reverse proxy); default http://HOST:PORT")
    srv.set_defaults(func=cmd_serve)

    eligible = sub.add_parser("eligible", help="list the addresses of an area with every funding verdict",
                              description="Every address of a Gemeinde, Amt, Kreis or project area (by key or "
                                          "name) with Gemeinde, street address, households, businesses, site, best "
                                          "current and planned service per group, each funding rule's verdict and "
                                          "the offer that decided it.")
    eligible.add_argument("--area", required=True, metavar="KEY_OR_NAME",
                          help="AGS, Amt ARS, Kreis key, or a name (also of a [[project_areas]] polygon)")
    eligible.add_argument("--rule", help="only the addresses eligible under this funding rule (e.g. gigabit_2024)")
    eligible.add_argument("--plan", action="store_true", help="with --rule: eligible even with planned supply")
    eligible.add_argument("--run", default="latest", help="run folder, run id or 'latest' (default: %(default)s)")
    eligible.add_argument("--config", type=Path, help=CONFIG_RUNS_HELP + "; also its funding rules and "
                          "[[project_areas]] (default: the run's own configuration)")
    eligible.add_argument("--out", type=Path, required=True, help="FILE.xlsx (German headers), .csv or .gpkg")
    eligible.set_defaults(func=cmd_eligible)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    _configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args))
    except LockedError as exc:
        print(f"bbcov: {terminal_line(exc)}", file=sys.stderr)
        return EXIT_LOCKED
    except CoverageError as exc:
        print(f"bbcov: error: {terminal_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as exc:
        if exc.errno is None:
            log.exception("internal error (this is a bug; please report it with the log above)")
            return EXIT_FAILURE
        # a file or folder that cannot be read or written (read-only, full disk, no permission): the user's to fix
        log.debug("file system error", exc_info=True)
        print(terminal_line(f"bbcov: error: {exc.filename or 'a file'}: {exc.strerror}; earlier results are "
                            "untouched"), file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("bbcov: interrupted", file=sys.stderr)
        return EXIT_FAILURE
    except Exception:
        log.exception("internal error (this is a bug; please report it with the log above)")
        return EXIT_FAILURE
    finally:  # leave logging as we found it (matters when main() is called in-process)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


if __name__ == "__main__":
    sys.exit(main())
