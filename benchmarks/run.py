"""`make bench`: the pipeline's heavy stages against the naive geopandas/pandas version of the same computation.

For each dataset: read addresses and provider records, locate (Gemeinde), link, best download per address and
group, households at >= t per Gemeinde. The fast path is the project's code (grid point-in-polygon, integer-coded
offers, compiled kernels); the naive path is geopandas ``sjoin`` + pandas ``merge``/``groupby``; the DuckDB path
is the SQL a user would write instead (benchmarks/duckdb_sql.py, DuckDB + spatial extension). All must give
identical Gemeinde counts (checked, not assumed). Each path runs in its own process so peak RSS is its own.
Writes ``benchmarks/results.md`` and prints the table. Not part of the tests; timings vary with load.

    python -m benchmarks.run [--datasets mv,de1,de3,de8,germany,nrw] [--paths fast,duckdb,naive,atlas]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The Germany demo's config (``bbcov synth --scope germany --out data/raw/de-2021-06``); another build with
#: the same layout can be named in BBCOV_BENCH_GERMANY.
DE = Path(os.environ.get("BBCOV_BENCH_GERMANY") or ROOT / "data/raw/de-2021-06/bbcov.toml")
DATASETS: dict[str, dict] = {
    "mv": {"config": ROOT / "data/raw/mv-2021-06/bbcov.toml", "label": "MV demo"},
    "nrw": {"config": DE, "lands": ("05",), "label": "Germany demo, NRW partition"},
    # How cost grows (issue 15): the first k Länder by key of the Germany demo.
    "de1": {"config": DE, "lands": ("01",), "label": "Germany demo, 1 Land (01)"},
    "de3": {"config": DE, "lands": ("01", "02", "03"), "label": "Germany demo, 3 Länder (01–03)"},
    "de8": {"config": DE, "lands": tuple(f"{i:02d}" for i in range(1, 9)), "label": "Germany demo, 8 Länder (01–08)"},
    "germany": {"config": DE, "label": "Germany demo, all 16 Länder"},
}
#: The naive path holds every table in memory at once (7 GB for NRW alone): above this many addresses it is not
#: run, to keep every process under the 8 GB budget of this shared machine.
NAIVE_MAX_ADDRESSES = 4_000_000
THRESHOLDS = (2, 16, 30, 50, 100, 200, 400, 1000)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def stage(self, name: str, rows: int, t0: float) -> None:
        s = time.perf_counter() - t0
        self.rows.append({"stage": name, "rows": rows, "seconds": round(s, 2),
                          "rows_per_s": round(rows / s) if s > 0 else None, "peak_rss_mb": round(_rss_mb())})


def _inputs(name: str):
    """The dataset's config; with ``lands``, its partitioned address and provider folders narrowed to those
    Länder (``land=LL`` folders) through a folder of file links, so every path reads exactly the same files."""
    import atexit
    import dataclasses
    import shutil
    import tempfile

    from coverage.config import load_config

    spec = DATASETS[name]
    cfg = load_config(spec["config"])
    if "lands" in spec:
        view = Path(tempfile.mkdtemp(prefix="bench-lands-"))
        atexit.register(shutil.rmtree, view, ignore_errors=True)

        def narrow(path: Path, kind: str) -> Path:  # links to files: pathlib's rglob does not follow linked folders
            for land in spec["lands"]:
                for f in sorted((path / f"land={land}").glob("*.parquet")):
                    (view / kind / f"land={land}").mkdir(parents=True, exist_ok=True)
                    (view / kind / f"land={land}" / f.name).symlink_to(f)
            return view / kind

        cfg = dataclasses.replace(
            cfg, addresses=dataclasses.replace(cfg.addresses, path=narrow(cfg.addresses.path, "addresses")),
            providers=tuple(dataclasses.replace(p, path=narrow(p.path, f"providers/{p.name}"), label=p.name)
                            if p.path.is_dir() else p for p in cfg.providers))
        if len(spec["lands"]) == 1:  # one partition: read it as one dataset, as the NRW sample always did
            cfg = dataclasses.replace(
                cfg, addresses=dataclasses.replace(cfg.addresses, path=cfg.addresses.path / f"land={spec['lands'][0]}"),
                providers=tuple(dataclasses.replace(p, path=p.path / f"land={spec['lands'][0]}")
                                if p.path.is_dir() else p for p in cfg.providers))
    if cfg.addresses.format == "hk-de":
        # The MV demo's config reads HK-DE + Zensus (the real path); all benchmark paths read the
        # generator's addresses.csv next to it, a table with households, as they always did.
        from coverage.config import AddressesConfig

        cfg = dataclasses.replace(cfg, addresses=AddressesConfig(path=cfg.addresses.path.parent / "addresses.csv",
                                                                 crs="EPSG:25833"))
    return cfg


def fast(name: str) -> dict:
    """The project's path: same functions as bbcov run."""
    from coverage.aggregate import gemeinde_counts
    from coverage.locate import Locator, locate_addresses
    from coverage.match import link_table_records
    from coverage.service import best_service
    from coverage.sources.addresses import read_addresses
    from coverage.sources.bkg import read_bkg_bundle
    from coverage.sources.providers import read_provider_table
    from pipelines.partitioned import find_partitions, partition_config

    cfg = _inputs(name)
    crs = cfg.analysis.working_crs
    timer = Timer()
    t0 = time.perf_counter()
    boundaries = read_bkg_bundle(cfg.boundaries.path, crs, land=cfg.boundaries.land)
    timer.stage("read Gemeinden (BKG bundle, reprojected)", len(boundaries.gemeinde), t0)
    t0 = time.perf_counter()
    locator = Locator.build(boundaries.gemeinde)
    timer.stage("point-in-polygon index build", len(boundaries.gemeinde), t0)
    parts = find_partitions(cfg) or [None]
    counts = []
    for part in parts:
        c = cfg if part is None else partition_config(cfg, part)
        t0 = time.perf_counter()
        addresses, _, n = read_addresses(c.addresses, crs)
        timer.stage("read addresses", n, t0)
        t0 = time.perf_counter()
        located, _ = locate_addresses(addresses, boundaries.gemeinde, 500, locator=locator)
        timer.stage("locate (exact point-in-polygon)", len(addresses), t0)
        offers, n_rec = [], 0
        for p in c.providers:
            if p.format not in ("address-csv", "address-table"):
                continue
            t0 = time.perf_counter()
            records, _, n = read_provider_table(p, crs, c.aliases)
            linked, _ = link_table_records(records, located, c.analysis.match_distance_m)
            offers.append(linked)
            n_rec += n
            timer.stage(f"read + link {p.name}", n, t0)
        import pandas as pd

        from coverage.columns import concat_frames
        offers = concat_frames(offers)
        offers = offers[(offers["status"] == "current").to_numpy()]
        t0 = time.perf_counter()
        service = best_service(located["address_id"], offers, c.analysis.groups)
        timer.stage("best service per address and group", len(offers), t0)
        t0 = time.perf_counter()
        # best_service answers in the order of the addresses (as the pipeline attaches it)
        merged = pd.concat([located[["ags", "households", "businesses", "site_kind"]],
                            service.drop(columns="address_id")], axis=1)
        counts.append(gemeinde_counts(merged, THRESHOLDS, list(c.analysis.groups)))
        timer.stage("households at thresholds per Gemeinde", len(merged), t0)
    result = pd.concat(counts).groupby(level=0).sum()
    return {"timer": _collapse(timer.rows), "counts": _digest(result)}


def naive(name: str) -> dict:
    """The straightforward geopandas/pandas computation of the same numbers."""
    import geopandas as gpd
    import pandas as pd

    from coverage.sources.bkg import read_bkg_bundle
    from coverage.sources.vector import parquet_files
    from coverage.technology import alias_table, normalise_alias

    cfg = _inputs(name)
    crs = cfg.analysis.working_crs
    timer = Timer()
    t0 = time.perf_counter()
    boundaries = read_bkg_bundle(cfg.boundaries.path, crs, land=cfg.boundaries.land)
    timer.stage("read Gemeinden (BKG bundle, reprojected)", len(boundaries.gemeinde), t0)
    aliases = alias_table(cfg.technology_aliases)
    t0 = time.perf_counter()
    path = cfg.addresses.path
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype={"address_id": str})
        addresses = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["x"], frame["y"]), crs=cfg.addresses.crs)
    else:
        addresses = pd.concat([gpd.read_parquet(f) for f in parquet_files(path)], ignore_index=True)
    addresses = addresses.to_crs(crs)
    timer.stage("read addresses", len(addresses), t0)
    t0 = time.perf_counter()
    joined = gpd.sjoin(addresses[["address_id", "households", "geometry"]], boundaries.gemeinde[["ags", "geometry"]],
                       predicate="intersects", how="inner")
    joined = joined.sort_values("ags").drop_duplicates("address_id")  # smallest AGS on shared borders
    timer.stage("locate (geopandas sjoin)", len(addresses), t0)
    offers = []
    for p in cfg.providers:
        if p.format not in ("address-csv", "address-table"):
            continue
        t0 = time.perf_counter()
        if p.path.suffix == ".csv":
            f = pd.read_csv(p.path, sep=";", decimal=",", encoding=p.table.encoding or "utf-8", dtype=str)
            f["down_mbps"] = pd.to_numeric(f["down_mbps"].str.replace(",", "."))
        else:
            f = pd.concat([pd.read_parquet(x) for x in parquet_files(p.path)], ignore_index=True)
        if "address_id" not in f:  # located by coordinates: nearest address within the match distance
            for c in ("x", "y", "up_mbps"):
                f[c] = pd.to_numeric(f[c].str.replace(",", "."))
            pts = gpd.GeoDataFrame(f, geometry=gpd.points_from_xy(f["x"], f["y"]), crs=p.crs).to_crs(crs)
            f = pd.DataFrame(gpd.sjoin_nearest(pts, addresses[["address_id", "geometry"]],
                                               max_distance=cfg.analysis.match_distance_m, how="inner"))
            f = f.drop_duplicates(subset=[c for c in f.columns if c not in ("index_right", "geometry")])
        f["technology"] = f["technology"].map(lambda w: str(aliases[normalise_alias(w)]))
        if "status" in f:
            f = f[f["status"].fillna("current").replace("", "current") == "current"]
        offers.append(f.merge(joined[["address_id"]], on="address_id", how="inner"))
        timer.stage(f"read + merge {p.name}", len(f), t0)
    offers = pd.concat(offers, ignore_index=True)
    t0 = time.perf_counter()
    best = joined[["address_id", "ags", "households"]].copy()
    for g, techs in cfg.analysis.groups.items():
        sub = offers[offers["technology"].isin([t.value for t in techs])]
        best = best.merge(sub.groupby("address_id")["down_mbps"].max().rename(f"best_down_{g}"), on="address_id",
                          how="left")
        best[f"best_down_{g}"] = best[f"best_down_{g}"].fillna(0.0)
    timer.stage("best download per address (groupby max)", len(offers), t0)
    t0 = time.perf_counter()
    out = {}
    for g in cfg.analysis.groups:
        for t in THRESHOLDS:
            out[f"hh_ge_{t}_{g}"] = best["households"].where(best[f"best_down_{g}"] >= t, 0.0)
    table = pd.DataFrame(out).assign(ags=best["ags"], households=best["households"]).groupby("ags").sum()
    timer.stage("households at thresholds per Gemeinde (groupby)", len(best), t0)
    return {"timer": _collapse(timer.rows), "counts": _digest(table)}


def duckdb(name: str) -> dict:
    """The DuckDB + spatial SQL pipeline of the same numbers (benchmarks/duckdb_sql.py)."""
    from benchmarks.duckdb_sql import run

    timer = Timer()
    table = run(_inputs(name), THRESHOLDS, timer.stage)
    return {"timer": _collapse(timer.rows), "counts": _digest(table)}


def atlas(name: str) -> dict:
    """A whole run with the atlas into a temporary folder: wall and CPU seconds of the run and of the
    report (CPU of this process and of the map worker processes: on a shared machine CPU time is the
    load-independent figure; the atlas budget is 60 s CPU each on 2 cores)."""
    import dataclasses
    import tempfile

    from coverage.config import load_config
    from pipelines.changes import changes_after_run
    from pipelines.report import render_report
    from pipelines.runner import run_pipeline

    cfg = load_config(DATASETS[name]["config"])
    with tempfile.TemporaryDirectory() as tmp:
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, dir=Path(tmp) / "out",
                                                                  reports_dir=Path(tmp) / "reports"))
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0, c0 = time.perf_counter(), time.process_time()
        result = run_pipeline(cfg, report=render_report, changes=changes_after_run, force=True)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
    timings = result.manifest["timings_s"]
    reaped = children.ru_utime + children.ru_stime - children0.ru_utime - children0.ru_stime
    return {"wall_s": round(time.perf_counter() - t0, 1), "cpu_main_s": round(time.process_time() - c0, 1),
            "cpu_workers_s": round(reaped + _forkserver_cpu(), 1),
            "report_s": timings.get("report"), "files": len(result.manifest["outputs"]),
            "peak_rss_mb": round(_rss_mb())}


def _forkserver_cpu() -> float:
    """CPU seconds of multiprocessing's fork server and the report workers it has reaped: the workers are its
    children, not this process's, so RUSAGE_CHILDREN never sees them (Linux /proc; 0 where unknown)."""
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)  # private, but the only handle there is
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split() if pid else []
    except OSError:
        fields = []
    # after the command name: state is field 3, utime 14, stime 15, cutime 16, cstime 17 (proc(5))
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def _collapse(rows: list[dict]) -> list[dict]:
    """Sum per-partition rows of the same stage."""
    out: dict[str, dict] = {}
    for r in rows:
        key = "read + link provider tables" if r["stage"].startswith(("read + link", "read + merge")) else r["stage"]
        acc = out.setdefault(key, {"stage": key, "rows": 0, "seconds": 0.0, "peak_rss_mb": 0})
        acc["rows"] += r["rows"]
        acc["seconds"] = round(acc["seconds"] + r["seconds"], 2)
        acc["peak_rss_mb"] = max(acc["peak_rss_mb"], r["peak_rss_mb"])
    for acc in out.values():
        acc["rows_per_s"] = round(acc["rows"] / acc["seconds"]) if acc["seconds"] else None
    return list(out.values())


def _digest(table) -> dict:
    """Per Gemeinde: households and households at every threshold per group (Gemeinden whose figures are all
    zero left out, so a Gemeinde without addresses compares equal to one not listed), and the column totals."""
    cols = ["households", *sorted(c for c in table.columns if c.startswith("hh_ge_"))]
    values = table[cols].astype("float64").round(3)
    values = values[(values != 0).any(axis=1)]
    return {"columns": cols, "per_ags": {str(k): list(v) for k, v in zip(values.index, values.to_numpy().tolist(),
                                                                              strict=True)},
            "totals": {c: round(float(values[c].sum()), 3) for c in cols}}


def _differences(a: dict, b: dict) -> str:
    """What differs between two digests, in one line (empty if the Gemeinde counts are identical)."""
    if a["per_ags"] == b["per_ags"]:
        return ""
    only = sorted(set(a["per_ags"]) ^ set(b["per_ags"]))
    diff = sorted(k for k in set(a["per_ags"]) & set(b["per_ags"]) if a["per_ags"][k] != b["per_ags"][k])
    cols = {c: (a["totals"][c], b["totals"].get(c)) for c in a["columns"] if a["totals"][c] != b["totals"].get(c)}
    return (f"{len(diff)} Gemeinden differ (first: {diff[:3]}), {len(only)} listed on one side only "
            f"(first: {only[:3]}); totals that differ: {dict(list(cols.items())[:4])}")


def _child(path: str, name: str) -> dict:
    """One path in its own process (its peak RSS is its own), with the load average before and after."""
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, "-m", "benchmarks.run", "--child", path, name], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"benchmark {path} {name} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.update(process_s=round(time.perf_counter() - t0, 1), load=(load0, os.getloadavg()[0]),
                  cpu_s=round(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime, 1))
    return result


PATHS = (("fast", "bbcov"), ("duckdb", "DuckDB + spatial SQL"), ("naive", "naive geopandas/pandas"))


def _total(res: dict) -> float:
    return sum(r["seconds"] for r in res["timer"])


def _rows(res: dict, stage: str) -> int:
    return max((r["rows"] for r in res["timer"] if r["stage"].startswith(stage)), default=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="mv,de1,de3,de8,germany",
                        help=f"comma-separated, of {', '.join(DATASETS)} (missing inputs are skipped)")
    parser.add_argument("--paths", default="fast,duckdb,naive,atlas",
                        help="comma-separated, of fast, duckdb, naive, atlas (the MV run with the atlas)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.md", help="results file")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, name = args.child
        print(json.dumps({"fast": fast, "naive": naive, "duckdb": duckdb, "atlas": atlas}[path](name)))
        return 0
    lines = [f"Machine: {platform.machine()}, {platform.python_version()}, "
             f"{os.cpu_count()} cores; measured {time.strftime('%Y-%m-%d %H:%M')} with `make bench` "
             f"(`python -m benchmarks.run --datasets {args.datasets} --paths {args.paths}`). Every path runs in its "
             "own process, one after the other; \"load\" is the 1-minute load average before → after it.", ""]
    summary = ["| dataset | addresses | path | seconds | × bbcov | CPU s (process) | × bbcov | peak RSS (MB) | "
               "addresses/s | load |", "|---|---|---|---|---|---|---|---|---|---|"]
    failed = []
    for name in args.datasets.split(","):
        if not DATASETS[name]["config"].exists():
            print(f"skipping {name}: {DATASETS[name]['config']} missing (build it with bbcov synth)", flush=True)
            continue
        results: dict[str, dict] = {}
        for path, _ in PATHS:
            if path not in args.paths.split(","):
                continue
            if path == "naive" and _rows(results.get("fast", {"timer": []}), "read addresses") > NAIVE_MAX_ADDRESSES:
                print(f"{name}: naive path left out (more than {NAIVE_MAX_ADDRESSES:,} addresses: over 8 GB)")
                continue
            results[path] = _child(path, name)
            print(f"{name} {path}: {_total(results[path]):.1f} s (load {results[path]['load'][0]:.1f} → "
                  f"{results[path]['load'][1]:.1f})", flush=True)
        ref = results.get("fast")
        lines += [f"### {DATASETS[name]['label']}", "",
                  "| path | stage | rows | seconds | rows/s | peak RSS (MB) |", "|---|---|---|---|---|---|"]
        for path, label in PATHS:
            if path in results:
                lines += [f"| {label} | {r['stage']} | {r['rows']:,} | {r['seconds']} | "
                          f"{(r['rows_per_s'] or 0):,} | {r['peak_rss_mb']:,} |" for r in results[path]["timer"]]
        lines.append("")
        for path, label in PATHS:
            if path not in results:
                continue
            res = results[path]
            total, n = _total(res), _rows(res, "read addresses")
            ratio = f"{total / _total(ref):.2f}" if ref else "–"
            cpu = f"{res['cpu_s'] / ref['cpu_s']:.2f}" if ref else "–"
            summary.append(f"| {DATASETS[name]['label']} | {n:,} | {label} | {total:.1f} | {ratio} | "
                           f"{res['cpu_s']} | {cpu} | "
                           f"{max(r['peak_rss_mb'] for r in res['timer']):,} | {round(n / total):,} | "
                           f"{res['load'][0]:.1f} → {res['load'][1]:.1f} |")
            if ref and path != "fast":
                diff = _differences(ref["counts"], res["counts"])
                lines.append(f"- Gemeinde counts of {label} and bbcov ({len(ref['counts']['per_ags']):,} Gemeinden): "
                             f"{'identical' if not diff else 'DIFFERENT: ' + diff}")
                if diff:
                    failed.append(f"{name}: {label}")
        lines.append("")
        print("\n".join(summary), flush=True)
    if "atlas" in args.paths.split(",") and "mv" in args.datasets.split(",") and DATASETS["mv"]["config"].exists():
        a = _child("atlas", "mv")
        lines += ["### MV demo end to end with the atlas (`bbcov run --force`)", "",
                  f"{a['files']} files; wall {a['wall_s']} s (report {a['report_s']} s), CPU {a['cpu_main_s']} s in "
                  f"this process and {a['cpu_workers_s']} s in the map workers (budget: 60 s each), peak RSS "
                  f"{a['peak_rss_mb']:,} MB; load average {a['load'][0]:.2f} → {a['load'][1]:.2f}", ""]
        print("\n".join(lines[-4:]), flush=True)
    latest = ROOT / "data" / "processed" / "latest"
    if "mv" in args.datasets.split(",") and (latest / "addresses.parquet").is_file():
        from benchmarks.bench_mst import measure

        lines += ["### Cost estimate: one MST over all eligible MV addresses (`python -m benchmarks.bench_mst`)", "",
                  measure(latest) + " (budget: 30 s on 2 cores)", ""]
        print("\n".join(lines[-3:]), flush=True)
    head = ["## Side by side", "",
            "Seconds: the sum of every stage, boundaries included (wall clock). CPU s: user + system time of the "
            "whole process (imports and start-up included; on a shared machine the figure that depends least on "
            "the load).", "", *summary, ""]
    args.out.write_text("\n".join([lines[0], "", *head, *lines[2:]]) + "\n", encoding="utf-8")
    print(f"written to {args.out}")
    if failed:
        print(f"Gemeinde counts differ from bbcov's: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
