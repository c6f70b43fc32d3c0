"""Readers on the real published formats in ../shared/data."""

import shutil
import zipfile

import pandas as pd
import pytest

from coverage.crs import same_crs
from coverage.errors import DataSourceError, InputDataError
from coverage.sources.bkg import read_bkg_bundle
from coverage.sources.breitbandatlas import parse_header, read_bba_table
from tests.conftest import BKG


@pytest.fixture(scope="module")
def mv():
    return read_bkg_bundle(BKG, "EPSG:25833", land="13")


def test_bkg_bundle_mv_levels_and_hierarchy(mv):
    assert (len(mv.gemeinde), len(mv.amt), len(mv.kreis), len(mv.land)) == (726, 116, 8, 1)
    assert same_crs(mv.gemeinde.crs, "EPSG:25833")
    assert mv.gemeinde["ags"].str.startswith("13").all()
    assert set(mv.gemeinde["vwg_ars"]) == set(mv.amt["vwg_ars"])
    assert set(mv.gemeinde["krs_ags"]) == set(mv.kreis["krs_ags"])
    h = mv.hierarchy().set_index("ags")
    assert h.loc["13003000", ["gemeinde_name", "kreis_name"]].tolist() == ["Rostock", "Kreisfreie Stadt Rostock"]
    assert mv.valid_date == "01.01.2021"
    # Islands are multi-part Gemeinden and must survive reading.
    assert (mv.gemeinde.geom_type == "MultiPolygon").sum() >= 10
    # Reprojection keeps areas: MV is about 23,300 km² of land.
    assert 22_000 < mv.land.area.sum() / 1e6 < 24_500


def test_bkg_bundle_from_zip_and_any_published_crs(tmp_path, mv):
    archive = tmp_path / "vg5000.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in BKG.iterdir():
            zf.write(f, f"vg5000_ebenen_0101/{f.name}")
    from_zip = read_bkg_bundle(archive, "EPSG:25832", land="13")
    assert len(from_zip.gemeinde) == 726 and same_crs(from_zip.gemeinde.crs, "EPSG:25832")


def test_bkg_bundle_errors_name_the_problem(tmp_path):
    with pytest.raises(DataSourceError, match="boundary bundle not found"):
        read_bkg_bundle(tmp_path / "missing", "EPSG:25833")
    partial = tmp_path / "partial"
    partial.mkdir()
    for f in BKG.glob("VG5000_GEM.*"):
        shutil.copy(f, partial / f.name)
    with pytest.raises(DataSourceError, match=r"no shapefile for layer\(s\) \['VWG', 'KRS', 'LAN'\]"):
        read_bkg_bundle(partial, "EPSG:25833")
    with pytest.raises(InputDataError, match="no Gemeinde of Land '99'"):
        read_bkg_bundle(BKG, "EPSG:25833", land="99")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../etc/VG250_GEM.shp", b"")
    with pytest.raises(DataSourceError, match="escapes the archive"):
        read_bkg_bundle(evil, "EPSG:25833")


@pytest.mark.parametrize(("header", "parsed"), [
    ("alle Technologien ≥ 16 Mbit/s", ("all", 16.0)), ("leitungsg. Technologien ≥ 1000 Mbit/s", ("wired", 1000.0)),
    ("CATV ≥ 50 Mbit/s", ("hfc", 50.0)), ("FTTH/B ≥ 200 Mbit/s", ("fibre", 200.0)),
    ("mobile Technologien ≥ 6 Mbit/s", ("mobile", 6.0)), ("verf_dsl_16", ("dsl", 16.0)),
    ("verf_300_1000", ("all", 1000.0)), ("verf_lte_6", None), ("AGS", None),
])
def test_breitbandatlas_headers(header, parsed):
    assert parse_header(header) == parsed


def test_breitbandatlas_tables_with_different_delimiters_and_keys(shared_data):
    folder = shared_data / "breitbandatlas"
    comma = read_bba_table(folder / "gemeinde_bezirke_privat_2021_mitte.csv")
    semicolon = read_bba_table(folder / "gemeinde_bezirke_privat_2020_mitte.csv")
    lands = read_bba_table(folder / "bundesland_privat_2021_1.csv")
    assert comma["key"].str.len().eq(8).all() and semicolon["key"].str.len().eq(8).all()
    mv = comma[comma["key"].str.startswith("13")]
    assert mv["key"].nunique() == 755
    rostock = mv[(mv["key"] == "13003000") & (mv["group"] == "all") & (mv["threshold_mbps"] == 1000)]
    assert rostock["share"].iloc[0] == pytest.approx(90.53)
    assert sorted(lands["key"].unique())[:2] == ["01", "02"] and lands["key"].nunique() == 16
    assert set(lands["group"]) == {"all", "wired", "mobile", "dsl", "hfc", "fibre"}
    # Published shares are kept as published: a few exceed 100 by rounding (max 100.39 in 2021).
    assert comma["share"].between(0, 100.5).all() and (comma["share"] > 100).sum() == 36


def test_unreadable_breitbandatlas_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bba.csv"
    bad.write_text('AGS;DSL ≥ 16 Mbit/s\n"13003000;1;2;3\n', encoding="utf-8")
    with pytest.raises(DataSourceError, match="not a readable Breitbandatlas table"):
        read_bba_table(bad)
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(DataSourceError, match="not a readable Breitbandatlas table"):
        read_bba_table(tmp_path / "empty.csv")


def test_mv_display_names_tell_every_area_apart_and_tables_carry_bez(mv):
    from coverage.aggregate import area_tables

    for level in ("kreis", "amt", "gemeinde", "land"):
        names = mv.display_names(level)
        assert len(names) == len(mv.level(level)) and names.is_unique, level
    kreis = mv.display_names("kreis")
    assert (kreis["13072"], kreis["13003"]) == ("Landkreis Rostock", "Kreisfreie Stadt Rostock")
    gem = mv.display_names("gemeinde")
    assert gem["13003000"] == "Rostock"  # unique among the Gemeinden: the name alone
    wustrow = sorted(gem[mv.gemeinde.set_index("ags")["name"].reindex(gem.index) == "Wustrow"])
    assert wustrow == ["Wustrow (Amt Darß/Fischland)", "Wustrow (Amt Mecklenburgische Kleinseenplatte)"]
    counts = pd.DataFrame({"households": 0.0}, index=pd.Index(mv.gemeinde["ags"], name="ags"))
    tables = area_tables(counts, mv, [30], [])
    assert list(tables["kreis"].columns[:4]) == ["krs_ags", "name", "bez", "display_name"]
    assert set(tables["amt"]["bez"]) == {"Amt", "Amtsfreie Gemeinde"}
    assert set(tables["gemeinde"]["bez"]) == {"Gemeinde", "Stadt"}
    assert tables["kreis"].set_index("krs_ags").at["13072", "display_name"] == "Landkreis Rostock"
    assert mv.hierarchy().set_index("ags").at["13003000", "kreis_name"] == "Kreisfreie Stadt Rostock"
