"""The deterministic MV demo data generator (`bbcov synth`), end to end on the real open data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from pyproj import CRS, Transformer

from coverage.config import load_config
from coverage.errors import ConfigError
from coverage.sources.bkg import read_bkg_bundle
from coverage.sources.breitbandatlas import bba_wide, read_bba_table
from demo import build_mv as synth_pipeline
from demo.addresses import largest_remainder
from demo.build_mv import build_demo
from demo.businesses import MV_BUSINESS_LOCATIONS
from demo.sites import KREISSTAEDTE, MV_SCHOOLS, school_counts

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SEED = 7
SUBSET = ("13004",)  # Schwerin, the smallest Kreis: fast runs for determinism and atomicity


def _grid_1km() -> pd.DataFrame:
    return pd.read_parquet(DATA / "zensus2022" / "grid_1km.parquet")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def boundaries():
    return read_bkg_bundle(DATA / "bkg-vg5000-2021", "EPSG:25833", land="13")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "mv"
    summary = build_demo(DATA, out, scope="mv", vintage="2021-06", seed=SEED)
    return out, summary


@pytest.fixture(scope="module")
def located(demo, boundaries) -> gpd.GeoDataFrame:
    """addresses.csv joined to the MV Gemeinde containing each point (one row per (address, Gemeinde))."""
    out, _ = demo
    addr = pd.read_csv(
        out / "addresses.csv",
        dtype={"address_id": str, "postcode": str, "house_number": str, "site_kind": str, "site_name": str},
        keep_default_na=False,
    )
    pts = gpd.GeoDataFrame(addr, geometry=gpd.points_from_xy(addr["x"], addr["y"]), crs="EPSG:25833")
    return gpd.sjoin(
        pts,
        boundaries.gemeinde[["ags", "name", "vwg_ars", "krs_ags", "geometry"]],
        how="left",
        predicate="within",
    )


def _zensus_households(points: gpd.GeoDataFrame, boundaries) -> np.ndarray:
    """The households the demo run counts at ``points`` (site_kind, EPSG:25833): its Zensus estimate
    (``[households] source = "zensus"`` in the demo config), by the library function the run uses."""
    from coverage.households import estimate_households
    from coverage.sources.zensus import grid_bbox, read_grid_1km, read_grid_100m

    gem = boundaries.gemeinde
    bbox = grid_bbox(gem.total_bounds, gem.crs, margin_m=1500.0)
    g1 = read_grid_1km(DATA / "zensus2022" / "grid_1km.parquet", bbox)
    g100 = read_grid_100m(DATA / "zensus2022" / "grid_100m_buildings.parquet", bbox)
    hh, _, _ = estimate_households(points, g1, g100, gem, 1000.0, tolerance_m=500.0, land=boundaries.land)
    return hh.to_numpy()


@pytest.fixture(scope="module")
def counted(located, boundaries) -> gpd.GeoDataFrame:
    """``located`` with the households the demo run counts (:func:`_zensus_households`)."""
    pts = located.drop(columns="households")
    return pts.assign(households=_zensus_households(pts, boundaries))


@pytest.fixture(scope="module")
def bba() -> pd.DataFrame:
    return bba_wide(
        read_bba_table(DATA / "breitbandatlas" / "gemeinde_bezirke_privat_2021_mitte.csv")
    ).set_index("key")


def test_largest_remainder_hand_example():
    group = np.array([0, 0, 0, 1, 1])
    out = largest_remainder(group, np.array([1.0, 1.0, 2.0, 0.0, 0.0]), np.array([5, 3]))
    assert out.tolist() == [1, 1, 3, 2, 1] or out.tolist() == [2, 1, 2, 2, 1]
    assert out[:3].sum() == 5 and out[3:].sum() == 3


def test_kept_level_only_where_the_published_share_does_not_fall():
    """Issue 19: the level an address must keep is the highest threshold it reached before where its
    Gemeinde's published share did not fall; a Gemeinde without a published row keeps everything."""
    from demo.providers import _kept_level

    def table(s16, s50):
        return pd.DataFrame({"key": ["13000001", "13000002"], "share_ge_16_dsl": s16, "share_ge_50_dsl": s50})

    ags_all = np.array(["13000001", "13000002", "13000003"])
    codes = np.array([0, 0, 1, 1, 2])
    down = np.array([50.0, 16.0, 50.0, 6.0, 100.0])
    before = table([80.0, 60.0], [40.0, 30.0])
    # 13000001: both shares rise; 13000002: ≥ 50 falls (30 -> 20), ≥ 16 stays
    after = table([85.0, 60.0], [45.0, 20.0])
    need = _kept_level([(before, {"dsl": down})], after, "dsl", ags_all, codes)
    assert need.tolist() == [50.0, 16.0, 16.0, 0.0, 50.0]


def test_summary_and_manifest(demo):
    out, summary = demo
    assert 200_000 < summary["addresses"] < 500_000
    assert (out / ".complete").exists()
    manifest = json.loads((out / "synth_manifest.json").read_text(encoding="utf-8"))
    assert manifest["seed"] == SEED and manifest["vintage"] == "2021-06"
    assert len(manifest["sources"]["zensus_1km"]["sha256"]) == 64
    assert manifest["counts"] == summary
    assert len(manifest["gemeinden_without_bba"]) == summary["gemeinden_without_bba"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".mv.")]  # no temp folders left


def test_every_address_in_exactly_one_gemeinde(located):
    assert located["ags"].notna().all(), located[located["ags"].isna()].head()
    assert not located.index.duplicated().any()
    assert located["ags"].str.startswith("13").all()
    assert (located["locality"] == located["name"]).all()


def test_households_per_interior_1km_cell(located, boundaries):
    grid = pd.read_parquet(DATA / "zensus2022" / "grid_1km.parquet")
    grid = grid[(grid["einwohner"] > 0) & (grid["hh_groesse_d"] > 0)]
    land = shapely.union_all(boundaries.land.to_crs("EPSG:3035").geometry.to_numpy())
    inner = shapely.buffer(land, -200)
    shapely.prepare(inner)
    squares = shapely.box(grid["x"] - 500, grid["y"] - 500, grid["x"] + 500, grid["y"] + 500)
    interior = grid[shapely.contains(inner, squares)]
    tr = Transformer.from_crs("EPSG:25833", "EPSG:3035", always_xy=True)
    x3, y3 = tr.transform(located["x"].to_numpy(), located["y"].to_numpy())
    cx = np.floor(x3 / 1000) * 1000 + 500
    cy = np.floor(y3 / 1000) * 1000 + 500
    sums = pd.Series(located["households"].to_numpy()).groupby([cx, cy]).sum()
    got = sums.reindex(
        pd.MultiIndex.from_arrays([interior["x"].astype(float), interior["y"].astype(float)])
    ).fillna(0)
    expected = np.floor(interior["einwohner"] / interior["hh_groesse_d"] + 0.5).to_numpy()
    assert len(interior) > 5000
    np.testing.assert_array_equal(got.to_numpy(), expected)


def test_total_households_close_to_zensus(demo, boundaries):
    grid = pd.read_parquet(DATA / "zensus2022" / "grid_1km.parquet")
    grid = grid[(grid["einwohner"] > 0) & (grid["hh_groesse_d"] > 0)]
    land = shapely.union_all(boundaries.land.to_crs("EPSG:3035").geometry.to_numpy())
    in_mv = shapely.contains_xy(land, grid["x"].to_numpy(float), grid["y"].to_numpy(float))
    zensus = (grid["einwohner"] / grid["hh_groesse_d"])[in_mv].sum()
    _, summary = demo
    assert abs(summary["households"] / zensus - 1) < 0.03


def test_sites(located, boundaries):
    offices = located[located["site_kind"] == "gemeinde_office"]
    assert sorted(offices["ags"]) == sorted(boundaries.gemeinde["ags"])
    amts = boundaries.amt[boundaries.amt["bez"] == "Amt"]
    amt_offices = located[located["site_kind"] == "amt_office"]
    assert sorted(amt_offices["vwg_ars"]) == sorted(amts["vwg_ars"])
    assert (
        amt_offices["site_name"]
        == "Amt " + amts.set_index("vwg_ars")["name"].reindex(amt_offices["vwg_ars"]).to_numpy()
    ).all()
    kreis = located[located["site_kind"] == "kreis_office"]
    assert sorted(kreis["krs_ags"]) == sorted(KREISSTAEDTE)
    for _, row in kreis.iterrows():
        assert row["name"] == KREISSTAEDTE[row["krs_ags"]]
    schools = located[located["site_kind"] == "school"]
    assert len(schools) == MV_SCHOOLS  # the school statistics' count (560 general-education schools, 2021)
    assert schools.groupby("krs_ags").size().to_dict() == school_counts(boundaries, _grid_1km(), MV_SCHOOLS)
    assert schools["site_name"].str.startswith("Schule ").all() and schools["site_name"].is_unique
    sites = located[located["site_kind"] != ""]
    assert (sites["households"] == 0).all()
    assert sites["site_name"].str.len().gt(0).all()


def _shares(frame: pd.DataFrame, thresholds, down_col: str = "down") -> pd.DataFrame:
    """Household share (%) per Gemeinde with down >= t."""
    tot = frame.groupby("ags")["households"].sum()
    out = {}
    for t in thresholds:
        served = frame["households"].where(frame[down_col].fillna(0) >= t, 0)
        out[t] = served.groupby(frame["ags"]).sum() / tot * 100
    return pd.DataFrame(out)[tot > 0]


def _compare(shares: pd.DataFrame, bba: pd.DataFrame, group: str) -> float:
    return float(np.nanmean(_abs_diffs(shares, bba, group).to_numpy()))


def _abs_diffs(shares: pd.DataFrame, bba: pd.DataFrame, group: str, target: pd.DataFrame | None = None) -> pd.DataFrame:
    """|generated − published| (pp) per matched Gemeinde × threshold (``target``: other published values)."""
    matched = shares.index.intersection(bba.index)
    diffs = {}
    for t in shares.columns:
        col = f"share_ge_{t:g}_{group}"
        ref = bba.loc[matched, col] if target is None else target.loc[matched, t]
        diffs[t] = (shares.loc[matched, t] - ref).abs()
    return pd.DataFrame(diffs)


def _assert_per_gemeinde(diffs: pd.DataFrame, name: str, within: float = 0.95) -> None:
    """Issue 19's bound: within 5 pp at every threshold for >= 95 % of the Gemeinden, and above 10 pp
    in none."""
    worst = diffs.max(axis=1)
    assert (worst <= 5.0).mean() >= within, (name, worst.sort_values().tail(8).round(1).to_dict())
    assert (worst <= 10.0).all(), (name, worst.sort_values().tail(5).round(1).to_dict())


def _union_cap(bba: pd.DataFrame, thresholds) -> pd.DataFrame:
    """The published wired share, but at most DSL + cable + fibre published (a handful of Gemeinden
    publish a wired share above that sum: other wired technologies the table does not list)."""
    fibre_t = sorted(float(c.split("_")[2]) for c in bba.columns if c.startswith("share_ge_") and c.endswith("_fibre"))
    out = {}
    for t in thresholds:
        ft = next((f for f in fibre_t if f >= t), None)
        parts = [bba.get(f"share_ge_{t:g}_dsl"), bba.get(f"share_ge_{t:g}_hfc"),
                 None if ft is None else bba[f"share_ge_{ft:g}_fibre"]]
        total = sum(p.fillna(0) for p in parts if p is not None)
        out[t] = np.minimum(bba[f"share_ge_{t:g}_wired"], np.minimum(total, 100.0))
    return pd.DataFrame(out)


def test_calibration_dsl_fibre_hfc_mobile(demo, counted, bba):
    """Single technologies against the published shares, weighted by the households the run counts."""
    out, summary = demo
    addr = pd.DataFrame(counted[["address_id", "ags", "households", "x", "y"]])
    assert len(set(addr["ags"]) - set(bba.index)) == summary["gemeinden_without_bba"]

    dsl = pd.read_csv(out / "providers" / "dsl_kuestennetz.csv", sep=";", decimal=",", encoding="cp1252")
    d = addr.merge(dsl[["address_id", "down_mbps"]], on="address_id", how="left").rename(
        columns={"down_mbps": "down"}
    )
    assert _compare(_shares(d, [1, 2, 6, 16, 30, 50, 100, 200]), bba, "dsl") < 2.0

    fib = pd.read_csv(out / "providers" / "fibre_seenplatte.csv", sep=";", decimal=",", encoding="utf-8-sig")
    cur = fib[fib["status"] == "current"]
    f = addr.merge(cur[["x", "y", "down_mbps"]], on=["x", "y"], how="left").rename(
        columns={"down_mbps": "down"}
    )
    assert len(f) == len(addr)  # coordinates are exactly the address coordinates, one row each
    assert f["down"].notna().sum() == len(cur)
    assert _compare(_shares(f, [100, 200, 400, 1000]), bba, "fibre") < 2.0
    planned = fib[fib["status"] == "planned"]
    assert len(planned) > 0 and planned["planned_date"].str.match(r"^202[2-6]-\d\d-\d\d$").all()

    cable = gpd.read_file(out / "providers" / "cable_boddenkabel.gpkg", layer="coverage")
    pts = gpd.GeoDataFrame(addr, geometry=gpd.points_from_xy(addr["x"], addr["y"]), crs="EPSG:25833").to_crs(
        3035
    )
    hit = gpd.sjoin(pts, cable, how="left", predicate="within")
    assert not hit.index.duplicated().any()
    h = pd.DataFrame(hit[["ags", "households", "down_mbps"]]).rename(columns={"down_mbps": "down"})
    assert _compare(_shares(h, [16, 30, 50, 100, 200, 400, 1000]), bba, "hfc") < 2.0
    # all addresses of a 100 m cell share one class (the cell of the final coordinates)
    cell = np.floor(pts.geometry.x / 100).astype(np.int64) * 100_000 + np.floor(pts.geometry.y / 100).astype(
        np.int64
    )
    assert (h["down"].fillna(0).groupby(cell.to_numpy()).nunique() == 1).all()

    hk = (out / "hauskoordinaten.txt").read_text(encoding="utf-8").splitlines()
    assert hk[0] == "NBA;OI;QUA;LAN;RBZ;KRS;GMD;OTT;SSS;HNR;ADZ;EEEEEEEE,EEE;NNNNNNN,NNN;STN;PLZ;ONM;ZON;POT"
    assert (out / "businesses.csv").read_text(encoding="utf-8").splitlines()[0] == "address_id,businesses"
    assert (out / "sites.csv").read_text(encoding="utf-8").splitlines()[0] == "address_id,site_kind,site_name"

    with rasterio.open(out / "providers" / "mobile_hansefunk.tif") as src:
        band = src.read(1)
        col = np.floor((pts.geometry.x.to_numpy() - src.transform.c) / 100).astype(int)
        row = np.floor((src.transform.f - pts.geometry.y.to_numpy()) / 100).astype(int)
        values = band[row, col]
    m = pd.DataFrame({"ags": addr["ags"], "households": addr["households"], "down": values.astype(float)})
    assert _compare(_shares(m, [1, 2, 6]), bba, "mobile") < 3.0


def test_businesses_match_the_published_gewerbe_shares(demo, located):
    """Businesses sit where the published business shares (Gewerbe table) put them, per Gemeinde:
    within 2 pp mean absolute difference per group (issue 13), with about as many businesses as the
    business register counts in MV. A Gemeinde with B businesses can meet a share only up to one
    business, so the rounding floor (each threshold's count rounded on its own) bounds it too."""
    out, _ = demo
    gew = bba_wide(read_bba_table(DATA / "breitbandatlas" / "gemeinde_bezirke_gew_2021_mitte.csv")).set_index("key")
    addr = pd.DataFrame(located[["address_id", "ags", "businesses", "x", "y"]]).reset_index(drop=True)
    thresholds = [2, 16, 30, 50, 100, 200, 400, 1000]
    cls = _best_classes(out, addr, thresholds)
    cls["wired"] = np.maximum.reduce([cls["dsl"], cls["fibre"], cls["hfc"]])
    biz = addr["businesses"].to_numpy(float)
    total = pd.Series(biz).groupby(addr["ags"].to_numpy()).sum()
    keys = total.index[(total > 0) & total.index.isin(gew.index)]
    assert len(keys) > 700
    assert abs(biz.sum() / MV_BUSINESS_LOCATIONS - 1) < 0.02
    for group, k in cls.items():
        diffs, floor = [], []
        for j, t in enumerate(thresholds):
            col = f"share_ge_{t}_{group}"
            if col not in gew:
                continue
            ge = pd.Series(biz * (k > j)).groupby(addr["ags"].to_numpy()).sum()
            pub = gew.loc[keys, col].to_numpy(float)
            b = total[keys].to_numpy()
            ok = ~np.isnan(pub)
            diffs.append(np.abs(100 * ge[keys].to_numpy() / b - pub)[ok])
            floor.append((np.abs(b * pub / 100 - np.round(b * pub / 100)) / b * 100)[ok])
        mean_diff = np.mean([d.mean() for d in diffs])
        mean_floor = np.mean([f.mean() for f in floor])
        assert mean_diff <= mean_floor + 1.0, (group, mean_diff, mean_floor)
        assert mean_diff <= 2.0, (group, mean_diff)


def _mobile_at(out: Path, addr: pd.DataFrame) -> np.ndarray:
    """Mobile download (Mbit/s) of the raster pixel at each address (``addr`` order)."""
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(addr["x"], addr["y"]), crs="EPSG:25833").to_crs(3035)
    with rasterio.open(out / "providers" / "mobile_hansefunk.tif") as src:
        band = src.read(1)
        col = np.floor((pts.geometry.x.to_numpy() - src.transform.c) / 100).astype(int)
        row = np.floor((src.transform.f - pts.geometry.y.to_numpy()) / 100).astype(int)
        return band[row, col].astype(float)


def test_schools_match_the_kreis_table(demo, located):
    """Schools per Kreis: the statistics' count, and their coverage by any technology (DSL, fibre,
    cable, mobile as delivered) within 3 pp mean absolute difference per threshold of the
    Breitbandatlas Kreis table's school columns (issue 19)."""
    from coverage.sources.breitbandatlas import read_bba_kreis_table

    out, _ = demo
    schools = pd.DataFrame(located.loc[located["site_kind"] == "school", ["address_id", "krs_ags", "x", "y"]])
    schools = schools.reset_index(drop=True)
    thresholds = [16, 30, 50, 100, 200, 400, 1000]
    cls = _best_classes(out, schools, thresholds)
    mobile = np.searchsorted(np.asarray(thresholds, float), _mobile_at(out, schools), side="right")
    best = np.maximum.reduce([cls["dsl"], cls["fibre"], cls["hfc"], mobile])
    pub = read_bba_kreis_table(DATA / "breitbandatlas" / "2021_BBA_Kreisdaten.xls")
    pub = pub[(pub["kind"] == "schools") & (pub["group"] == "all")].pivot_table(
        index="key", columns="threshold_mbps", values="share")
    kreise = sorted(schools["krs_ags"].unique())
    assert len(kreise) == 8 and set(kreise) <= set(pub.index)
    for j, t in enumerate(thresholds):
        run = pd.Series(100.0 * (best > j)).groupby(schools["krs_ags"].to_numpy()).mean()
        diff = (run[kreise] - pub.loc[kreise, float(t)]).abs()
        assert diff.mean() <= 3.0, (t, diff.round(1).to_dict())


def test_file_formats(demo):
    out, _ = demo
    cfg = load_config(out / "bbcov.toml")
    assert cfg.boundaries.path == (DATA / "bkg-vg5000-2021").resolve()
    assert [p.format for p in cfg.providers] == ["address-csv", "address-csv", "polygons", "raster"]
    assert all(p.path.exists() for p in cfg.providers) and cfg.addresses.path.exists()
    # the real path of a Landkreis: HK-DE addresses, own business and site lists, Zensus households
    assert cfg.addresses.path.name == "hauskoordinaten.txt" and cfg.addresses.format == "hk-de"
    assert cfg.businesses is not None and cfg.businesses.path == (out / "businesses.csv").resolve()
    assert cfg.sites is not None and cfg.sites.path == (out / "sites.csv").resolve()
    assert cfg.households.source == "zensus"
    assert cfg.households.grid_1km == ((DATA / "zensus2022" / "grid_1km.parquet").resolve(),)
    assert cfg.households.grid_100m == ((DATA / "zensus2022" / "grid_100m_buildings.parquet").resolve(),)
    assert "[output]" not in (out / "bbcov.toml").read_text(encoding="utf-8")
    assert cfg.analysis.reference_date == "2021-06-30"

    raw = (out / "providers" / "dsl_kuestennetz.csv").read_bytes()
    text = raw.decode("cp1252")
    assert "Küstennetz" in text and "(fiktiv)" in text
    header, first = text.splitlines()[:2]
    assert header == "address_id;provider;technology;down_mbps;up_mbps"
    assert "," in first.split(";")[3]
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    fibre = (out / "providers" / "fibre_seenplatte.csv").read_bytes()
    assert fibre.startswith(b"\xef\xbb\xbf")
    assert (
        fibre.decode("utf-8-sig").splitlines()[0]
        == "provider;technology;down_mbps;up_mbps;x;y;status;planned_date"
    )
    addresses = (out / "addresses.csv").read_bytes()
    assert not addresses.startswith(b"\xef\xbb\xbf")
    assert addresses.decode("utf-8").splitlines()[0] == (
        "address_id,x,y,households,businesses,site_kind,site_name,street,house_number,postcode,locality"
    )

    hk = (out / "hauskoordinaten.txt").read_text(encoding="utf-8").splitlines()
    assert hk[0] == "NBA;OI;QUA;LAN;RBZ;KRS;GMD;OTT;SSS;HNR;ADZ;EEEEEEEE,EEE;NNNNNNN,NNN;STN;PLZ;ONM;ZON;POT"
    assert (out / "businesses.csv").read_text(encoding="utf-8").splitlines()[0] == "address_id,businesses"
    assert (out / "sites.csv").read_text(encoding="utf-8").splitlines()[0] == "address_id,site_kind,site_name"

    with rasterio.open(out / "providers" / "mobile_hansefunk.tif") as src:
        assert CRS.from_user_input(src.crs).equals(CRS.from_epsg(3035))
        assert src.res == (100.0, 100.0) and src.nodata == 0 and src.dtypes[0] == "uint16"
        assert src.transform.c % 100 == 0 and src.transform.f % 100 == 0

    info = pyogrio.read_info(out / "providers" / "cable_boddenkabel.gpkg", layer="coverage")
    assert CRS.from_user_input(info["crs"]).equals(CRS.from_epsg(3035))
    cable = gpd.read_file(out / "providers" / "cable_boddenkabel.gpkg", layer="coverage")
    assert len(cable) > 0 and cable.is_valid.all()
    assert {"down_mbps", "up_mbps"} <= set(cable.columns)


def test_hkde_businesses_and_sites_carry_the_demo_addresses(demo, boundaries):
    """Read as the run reads them, the HK-DE file and the two lists give back addresses.csv exactly."""
    from coverage.config import AddressesConfig
    from coverage.locate import locate_addresses
    from coverage.sources.address_lists import link_businesses, link_sites
    from coverage.sources.addresses import read_addresses

    out, _ = demo
    csv = pd.read_csv(out / "addresses.csv", dtype={"address_id": str, "postcode": str, "house_number": str},
                      keep_default_na=False)
    cfg = load_config(out / "bbcov.toml")
    hk, rejected, rows = read_addresses(AddressesConfig(path=out / "hauskoordinaten.txt", format="hk-de"),
                                        "EPSG:25833", "ignore")
    assert rows == len(csv) == len(hk) and len(rejected) == 0
    assert hk["address_id"].tolist() == csv["address_id"].tolist()
    assert np.abs(hk.geometry.x.to_numpy() - csv["x"].to_numpy()).max() < 1e-6
    assert np.abs(hk.geometry.y.to_numpy() - csv["y"].to_numpy()).max() < 1e-6
    for col in ("street", "house_number", "postcode", "locality"):
        assert hk[col].tolist() == csv[col].astype(str).tolist(), col
    located, outside = locate_addresses(hk, boundaries.gemeinde, 500.0, "hauskoordinaten.txt")
    assert len(outside) == 0 and (located["ags_cadastre"] == located["ags"]).all()
    assert cfg.businesses is not None and cfg.sites is not None
    biz = link_businesses(cfg.businesses, hk, None, "EPSG:25833", 25.0)
    assert len(biz.quarantine) == 0 and biz.values["businesses"].tolist() == csv["businesses"].astype(float).tolist()
    sites = link_sites(cfg.sites, hk, None, "EPSG:25833", 25.0)
    assert len(sites.quarantine) == 0
    assert sites.values["site_kind"].tolist() == csv["site_kind"].tolist()
    assert sites.values["site_name"].tolist() == csv["site_name"].tolist()


def test_deterministic_and_atomic(tmp_path, monkeypatch):
    names = [
        "addresses.csv",
        "providers/dsl_kuestennetz.csv",
        "providers/fibre_seenplatte.csv",
        "providers/cable_boddenkabel.gpkg",
    ]
    a = tmp_path / "a"
    build_demo(DATA, a, seed=SEED, kreise=SUBSET)
    first = {n: _sha(a / n) for n in names[:3]}
    build_demo(DATA, a, seed=SEED, kreise=SUBSET)  # replaces the existing folder
    assert {n: _sha(a / n) for n in names[:3]} == first
    b = tmp_path / "b"
    build_demo(DATA, b, seed=SEED + 1, kreise=SUBSET)
    for n in names[:3]:
        assert _sha(b / n) != first[n], n

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth_pipeline, "_write_raster", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build_demo(DATA, a, seed=SEED + 2, kreise=SUBSET)
    assert {n: _sha(a / n) for n in names[:3]} == first  # the old result is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temp folder left


def test_bad_scope_and_vintage(tmp_path):
    with pytest.raises(ConfigError, match="scope"):
        build_demo(DATA, tmp_path / "x", scope="bb")
    with pytest.raises(ConfigError, match="vintage"):
        build_demo(DATA, tmp_path / "x", vintage="2022-06")
    assert not (tmp_path / "x").exists()


def test_calibration_wired_and_all_combinations(demo, counted, bba):
    """Union per address: wired = max(DSL csv, cable polygons, current fibre rows), all = max(wired,
    mobile raster at the address cell); per-Gemeinde shares of the households the run counts vs the
    published ones: on average and per Gemeinde (issue 19's bounds)."""
    out, _ = demo
    addr = pd.DataFrame(counted[["address_id", "ags", "households", "x", "y"]]).reset_index(drop=True)
    dsl = pd.read_csv(out / "providers" / "dsl_kuestennetz.csv", sep=";", decimal=",", encoding="cp1252")
    d = addr[["address_id"]].merge(dsl[["address_id", "down_mbps"]], on="address_id", how="left")["down_mbps"]
    fib = pd.read_csv(out / "providers" / "fibre_seenplatte.csv", sep=";", decimal=",", encoding="utf-8-sig")
    cur = fib[fib["status"] == "current"]
    f = addr[["x", "y"]].merge(cur[["x", "y", "down_mbps"]], on=["x", "y"], how="left")["down_mbps"]
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(addr["x"], addr["y"]), crs="EPSG:25833").to_crs(3035)
    cable = gpd.read_file(out / "providers" / "cable_boddenkabel.gpkg", layer="coverage")
    h = gpd.sjoin(pts, cable, how="left", predicate="within")["down_mbps"].sort_index()
    assert len(d) == len(f) == len(h) == len(addr)
    wired = np.fmax(np.fmax(d.to_numpy(float), f.to_numpy(float)), h.to_numpy(float))
    hk = (out / "hauskoordinaten.txt").read_text(encoding="utf-8").splitlines()
    assert hk[0] == "NBA;OI;QUA;LAN;RBZ;KRS;GMD;OTT;SSS;HNR;ADZ;EEEEEEEE,EEE;NNNNNNN,NNN;STN;PLZ;ONM;ZON;POT"
    assert (out / "businesses.csv").read_text(encoding="utf-8").splitlines()[0] == "address_id,businesses"
    assert (out / "sites.csv").read_text(encoding="utf-8").splitlines()[0] == "address_id,site_kind,site_name"

    with rasterio.open(out / "providers" / "mobile_hansefunk.tif") as src:
        band = src.read(1)
        col = np.floor((pts.geometry.x.to_numpy() - src.transform.c) / 100).astype(int)
        row = np.floor((src.transform.f - pts.geometry.y.to_numpy()) / 100).astype(int)
        mobile = band[row, col].astype(float)
    frame = addr.assign(wired=wired, all=np.fmax(wired, mobile))
    thresholds = [2, 16, 30, 50, 100, 200, 400, 1000]
    wired_shares = _shares(frame, thresholds, "wired")
    all_shares = _shares(frame, thresholds, "all")
    wired_err = _compare(wired_shares, bba, "wired")
    all_err = _compare(all_shares, bba, "all")
    assert wired_err < 0.5, wired_err
    assert all_err < 0.5, all_err
    # No exception to "never above 10 pp", not even where the published wired share exceeds DSL + cable +
    # fibre published (13075083 at >= 16 Mbit/s: wired 87.8 against DSL 71.0 + cable 0.4 + fibre 1.3):
    # there DSL gives up a few pp of its own share (demo.polish, shortfall beyond what fibre can add)
    _assert_per_gemeinde(_abs_diffs(wired_shares, bba, "wired"), "wired")
    _assert_per_gemeinde(_abs_diffs(all_shares, bba, "all"), "all")  # mobile fills the gap below 30 Mbit/s
    # against what DSL + cable + fibre can reach
    _assert_per_gemeinde(_abs_diffs(wired_shares, bba, "wired", _union_cap(bba, thresholds)), "wired (cap)")
    for group, down in (("dsl", d), ("fibre", f), ("hfc", h)):
        t_g = [t for t in thresholds if f"share_ge_{t:g}_{group}" in bba.columns]
        one = _shares(addr.assign(down=down.to_numpy(float)), t_g)
        _assert_per_gemeinde(_abs_diffs(one, bba, group), group)
    # mobile lifts households over 30 Mbit/s almost nowhere (the published all ≈ wired there)
    lifted = frame["households"].where((frame["all"] >= 30) & ~(frame["wired"] >= 30), 0).sum()
    assert lifted / frame["households"].sum() < 0.005


def _best_classes(out: Path, addr: pd.DataFrame, thresholds) -> dict[str, np.ndarray]:
    """Per address (``addr`` order): number of ``thresholds`` reached by DSL, current fibre, cable."""
    dsl = pd.read_csv(out / "providers" / "dsl_kuestennetz.csv", sep=";", decimal=",", encoding="cp1252")
    d = addr[["address_id"]].merge(dsl[["address_id", "down_mbps"]], on="address_id", how="left")["down_mbps"]
    fib = pd.read_csv(out / "providers" / "fibre_seenplatte.csv", sep=";", decimal=",", encoding="utf-8-sig")
    cur = fib[fib["status"] == "current"].groupby(["x", "y"], as_index=False)["down_mbps"].max()
    f = addr[["x", "y"]].merge(cur, on=["x", "y"], how="left")["down_mbps"]
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(addr["x"], addr["y"]), crs="EPSG:25833").to_crs(3035)
    cable = gpd.read_file(out / "providers" / "cable_boddenkabel.gpkg", layer="coverage")
    h = gpd.sjoin(pts, cable, how="left", predicate="within")["down_mbps"].groupby(level=0).max()
    assert len(d) == len(f) == len(h) == len(addr)
    t = np.asarray(thresholds, float)
    return {
        name: np.searchsorted(t, np.nan_to_num(v.to_numpy(float), nan=0.0), side="right")
        for name, v in (("dsl", d), ("fibre", f), ("hfc", h))
    }


def test_vintages_consistent(tmp_path, boundaries):
    """Same seed, 2019-12 vs 2021-06: identical addresses; no address (households or not) loses a
    class of DSL, cable, fibre, mobile, wired or all unless the published share of its Gemeinde at
    that threshold falls between the two tables (issue 19); the 2019 mobile shares match the 2019
    table (mean within 2 pp)."""
    kreise = ("13075",)
    early, late = tmp_path / "v19", tmp_path / "v21"
    build_demo(DATA, early, vintage="2019-12", seed=SEED, kreise=kreise)
    build_demo(DATA, late, vintage="2021-06", seed=SEED, kreise=kreise)
    assert (early / "addresses.csv").read_bytes() == (late / "addresses.csv").read_bytes()
    manifest = json.loads((late / "synth_manifest.json").read_text(encoding="utf-8"))
    assert sorted(manifest["earlier_vintages"]) == ["2019-12", "2020-06", "2020-12"]
    addr = pd.read_csv(early / "addresses.csv", dtype={"address_id": str, "site_kind": str}, keep_default_na=False,
                       usecols=["address_id", "x", "y", "site_kind"])
    pts = gpd.GeoDataFrame(addr, geometry=gpd.points_from_xy(addr["x"], addr["y"]), crs="EPSG:25833")
    pts = gpd.sjoin(pts, boundaries.gemeinde[["ags", "geometry"]], how="left", predicate="within")
    addr = pd.DataFrame(pts.drop(columns=["geometry", "index_right"])).reset_index(drop=True)
    addr["households"] = _zensus_households(pts.drop(columns=["ags", "index_right"]), boundaries)
    tables = {v: bba_wide(read_bba_table(DATA / "breitbandatlas" / f"gemeinde_bezirke_privat_{v}.csv")).set_index("key")
              for v in ("2019_ende", "2021_mitte")}
    thresholds = [1, 2, 6, 16, 30, 50, 100, 200, 400, 1000]
    a = _best_classes(early, addr, thresholds)
    b = _best_classes(late, addr, thresholds)
    for cls, out in ((a, early), (b, late)):
        cls["mobile"] = np.searchsorted(np.asarray(thresholds, float), _mobile_at(out, addr), side="right")
        cls["wired"] = np.maximum.reduce([cls["dsl"], cls["fibre"], cls["hfc"]])
        cls["all"] = np.maximum(cls["wired"], cls["mobile"])
    checked = 0
    for name in a:
        # a class lost at threshold t counts only where the published share at t did not drop
        lost = np.zeros(len(addr), bool)
        for j, t in enumerate(thresholds):
            col = f"share_ge_{t}_{name}"
            if col in tables["2019_ende"] and col in tables["2021_mitte"]:
                before = tables["2019_ende"][col].reindex(addr["ags"]).to_numpy()
                after = tables["2021_mitte"][col].reindex(addr["ags"]).to_numpy()
                lost |= (a[name] > j) & (b[name] <= j) & ~(after < before)
                checked += 1
        assert not lost.any(), (name, int(lost.sum()), addr.loc[lost, ["address_id", "ags"]].head().to_dict("records"))
    assert checked == 8 + 10 + 1 + 3 + 10 + 10  # dsl, hfc, fibre (2019: 1000 only), mobile, wired, all
    gained = {name: float((b[name] > a[name]).mean()) for name in a}
    assert gained["dsl"] > 0.05 and gained["hfc"] > 0.05 and gained["fibre"] > 0.002, gained  # real changes

    m = addr.assign(down=_mobile_at(early, addr))
    assert _compare(_shares(m, [1, 2, 6]), tables["2019_ende"], "mobile") < 2.0
