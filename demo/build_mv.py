"""`bbcov synth`: write the deterministic demo inputs for a scope (so far: Mecklenburg-Vorpommern).

Reads the real open data (BKG VG5000 boundaries, Zensus 2022 grids, the Breitbandatlas table of
the vintage) from ``sources``, calls :func:`demo.generate_demo`, and writes into a
temporary folder next to ``out`` that is renamed into place at the end, so ``out`` is either the
complete previous or the complete new result, never half-written.

Output contract (paths relative to ``out``):

- ``hauskoordinaten.txt`` — the addresses as the cadastre delivers them (HK-DE, see
  :mod:`coverage.sources.hkde`): UTF-8, ``;``, header line, decimal comma; OI = address_id,
  LAN/RBZ/KRS/GMD = the address' AGS, SSS = a street key per Gemeinde, HNR/ADZ = house number and
  suffix, East = ``33`` + easting (EPSG:25833), STN/PLZ/ONM = street, postcode, locality; no households
- ``businesses.csv`` — UTF-8, ``,``: address_id, businesses (addresses with at least one)
- ``sites.csv`` — UTF-8, ``,``: address_id, site_kind, site_name
- ``addresses.csv`` — the same addresses with the generator's own columns (kept for tests and
  comparisons; the demo config does not read it): UTF-8, ``,``, ``.`` decimals: address_id, x, y
  (EPSG:25833), households, businesses, site_kind, site_name, street, house_number, postcode, locality
- ``providers/dsl_kuestennetz.csv`` — cp1252, ``;``, decimal comma:
  address_id;provider;technology;down_mbps;up_mbps
- ``providers/fibre_seenplatte.csv`` — UTF-8 with BOM, ``;``, decimal comma:
  provider;technology;down_mbps;up_mbps;x;y;status;planned_date (x/y = address coordinates, EPSG:25833)
- ``providers/cable_boddenkabel.gpkg`` — layer ``coverage``, EPSG:3035 polygons, down_mbps, up_mbps
- ``providers/mobile_hansefunk.tif`` — GeoTIFF EPSG:3035, 100 m INSPIRE-aligned pixels,
  uint16 Mbit/s, nodata 0
- ``bbcov.toml`` — run configuration for these inputs, the real path of a Landkreis: HK-DE addresses,
  ``[businesses]``, ``[sites]`` and households from the Zensus grids of ``sources`` (``[households]
  source = "zensus"``); ``synth_manifest.json``; ``.complete`` (written last)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from coverage.crs import DEFAULT_WORKING_CRS, INSPIRE_GRID_CRS
from coverage.errors import ConfigError, DataSourceError
from coverage.sources.bkg import read_bkg_bundle
from coverage.sources.breitbandatlas import bba_wide, read_bba_kreis_table, read_bba_table
from coverage.sources.zensus import grid_bbox, read_grid_1km, read_grid_100m
from demo import METHOD_VERSION, PROVIDERS, DemoData, generate_demo
from demo.businesses import MV_BUSINESS_LOCATIONS
from demo.sites import MV_SCHOOLS, school_counts

log = logging.getLogger(__name__)

SCOPES = {"mv": "13"}
#: vintage -> (Breitbandatlas Gemeinde file, reference date = end of the data period)
VINTAGES = {
    "2019-12": ("gemeinde_bezirke_privat_2019_ende.csv", "2019-12-31"),
    "2020-06": ("gemeinde_bezirke_privat_2020_mitte.csv", "2020-06-30"),
    "2020-12": ("gemeinde_bezirke_privat_2020_ende.csv", "2020-12-31"),
    "2021-06": ("gemeinde_bezirke_privat_2021_mitte.csv", "2021-06-30"),
}
#: The Breitbandatlas business (Gewerbe) table and its vintage: businesses are placed against that
#: vintage's offers for every vintage (businesses do not move when networks are built).
BUSINESS_TABLE = ("2021-06", "gemeinde_bezirke_gew_2021_mitte.csv")
#: The Breitbandatlas Kreis table (2021): its school columns place the demo's schools (every vintage).
KREIS_TABLE = "2021_BBA_Kreisdaten.xls"
BOUNDARIES_DIR = "bkg-vg5000-2021"
ZENSUS_1KM = "zensus2022/grid_1km.parquet"
ZENSUS_100M = "zensus2022/grid_100m_buildings.parquet"
THRESHOLDS = (2, 16, 30, 50, 100, 200, 400, 1000)


#: The [report] attributions of every generated demo config (its data derive from these sources).
DEMO_ATTRIBUTIONS = """attributions = [
  "© Statistisches Bundesamt (Destatis), Zensus 2022 (Daten verändert)",
  "Demo-Anbieterdaten kalibriert auf Breitbandatlas | Gigabit-Grundbuch (gigabitgrundbuch.bund.de), abgeleitet",
]"""


def source_paths(sources: Path, vintage: str) -> dict[str, Path]:
    """Where the generators find boundaries, Zensus grids and the Breitbandatlas table of a vintage."""
    return {
        "boundaries": sources / BOUNDARIES_DIR,
        "zensus_1km": sources / ZENSUS_1KM,
        "zensus_100m": sources / ZENSUS_100M,
        "breitbandatlas": sources / "breitbandatlas" / VINTAGES[vintage][0],
    }


def _land_table(path: Path, land: str) -> pd.DataFrame:
    """One published Gemeinde table in wide form, only the Land's Gemeinden (the pivot of all of
    Germany's 11,000 rows cost half a second per table for nothing)."""
    long = read_bba_table(path)
    return bba_wide(long[long["key"].str.startswith(land)])


def build_demo(
    sources: Path,
    out: Path,
    scope: str = "mv",
    vintage: str = "2021-06",
    seed: int = 20210630,
    kreise: Sequence[str] | None = None,
) -> dict:
    """Generate the demo inputs from the open data in ``sources`` into ``out`` (replaced atomically).

    ``kreise`` (Kreis AGS such as ``"13003"``) limits the output to some Kreise. Returns the counts.

    Vintages are consistent for one seed: ``addresses.csv`` is identical (businesses are placed against
    the offers of :data:`BUSINESS_TABLE`'s vintage in every vintage), and the tables of all
    earlier vintages in :data:`VINTAGES` are calibrated first with the same random draws, so a later
    vintage keeps every address' class or raises it, except where the published Gemeinde share drops
    (see :func:`demo.providers.generate_deliveries`).
    """
    sources = Path(sources)
    out = Path(out)
    if scope not in SCOPES:
        raise ConfigError(f"synth scope {scope!r} is not supported; available: {sorted(SCOPES)}")
    if vintage not in VINTAGES:
        raise ConfigError(f"synth vintage {vintage!r} is unknown; available: {sorted(VINTAGES)}")
    land = SCOPES[scope]
    reference_date = VINTAGES[vintage][1]
    paths = {**source_paths(sources, vintage),
             "breitbandatlas_businesses": sources / "breitbandatlas" / BUSINESS_TABLE[1],
             "breitbandatlas_kreise": sources / "breitbandatlas" / KREIS_TABLE}
    earlier_paths = {
        v: sources / "breitbandatlas" / VINTAGES[v][0] for v in sorted(VINTAGES) if v < vintage
    }
    later_paths = {
        v: sources / "breitbandatlas" / VINTAGES[v][0] for v in sorted(VINTAGES) if vintage < v <= BUSINESS_TABLE[0]
    }
    for name, p in [*paths.items(), *((f"breitbandatlas {v}", q) for v, q in {**earlier_paths, **later_paths}.items())]:
        if not p.exists():
            raise DataSourceError(f"{p}: {name} source not found under {sources}")

    boundaries = read_bkg_bundle(paths["boundaries"], DEFAULT_WORKING_CRS, land=land)
    frames = (
        [boundaries.land, boundaries.coastal_water] if len(boundaries.coastal_water) else [boundaries.land]
    )
    bounds = np.array([f.total_bounds for f in frames])
    bbox = grid_bbox(
        (bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max()), boundaries.land.crs
    )
    grid_100m = read_grid_100m(paths["zensus_100m"], bbox)
    grid_1km = read_grid_1km(paths["zensus_1km"], bbox)
    wide = _land_table(paths["breitbandatlas"], land)
    # the earlier vintages are calibrated first with the same random draws (consistent vintages)
    earlier = [_land_table(earlier_paths[v], land) for v in earlier_paths]
    # the later ones up to the business table's vintage: its offers place the businesses (same in all vintages)
    later = [_land_table(later_paths[v], land) for v in later_paths]
    biz = _land_table(paths["breitbandatlas_businesses"], land)
    kreis_table = read_bba_kreis_table(paths["breitbandatlas_kreise"])
    schools = school_counts(boundaries, grid_1km, MV_SCHOOLS, kreise=kreise)
    rng = np.random.default_rng(seed)
    demo = generate_demo(
        boundaries, grid_100m, grid_1km, wide, rng, kreise=kreise, prefix=scope.upper(), earlier=earlier,
        bba_biz=biz, later=later, biz_thresholds=THRESHOLDS, businesses_total=MV_BUSINESS_LOCATIONS,
        school_counts=schools, bba_kreis=kreis_table,
    )

    manifest = {
        "method_version": METHOD_VERSION,
        "scope": scope,
        "land": land,
        "vintage": vintage,
        "seed": seed,
        "kreise": list(kreise) if kreise is not None else None,
        "sources": {name: _digest(p, sources) for name, p in paths.items()},
        "earlier_vintages": {v: _digest(p, sources) for v, p in earlier_paths.items()},
        "later_vintages": {v: _digest(p, sources) for v, p in later_paths.items()},
        "counts": demo.counts,
        "gemeinden_without_bba": demo.unmatched_gemeinden,
        "providers_fictional": list(PROVIDERS.values()),
        "note": "Synthetic demo data, approximate on purpose; providers are fictional. "
        "Derived from © GeoBasis-DE / BKG 2021, © Statistisches Bundesamt (Destatis), Zensus 2022, "
        "Breitbandatlas | Gigabit-Grundbuch (data changed).",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _write_all(tmp, demo, manifest, paths, out, reference_date)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("synth %s %s seed %d -> %s: %s", scope, vintage, seed, out, demo.counts)
    return dict(demo.counts)


def _publish(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first and removed after."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        old.rmdir()
        out.rename(old)
    try:
        tmp.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _digest(path: Path, base: Path) -> dict:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        if path.is_dir():
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return {"path": os.path.relpath(path, base), "sha256": h.hexdigest(), "files": len(files)}


def _comma(values: pd.Series, digits: int) -> pd.Series:
    return values.map(lambda v: f"{v:.{digits}f}".replace(".", ","))


HKDE_HEADER = "NBA;OI;QUA;LAN;RBZ;KRS;GMD;OTT;SSS;HNR;ADZ;EEEEEEEE,EEE;NNNNNNN,NNN;STN;PLZ;ONM;ZON;POT"


def hkde_lines(addresses: pd.DataFrame) -> list[str]:
    """The demo addresses as HK-DE records (see the module docstring); coordinates are those of
    ``addresses.csv`` (2 decimals), so both files give the same points."""
    a = addresses.reset_index(drop=True)
    ags = a["ags"].astype(str)
    bad = ~ags.str.fullmatch(r"\d{8}")
    if bad.any():
        raise ValueError(f"demo addresses without an 8-digit AGS: {a.loc[bad, 'address_id'].head(3).tolist()}")
    # street key: the street's number within its Gemeinde (1, 2, … in name order), 5 digits
    key = a.groupby([ags, a["street"]], sort=True).ngroup()
    sss = (key - key.groupby(ags).transform("min") + 1).map(lambda v: f"{v:05d}")
    number = a["house_number"].astype(str).str.extract(r"^(\d*)(.*)$")
    east = a["x"].map(lambda v: "33" + f"{round(v, 2):.3f}".replace(".", ","))
    north = a["y"].map(lambda v: f"{round(v, 2):.3f}".replace(".", ","))
    fields = [pd.Series("", index=a.index), a["address_id"].astype(str), pd.Series("A", index=a.index),
              ags.str[:2], ags.str[2], ags.str[3:5], ags.str[5:8], pd.Series("", index=a.index), sss,
              number[0], number[1], east, north, a["street"].astype(str), a["postcode"].astype(str),
              a["locality"].astype(str), pd.Series("", index=a.index), pd.Series("", index=a.index)]
    for f in fields:
        if f.str.contains(";", regex=False).any():
            raise ValueError("a demo address field contains ';', which HK-DE cannot carry")
    line = fields[0]
    for f in fields[1:]:
        line = line + ";" + f
    return [HKDE_HEADER, *line.tolist()]


def _write_all(
    tmp: Path, demo: DemoData, manifest: dict, paths: dict[str, Path], out: Path, reference_date: str
) -> None:
    (tmp / "providers").mkdir()
    addr = demo.addresses.drop(columns="ags").copy()
    addr["x"] = addr["x"].map(lambda v: f"{v:.2f}")
    addr["y"] = addr["y"].map(lambda v: f"{v:.2f}")
    addr.to_csv(tmp / "addresses.csv", index=False, encoding="utf-8", lineterminator="\n")
    (tmp / "hauskoordinaten.txt").write_text("\n".join(hkde_lines(demo.addresses)) + "\n", encoding="utf-8")
    businesses = demo.addresses.loc[demo.addresses["businesses"] > 0, ["address_id", "businesses"]]
    businesses.to_csv(tmp / "businesses.csv", index=False, encoding="utf-8", lineterminator="\n")
    sites = demo.addresses.loc[demo.addresses["site_kind"].astype(str) != "", ["address_id", "site_kind", "site_name"]]
    sites.to_csv(tmp / "sites.csv", index=False, encoding="utf-8", lineterminator="\n")

    dsl = demo.dsl.copy()
    dsl["down_mbps"] = _comma(dsl["down_mbps"], 1)
    dsl["up_mbps"] = _comma(dsl["up_mbps"], 1)
    dsl.to_csv(
        tmp / "providers" / "dsl_kuestennetz.csv",
        sep=";",
        index=False,
        encoding="cp1252",
        lineterminator="\r\n",
    )

    fib = demo.fibre.copy()
    for col, digits in (("down_mbps", 1), ("up_mbps", 1), ("x", 2), ("y", 2)):
        fib[col] = _comma(fib[col], digits)
    fib.to_csv(
        tmp / "providers" / "fibre_seenplatte.csv",
        sep=";",
        index=False,
        encoding="utf-8-sig",
        lineterminator="\r\n",
    )

    demo.hfc_polygons.to_file(tmp / "providers" / "cable_boddenkabel.gpkg", layer="coverage", driver="GPKG")
    _write_raster(tmp / "providers" / "mobile_hansefunk.tif", demo.mobile_raster, demo.mobile_transform)

    rel = {name: Path(os.path.relpath(paths[name].resolve(), out.resolve())).as_posix()
           for name in ("boundaries", "zensus_1km", "zensus_100m")}
    (tmp / "bbcov.toml").write_text(_toml(rel, reference_date), encoding="utf-8")
    (tmp / "synth_manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (tmp / ".complete").write_bytes(b"")


def _write_raster(path: Path, array: np.ndarray, transform: tuple[float, float, float]) -> None:
    import rasterio
    from rasterio.transform import from_origin

    left, top, size = transform
    profile = {
        "driver": "GTiff",
        "height": array.shape[0],
        "width": array.shape[1],
        "count": 1,
        "dtype": "uint16",
        "crs": INSPIRE_GRID_CRS,
        "transform": from_origin(left, top, size, size),
        "nodata": 0,
        "compress": "deflate",
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array.astype(np.uint16), 1)


def _toml(rel: dict[str, str], reference_date: str) -> str:
    """The demo's config: the path a Landkreis' data take (HK-DE, own business and site lists, Zensus)."""
    return f"""[boundaries]
path = "{rel["boundaries"]}"
land = "13"
[addresses]
path = "hauskoordinaten.txt"
format = "hk-de"
[businesses]
path = "businesses.csv"
[sites]
path = "sites.csv"
[households]
source = "zensus"
grid_1km = "{rel["zensus_1km"]}"
grid_100m = "{rel["zensus_100m"]}"
[[providers]]
path = "providers/dsl_kuestennetz.csv"
format = "address-csv"
encoding = "cp1252"
delimiter = ";"
decimal = ","
[[providers]]
path = "providers/fibre_seenplatte.csv"
format = "address-csv"
crs = "EPSG:25833"
encoding = "utf-8-sig"
delimiter = ";"
decimal = ","
[[providers]]
path = "providers/cable_boddenkabel.gpkg"
format = "polygons"
provider = "{PROVIDERS["hfc"]}"
technology = "DOCSIS 3.1"
[[providers]]
path = "providers/mobile_hansefunk.tif"
format = "raster"
provider = "{PROVIDERS["mobile"]}"
technology = "LTE"
[analysis]
crs = "EPSG:25833"
thresholds_mbps = [{", ".join(str(t) for t in THRESHOLDS)}]
reference_date = "{reference_date}"
[report]
title = "Breitbandversorgung Mecklenburg-Vorpommern (Demo, fiktive Anbieter)"
data_date = "{reference_date}"
{DEMO_ATTRIBUTIONS}
# Example values for the cost estimate ("Schätzung"): NOT real prices; set your own before using the figures.
[costs]
label = "Beispielwerte (Demo), keine echten Preise"
price_per_m = 100.0
price_per_connection = 1000.0
price_per_household = 100.0
share_federal = 0.5
share_land = 0.4
share_municipal = 0.1
rule = "gigabit_2024"
max_link_m = 2000
isolated_m = 500
"""
