"""A corpus of bad inputs, each with its exact outcome: which rows are quarantined with which reason,
or which one-line error with exit code 2. No case may end in a traceback or a silent drop."""

import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import Point, Polygon, box

from coverage.config import load_config
from pipelines.cli import main
from pipelines.runner import validate_inputs
from tests.conftest import CRS, X0, Y0
from tests.world import write_world

ADDR = ("address_id;x;y;households\n"
        f"A1;{X0 + 100:.0f};{Y0 + 100:.0f};3\n"
        f"A2;{X0 + 500:.0f};{Y0 + 500:.0f};2\n"
        f"A3;{X0 + 1500:.0f};{Y0 + 500:.0f};5\n")
DSL = "address_id;provider;technology;down_mbps;up_mbps\nA1;Küstennetz;VDSL;50;10\n"


@pytest.fixture
def world(tmp_path):
    write_world(tmp_path)
    put(tmp_path, "addresses.csv", ADDR)
    put(tmp_path, "dsl.csv", DSL)
    return tmp_path


def put(root: Path, name: str, text: str, encoding: str = "cp1252") -> None:
    (root / name).write_bytes(text.encode(encoding))


def edit_config(root: Path, old: str, new: str) -> None:
    cfg = root / "run.toml"
    text = cfg.read_text(encoding="utf-8")
    assert old in text
    cfg.write_text(text.replace(old, new, 1), encoding="utf-8")


def allow_mostly_bad_files(root: Path) -> None:
    """Tiny files with more bad rows than good ones would stop the run (analysis.min_accepted_share)."""
    edit_config(root, "[analysis]\n", "[analysis]\nmin_accepted_share = 0.0\n")


def quarantined(root: Path, source: str) -> list[tuple]:
    _state, ledger = validate_inputs(load_config(root / "run.toml"))
    for entry in ledger.accounting:
        assert entry.balanced, entry
    rows = ledger.all_quarantine()
    rows = rows[rows["source"] == source]
    return sorted(zip(rows["row"].astype(int), rows["reason"], strict=True))


def fails(root: Path, capsys, message: str) -> None:
    assert main(["validate", "--config", str(root / "run.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert err[-1].startswith("bbcov: error: ") and message in err[-1], err[-1]


# --- addresses: row-level problems -> quarantine --------------------------------------------------

@pytest.mark.parametrize(("extra_row", "reason"), [
    (f"A9;{X0 + 10:.0f};{Y0 + 10:.0f};drei", "bad_number"),
    (f"A9;{X0 + 10:.0f};{Y0 + 10:.0f};NaN", "bad_number"),
    (f"A9;{X0 + 10:.0f};{Y0 + 10:.0f};inf", "bad_number"),
    (f"A9;{X0 + 10:.0f};{Y0 + 10:.0f};-2", "negative_value"),
    (f"A9;{X0 + 10:.0f};{Y0 + 10:.0f};1001", "implausible_value"),  # above addresses.max_households
    (f"A9;{X0 + 10:.0f};{Y0 + 10:.0f};", "missing_value"),
    (f";{X0 + 10:.0f};{Y0 + 10:.0f};1", "missing_value"),
    (f"A9;;{Y0 + 10:.0f};1", "missing_coordinates"),
    (f"A9;{X0 + 10:.0f};nördlich;1", "missing_coordinates"),
    (f"A1;{X0 + 10:.0f};{Y0 + 10:.0f};1", "duplicate_address_id"),
    (f"A9;{X0 - 5000:.0f};{Y0:.0f};1", "outside_municipalities"),
])
def test_address_rows_are_quarantined_with_their_reason(world, extra_row, reason):
    put(world, "addresses.csv", ADDR + extra_row + "\n")
    assert quarantined(world, "addresses.csv") == [(5, reason)]


def test_max_households_is_configurable(world):
    put(world, "addresses.csv", ADDR + f"A9;{X0 + 10:.0f};{Y0 + 10:.0f};1500\n")
    edit_config(world, 'path = "addresses.csv"', 'path = "addresses.csv"\nmax_households = 2000')
    assert quarantined(world, "addresses.csv") == []


def test_truncated_last_line_quarantines_that_row_only(world):
    put(world, "addresses.csv", ADDR + f"A9;{X0 + 10:.0f}")  # cut off after x: households is the first gap
    assert quarantined(world, "addresses.csv") == [(5, "missing_value")]


def test_just_outside_is_kept_and_flagged_not_dropped(world):
    put(world, "addresses.csv", ADDR + f"A9;{X0 - 300:.0f};{Y0 + 10:.0f};1\n")
    assert quarantined(world, "addresses.csv") == []


# --- addresses: file-level problems -> one line, exit code 2 --------------------------------------

@pytest.mark.parametrize(("content", "message"), [
    ("", "file is empty"),
    ("address_id;x;y;households\n", "no data rows"),
    ("address_id;x;y\nA1;1;2\n", "missing column(s) ['households']"),
    ("id;rechts;hoch;hh\nA1;1;2;3\n", "missing column(s) ['address_id', 'households', 'x', 'y']"),
    ("address_id;x;y;households\nA1;13.41;54.09;1\nA2;13.42;54.1;2\n", "look like longitude/latitude"),
    (f"address_id;x;y;households\nA1;{Y0 + 10:.0f};{X0 + 10:.0f};1\nA2;{Y0 + 20:.0f};{X0 + 20:.0f};1\n",
     "x and y columns look swapped"),
    ('address_id;x;y;households\nA1;"1;2;3\n', "not a readable"),
])
def test_address_file_problems_are_one_line_errors(world, capsys, content, message):
    put(world, "addresses.csv", content)
    fails(world, capsys, message)


def test_wrong_declared_encoding_is_a_clear_error(world, capsys):
    put(world, "addresses.csv", ADDR.replace("A3", "Ä3"))
    edit_config(world, 'crs = "EPSG:25833"\n[[providers]]', 'crs = "EPSG:25833"\nencoding = "utf-8"\n[[providers]]')
    fails(world, capsys, "cannot decode as utf-8")


def test_missing_address_file_and_unknown_config_key(world, capsys):
    edit_config(world, 'path = "addresses.csv"', 'path = "adressen.csv"')
    fails(world, capsys, "adressen.csv: file not found")
    edit_config(world, 'path = "adressen.csv"', 'path = "addresses.csv"\ncrs_name = "x"')
    fails(world, capsys, "unknown key(s) ['crs_name'] in [addresses]")


def test_lon_lat_declared_as_such_is_accepted(world):
    pts = gpd.GeoSeries([Point(X0 + 100, Y0 + 100), Point(X0 + 500, Y0 + 500)], crs=CRS).to_crs("EPSG:4326")
    put(world, "addresses.csv", "address_id,x,y,households\n" + "".join(
        f"L{i},{p.x:.8f},{p.y:.8f},1\n" for i, p in enumerate(pts)), "utf-8")
    edit_config(world, 'crs = "EPSG:25833"\n[[providers]]', 'crs = "EPSG:4326"\n[[providers]]')
    assert quarantined(world, "addresses.csv") == []


def test_tab_separated_utf8_bom_with_thousands_and_decimal_comma(world):
    text = ADDR.replace(";", "\t").replace("\t5\n", "\t1.000,0\n")
    put(world, "addresses.csv", "\ufeff" + text, "utf-8")
    state, _ledger = validate_inputs(load_config(world / "run.toml"))
    hh = state.addresses.set_index("address_id")["households"]
    assert hh.to_dict() == {"A1": 3, "A2": 2, "A3": 1000}


def test_xlsx_with_header_below_a_title_and_german_column_names(world):
    frame = pd.DataFrame({"Adress-ID": ["A1", "A2"], "Rechtswert": [X0 + 100, X0 + 500],
                          "Hochwert": [Y0 + 100, Y0 + 500], "Haushalte": [3, 2]})
    with pd.ExcelWriter(world / "adressen.xlsx") as xl:
        pd.DataFrame([["Adressliste Amt A"], [""]]).to_excel(xl, sheet_name="Adressen", header=False, index=False)
        frame.to_excel(xl, sheet_name="Adressen", startrow=2, index=False)
    edit_config(world, 'path = "addresses.csv"', 'path = "adressen.xlsx"\nsheet = "Adressen"\ncolumns = { '
                'address_id = "Adress-ID", x = "Rechtswert", y = "Hochwert", households = "Haushalte" }')
    state, _ledger = validate_inputs(load_config(world / "run.toml"))
    assert sorted(state.addresses["address_id"]) == ["A1", "A2"]
    edit_config(world, 'sheet = "Adressen"', 'sheet = "Tabelle9"')
    with pytest.raises(Exception, match="cannot read spreadsheet"):
        validate_inputs(load_config(world / "run.toml"))


# --- addresses as vector files ---------------------------------------------------------------------

def _vector_addresses(world: Path, geometries, name: str = "adressen.gpkg", crs=CRS) -> None:
    gdf = gpd.GeoDataFrame({"address_id": [f"V{i}" for i in range(len(geometries))], "households": 1},
                           geometry=geometries, crs=crs)
    gdf.to_file(world / name)
    edit_config(world, 'path = "addresses.csv"', f'path = "{name}"')


def test_vector_addresses_with_a_polygon_and_an_empty_point(world):
    _vector_addresses(world, [Point(X0 + 10, Y0 + 10), box(X0, Y0, X0 + 5, Y0 + 5), Point()])
    allow_mostly_bad_files(world)  # 2 of 3 rows bad by design: below the default min_accepted_share
    assert quarantined(world, "adressen.gpkg") == [(2, "not_a_point"), (3, "missing_coordinates")]


def test_zipped_shapefile_and_a_zip_that_escapes_its_folder(world, capsys):
    _vector_addresses(world, [Point(X0 + 10, Y0 + 10)], name="adressen.shp")
    with zipfile.ZipFile(world / "adressen.zip", "w") as zf:
        for f in world.glob("adressen.*"):
            if f.suffix != ".zip":
                zf.write(f, f"export/{f.name}")
    edit_config(world, 'path = "adressen.shp"', 'path = "adressen.zip"')
    assert quarantined(world, "adressen.zip") == []
    with zipfile.ZipFile(world / "adressen.zip", "w") as zf:
        zf.writestr("../../evil.shp", b"")
    fails(world, capsys, "escapes the archive folder")


# --- provider tables -------------------------------------------------------------------------------

@pytest.mark.parametrize(("row", "reason"), [
    ("A2;Küstennetz;VDSL;schnell;10", "bad_number"),
    ("A2;Küstennetz;VDSL;-50;10", "negative_value"),
    ("A2;Küstennetz;VDSL;inf;10", "bad_number"),
    ("A2;Küstennetz;VDSL;50 Tbit/s;10", "bad_number"),
    ("A2;Küstennetz;VDSL;1000000000;10", "absurd_speed"),
    ("A2;Küstennetz;VDSL;50;100", "upload_above_download"),
    ("A2;Küstennetz;Brieftaube;50;10", "unknown_technology"),
    ("A2;Küstennetz;;50;10", "missing_value"),
    ("A2;;VDSL;50;10", "missing_value"),
    ("A9;Küstennetz;VDSL;50;10", "unknown_address"),
    (";Küstennetz;VDSL;50;10", "missing_locator"),
])
def test_provider_rows_are_quarantined_with_their_reason(world, row, reason):
    put(world, "dsl.csv", DSL + row + "\n")
    assert quarantined(world, "dsl.csv") == [(3, reason)]


def test_status_dates_street_addresses_and_coordinates(world):
    put(world, "addresses.csv", "address_id;x;y;households;street;house_number;postcode\n"
        f"A1;{X0 + 100:.0f};{Y0 + 100:.0f};3;Hauptstraße;12 a;17000\n"
        f"A2;{X0 + 500:.0f};{Y0 + 500:.0f};2;Große Str.;1;17000\n")
    put(world, "dsl.csv", "street;house_number;postcode;provider;technology;down_mbps;up_mbps;status;planned_date\n"
        "hauptstrasse;12A;17000;P;VDSL;50;10;;\n"            # found by normalised address
        "Grosse Strasse;1;;P;VDSL;50;10;geplant;2024-02-01\n"  # found without postcode, planned
        "Nebenweg;3;17000;P;VDSL;50;10;;\n"                  # no such address
        "Hauptstraße;12a;17000;P;VDSL;50;10;vielleicht;\n"   # bad status
        "Hauptstraße;12a;17000;P;VDSL;50;10;planned;bald\n")  # bad date
    put(world, "fibre.csv", "provider;technology;down_mbps;up_mbps;x;y\n"
        f"G;FTTH;1000;500;{X0 + 101:.0f};{Y0 + 100:.0f}\n"  # 1 m away: linked
        f"G;FTTH;1000;500;{X0 + 300:.0f};{Y0 + 300:.0f}\n", "utf-8-sig")  # 283 m from A1/A2: not linked
    assert quarantined(world, "dsl.csv") == [(4, "address_not_found"), (5, "bad_status"), (6, "bad_date")]
    assert quarantined(world, "fibre.csv") == [(3, "no_address_nearby")]
    state, _ledger = validate_inputs(load_config(world / "run.toml"))
    offers = state.all_offers()
    dsl = offers[offers["source"] == "dsl.csv"].set_index("address_id")
    assert dsl.loc["A2", ["status", "planned_date", "match_method"]].tolist() == [
        "planned", "2024-02-01", "address_no_postcode"]
    assert dsl.loc["A1", "match_method"] == "address"


def test_provider_file_problems_are_one_line_errors(world, capsys):
    put(world, "dsl.csv", "kunde;tempo\nA1;50\n")
    fails(world, capsys, "dsl.csv: missing column(s)")
    put(world, "fibre.csv", "provider;technology;down_mbps;up_mbps;x;y\nG;FTTH;1000;500;13,4;54,1\n", "utf-8-sig")
    put(world, "dsl.csv", DSL)
    fails(world, capsys, "look like longitude/latitude")


def test_upload_ratio_is_configurable_per_delivery(world):
    put(world, "dsl.csv", DSL + "A2;Küstennetz;VDSL;50;60\n")
    assert quarantined(world, "dsl.csv") == [(3, "upload_above_download")]
    edit_config(world, 'path = "dsl.csv"', 'path = "dsl.csv"\nmax_upload_ratio = 1.5')
    assert quarantined(world, "dsl.csv") == []


def test_umlauts_survive_a_sniffed_cp1252_file(world):
    put(world, "dsl.csv", DSL.replace("Küstennetz", "Küstennetz Straße GmbH"))
    state, _ledger = validate_inputs(load_config(world / "run.toml"))
    assert set(state.all_offers().loc[state.all_offers()["source"] == "dsl.csv", "provider"]) == {
        "Küstennetz Straße GmbH"}


# --- polygons and rasters --------------------------------------------------------------------------

def test_invalid_and_empty_polygons_are_quarantined(world):
    bowtie = Polygon([(X0, Y0), (X0 + 1000, Y0 + 1000), (X0 + 1000, Y0), (X0, Y0 + 1000)])
    gpd.GeoDataFrame({"down_mbps": [250.0, 250.0, 100.0], "up_mbps": [25.0, 25.0, 10.0]},
                     geometry=[box(X0 + 1000, Y0, X0 + 2000, Y0 + 1000), bowtie, Polygon()], crs=CRS).to_file(
        world / "cable.gpkg", layer="coverage")
    allow_mostly_bad_files(world)  # 2 of 3 rows bad by design: below the default min_accepted_share
    assert quarantined(world, "cable.gpkg") == [(2, "invalid_geometry"), (3, "missing_coordinates")]


def test_polygon_delivery_of_points_is_a_file_error(world, capsys):
    gpd.GeoDataFrame({"down_mbps": [250.0]}, geometry=[Point(X0, Y0)], crs=CRS).to_file(world / "cable.gpkg",
                                                                                        layer="coverage")
    fails(world, capsys, "coverage polygons expected, found geometry type(s) ['Point']")


def test_raster_without_crs_is_a_file_error_and_nodata_is_no_service(world, capsys):
    values = np.full((20, 20), 7, dtype="uint16")
    values[:, :10] = 65535  # west half: nodata
    with rasterio.open(world / "mobile.tif", "w", driver="GTiff", height=20, width=20, count=1, dtype="uint16",
                       transform=from_origin(X0, Y0 + 2000, 100, 100), nodata=65535) as dst:
        dst.write(values, 1)
    fails(world, capsys, "mobile.tif: raster has no CRS")
    edit_config(world, 'technology = "LTE"', 'technology = "LTE"\ncrs = "EPSG:25833"')
    state, _ledger = validate_inputs(load_config(world / "run.toml"))
    mobile = state.all_offers()[state.all_offers()["source"] == "mobile.tif"]
    assert sorted(mobile["address_id"]) == ["A3"] and (mobile["down_mbps"] == 7).all()


def test_missing_provider_file_and_unreadable_raster(world, capsys):
    (world / "mobile.tif").write_bytes(b"not a tiff")
    fails(world, capsys, "mobile.tif: cannot read as a raster")
    edit_config(world, 'path = "cable.gpkg"', 'path = "kabel.gpkg"')
    fails(world, capsys, "kabel.gpkg: file not found")


def test_planned_dates_iso_and_german():
    from coverage.sources.providers import parse_dates

    got = parse_dates(pd.Series(["2024-02-01", "01.02.2024", "", "31.02.2024", "Q3/2025"]))
    assert got.dt.strftime("%Y-%m-%d").fillna("").tolist() == ["2024-02-01", "2024-02-01", "", "", ""]


def test_parquet_datasets_for_addresses_and_provider_tables(world):
    pts = gpd.GeoDataFrame({"address_id": ["A1", "A2", "A3"], "households": [3, 2, 5]},
                           geometry=[Point(X0 + 100, Y0 + 100), Point(X0 + 500, Y0 + 500), Point(X0 + 1500, Y0 + 500)],
                           crs=CRS)
    (world / "adr" / "land=13").mkdir(parents=True)
    pts.iloc[:2].to_parquet(world / "adr" / "land=13" / "part-000.parquet")
    pts.iloc[2:].to_parquet(world / "adr" / "land=13" / "part-001.parquet")
    (world / "dsl").mkdir()
    pd.DataFrame({"address_id": ["A1", "A3", "A9"], "provider": "P", "technology": ["VDSL", "ADSL", "VDSL"],
                  "down_mbps": np.array([50, -1, 50], dtype="float32"), "up_mbps": np.float32(5),
                  "status": "current", "planned_date": ""}).to_parquet(world / "dsl" / "part-000.parquet")
    edit_config(world, 'path = "addresses.csv"', 'path = "adr"')
    edit_config(world, 'path = "dsl.csv"\nformat = "address-csv"', 'path = "dsl"\nformat = "address-table"')
    assert quarantined(world, "dsl") == [(2, "negative_value"), (3, "unknown_address")]
    state, _ledger = validate_inputs(load_config(world / "run.toml"))
    assert sorted(state.addresses["address_id"]) == ["A1", "A2", "A3"]


def test_geoparquet_address_without_a_point_is_quarantined_not_a_crash(world):
    # GeoParquet stores POINT EMPTY (an address not yet geocoded) as a WKB point with NaN coordinates.
    pts = gpd.GeoDataFrame({"address_id": ["A1", "A2", "A3"], "households": [3, 2, 5]},
                           geometry=[Point(X0 + 100, Y0 + 100), Point(), Point(X0 + 1500, Y0 + 500)], crs=CRS)
    (world / "adr").mkdir()
    pts.to_parquet(world / "adr" / "part-000.parquet")
    edit_config(world, 'path = "addresses.csv"', 'path = "adr"')
    assert quarantined(world, "adr") == [(2, "missing_coordinates")]


# --- delivery-wide values in the config: checked when the config is read ---------------------------

@pytest.mark.parametrize(("old", "new", "message"), [
    ('technology = "DOCSIS 3.1"', 'technology = "Coax-Kabel"',
     "providers[2].technology: unknown technology 'Coax-Kabel'; use one of ['dsl', 'hfc',"),
    ('technology = "DOCSIS 3.1"', 'technology = "DOCSIS 3.1"\ndown_mbps = -5',
     "providers[2].down_mbps: expected a speed in Mbit/s ≥ 0, got -5"),
    ('technology = "DOCSIS 3.1"', 'technology = "DOCSIS 3.1"\nup_mbps = "fast"',
     "providers[2].up_mbps: expected a finite number, got 'fast'"),
    ('technology = "LTE"', 'technology = "LTE"\nup_mbps = 5e6',
     "providers[3].up_mbps: 5e+06 Mbit/s is above the plausible maximum"),
])
def test_delivery_defaults_in_the_config_are_config_errors(world, capsys, old, new, message):
    edit_config(world, old, new)
    fails(world, capsys, "run.toml: " + message)


def test_a_config_alias_makes_a_delivery_technology_known(world):
    edit_config(world, 'technology = "DOCSIS 3.1"', 'technology = "Coax-Kabel"')
    (world / "run.toml").write_text((world / "run.toml").read_text(encoding="utf-8")
                                    + '[technology_aliases]\n"Coax-Kabel" = "hfc"\n', encoding="utf-8")
    assert quarantined(world, "cable.gpkg") == []


# --- a delivery that links nothing is an error, not a quiet quarantine ----------------------------

def test_street_addresses_against_an_address_list_without_streets(world, capsys):
    put(world, "dsl.csv", "street;house_number;provider;technology;down_mbps\nDorfstraße;1;P;VDSL;50\n"
                          "Dorfstraße;2;P;VDSL;50\n")
    fails(world, capsys, "dsl.csv: 2 record(s) are located by street address, but the address list has no "
                         'street / house_number values; map its column(s) with [addresses] columns = '
                         '{ street = "…", house_number = "…" }, or locate the delivery by address_id or x/y')


@pytest.mark.parametrize(("dsl", "counts", "why"), [
    ("address_id;provider;technology;down_mbps\nA9;P;VDSL;50\nA8;P;VDSL;50\nA7;P;Brieftaube;50\n", ["3", "0", "3"],
     "dsl.csv (3 row(s) in; top quarantine reasons: unknown_address 2, unknown_technology 1)"),
    ("address_id;provider;technology;down_mbps\n", ["0", "0", "0"], "dsl.csv (no records)"),
])
def test_validate_fails_after_its_table_when_a_delivery_links_nothing(world, capsys, dsl, counts, why):
    put(world, "dsl.csv", dsl)
    assert main(["validate", "--config", str(world / "run.toml")]) == 2
    out, err = capsys.readouterr()
    table = {line.split()[0]: line.split()[1:4] for line in out.splitlines()[1:] if line.strip()}
    assert table["dsl.csv"] == counts  # the table is printed first: rows read, accepted, quarantined
    assert err.strip().splitlines()[-1] == (
        f"bbcov: error: 1 delivery/deliveries linked no record to any address: {why} — see the quarantine rows "
        "of `bbcov validate` / quarantine/<file>.csv")


def test_polygons_over_no_address_fail_validate(world, capsys):
    gpd.GeoDataFrame({"down_mbps": [250.0]}, geometry=[box(X0 + 1800, Y0 + 1800, X0 + 1900, Y0 + 1900)],
                     crs=CRS).to_file(world / "cable.gpkg", layer="coverage")
    fails(world, capsys, "linked no record to any address: cable.gpkg (1 row(s) in; 0 offers; "
                         "1 polygon(s) cover no address)")


def test_run_stops_and_publishes_nothing_when_a_delivery_links_nothing(world, capsys):
    put(world, "dsl.csv", "address_id;provider;technology;down_mbps\nA9;P;VDSL;50\n")
    assert main(["run", "--config", str(world / "run.toml"), "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("bbcov: error: 1 delivery/deliveries linked no record to any address: dsl.csv (1 row(s) in; "
                       "top quarantine reasons: unknown_address 1) — see the quarantine rows of `bbcov validate` / "
                       "quarantine/<file>.csv; the run is not published")
    assert not (world / "out" / "latest").exists()


# --- street addresses that exist in several localities ---------------------------------------------

def test_ambiguous_street_address_is_resolved_by_postcode_locality_or_ags_else_quarantined(world):
    put(world, "addresses.csv", "address_id;x;y;households;street;house_number;postcode;locality\n"
        f"A1;{X0 + 100:.0f};{Y0 + 100:.0f};3;Dorfstraße;1;17001;Eins\n"
        f"A2;{X0 + 500:.0f};{Y0 + 500:.0f};2;Hauptstraße;5;17001;Eins\n"
        f"A3;{X0 + 1500:.0f};{Y0 + 500:.0f};5;Dorfstraße;1;17002;Zwei\n")
    put(world, "dsl.csv", "street;house_number;postcode;locality;ags;provider;technology;down_mbps\n"
        "Dorfstr.;1;;;;P;VDSL;16\n"              # row 2: in Eins and in Zwei -> ambiguous
        "Dorfstr.;1;17002;;;P;VDSL;17\n"         # row 3: the postcode tells: A3
        "Dorfstr.;1;;eins;;P;VDSL;18\n"          # row 4: the locality tells: A1
        "Dorfstr.;1;;;13000002;P;VDSL;19\n"      # row 5: the Gemeinde tells: A3
        "Dorfstr.;1;;Drei;;P;VDSL;20\n"          # row 6: not in Drei
        "Hauptstraße;5;;;;P;VDSL;21\n")          # row 7: unique without postcode: A2
    assert quarantined(world, "dsl.csv") == [(2, "ambiguous_address"), (6, "address_not_found")]
    state, _ledger = validate_inputs(load_config(world / "run.toml"))
    dsl = state.all_offers()
    dsl = dsl[dsl["source"] == "dsl.csv"]
    assert sorted(zip(dsl["down_mbps"], dsl["address_id"], dsl["match_method"].astype(str), strict=True)) == [
        (17, "A3", "address"), (18, "A1", "address_no_postcode"), (19, "A3", "address_no_postcode"),
        (21, "A2", "address_no_postcode")]


# --- provider column maps: messages name real columns ----------------------------------------------

@pytest.mark.parametrize(("header", "extra", "message"), [
    ("kunde;tempo", "", "dsl.csv: missing column(s) 'provider', 'technology', 'down_mbps' and a locator: "
     "'address_id', or 'x' and 'y', or 'street' and 'house_number'; found 'kunde', 'tempo' (name the file's "
     'columns in its [[providers]] table, e.g. columns = { provider = "…", technology = "…", down_mbps = "…" })'),
    ("street;technology;down_mbps", 'provider = "P"', "dsl.csv: missing column(s) 'house_number' (besides "
     "'street') to locate records; found 'street', 'technology', 'down_mbps' (name the file's columns in its "
     '[[providers]] table, e.g. columns = { address_id = "…" })'),
])
def test_missing_provider_columns_name_what_is_required(world, capsys, header, extra, message):
    put(world, "dsl.csv", header + "\n" + ";".join("1" for _ in header.split(";")) + "\n")
    edit_config(world, 'path = "dsl.csv"', 'path = "dsl.csv"\n' + extra)
    fails(world, capsys, message)


@pytest.mark.parametrize("bad", ["../../evil", "13000001.0", "1300 001"])
def test_vector_boundary_keys_must_be_digits_so_no_page_name_leaves_the_report(world, capsys, bad):
    import geopandas as gpd

    gem = gpd.read_file(world / "gemeinden.gpkg")
    gem.loc[1, "ags"] = bad
    gem.to_file(world / "gemeinden.gpkg", layer="gemeinden")
    fails(world, capsys, f"row 2, column ags: {bad.zfill(8)!r} is not a 8-digit key")
