"""A run's record for the atlas tests: real MV boundaries, random but consistent tables.

Shared by the atlas, export and browser tests (the full MV atlas is rendered once per test run,
see ``mv_atlas`` in conftest.py; the browser tests use a one-Kreis atlas).
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from itertools import pairwise
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from coverage.config import config_from_dict
from coverage.sources.bkg import read_bkg_bundle
from pipelines.execute import Ledger
from pipelines.fingerprint import file_fingerprint
from pipelines.runner import RunRecord
from pipelines.stages import Accounting, RunState
from tests.test_report import BKG, EVIL, GROUPS, make_tables

FORMULA = '=HYPERLINK("http://x","y")'
STREET_EVIL = '</script><script>alert("Straße")</script>'
#: best current download (all technologies) cycled through the addresses: every address class occurs
DOWNS = (1000.0, 250.0, 50.0, 16.0, np.nan, 100.0, 30.0)
RULES = ("white", "grey", "gigabit_2023", "gigabit_2024")
RULE_BASE = {"white": 30, "grey": 100, "gigabit_2023": 1000, "gigabit_2024": 1000}
KINDS = {"gemeinde_office": "Gemeindeverwaltung", "amt_office": "Amtsverwaltung",
         "kreis_office": "Kreisverwaltung", "school": "Schule"}
CONFIG = f"""
# MV atlas test run
[boundaries]
path = "{BKG}"
land = "13"
[addresses]
path = "addresses.csv"
[analysis]
thresholds_mbps = [2, 16, 30, 50, 100, 200, 400, 1000]
reference_date = "2021-06-30"
[report]
title = "Breitbandversorgung Mecklenburg-Vorpommern"
data_date = "2021-06-30"
attributions = ["Versorgungsdaten: synthetisch (Test)"]
"""


def _add_funding_and_plans(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Funding counts (households without a wired offer at the rule's level) and planned supply, summed up."""
    gem = tables["gemeinde"]
    hh = gem["households"].astype(float)
    new = {}
    for rule in RULES:
        t = RULE_BASE[rule]
        fund = hh - gem[f"hh_ge_{t}_wired"]
        new[f"hh_fund_{rule}"] = fund
        new[f"addr_fund_{rule}"] = np.round(fund * 0.45)
        new[f"hh_fund_{rule}_plan"] = np.floor(fund * 0.6)
        new[f"addr_fund_{rule}_plan"] = np.round(np.floor(fund * 0.6) * 0.45)
    for g in GROUPS:
        new[f"plan_hh_ge_1000_{g}"] = np.minimum(hh, gem[f"hh_ge_1000_{g}"]
                                                 + np.floor((hh - gem[f"hh_ge_1000_{g}"]) / 2))
    gem = pd.concat([gem, pd.DataFrame(new, index=gem.index)], axis=1)
    counts = list(new)
    out = {"gemeinde": gem}
    for level, key in (("amt", "vwg_ars"), ("kreis", "krs_ags"), ("land", "land")):
        sums = gem.groupby(key, as_index=False)[counts].sum()
        out[level] = tables[level].merge(sums, on=key, how="left", validate="1:1")
    for level, frame in out.items():
        h = frame["households"].astype(float)
        shares = {f"plan_share_ge_1000_{g}": np.where(h > 0, 100 * frame[f"plan_hh_ge_1000_{g}"] / h.where(h > 0),
                                                      np.nan) for g in GROUPS}
        out[level] = pd.concat([frame, pd.DataFrame(shares, index=frame.index)], axis=1)
    return out


def _add_businesses(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Business counts (a Gemeinde's businesses in proportion to its households at ≥ t, rounded down) and
    funding counts, summed up the levels, with shares recomputed from the sums."""
    gem = tables["gemeinde"]
    hh = gem["households"].astype(float)
    biz = gem["businesses"].astype(float)
    new = {}
    for col in [c for c in gem.columns if re.match(r"^(plan_)?hh_ge_", c)]:
        new[col.replace("hh_ge_", "biz_ge_")] = np.floor(biz * (gem[col] / hh.where(hh > 0)).fillna(0.0))
    for rule in RULES:
        new[f"biz_fund_{rule}"] = biz - new[f"biz_ge_{RULE_BASE[rule]}_wired"]
        new[f"biz_fund_{rule}_plan"] = np.floor(new[f"biz_fund_{rule}"] * 0.6)
    counts = list(new)
    out = {"gemeinde": pd.concat([gem, pd.DataFrame(new, index=gem.index)], axis=1)}
    for level, key in (("amt", "vwg_ars"), ("kreis", "krs_ags"), ("land", "land")):
        sums = out["gemeinde"].groupby(key, as_index=False)[counts].sum()
        out[level] = tables[level].merge(sums, on=key, how="left", validate="1:1")
    for level, frame in out.items():
        n = frame["businesses"].astype(float)
        shares = {c.replace("biz_ge_", "biz_share_ge_"): np.where(n > 0, 100 * frame[c] / n.where(n > 0), np.nan)
                  for c in counts if "biz_ge_" in c}
        out[level] = pd.concat([frame, pd.DataFrame(shares, index=frame.index)], axis=1).copy()  # one block each
    return out


def make_sites(gem: pd.DataFrame, amt: pd.DataFrame, kreis: pd.DataFrame, seed: int = 11) -> pd.DataFrame:
    """One town hall per Gemeinde and a school in every third, with random best service."""
    rng = np.random.default_rng(seed)
    amt_names = dict(zip(amt["vwg_ars"], amt["name"], strict=True))
    kreis_names = dict(zip(kreis["krs_ags"], kreis["name"], strict=True))
    rows = []
    for i, g in enumerate(gem.itertuples(index=False)):
        kinds = ["gemeinde_office"] + (["school"] if i % 3 == 0 else [])
        for kind in kinds:
            down = float(rng.choice([0, 16, 50, 100, 250, 1000]))
            rows.append({"address_id": f"S{len(rows):05d}", "site_kind": kind, "site_kind_label": KINDS[kind],
                         "site_name": f"{KINDS[kind]} {g.name}", "street": "Markt", "house_number": str(i % 20 + 1),
                         "postcode": "17000", "locality": str(g.name), "ags": g.ags, "vwg_ars": g.vwg_ars,
                         "krs_ags": g.krs_ags, "gemeinde_name": g.name, "amt_name": amt_names.get(g.vwg_ars),
                         "kreis_name": kreis_names.get(g.krs_ags), "best_down": down, "best_up": down / 10,
                         "best_tech": "ftth" if down >= 1000 else ("vdsl" if down else "none"),
                         "best_provider": "Küstennetz (fiktiv)" if down else "",
                         "plan_best_down": max(down, 1000.0) if i % 2 else down,
                         "service_class": "≥ 1000 Mbit/s" if down >= 1000 else "≥ 100 Mbit/s" if down >= 100
                         else "≥ 30 Mbit/s" if down >= 30 else "< 30 Mbit/s"})
    sites = pd.DataFrame(rows)
    sites.loc[0, "site_name"] = FORMULA
    return sites


def make_results(boundaries, per_gemeinde: int = 5, seed: int = 5) -> gpd.GeoDataFrame:
    """``per_gemeinde`` addresses inside each Gemeinde (every second Gemeinde one more), as the service
    stage leaves them: best service per group, funding verdicts, a site and an objection here and there."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, g in enumerate(boundaries.gemeinde.itertuples(index=False)):
        geom = g.geometry
        x0, y0, x1, y1 = geom.bounds
        want = per_gemeinde + i % 2
        xs = rng.uniform(x0, x1, 400)
        ys = rng.uniform(y0, y1, 400)
        inside = shapely.contains_xy(geom, xs, ys)
        for x, y in list(zip(xs[inside], ys[inside], strict=True))[:want]:
            rows.append({"ags": g.ags, "vwg_ars": g.vwg_ars, "krs_ags": g.krs_ags, "land": g.land, "x": x, "y": y})
    r = pd.DataFrame(rows)
    n = len(r)
    r.insert(0, "address_id", [f"A{i:06d}" for i in range(n)])
    r["street"] = [STREET_EVIL if i == 0 else f"Dorfstraße {i % 7}" for i in range(n)]
    r["house_number"] = [str(i % 40 + 1) for i in range(n)]
    r["households"] = (np.arange(n) % 4 + 1).astype(float)
    r["site_kind"] = np.where(np.arange(n) % 9 == 0, "school", None)
    down_all = np.asarray([DOWNS[i % len(DOWNS)] for i in range(n)])
    for g in GROUPS:
        down = down_all if g == "all" else np.where(np.arange(n) % 3 == 0, np.nan, np.minimum(down_all, 100.0))
        r[f"best_down_{g}"] = down
        r[f"best_tech_{g}"] = np.where(np.isfinite(down), "ftth" if g in ("all", "fibre") else "vdsl", None)
    r["best_up_all"] = down_all / 10
    r["best_provider_all"] = np.where(np.isfinite(down_all), "Küstennetz <fiktiv>", None)
    r["plan_best_down_all"] = np.fmax(down_all, 1000.0)
    for rule in RULES:
        r[f"fund_{rule}"] = ~(np.nan_to_num(down_all) >= RULE_BASE[rule])
        r[f"fund_{rule}_plan"] = False
    r["contested"] = np.arange(n) % 11 == 3
    return gpd.GeoDataFrame(r, geometry=gpd.points_from_xy(r["x"], r["y"]), crs=boundaries.gemeinde.crs
                            ).drop(columns=["x", "y"])


def write_run_files(run_dir: Path, results: gpd.GeoDataFrame, thresholds: list[float]) -> None:
    """What the run folder holds for the page maps: the 100 m grid and the cost-estimate lines (a
    chain through each Gemeinde's eligible addresses, and a link from its first to its last address)."""
    from coverage.grid import finish_grid, grid_counts
    from pipelines.outputs import write_grid

    x, y = shapely.get_x(results.geometry.values), shapely.get_y(results.geometry.values)
    counts = grid_counts(x, y, results.crs, results, thresholds, GROUPS)
    write_grid(finish_grid(counts, thresholds, GROUPS), thresholds, GROUPS, run_dir)
    lines = []
    for ags, part in results[results["fund_gigabit_2024"]].groupby("ags"):
        pts = list(zip(shapely.get_x(part.geometry.values), shapely.get_y(part.geometry.values), strict=True))
        lines += [{"level": "gemeinde", "area": ags, "kind": "tree", "length_m": 1.0,
                   "geometry": shapely.LineString([a, b])} for a, b in pairwise(pts)]
        lines.append({"level": "gemeinde", "area": ags, "kind": "link", "length_m": 1.0,
                      "geometry": shapely.LineString([pts[0], (pts[0][0] + 300, pts[0][1] + 300)])})
    lines.append({"level": "amt", "area": "x", "kind": "tree", "length_m": 1.0,
                  "geometry": shapely.LineString([(0, 0), (1, 1)])})  # other levels are not drawn
    (run_dir / "costs").mkdir(parents=True, exist_ok=True)
    gpd.GeoDataFrame(lines, crs=results.crs).to_file(run_dir / "costs" / "costs_tree.gpkg", layer="costs_tree",
                                                    driver="GPKG", engine="pyogrio")


STREETS = ("Lindenstraße", "Über der Mühle", "Am Markt")


def make_addresses(gem: pd.DataFrame) -> gpd.GeoDataFrame:
    """Up to three addresses per Gemeinde with addresses (the search index reads id, street, number,
    postcode, locality, ags): street ``STREETS[i]``, house number ``i + 1``, id ``AD-<ags>-<i>``; the
    first address's street is :data:`EVIL` (the index must carry it as data, never as markup)."""
    rows = []
    for g in gem.itertuples(index=False):
        for i in range(min(3, int(g.addresses))):
            rows.append({"address_id": f"AD-{g.ags}-{i}", "street": STREETS[i], "house_number": str(i + 1),
                         "postcode": "17000", "locality": str(g.name), "ags": str(g.ags)})
    frame = pd.DataFrame(rows)
    frame.loc[0, "street"] = EVIL
    return gpd.GeoDataFrame(frame)


def build_mv_record(root: Path, seed: int = 7, kreis: str | None = None, addresses: bool = False) -> RunRecord:
    """A run's record as the runner hands it to the report: MV boundaries (or one Kreis of them,
    by its 5-digit key), consistent random tables, sites, addresses (for the search index), quarantine and
    accounting; with ``addresses`` also per-address results and a run folder with a grid and cost lines."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "addresses.csv").write_text("address_id;x;y\n", encoding="utf-8")
    (root / "run.toml").write_text(CONFIG, encoding="utf-8")
    cfg = config_from_dict(tomllib.loads(CONFIG), root, root / "run.toml", text=CONFIG)
    boundaries = read_bkg_bundle(BKG, "EPSG:25833", land="13")
    if kreis is not None:
        boundaries = boundaries.subset((kreis,))
    tables = _add_businesses(_add_funding_and_plans(make_tables(boundaries, seed)))
    gem = tables["gemeinde"]
    with_hh = gem.index[gem["households"] > 0]
    gem.loc[with_hh[0], ["name", "display_name"]] = EVIL
    gem.loc[with_hh[1], ["name", "display_name"]] = FORMULA
    sites = make_sites(gem, tables["amt"], tables["kreis"])
    quarantine = pd.DataFrame({
        "source": ["addresses.csv", "addresses.csv", "dsl.csv"], "row": [6, 9, 5],
        "column": ["households", "households", "technology"], "value": ["drei", FORMULA, EVIL],
        "reason": ["bad_number", "bad_number", "unknown_technology"],
        "detail": ["a number cannot be parsed", "a number cannot be parsed",
                   "technology wording not in the alias table"],
    })
    ledger = Ledger(accounting=[Accounting("boundaries", 726, 726, note="116 Ämter, 8 Kreise"),
                                Accounting("read addresses.csv", 102, 100, {"bad_number": 2}),
                                Accounting("provider dsl.csv", 51, 50, {"unknown_technology": 1}, note="50 offers")])
    inputs = [file_fingerprint(p) for p in (cfg.boundaries.path, cfg.addresses.path)]
    state = RunState(boundaries=boundaries, tables=tables, sites=sites, addresses=make_addresses(gem))
    run_dir = None
    if addresses:
        state.results = make_results(boundaries)
        run_dir = root / "run"
        write_run_files(run_dir, state.results, list(cfg.analysis.thresholds_mbps))
    return RunRecord(cfg, "run-test", "2026-11-22T10:15:00+01:00", date(2021, 6, 30), state, ledger, inputs,
                     quarantine=quarantine, run_dir=run_dir)
