"""Reader for BKG administrative boundary bundles (VG250 / VG5000 "ebenen").

The bundles ship one shapefile per level (``*_GEM``, ``*_VWG``, ``*_KRS``,
``*_LAN``) in any of the published CRSs (GK3 EPSG:31467, UTM32 EPSG:25832 …),
as a folder or a ``.zip``. We read them as published, keep land areas only,
optionally one Land, reproject to the working CRS and build the hierarchy
Gemeinde (AGS) → Verwaltungsgemeinschaft/Amt (ARS[:9]) → Kreis (AGS[:5]) → Land (AGS[:2]).
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path, PurePosixPath

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
from pyogrio.errors import DataSourceError as OgrDataSourceError

from coverage.crs import to_crs
from coverage.errors import DataSourceError, InputDataError, SchemaError
from coverage.model import Boundaries
from coverage.text import one_line

log = logging.getLogger(__name__)

LAYERS = ("GEM", "VWG", "KRS", "LAN")
#: Geofactor values that mean "land" (VG250: 3/4 without/with structure; VG5000 2021: 9).
LAND_GF = {3, 4, 9}


def find_layer_sources(path: Path) -> dict[str, str]:
    """Locate the GEM/VWG/KRS/LAN shapefiles in a bundle folder or zip.

    Returns GDAL-readable paths (``/vsizip/...`` inside zips: nothing is extracted,
    so archive members with ``..`` cannot write anywhere).
    """
    if not path.exists():
        raise DataSourceError(f"{path}: boundary bundle not found")
    if path.is_dir():
        names = [str(p) for p in path.rglob("*.shp")]
        prefix = ""
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.lower().endswith(".shp")]
        bad = [n for n in names if n.startswith("/") or ".." in PurePosixPath(n).parts]
        if bad:
            raise DataSourceError(f"{path}: zip member {bad[0]!r} escapes the archive folder; refusing to read it")
        prefix = f"/vsizip/{path.resolve()}/"
    else:
        raise DataSourceError(f"{path}: expected a BKG bundle folder or .zip")
    found: dict[str, str] = {}
    for layer in LAYERS:
        hits = sorted(n for n in names if PurePosixPath(n).stem.upper().endswith("_" + layer))
        if hits:
            found[layer] = prefix + hits[0]
    missing = [layer for layer in LAYERS if layer not in found]
    if missing:
        raise DataSourceError(
            f"{path}: not a BKG VG250/VG5000 bundle: no shapefile for layer(s) {missing} "
            "(expected names like VG250_GEM.shp)"
        )
    return found


def _read(source: str, bundle: Path) -> gpd.GeoDataFrame:
    try:
        frame = pyogrio.read_dataframe(source)
    except (OgrDataSourceError, OSError) as exc:
        raise DataSourceError(f"{bundle}: cannot read {source} ({one_line(exc)})") from exc
    required = {"AGS", "ARS", "GEN", "BEZ"}
    missing = required - set(frame.columns)
    if missing:
        raise SchemaError(f"{source}: missing BKG attribute column(s) {sorted(missing)}")
    if frame.crs is None:
        raise InputDataError(f"{source}: has no .prj; cannot tell its CRS")
    return frame


def _land_only(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if "GF" not in frame.columns:
        return frame
    return frame[pd.to_numeric(frame["GF"], errors="coerce").isin(LAND_GF)]


def _dissolve(frame: gpd.GeoDataFrame, key: str) -> gpd.GeoDataFrame:
    """Merge rows sharing a key (VG250 splits some areas into several rows)."""
    if not frame[key].duplicated().any():
        return frame.reset_index(drop=True)
    return frame.dissolve(by=key, as_index=False, aggfunc="first")


def read_bkg_bundle(path: str | Path, working_crs: object, land: str | None = None) -> Boundaries:
    """Read a BKG bundle, keep one Land if given, reproject and build the hierarchy."""
    path = Path(path)
    sources = find_layer_sources(path)
    raw = {layer: _read(src, path) for layer, src in sources.items()}
    log.info("read BKG bundle %s: %s", path, {k: len(v) for k, v in raw.items()})

    gem = _land_only(raw["GEM"]).copy()
    gem = gpd.GeoDataFrame({
        "ags": gem["AGS"].astype(str), "ars": gem["ARS"].astype(str), "name": gem["GEN"].astype(str),
        "bez": gem["BEZ"].astype(str), "geometry": gem.geometry,
    }, crs=gem.crs)
    gem["vwg_ars"] = gem["ars"].str[:9]
    gem["krs_ags"] = gem["ags"].str[:5]
    gem["land"] = gem["ags"].str[:2]

    vwg = _land_only(raw["VWG"])
    vwg = gpd.GeoDataFrame({"vwg_ars": vwg["ARS"].astype(str).str[:9], "name": vwg["GEN"].astype(str),
                            "bez": vwg["BEZ"].astype(str), "geometry": vwg.geometry}, crs=vwg.crs)
    vwg["krs_ags"] = vwg["vwg_ars"].str[:5]
    vwg["land"] = vwg["vwg_ars"].str[:2]

    krs = _land_only(raw["KRS"])
    krs = gpd.GeoDataFrame({"krs_ags": krs["AGS"].astype(str).str[:5], "name": krs["GEN"].astype(str),
                            "bez": krs["BEZ"].astype(str), "geometry": krs.geometry}, crs=krs.crs)
    krs["land"] = krs["krs_ags"].str[:2]

    lan_all = raw["LAN"]
    gf = pd.to_numeric(lan_all["GF"], errors="coerce") if "GF" in lan_all else pd.Series(9, index=lan_all.index)
    lan_all = gpd.GeoDataFrame({"land": lan_all["AGS"].astype(str).str[:2], "name": lan_all["GEN"].astype(str),
                                "gf": gf, "geometry": lan_all.geometry}, crs=lan_all.crs)

    if land is not None:
        land = str(land).zfill(2)
        gem, vwg, krs, lan_all = (f[f["land"] == land] for f in (gem, vwg, krs, lan_all))
        if gem.empty:
            raise InputDataError(f"{path}: no Gemeinde of Land {land!r} in this bundle (AGS must start with {land})")

    lan = lan_all[lan_all["gf"].isin(LAND_GF)].drop(columns="gf")
    water = lan_all[lan_all["gf"] == 8][["land", "geometry"]]
    frames = {"gemeinde": _dissolve(gem, "ags"), "amt": _dissolve(vwg, "vwg_ars"),
              "kreis": _dissolve(krs, "krs_ags"), "land": _dissolve(lan, "land"), "coastal_water": water}
    frames = {k: to_crs(v, working_crs, f"{path} ({k})").reset_index(drop=True) for k, v in frames.items()}
    _check_hierarchy(frames, path)
    valid = None
    stamp = path / "aktualitaet.txt" if path.is_dir() else None
    if stamp is not None and stamp.exists():
        valid = stamp.read_text(encoding="latin-1").strip() or None
    return Boundaries(**frames, valid_date=valid)


def _check_hierarchy(frames: dict[str, gpd.GeoDataFrame], path: Path) -> None:
    gem = frames["gemeinde"]
    for level, key in (("amt", "vwg_ars"), ("kreis", "krs_ags"), ("land", "land")):
        orphans = sorted(set(gem[key]) - set(frames[level][key]))
        if orphans:
            raise InputDataError(
                f"{path}: {len(orphans)} Gemeinde(n) reference a {level} key missing from its layer "
                f"(first: {key}={orphans[0]!r})"
            )


def _check_keys(keys: pd.Series, digits: int, column: str, source: str) -> None:
    """Area keys are digits of a fixed length: they name report pages and files, so ``../x`` or
    ``13000001.0`` must stop the run, not become a path or a second key."""
    bad = ~keys.str.fullmatch(rf"\d{{{digits}}}").fillna(False)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputDataError(f"{source}: row {row + 1}, column {column}: {keys.iloc[row]!r} is not a {digits}-digit "
                             f"key ({int(bad.sum())} such value(s); map the right column with [boundaries.columns])")


def boundaries_from_gemeinden(gem: gpd.GeoDataFrame, working_crs: object, source: str = "boundaries") -> Boundaries:
    """Build all levels from one Gemeinde layer with canonical columns (ags, name, optional ars).

    For "any vector file with a column map": higher levels are dissolved from
    the Gemeinden; without ARS each Gemeinde is its own Amt.
    """
    missing = {"ags", "name"} - set(gem.columns)
    if missing:
        raise SchemaError(f"{source}: missing column(s) {sorted(missing)} (map them with [boundaries.columns])")
    gem = to_crs(gem, working_crs, source).copy()
    gem["ags"] = gem["ags"].astype(str).str.strip().str.zfill(8)
    _check_keys(gem["ags"], 8, "ags", source)
    if "ars" in gem:
        gem["ars"] = gem["ars"].astype(str).str.strip().str.zfill(12)
        _check_keys(gem["ars"], 12, "ars", source)
        gem["vwg_ars"] = gem["ars"].str[:9]
    else:  # no ARS: every Gemeinde is its own Verwaltungsgemeinschaft
        gem["ars"] = gem["ags"].str[:5] + "0" + gem["ags"].str[5:] + gem["ags"].str[5:]
        gem["vwg_ars"] = gem["ars"].str[:9]
    gem["bez"] = gem["bez"].astype(str) if "bez" in gem else "Gemeinde"
    gem["krs_ags"] = gem["ags"].str[:5]
    gem["land"] = gem["ags"].str[:2]
    names = [c for c in ("vwg_name", "krs_name") if c in gem]
    gem = _dissolve(gem[["ags", "ars", "name", "bez", "vwg_ars", "krs_ags", "land", *names, "geometry"]], "ags")

    def level(key: str, name_col: str | None) -> gpd.GeoDataFrame:
        out = gem.dissolve(by=key, as_index=False, aggfunc="first")
        out["name"] = out[name_col] if name_col and name_col in gem else out[key]
        return out

    amt = level("vwg_ars", "vwg_name")[["vwg_ars", "name", "krs_ags", "land", "geometry"]].assign(bez="")
    krs = level("krs_ags", "krs_name")[["krs_ags", "name", "land", "geometry"]].assign(bez="")
    lan = level("land", None)[["land", "name", "geometry"]]
    water = gpd.GeoDataFrame({"land": [], "geometry": []}, geometry="geometry", crs=gem.crs)
    return Boundaries(gemeinde=gem.drop(columns=names), amt=amt, kreis=krs, land=lan, coastal_water=water)
