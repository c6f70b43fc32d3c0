"""Households per address from the Zensus 2022 grids ([households] source = "zensus").

The hand-made world is 2 × 2 km in EPSG:3035 (so 1 km cells are exact squares), offset by E0, N0::

    y 1000..2000 |  C01: 10 hh, no address   |  C11: 16 hh, no address        |
    y    0..1000 |  C00: 50 hh, a1 a2 a3     |  C10: 30 hh, b1 b2, a school   |
                    G1 (x 0..1000)              G2 (x 1000..2000)
    C-10 (x -1000..0): 25 hh, outside both Gemeinden (ignored, counted).

100 m dwellings: a1 and a2 share a cell with 30 (15 each), a3's cell has 10, so C00's 50
households go 18.75 / 18.75 / 12.5. b1's 100 m cell has no figure, so C10 is spread evenly (15 / 15).
C01's centre (500, 1500) is 738.2 m from a3 (850, 850); C11's centre (1500, 1500) is 721.1 m from b2
(1900, 900): within 1000 m they go there, within 500 m they are unallocated in G1 and G2.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from shapely.geometry import Point, box

from coverage.config import AddressesConfig, HouseholdsConfig, load_config
from coverage.errors import ConfigError, InputDataError
from coverage.households import estimate_households
from coverage.locate import Locator
from coverage.sources.bkg import boundaries_from_gemeinden
from coverage.sources.zensus import read_grid_1km
from pipelines.cli import main
from pipelines.stages import stage_addresses
from tests.conftest import CRS, X0, Y0
from tests.world import write_world

E0, N0 = 4_500_000, 3_300_000
LAEA = "EPSG:3035"


def gemeinden() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"ags": ["13000001", "13000002"], "name": ["Eins", "Zwei"],
                             "ars": ["130000001001", "130000001002"], "vwg_name": ["Amt A", "Amt A"]},
                            geometry=[box(E0, N0, E0 + 1000, N0 + 2000), box(E0 + 1000, N0, E0 + 2000, N0 + 2000)],
                            crs=LAEA)


def addresses() -> gpd.GeoDataFrame:
    xy = {"a1": (150, 150), "a2": (180, 120), "a3": (850, 850), "b1": (1100, 100), "b2": (1900, 900),
          "s1": (1500, 500)}
    return gpd.GeoDataFrame({"address_id": list(xy), "households": np.nan,
                             "site_kind": ["", "", "", "", "", "school"],
                             "ags": ["13000001"] * 3 + ["13000002"] * 3},
                            geometry=[Point(E0 + x, N0 + y) for x, y in xy.values()], crs=LAEA)


def grid_1km() -> pd.DataFrame:
    cells = [(500, 500, 100, 2.0), (1500, 500, 60, 2.0), (500, 1500, 21, 2.1), (1500, 1500, 40, 2.5),
             (-500, 500, 50, 2.0)]
    return pd.DataFrame([(E0 + x, N0 + y, float(e), h) for x, y, e, h in cells],
                        columns=["x", "y", "einwohner", "hh_groesse_d"])


def grid_100m() -> pd.DataFrame:
    return pd.DataFrame({"x": [E0 + 150, E0 + 850, E0 + 1950], "y": [N0 + 150, N0 + 850, N0 + 950],
                         "buildings": [3.0, 1.0, 1.0], "dwellings": [30.0, 10.0, 5.0]})


def estimate(max_distance_m: float = 1000.0, g1: pd.DataFrame | None = None):
    addr = addresses()
    gem = boundaries_from_gemeinden(gemeinden(), LAEA).gemeinde
    hh, unallocated, summary = estimate_households(addr, grid_1km() if g1 is None else g1, grid_100m(), gem,
                                                   max_distance_m)
    return pd.Series(hh.to_numpy(), index=addr["address_id"]), unallocated.set_index("ags"), summary


def test_every_cell_with_addresses_keeps_its_zensus_households():
    hh, _, summary = estimate(max_distance_m=100)  # nothing moves from the empty cells
    assert math.isclose(hh[["a1", "a2", "a3"]].sum(), 100 / 2.0, rel_tol=1e-9)
    assert math.isclose(hh[["b1", "b2", "s1"]].sum(), 60 / 2.0, rel_tol=1e-9)
    assert hh.dtype == np.float64
    assert summary["cells_used"] == 4 and summary["cells_out_of_scope"] == 1
    assert summary["households_out_of_scope"] == 25.0


def test_100m_dwellings_weight_the_spread_and_sites_get_none():
    hh, _, summary = estimate(max_distance_m=100)
    assert hh["a1"] == pytest.approx(18.75) and hh["a2"] == pytest.approx(18.75) and hh["a3"] == pytest.approx(12.5)
    # b1's 100 m cell has no figure: C10 is spread evenly; the school gets nothing.
    assert (hh["b1"], hh["b2"], hh["s1"]) == (15.0, 15.0, 0.0)
    assert (summary["cells_weighted"], summary["cells_spread_evenly"]) == (1, 1)


def test_a_cell_without_address_goes_to_the_nearest_address_within_the_distance():
    hh, unallocated, summary = estimate(max_distance_m=1000)
    assert hh["a3"] == pytest.approx(12.5 + 10.0) and hh["b2"] == pytest.approx(15.0 + 16.0)
    assert unallocated["unallocated_households"].sum() == 0
    assert summary["cells_to_nearest"] == 2 and summary["households_estimated"] == pytest.approx(106.0)


def test_farther_it_is_unallocated_in_the_gemeinde_of_the_cell_centre():
    hh, unallocated, summary = estimate(max_distance_m=500)
    assert unallocated.loc["13000001", "unallocated_households"] == pytest.approx(10.0)
    assert unallocated.loc["13000002", "unallocated_households"] == pytest.approx(16.0)
    assert unallocated["zensus_households"].to_dict() == pytest.approx({"13000001": 60.0, "13000002": 46.0})
    assert hh.sum() == pytest.approx(80.0) and summary["households_unallocated"] == pytest.approx(26.0)
    assert summary["households_in_scope"] == pytest.approx(106.0)


def test_suppressed_values_give_no_estimate(tmp_path):
    raw = grid_1km()
    raw.loc[1, "hh_groesse_d"] = -9.0  # C10: household size suppressed
    raw.loc[3, "einwohner"] = -1.0  # C11: no inhabitants figure
    path = tmp_path / "grid_1km.parquet"
    raw.astype({"x": "int64", "y": "int64"}).to_parquet(path)
    hh, unallocated, summary = estimate(max_distance_m=1000, g1=read_grid_1km(path))
    assert (hh["b1"], hh["b2"]) == (0.0, 0.0)  # no number is invented for C10
    assert hh["a3"] == pytest.approx(12.5 + 10.0) and unallocated["unallocated_households"].sum() == 0
    assert (summary["cells_without_estimate"], summary["inhabitants_without_estimate"]) == (2, 60.0)
    assert summary["addresses_without_estimate"] == 2
    assert summary["households_in_scope"] == pytest.approx(60.0) and hh.sum() == pytest.approx(60.0)


def test_cell_corners_instead_of_centres_are_refused():
    g1 = grid_1km()
    g1["x"] -= 500
    with pytest.raises(InputDataError, match=r"column x value 4500000 is not a 1000 m cell centre"):
        estimate(g1=g1)


def _stage(tmp_path: Path, replace: bool):
    (tmp_path / "addresses.csv").write_text(
        "address_id,x,y,households\n"
        f"a1,{E0 + 150},{N0 + 150},7\n"
        f"a3,{E0 + 850},{N0 + 850},1\n", encoding="utf-8")
    grid_1km().astype({"x": "int64", "y": "int64"}).to_parquet(tmp_path / "grid_1km.parquet")
    bounds = boundaries_from_gemeinden(gemeinden(), LAEA)
    households = HouseholdsConfig("zensus", (tmp_path / "grid_1km.parquet",), (), 100.0, replace)
    result = stage_addresses(boundaries=bounds, locator=Locator.build(bounds.gemeinde),
                             section=AddressesConfig(tmp_path / "addresses.csv", crs=LAEA), crs=LAEA, tolerance_m=0.0,
                             households=households)
    return result.outputs["addresses"].set_index("address_id")["households"], result


def test_an_existing_households_column_is_kept_unless_replace(tmp_path):
    kept, result = _stage(tmp_path, replace=False)
    assert kept.to_dict() == {"a1": 7.0, "a3": 1.0} and len(result.outputs["unallocated"]) == 0
    replaced, result = _stage(tmp_path, replace=True)
    assert replaced.to_dict() == {"a1": 25.0, "a3": 25.0}  # C00 evenly (no 100 m grid); C01, C11 too far
    assert replaced.dtype == np.float64
    assert "households from Zensus" in [a.stage for a in result.accounting]


@pytest.mark.parametrize(("section", "message"), [
    ('source = "zensus"\n', "needs grid_1km"),
    ('source = "census"\ngrid_1km = "g.parquet"\n', "households.source"),
    ('source = "zensus"\ngrid_1km = "g.parquet"\nmax_distance_m = 0\n', "max_distance_m"),
    ('source = "zensus"\ngrid_1km = "g.parquet"\nradius = 5\n', "unknown key(s) ['radius'] in [households]"),
])
def test_config_mistakes_name_the_key(tmp_path, section, message):
    path = tmp_path / "run.toml"
    path.write_text(f'[boundaries]\npath = "b"\n[addresses]\npath = "a.csv"\n[households]\n{section}',
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path)


def test_config_paths_are_relative_to_the_config_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[boundaries]\npath = "b"\n[addresses]\npath = "a.csv"\n[households]\nsource = "zensus"\n'
                    'grid_1km = ["z/einwohner.csv", "z/hh.csv"]\ngrid_100m = "z/100m.parquet"\n', encoding="utf-8")
    h = load_config(path).households
    assert h.grid_1km == (tmp_path / "z" / "einwohner.csv", tmp_path / "z" / "hh.csv")
    assert h.grid_100m == (tmp_path / "z" / "100m.parquet",) and (h.max_distance_m, h.replace) == (1000.0, False)


# --- end to end: the three-Gemeinden world of tests/world.py -----------------------------------

def _world_grid(root: Path) -> float:
    """A 1 km Zensus parquet over the world (EPSG:3035 cell centres); returns the households of the
    cells in scope: whose centre lies in one of the three Gemeinden (the square X0..X0+2000, Y0..Y0+2000)
    or within the locate tolerance (500 m) of it, like an address."""
    to_laea = Transformer.from_crs(CRS, LAEA, always_xy=True)
    to_world = Transformer.from_crs(LAEA, CRS, always_xy=True)
    ex, ey = to_laea.transform([X0 - 500, X0 + 2500, X0 - 500, X0 + 2500], [Y0 - 500, Y0 - 500, Y0 + 2500, Y0 + 2500])
    xs = np.arange(math.floor(min(ex) / 1000), math.floor(max(ex) / 1000) + 1) * 1000 + 500
    ys = np.arange(math.floor(min(ey) / 1000), math.floor(max(ey) / 1000) + 1) * 1000 + 500
    gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
    people = 10.0 * (1 + np.arange(len(gx)))  # every cell its own number: 10, 20, 30 … inhabitants
    pd.DataFrame({"x": gx, "y": gy, "einwohner": people, "hh_groesse_d": 2.0}).to_parquet(root / "zensus.parquet")
    wx, wy = to_world.transform(gx, gy)
    dx = np.maximum(np.maximum(X0 - wx, wx - (X0 + 2000)), 0)
    dy = np.maximum(np.maximum(Y0 - wy, wy - (Y0 + 2000)), 0)
    in_scope = np.hypot(dx, dy) <= 500
    assert 0 < in_scope.sum() < len(gx)  # some cells are in scope, some belong to the neighbours
    return float((people / 2.0)[in_scope].sum())


def test_cli_run_reports_unallocated_households_per_gemeinde_and_land(tmp_path, capsys):
    config = write_world(tmp_path)
    in_scope = _world_grid(tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace(
        "[analysis]", '[households]\nsource = "zensus"\ngrid_1km = "zensus.parquet"\nmax_distance_m = 1\n'
        "replace = true\n[analysis]"), encoding="utf-8")
    assert main(["run", "--config", str(config), "--no-report"]) == 0
    run = tmp_path / "out" / "latest"

    def table(level: str) -> pd.DataFrame:
        return pd.read_csv(run / "tables" / f"coverage_{level}.csv", dtype={"ags": str})

    gem, land = table("gemeinde").set_index("ags"), table("land").iloc[0]
    # replace = true: the households column is not read, so A5 ("drei" households) is an address too
    assert gem["addresses"].to_dict() == {"13000001": 2, "13000002": 1, "13000003": 2}
    assert (gem["unallocated_households"] > 0).any()  # cells with no address within 1 m
    assert gem["unallocated_households"].sum() == pytest.approx(land["unallocated_households"])
    assert land["households"] + land["unallocated_households"] == pytest.approx(in_scope, rel=1e-9)
    unallocated = pd.read_csv(run / "unallocated_households.csv", dtype={"ags": str}).set_index("ags")
    assert unallocated["unallocated_households"].to_dict() == pytest.approx(
        gem.loc[unallocated.index, "unallocated_households"].to_dict())
    # A rerun from the service stage reuses the addresses stage and reads `unallocated` back.
    capsys.readouterr()
    assert main(["run", "--config", str(config), "--no-report", "--from", "service"]) == 0
    assert "addresses" not in _stages_run(capsys.readouterr().out)
    rerun = pd.read_csv(tmp_path / "out" / "latest" / "tables" / "coverage_gemeinde.csv", dtype={"ags": str})
    assert rerun.set_index("ags")["unallocated_households"].to_dict() == gem["unallocated_households"].to_dict()
    # A changed grid file reruns the addresses stage.
    grid = pd.read_parquet(tmp_path / "zensus.parquet")
    grid.assign(einwohner=grid["einwohner"] * 2).to_parquet(tmp_path / "zensus.parquet")
    assert main(["run", "--config", str(config), "--no-report"]) == 0
    assert "addresses" in _stages_run(capsys.readouterr().out)
    land2 = pd.read_csv(tmp_path / "out" / "latest" / "tables" / "coverage_land.csv").iloc[0]
    assert land2["households"] + land2["unallocated_households"] == pytest.approx(2 * in_scope, rel=1e-9)


def _stages_run(out: str) -> list[str]:
    line = next(x for x in out.splitlines() if x.startswith("stages run: "))
    return line.removeprefix("stages run: ").split("; reused")[0].split(", ")


# --- real data: one MV Kreis --------------------------------------------------------------------

def test_real_kreis_estimate_plus_unallocated_equals_zensus_in_scope(shared_data):
    from coverage.crs import working_crs
    from coverage.locate import locate_addresses
    from coverage.sources.bkg import read_bkg_bundle
    from coverage.sources.zensus import grid_bbox, read_grid_100m

    crs = working_crs("EPSG:25833")
    bounds = read_bkg_bundle(shared_data / "bkg-vg5000-2021", crs, land="13").subset(("13072",))  # Rostock (Lkr.)
    bbox = grid_bbox(bounds.gemeinde.total_bounds, crs)
    g1 = read_grid_1km(shared_data / "zensus2022" / "grid_1km.parquet", bbox)
    g100 = read_grid_100m(shared_data / "zensus2022" / "grid_100m_buildings.parquet", bbox)
    # Addresses without households, one per 100 m cell with buildings (self-made from the open data: the test
    # needs no demo build), a few cells left out so that some 1 km cells hold no address.
    built = g100[(g100["buildings"] > 0) & (np.arange(len(g100)) % 7 != 0)]
    points = gpd.GeoSeries(gpd.points_from_xy(built["x"], built["y"]), crs=LAEA).to_crs(crs)
    addr = gpd.GeoDataFrame({"address_id": [f"Z{i}" for i in range(len(built))], "households": np.nan,
                             "site_kind": ""}, geometry=points.to_numpy(), crs=crs)
    located, _ = locate_addresses(addr, bounds.gemeinde, 0.001)
    hh, unallocated, summary = estimate_households(located, g1, g100, bounds.gemeinde, 1000.0)
    # The Zensus sum over the cells whose centre lies in the Kreis, counted here independently.
    centres = gpd.GeoSeries(gpd.points_from_xy(g1["x"], g1["y"]), crs=LAEA).to_crs(crs)
    inside = centres.within(bounds.gemeinde.union_all()).to_numpy()
    ok = (g1["einwohner"] > 0) & (g1["hh_groesse_d"] > 0)
    zensus = float((g1["einwohner"] / g1["hh_groesse_d"])[ok & inside].sum())
    assert zensus > 50_000  # a real Kreis, not an empty selection
    assert hh.sum() + unallocated["unallocated_households"].sum() == pytest.approx(zensus, rel=1e-9)
    assert summary["households_in_scope"] == pytest.approx(zensus, rel=1e-9)
    assert (hh[located["site_kind"].astype(str) != ""] == 0).all()


def test_tolerance_claims_coastal_cells_but_not_the_neighbours_inside_the_land():
    gem = boundaries_from_gemeinden(gemeinden().iloc[:1], LAEA).gemeinde  # a run over G1 only
    land = gpd.GeoDataFrame(geometry=[box(E0, N0, E0 + 2000, N0 + 2000)], crs=LAEA)  # G1 and G2
    addr = addresses().iloc[:3]
    args = (addr, grid_1km(), grid_100m(), gem, 100.0)
    # C10's centre is 500 m from G1: within a 600 m tolerance it is claimed, unless it lies in the Land (G2)
    _, _, claimed = estimate_households(*args, tolerance_m=600.0)
    _, _, kept_out = estimate_households(*args, tolerance_m=600.0, land=land)
    assert claimed["cells_in_scope"] - kept_out["cells_in_scope"] == 2  # C10 and C11 (C-10 lies off the land)
    assert kept_out["cells_in_scope"] == 3  # C00, C01 and the coastal C-10


def test_the_real_path_hkde_addresses_get_zensus_households(tmp_path):
    """What a Landkreis runs: the cadastre's house coordinates (no households) + households from the Zensus."""
    from tests.test_hkde import HEADER

    config = write_world(tmp_path)
    in_scope = _world_grid(tmp_path)
    (tmp_path / "hk.txt").write_text(
        HEADER + "\n"
        f";A1;A;13;0;00;001;0001;00001;1;;33{X0 + 100:.0f},500;{Y0 + 100:.0f},000;Hauptstraße;17000;Eins;;\n"
        f";A2;A;13;0;00;001;0001;00001;2;a;33{X0 + 500:.0f},000;{Y0 + 500:.0f},000;Hauptstraße;17000;Eins;;\n"
        f";A3;A;13;0;00;002;0001;00002;7;;33{X0 + 1500:.0f},000;{Y0 + 500:.0f},000;Dorfstraße;17001;Zwei;;\n"
        f";A4;A;13;0;00;003;0001;00003;1;;33{X0 + 1000:.0f},000;{Y0 + 1500:.0f},000;Schulweg;17002;Drei;;\n",
        encoding="utf-8")
    text = config.read_text(encoding="utf-8").replace(f'path = "addresses.csv"\ncrs = "{CRS}"',
                                                      'path = "hk.txt"\nformat = "hk-de"')
    config.write_text(text.replace("[analysis]", '[households]\nsource = "zensus"\ngrid_1km = "zensus.parquet"\n'
                                   "[analysis]"), encoding="utf-8")
    assert main(["run", "--config", str(config), "--no-report"]) == 0
    land = pd.read_csv(tmp_path / "out" / "latest" / "tables" / "coverage_land.csv").iloc[0]
    assert land["households"] > 0
    assert land["households"] + land["unallocated_households"] == pytest.approx(in_scope, rel=1e-9)


def test_a_share_of_all_fractional_households_is_exactly_100():
    from coverage.aggregate import with_shares

    # 100 * x / x is 100.00000000000001 for many fractional x (Zensus estimates), e.g. 0.7503646726300526
    x = 0.7503646726300526
    assert 100.0 * x / x > 100
    table = pd.DataFrame({"households": [x, 2 * x, 0.0], "hh_ge_30_all": [x, x, 0.0]})
    shares = with_shares(table, [30], ["all"])["share_ge_30_all"]
    assert shares.iloc[0] == 100.0 and shares.iloc[1] == 100.0 * x / (2 * x) and math.isnan(shares.iloc[2])
