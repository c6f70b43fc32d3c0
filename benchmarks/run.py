"""`make bench`: the pipeline's heavy stages against the naive geopandas/pandas version of the same computation.

For each dataset: read addresses and provider records, locate (Gemeinde), link, best download per address and
group, households at >= t per Gemeinde. The fast path is the project's code (grid point-in-polygon, integer-coded
offers, compiled kernels); the naive path is geopandas ``sjoin`` + pandas ``merge``/``groupby``. Both must give
identical Gemeinde counts (checked, not assumed). Each path runs in its own process so peak RSS is its own.
Writes ``benchmarks/results.md`` and prints the table. Not part of the tests; timings vary with load.

    python -m benchmarks.run [--datasets mv,nrw,germany]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {
    "mv": {"config": ROOT / "data/raw/mv-2021-06/bbcov.toml", "label": "MV demo"},
    "nrw": {"config": ROOT / "data/raw/de-2021-06/bbcov.toml", "land": "land=05",
            "label": "Germany-scale sample: NRW partition"},
    "germany": {"config": ROOT / "data/raw/de-2021-06/bbcov.toml", "label": "Germany (all partitions)"},
}
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
    """Config with the dataset's address and provider paths narrowed to the chosen partition(s)."""
    import dataclasses

    from coverage.config import load_config

    spec = DATASETS[name]
    cfg = load_config(spec["config"])
    if "land" in spec:
        land = spec["land"]
        cfg = dataclasses.replace(
            cfg, addresses=dataclasses.replace(cfg.addresses, path=cfg.addresses.path / land),
            providers=tuple(dataclasses.replace(p, path=p.path / land, label=p.name) if p.path.is_dir() else p
                            for p in cfg.providers))
    if cfg.addresses.format == "hk-de":
        # The MV demo's config reads HK-DE + Zensus (the real path); both benchmark paths read the
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
    boundaries = read_bkg_bundle(cfg.boundaries.path, crs, land=cfg.boundaries.land)
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
    boundaries = read_bkg_bundle(cfg.boundaries.path, crs, land=cfg.boundaries.land)
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
    return {"wall_s": round(time.perf_counter() - t0, 1), "cpu_main_s": round(time.process_time() - c0, 1),
            "cpu_workers_s": round(children.ru_utime + children.ru_stime - children0.ru_utime - children0.ru_stime, 1),
            "report_s": timings.get("report"), "files": len(result.manifest["outputs"]),
            "peak_rss_mb": round(_rss_mb()), "load": __import__("os").getloadavg()[0]}


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
    cols = sorted(c for c in table.columns if c.startswith("hh_ge_"))
    return {c: round(float(table[c].sum()), 3) for c in cols}


def _child(path: str, name: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.run", "--child", path, name], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"benchmark {path} {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="mv,nrw")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, name = args.child
        print(json.dumps({"fast": fast, "naive": naive, "atlas": atlas}[path](name)))
        return 0
    lines = [f"Machine: {platform.machine()}, {platform.python_version()}, "
             f"{__import__('os').cpu_count()} cores; measured {time.strftime('%Y-%m-%d')} with `make bench`.", ""]
    for name in args.datasets.split(","):
        if not DATASETS[name]["config"].exists():
            print(f"skipping {name}: {DATASETS[name]['config']} missing (build it with bbcov synth)")
            continue
        f, n = _child("fast", name), _child("naive", name)
        same = f["counts"] == n["counts"]
        ft = sum(r["seconds"] for r in f["timer"] if "index build" not in r["stage"])
        nt = sum(r["seconds"] for r in n["timer"])
        lines += [f"### {DATASETS[name]['label']}", "",
                  "| path | stage | rows | seconds | rows/s | peak RSS (MB) |", "|---|---|---|---|---|---|"]
        for label, res in (("bbcov", f), ("naive geopandas/pandas", n)):
            lines += [f"| {label} | {r['stage']} | {r['rows']:,} | {r['seconds']} | "
                      f"{(r['rows_per_s'] or 0):,} | {r['peak_rss_mb']:,} |" for r in res["timer"]]
        lines += ["", f"Total (without index build): bbcov {ft:.1f} s, naive {nt:.1f} s, "
                      f"speed-up {nt / ft:.1f}x; Gemeinde counts identical: {'yes' if same else 'NO'}", ""]
        print("\n".join(lines[-(len(f['timer']) + len(n['timer']) + 6):]), flush=True)
        if not same:
            diff = {k: (v, n["counts"].get(k)) for k, v in f["counts"].items() if v != n["counts"].get(k)}
            lines.append(f"Differences: {diff}")
    if "mv" in args.datasets.split(",") and DATASETS["mv"]["config"].exists():
        a = _child("atlas", "mv")
        lines += ["### MV demo end to end with the atlas (`bbcov run --force`)", "",
                  f"{a['files']} files; wall {a['wall_s']} s (report {a['report_s']} s), CPU {a['cpu_main_s']} s in "
                  f"this process and {a['cpu_workers_s']} s in the map workers (budget: 60 s each), peak RSS "
                  f"{a['peak_rss_mb']:,} MB; load average {a['load']:.2f} at the end", ""]
        print("\n".join(lines[-4:]), flush=True)
    latest = ROOT / "data" / "processed" / "latest"
    if "mv" in args.datasets.split(",") and (latest / "addresses.parquet").is_file():
        from benchmarks.bench_mst import measure

        lines += ["### Cost estimate: one MST over all eligible MV addresses (`python -m benchmarks.bench_mst`)", "",
                  measure(latest) + " (budget: 30 s on 2 cores)", ""]
        print("\n".join(lines[-3:]), flush=True)
    (ROOT / "benchmarks" / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"written to {ROOT / 'benchmarks' / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
