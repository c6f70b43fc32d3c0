"""A finished run of all 726 MV Gemeinden for the publish / OGC API tests, built in a few seconds.

Boundaries: the real BKG VG5000 bundle cut to Land 13 (same layers, fields and notices; reading all of
Germany takes ten seconds, one Land one). Addresses: 3 to 12 random points inside every Gemeinde, 1 to
4 households each. Offers: two fictitious providers, VDSL for four addresses in five and fibre for one
in three. A full ``bbcov run`` of this world spends most of its time on outputs ``bbcov publish`` never
reads, so the run folder is written here with what publish reads (manifest, ``tables/coverage_*.csv``,
``addresses.parquet``, ``offers.parquet``); the tables are the library's own sums
(:func:`coverage.aggregate.gemeinde_counts`, :func:`coverage.aggregate.area_tables`), not hand-typed.
``bbcov publish`` then runs for real on that folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from coverage.aggregate import area_tables, gemeinde_counts
from coverage.sources.bkg import read_bkg_bundle
from coverage.technology import DEFAULT_GROUPS
from pipelines.fingerprint import file_fingerprint

#: The fictitious providers of the world (no published file may name them).
PROVIDERS = ("Küstennetz (fiktiv)", "Glasfaser Nord (fiktiv)")
THRESHOLDS = (16.0, 30.0, 100.0, 1000.0)
RUN_ID = "run-20210630T120000-mvtest"
CONFIG = """
[boundaries]
path = "vg5000-mv"
land = "13"
[addresses]
path = "addresses.csv"
crs = "EPSG:25833"
[analysis]
thresholds_mbps = [16, 30, 100, 1000]
reference_date = "2021-06-30"
[output]
dir = "out"
[publish]
url = "https://daten.example.org/breitband"
[publish.contact]
organisation = "Landesamt Beispiel"
email = "geodaten@example.org"
"""


def write_mv_bundle(bkg: Path, out: Path, land: str = "13") -> Path:
    """The BKG bundle ``bkg`` with only Land ``land``'s features (same layers, fields and notices)."""
    out.mkdir(parents=True, exist_ok=True)
    for layer in ("GEM", "VWG", "KRS", "LAN"):
        frame = pyogrio.read_dataframe(bkg / f"VG5000_{layer}.shp", where=f"ARS LIKE '{land}%'")
        for c in frame.columns:  # shapefiles hold dates as text: write them so (no warning per field)
            if str(frame[c].dtype).startswith("datetime"):
                frame[c] = frame[c].dt.strftime("%Y-%m-%d")
        pyogrio.write_dataframe(frame, out / f"VG5000_{layer}.shp")
    for notice in bkg.glob("*.txt"):
        shutil.copy(notice, out / notice.name)
    return out


def _best(addresses: pd.DataFrame, offers: pd.DataFrame) -> pd.DataFrame:
    """best_down_{g} / best_provider_{g} per default group (the world has no ties: fibre 1000 > VDSL)."""
    out = {}
    for g, techs in DEFAULT_GROUPS.items():
        mine = offers[offers["technology"].isin({str(t) for t in techs})]
        top = mine.sort_values("down_mbps").drop_duplicates("address_id", keep="last").set_index("address_id")
        out[f"best_down_{g}"] = addresses["address_id"].map(top["down_mbps"]).fillna(0.0).to_numpy()
        provider = addresses["address_id"].map(top["provider"]).astype(object)
        out[f"best_provider_{g}"] = provider.where(provider.notna(), "").astype(str).to_numpy()
    return pd.DataFrame(out, index=addresses.index)


def write_mv_run(root: Path, bkg: Path, seed: int = 16) -> tuple[Path, Path]:
    """Write the world and its finished run into ``root``; returns (configuration, run folder)."""
    bundle = write_mv_bundle(bkg, root / "vg5000-mv")
    boundaries = read_bkg_bundle(bundle, "EPSG:25833", land="13")
    gem = boundaries.gemeinde
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 13, len(gem))  # about one Gemeinde in five below min_addresses = 5
    points = gem.geometry.sample_points(size=sizes, rng=rng)
    points = points.explode(index_parts=False)  # sample_points orders its points; their Gemeinde is kept
    keys = gem["ags"].to_numpy()[gem.index.get_indexer(points.index)]
    n = len(points)
    addresses = pd.DataFrame({"address_id": [f"MV{i:05d}" for i in range(n)], "x": points.x.to_numpy(),
                              "y": points.y.to_numpy(), "households": rng.integers(1, 5, n).astype(float),
                              "businesses": (rng.random(n) < 0.1).astype(float), "site_kind": "", "ags": keys})
    addresses = addresses.merge(boundaries.hierarchy()[["ags", "vwg_ars", "krs_ags", "land"]], on="ags",
                                how="left", validate="m:1")
    dsl = addresses.loc[rng.random(n) < 0.8, ["address_id"]].assign(provider=PROVIDERS[0], technology="dsl")
    dsl["down_mbps"] = rng.choice([50.0, 100.0, 250.0], len(dsl))
    fibre = addresses.loc[rng.random(n) < 0.33, ["address_id"]].assign(provider=PROVIDERS[1], technology="ftth",
                                                                       down_mbps=1000.0)
    offers = pd.concat([dsl, fibre], ignore_index=True)
    offers["up_mbps"] = offers["down_mbps"] / 5
    offers["status"] = "current"
    addresses = pd.concat([addresses, _best(addresses, offers)], axis=1)
    addresses["no_offer"] = ~addresses["address_id"].isin(offers["address_id"])
    counts = gemeinde_counts(addresses, THRESHOLDS, list(DEFAULT_GROUPS), flags=["no_offer"])
    tables = area_tables(counts, boundaries, THRESHOLDS, list(DEFAULT_GROUPS))

    (root / "addresses.csv").write_text("address_id;x;y\n", encoding="utf-8")  # the config names it
    config = root / "run.toml"
    config.write_text(CONFIG, encoding="utf-8")
    run = root / "out" / "runs" / RUN_ID
    (run / "tables").mkdir(parents=True)
    for level, table in tables.items():
        table.to_csv(run / "tables" / f"coverage_{level}.csv", index=False)
    addresses.to_parquet(run / "addresses.parquet", index=False)
    offers.to_parquet(run / "offers.parquet", index=False)
    manifest = {"run_id": RUN_ID, "created": "2021-07-01T12:00:00+00:00", "config_path": str(config),
                "config": CONFIG, "reference_date": "2021-06-30", "data_date": "2021-06-30",
                "boundaries_date": boundaries.valid_date, "inputs": [file_fingerprint(bundle)]}
    (run / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return config, run


def mv_addresses(run: Path) -> gpd.GeoDataFrame:
    """The world's addresses with their points (EPSG:25833), as the run holds them."""
    frame = pd.read_parquet(run / "addresses.parquet")
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["x"], frame["y"]), crs="EPSG:25833")
