"""``bbcov publish``: the open-data package of a finished run, after disclosure control.

The rules are :mod:`coverage.disclosure`'s; this module reads the run, applies them before anything is
written, and writes the package into a hidden folder next to ``out`` that is renamed into place when
complete (an earlier package there is replaced whole). Layout (README.txt in the package says the same):

- ``gebiete.gpkg`` (layers gemeinde, amt, kreis, land) and ``grid.gpkg`` (grid_100m, grid_1km), EPSG:3035;
- ``csv/<layer>.csv`` (UTF-8, ``,``) and ``csv/<layer>_de.csv`` (German Excel: BOM, ``;``, decimal comma),
  described with licence and attribution by ``csv/csv-metadata.json`` (W3C CSVW);
- ``metadata/<dataset>.iso19139.xml`` and ``metadata/<dataset>.dcat.jsonld`` (:mod:`pipelines.metadata`);
- ``ogcapi/<layer>.geojson`` (RFC 7946, WGS 84) and ``ogcapi/pygeoapi-config.yml`` for ``bbcov serve``;
- ``disclosure_report.csv``, ``package.json`` (run, rules, files with SHA-256), ``README.txt``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from shapely import box

from coverage.config import RunConfig, config_from_dict, publish_config
from coverage.crs import INSPIRE_GRID_CRS
from coverage.disclosure import (
    LICENCE_NAME,
    LICENCE_URL,
    MERGED,
    REPORT_COLUMNS,
    Suppression,
    best_offer_providers,
    grid_cell_counts,
    grid_units,
    protect_all,
    published,
    report_frame,
)
from coverage.errors import ConfigError, CoverageError
from coverage.model import LEVEL_KEYS, LEVELS
from coverage.sections import DisclosureRules, PublishConfig
from pipelines import io

log = logging.getLogger(__name__)

AREA_LAYERS = LEVELS
GRID_LAYERS = ("grid_100m", "grid_1km")
NAME_COLUMNS = ("name", "bez", "display_name", "vwg_ars", "krs_ags", "land")
TITLES = {"gemeinde": "Gemeinden", "amt": "Ämter und amtsfreie Gemeinden", "kreis": "Kreise und kreisfreie Städte",
          "land": "Land", "grid_100m": "INSPIRE-Gitter 100 m", "grid_1km": "INSPIRE-Gitter 1 km (zusammengefasste "
          "100-m-Zellen mit zu wenigen Adressen)"}
#: Datasets of the package (one metadata record each): layers and the GeoPackage holding them.
DATASETS = {"gebiete": (AREA_LAYERS, "gebiete.gpkg"), "grid": (GRID_LAYERS, "grid.gpkg")}


@dataclass(frozen=True)
class Package:
    """What publish built: the layers as published (with geometry, EPSG:3035) and the context for metadata."""

    layers: dict[str, gpd.GeoDataFrame]
    report: pd.DataFrame
    run_id: str
    manifest: dict[str, Any]
    cfg: RunConfig
    publish: PublishConfig
    attributions: tuple[str, ...]


def load_run_config(run_dir: Path, manifest: dict[str, Any]) -> RunConfig:
    """The run's own configuration as recorded in its manifest (paths relative to where it was)."""
    base = Path(manifest["config_path"]).parent if manifest.get("config_path") else run_dir
    return config_from_dict(tomllib.loads(manifest["config"]), base_dir=base)


def publish_settings(config: Path | None, run_cfg: RunConfig) -> PublishConfig:
    """``[publish]`` of ``--config`` when given, else of the run's configuration."""
    if config is None:
        return run_cfg.publish
    try:
        raw = tomllib.loads(Path(config).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{config}: cannot read the configuration ({exc})") from exc
    try:
        return publish_config(raw.get("publish", {}))
    except ConfigError as exc:
        raise ConfigError(f"{config}: {exc}") from exc


@dataclass(frozen=True)
class Protected:
    """A run's figures after disclosure control, before anything is written (see :func:`protect_run`)."""

    tables: dict[str, pd.DataFrame]  # the run's level tables as read (names and keys as text)
    suppression: Suppression  # true counts and per figure the suppression reason, areas and grid layers
    merged_units: pd.Series  # the 1 km cells of addresses whose 100 m cell had too few addresses
    offers: pd.DataFrame  # address_id, provider, technology, down_mbps, status (for the last check)
    rules: DisclosureRules  # the rules applied


def protect_run(run_dir: Path, pc: PublishConfig, cfg: RunConfig) -> Protected:
    """Read a run's tables, addresses and offers and apply the disclosure rules (areas and grid together).

    Used by ``bbcov publish`` and by the public atlas (``[report] profile = "public"``), so that both show
    the same figures."""
    groups = {g: tuple(str(t) for t in techs) for g, techs in cfg.analysis.groups.items()}
    thresholds = cfg.analysis.thresholds_mbps
    text = dict.fromkeys(("ags", "vwg_ars", "krs_ags", "land", "name", "bez", "display_name"), str)
    tables = {lv: pd.read_csv(run_dir / "tables" / f"coverage_{lv}.csv", keep_default_na=False, na_values=[""],
                              dtype=text) for lv in LEVELS}
    wanted = ["address_id", "x", "y", "households", "businesses", *LEVEL_KEYS.values(),
              *(f"best_down_{g}" for g in groups), *(f"best_provider_{g}" for g in groups)]
    addresses = pd.read_parquet(run_dir / "addresses.parquet")
    addresses = addresses[[c for c in wanted if c in addresses.columns]].reset_index(drop=True)
    for key in LEVEL_KEYS.values():
        addresses[key] = addresses[key].astype(str)
    addresses["address_id"] = addresses["address_id"].astype(str)
    for c in ("households", "businesses"):
        if c in addresses:
            addresses[c] = addresses[c].astype(float)
    offers = pd.read_parquet(run_dir / "offers.parquet",
                             columns=["address_id", "provider", "technology", "down_mbps", "status"])
    pairs = best_offer_providers(addresses, offers, groups)

    east, north = Transformer.from_crs(cfg.analysis.working_crs, INSPIRE_GRID_CRS, always_xy=True).transform(
        addresses["x"].to_numpy(float), addresses["y"].to_numpy(float))
    unit, resolution = grid_units(np.asarray(east), np.asarray(north), pc.rules.min_addresses)
    cells = grid_cell_counts(unit, addresses, thresholds, list(groups))
    is_1km = cells.index.str.startswith("CRS3035RES1km")
    grid = {"grid_100m": (cells[~is_1km], unit), "grid_1km": (cells[is_1km], unit)}
    s = protect_all(tables, addresses, pairs, pc.rules, grid)
    return Protected(tables, s, unit[resolution.to_numpy() == 1000], offers, pc.rules)


def published_area_tables(p: Protected) -> dict[str, pd.DataFrame]:
    """Per level the published table: the name columns, then the rounded counts (suppressed: empty) and
    the shares from them (:func:`coverage.disclosure.published`)."""
    out = {}
    for level, key in LEVEL_KEYS.items():
        names = p.tables[level].astype({key: str}).set_index(key)
        ids = names[[c for c in NAME_COLUMNS if c in names.columns and c != key]]
        out[level] = ids.join(published(p.suppression.counts[level], p.suppression.reason[level],
                                        p.rules)).reset_index()
    return out


def build_package(run_dir: Path, pc: PublishConfig, cfg: RunConfig, manifest: dict[str, Any]) -> Package:
    """Read the run, apply the disclosure rules, return the layers to write (nothing is written here)."""
    p = protect_run(run_dir, pc, cfg)
    s = p.suppression
    boundaries = _boundaries(cfg, manifest)
    layers: dict[str, gpd.GeoDataFrame] = {}
    for level, frame in published_area_tables(p).items():
        key = LEVEL_KEYS[level]
        geo = boundaries.level(level)[[key, "geometry"]].astype({key: str}).dissolve(by=key, as_index=False)
        layer = gpd.GeoDataFrame(frame.merge(geo, on=key, how="left", validate="1:1"), geometry="geometry",
                                 crs=boundaries.level(level).crs).to_crs(INSPIRE_GRID_CRS)
        layers[level] = layer
    for name, size in (("grid_100m", 100), ("grid_1km", 1000)):
        frame = published(s.counts[name], s.reason[name], pc.rules).reset_index()
        e, n = _corner(frame["cell_id"], "E"), _corner(frame["cell_id"], "N")
        frame.insert(1, "resolution_m", size)
        frame.insert(2, "north", n)
        frame.insert(3, "east", e)
        layers[name] = gpd.GeoDataFrame(frame, geometry=box(e, n, e + size, n + size), crs=INSPIRE_GRID_CRS)
    report = _report(s, p.tables, p.merged_units)
    attributions = _attributions(pc, cfg, manifest)
    check_no_provider_names(layers, report, p.offers)
    return Package(layers, report, manifest["run_id"], manifest, cfg, pc, attributions)


def _corner(ids: pd.Series, axis: str) -> np.ndarray:
    """The lower-left corner (metres) from official cell ids ``CRS3035RES100mN…E…``."""
    part = ids.str.extract(r"N(\d+)E(\d+)$")
    return part[0 if axis == "N" else 1].astype(np.int64).to_numpy()


def _boundaries(cfg: RunConfig, manifest: dict[str, Any]) -> Any:
    """The run's boundaries, read again from its input (which must be the file the run read)."""
    from pipelines.fingerprint import file_fingerprint
    from pipelines.stages import read_boundaries

    path = cfg.boundaries.path
    recorded = next((i for i in manifest.get("inputs", []) if i.get("path") == str(path)), None)
    if recorded is not None and recorded.get("sha256") != file_fingerprint(path).get("sha256"):
        raise CoverageError(f"boundaries {path.name}: changed or missing since run {manifest['run_id']}; "
                            "the package needs the areas the run used (run it again)")
    return read_boundaries(cfg.boundaries, cfg.analysis.working_crs)


def _report(s: Suppression, tables: dict[str, pd.DataFrame], merged_units: pd.Series) -> pd.DataFrame:
    parts = []
    for level, key in LEVEL_KEYS.items():
        names = tables[level].astype({key: str}).set_index(key)["display_name"].astype(str).to_dict()
        parts.append(report_frame(level, s.reason[level], names))
    parts.append(pd.DataFrame([{"level": "grid_100m", "id": "", "name": "", "reason": MERGED, "figures":
                                f"{merged_units.nunique()} 1-km-Zellen aus 100-m-Zellen mit zu wenigen Adressen"}],
                              columns=REPORT_COLUMNS, dtype=str))
    parts += [report_frame(name, s.reason[name]) for name in GRID_LAYERS]
    return pd.concat(parts, ignore_index=True)


def _attributions(pc: PublishConfig, cfg: RunConfig, manifest: dict[str, Any]) -> tuple[str, ...]:
    from pipelines.report import bkg_attribution

    org = pc.contact.get("organisation", "")
    own = f"© {org} ({manifest['created'][:4]}), {LICENCE_NAME} ({LICENCE_URL})" if org else ""
    lines = [own, bkg_attribution(manifest.get("boundaries_date")) if cfg.boundaries.format == "bkg" else "",
             *cfg.report.attributions]
    return tuple(line for line in lines if line)


def check_no_provider_names(layers: Mapping[str, pd.DataFrame], report: pd.DataFrame,
                             offers: pd.DataFrame) -> None:
    """Last line of defence: no provider name in any published text value or column name."""
    providers = {str(p) for p in offers["provider"].dropna().unique() if len(str(p)) >= 3}
    for name, frame in [*layers.items(), ("disclosure_report", report)]:
        text = " ".join(map(str, frame.columns))
        for c in frame.columns:
            if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c]):
                text += " " + " ".join(frame[c].dropna().astype(str))
        hit = next((p for p in providers if p in text), None)
        if hit is not None:
            raise AssertionError(f"{name}: a provider name would be published (a bug in the publication)")


# --- writing -----------------------------------------------------------------------------------------

def write_package(pkg: Package, out: Path) -> list[str]:
    """Write the package to ``out`` atomically (staged next to it, renamed into place)."""
    from pipelines.metadata import write_metadata
    from pipelines.serve import write_pygeoapi_config

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "package.json").exists():
        raise CoverageError(f"{out}: exists and is not a bbcov package; give an empty or new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        files = _write_files(pkg, staging)
        files += write_metadata(pkg, staging)
        files += write_pygeoapi_config(pkg, staging, _title(pkg))
        files.append("README.txt")
        io.write_text(staging / "README.txt", readme(pkg))
        io.write_json(staging / "package.json", {
            "run_id": pkg.run_id, "published": datetime.now(UTC).isoformat(timespec="seconds"),
            "reference_date": pkg.manifest.get("reference_date"), "data_date": pkg.manifest.get("data_date"),
            "licence": {"name": LICENCE_NAME, "url": LICENCE_URL}, "attributions": list(pkg.attributions),
            "disclosure": asdict(pkg.publish.rules),
            "files": {f: _sha256(staging / f) for f in sorted(files)}})
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)
    return sorted([*files, "package.json"])


def _title(pkg: Package) -> str:
    return pkg.publish.title or pkg.cfg.report.title


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_files(pkg: Package, root: Path) -> list[str]:
    files = []
    notice = "; ".join(pkg.attributions) or LICENCE_NAME
    for dataset, (names, gpkg) in DATASETS.items():
        with io.atomic_path(root / gpkg) as tmp:
            tmp.unlink()
            for layer in names:
                pkg.layers[layer].to_file(
                    tmp, layer=layer, driver="GPKG", engine="pyogrio", use_arrow=True,
                    layer_options={"DESCRIPTION": f"{TITLES[layer]}. {notice}", "IDENTIFIER": layer},
                    metadata={"TITLE": f"{_title(pkg)}: {TITLES[layer]}", "LICENCE": LICENCE_NAME,
                              "LICENCE_URL": LICENCE_URL, "ATTRIBUTION": notice, "RUN": pkg.run_id,
                              "DATASET": dataset})
        files.append(gpkg)
    csvw_tables = []
    for layer, frame in pkg.layers.items():
        plain = pd.DataFrame(frame.drop(columns="geometry"))
        io.write_csv(root / "csv" / f"{layer}.csv", plain)
        io.write_csv(root / "csv" / f"{layer}_de.csv", plain, german=True)
        files += [f"csv/{layer}.csv", f"csv/{layer}_de.csv"]
        csvw_tables.append({"url": f"{layer}.csv", "dc:title": f"{_title(pkg)}: {TITLES[layer]}",
                            "dialect": {"delimiter": ",", "encoding": "utf-8"},
                            "tableSchema": {"columns": [{"name": str(c)} for c in plain.columns]}})
        csvw_tables.append({"url": f"{layer}_de.csv", "dc:title": f"{_title(pkg)}: {TITLES[layer]} (Excel, deutsch)",
                            "dialect": {"delimiter": ";", "encoding": "utf-8"}})
    io.write_json(root / "csv" / "csv-metadata.json", {
        "@context": "http://www.w3.org/ns/csvw", "dc:title": _title(pkg), "dc:license": {"@id": LICENCE_URL},
        "dc:rights": LICENCE_NAME, "dc:source": list(pkg.attributions), "tables": csvw_tables})
    files.append("csv/csv-metadata.json")
    for layer, frame in pkg.layers.items():
        io.write_text(root / "ogcapi" / f"{layer}.geojson", geojson_text(frame))
        files.append(f"ogcapi/{layer}.geojson")
    io.write_csv(root / "disclosure_report.csv", pkg.report)
    files.append("disclosure_report.csv")
    return files


def geojson_text(frame: gpd.GeoDataFrame) -> str:
    """``frame`` as an RFC 7946 FeatureCollection: WGS 84, exterior rings counter-clockwise, coordinates
    to 7 decimals (about 1 cm), as GDAL's ``RFC7946=YES`` writes them. Properties are serialised by
    pandas' JSON writer one record per line and geometries by GEOS, then joined: GDAL formats ~200
    properties of every feature field by field, which took 9 s of CPU for the 20,000 cells of MV's grid.
    Missing values are ``null``; counts stay integers."""
    wgs = frame.to_crs("EPSG:4326")
    geometry = shapely.orient_polygons(np.asarray(wgs.geometry.array), exterior_cw=False)
    geometry = shapely.transform(geometry, lambda xy: np.round(xy, 7))
    shapes = [g if g is not None else "null" for g in shapely.to_geojson(geometry)]
    features = ",\n".join(f'{{"type":"Feature","properties":{p},"geometry":{g}}}'
                           for p, g in zip(_json_records(pd.DataFrame(wgs.drop(columns=wgs.geometry.name))),
                                           shapes, strict=True))
    return f'{{"type":"FeatureCollection","features":[\n{features}\n]}}\n'


def _json_records(frame: pd.DataFrame) -> list[str]:
    """One JSON object per row (pandas' C writer for the whole frame, then cut between the records).

    The cut is at ``},{"<first column>":``, which cannot occur inside a value: within a JSON string
    every quote is escaped, and no other value holds a brace."""
    if not len(frame):
        return []
    first = json.dumps(str(frame.columns[0]), ensure_ascii=False)
    text = frame.to_json(orient="records", force_ascii=False, double_precision=15)
    head = "[{" + first + ":"
    if not text.startswith(head) or not text.endswith("}]"):
        raise AssertionError("unexpected JSON from pandas")  # a column name pandas escapes otherwise
    parts = text[len(head):-2].split("},{" + first + ":")
    if len(parts) != len(frame):
        raise AssertionError(f"{len(parts)} JSON records for {len(frame)} rows")
    return ["{" + first + ":" + part + "}" for part in parts]


def readme(pkg: Package) -> str:
    r = pkg.publish.rules
    lines = [
        _title(pkg), "=" * len(_title(pkg)), "",
        f"Offene Daten aus dem bbcov-Lauf {pkg.run_id} (Stichtag {pkg.manifest.get('reference_date')}, "
        f"Datenstand {pkg.manifest.get('data_date') or 'nicht angegeben'}).",
        "", "Lizenz: " + LICENCE_NAME + " (" + LICENCE_URL + ")", "Namensnennung:",
        *(f"  {a}" for a in pkg.attributions), "",
        "Inhalt", "------",
        "gebiete.gpkg      Gemeinden, Ämter, Kreise, Land (Layer gemeinde, amt, kreis, land), EPSG:3035",
        "grid.gpkg         INSPIRE-Gitter: grid_100m und grid_1km (Zellen-IDs CRS3035RES…), EPSG:3035",
        "csv/              dieselben Tabellen ohne Geometrie: <layer>.csv (UTF-8, Komma) und <layer>_de.csv",
        "                  (Excel deutsch: Semikolon, Dezimalkomma); csv-metadata.json (CSVW: Lizenz, Quellen)",
        "metadata/         ISO 19139 (INSPIRE) und DCAT-AP.de (JSON-LD) je Datensatz",
        "ogcapi/           GeoJSON (WGS 84) und die pygeoapi-Konfiguration für `bbcov serve`",
        "disclosure_report.csv  was aus Geheimhaltungsgründen unterdrückt ist und warum",
        "package.json      Lauf, Regeln, Dateien mit SHA-256", "",
        "Spalten", "-------",
        "addresses, households, businesses: Adressen, Haushalte, Unternehmen;",
        "hh_ge_<t>_<gruppe> / biz_ge_<t>_<gruppe>: Haushalte / Unternehmen mit mindestens t Mbit/s in der",
        "Technologiegruppe; share_ge_… / biz_share_ge_…: Anteil in Prozent; hh_fund_… / addr_fund_… / biz_fund_…:",
        "Haushalte / Adressen / Unternehmen je Förderkategorie. Leere Zellen: unterdrückt (siehe unten).", "",
        "Geheimhaltung", "-------------",
        f"- Werte von Gebieten und Zellen mit weniger als {r.min_addresses} Adressen sind unterdrückt; 100-m-Zellen",
        "  darunter sind in ihrer 1-km-Zelle zusammengefasst (grid_1km enthält nur diese Adressen).",
        f"- Anzahlen sind auf Vielfache von {r.round_to} gerundet; Anteile sind aus den gerundeten Anzahlen berechnet.",
        "- Versorgungswerte einer Technologiegruppe sind unterdrückt, wo ein Anbieter mehr als "
        f"{r.dominance_share:.0%}",
        "  der versorgten Haushalte (Unternehmen) mit dem besten Angebot stellt; Förderzahlen folgen der Gruppe 'all'.",
        "- Ergänzende Unterdrückung: kein unterdrückter Wert lässt sich aus einer Summe (Amt, Kreis, Land) und den",
        "  übrigen veröffentlichten Werten zurückrechnen.",
        "- Keine Anbieternamen, keine Adressdaten, keine geplanten Ausbauzahlen.", "",
        "OGC API – Features: `bbcov serve DIESER_ORDNER` (siehe README des Projekts).", "",
    ]
    return "\n".join(lines)
