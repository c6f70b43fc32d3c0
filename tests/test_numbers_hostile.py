"""Ordinary German and English number formats, and text as people write it, tried as a hostile tester
would: every case asserts the exact value, or the exact quarantine reason and row, or exit code 2 with
one line. The property test generates whole columns in one convention and checks that an accepted
value is always the intended number."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from coverage.config import AddressesConfig, ProviderConfig, TableOptions, load_config
from coverage.errors import DataSourceError
from coverage.model import ProviderFormat
from coverage.numbers import parse_numbers, parse_speeds
from coverage.sources.addresses import read_addresses
from coverage.sources.providers import read_provider_polygons, read_provider_table
from coverage.technology import alias_table
from pipelines.cli import main
from pipelines.runner import validate_inputs
from tests.conftest import CRS, X0, Y0
from tests.world import write_world

ALIASES = alias_table()


def numbers(values, decimal=None):
    """[(value or None, ambiguous?)] of a column."""
    parsed, ambiguous = parse_numbers(pd.Series(values, dtype="string"), decimal)
    return [(None if math.isnan(v) else v, bool(a)) for v, a in zip(parsed, ambiguous, strict=True)]


def speeds(values, decimal=None):
    parsed, ambiguous = parse_speeds(pd.Series(values, dtype="string"), decimal)
    return [(None if math.isnan(v) else v, bool(a)) for v, a in zip(parsed, ambiguous, strict=True)]


def outcomes(quarantine: pd.DataFrame) -> list[tuple]:
    return sorted(zip(quarantine["row"].astype(int), quarantine["column"], quarantine["reason"], strict=True))


def addresses(path: Path, text: str | bytes, write_as: str = "utf-8", **table
              ) -> tuple[gpd.GeoDataFrame, list[tuple]]:
    path.write_bytes(text.encode(write_as) if isinstance(text, str) else text)
    accepted, quarantine, _n = read_addresses(AddressesConfig(path=path, crs=CRS, table=TableOptions(**table)), CRS)
    return accepted, outcomes(quarantine)


def offers(path: Path, rows: list[str], **table) -> tuple[dict[str, float], list[tuple]]:
    """Provider table by address_id: (down_mbps per address_id, quarantine outcomes)."""
    path.write_text("address_id;provider;technology;down_mbps\n"
                    + "".join(f"A{i};Netz;FTTH;{down}\n" for i, down in enumerate(rows, start=1)), encoding="utf-8")
    cfg = ProviderConfig(path=path, format=ProviderFormat.ADDRESS_CSV, table=TableOptions(**table))
    records, quarantine, _n = read_provider_table(cfg, CRS, ALIASES)
    return dict(zip(records["address_id"], records["down_mbps"], strict=True)), outcomes(quarantine)


# --- the parser: a cell's form, the column's evidence ----------------------------------------------

def test_a_cells_form_decides_when_it_fits_one_reading_only():
    assert numbers(["1,5"]) == [(1.5, False)]
    assert numbers(["1.5"]) == [(1.5, False)]
    assert numbers(["1.000,5"]) == [(1000.5, False)]
    assert numbers(["1,000.5"]) == [(1000.5, False)]
    assert numbers(["1000", "1 000", "1\u00a0000", "-7", "+7"]) == [(1000, False)] * 3 + [(-7, False), (7, False)]
    assert numbers(["12.345.678"]) == [(12345678, False)]
    assert numbers(["1,234,567"]) == [(1234567, False)]


def test_ambiguous_forms_are_read_by_the_column_or_flagged_never_guessed():
    assert numbers(["1.000", "1,000"]) == [(None, True), (None, True)]  # no evidence
    assert numbers(["1.000", "2,5"]) == [(1000, False), (2.5, False)]  # the column shows decimal commas
    assert numbers(["1.000", "2.5"]) == [(1.0, False), (2.5, False)]  # the column shows decimal points
    assert numbers(["1.000", "3"], decimal=",") == [(1000, False), (3, False)]  # declared in the config
    assert numbers(["1.000", "3"], decimal=".") == [(1.0, False), (3, False)]
    # both conventions in one undeclared column: every cell whose reading depends on it is flagged
    assert numbers(["16,5", "1.5", "1.000", "1000"]) == [(None, True)] * 3 + [(1000, False)]


def test_a_cell_that_contradicts_its_columns_convention_is_flagged():
    assert numbers(["16,5", "1.5", "50.00", "10.0000"], decimal=",") == [(16.5, False)] + [(None, True)] * 3
    assert numbers(["2.5", "1,5"], decimal=".") == [(2.5, False), (None, True)]


def test_thousands_groups_are_exactly_three_digits():
    assert numbers(["1.00,5", "1,00.5", "1 5", "10 00", "0.000,5"]) == [(None, False)] * 5  # bad_number
    assert numbers(["10.0000"]) == [(10.0, False)]  # not a thousands separator: a decimal point
    assert numbers(["0.500"]) == [(0.5, False)]  # a thousands group never follows a lone 0


def test_speeds_with_units_share_the_columns_convention():
    assert speeds(["50", "16.000 kbit/s"]) == [(50, False), (None, True)]
    assert speeds(["50,5", "16.000 kbit/s", "2,5 Gbit/s"]) == [(50.5, False), (16, False), (2500, False)]
    assert speeds(["50.5", "16.000 kbit/s", "2.5 Gbit/s"]) == [(50.5, False), (0.016, False), (2500, False)]
    assert speeds(["16.000 kbit/s", "1 Gbit/s"], decimal=",") == [(16, False), (1000, False)]
    assert speeds(["2.5 Gbit/s"], decimal=",") == [(None, True)]
    assert speeds(["1.000 furlongs", "1.5"]) == [(None, False), (1.5, False)]  # unknown unit: bad, no evidence


# --- CSV readers: per column, from all rows ---------------------------------------------------------

def test_one_decimal_comma_count_does_not_touch_the_coordinates(tmp_path):
    accepted, quarantine = addresses(tmp_path / "a.csv", "address_id;x;y;households\n"
                                     f"A1;{X0 + 100.5};{Y0 + 100.25};3\n"
                                     f"A2;{X0 + 500.5};{Y0 + 500.75};1,5\n"
                                     f"A3;{X0 + 1500.5};{Y0 + 500.125};2\n")
    assert quarantine == []
    assert accepted["households"].tolist() == [3, 1.5, 2]
    assert accepted.geometry.x.tolist() == [X0 + 100.5, X0 + 500.5, X0 + 1500.5]
    assert accepted.geometry.y.tolist() == [Y0 + 100.25, Y0 + 500.75, Y0 + 500.125]


def test_a_decimal_comma_after_row_200_is_not_a_thousands_separator(tmp_path):
    rows = "".join(f"A{i};{X0 + i};{Y0 + i};2\n" for i in range(250)) + f"B;{X0};{Y0};16,5\n"
    accepted, quarantine = addresses(tmp_path / "a.csv", "address_id;x;y;households\n" + rows)
    assert quarantine == []
    assert accepted.set_index("address_id")["households"]["B"] == 16.5


def test_german_thousands_in_a_column_without_evidence_are_quarantined(tmp_path):
    accepted, quarantine = addresses(tmp_path / "a.csv", "address_id;x;y;households\n"
                                     f"A1;{X0:.0f};{Y0:.0f};1.000\nA2;{X0:.0f};{Y0:.0f};2\n"
                                     f"A3;{X0:.0f};{Y0:.0f};4\n")
    assert quarantine == [(2, "households", "ambiguous_number")]
    assert accepted["households"].tolist() == [2, 4]


def test_provider_speeds_in_a_declared_decimal_comma_file(tmp_path):
    down, quarantine = offers(tmp_path / "p.csv", ["16,5", "1.5", "50.00", "2.5 Gbit/s", "1.000", "10.0000",
                                                   "1.00,5", "16.000 kbit/s", "100"], decimal=",")
    assert down == {"A1": 16.5, "A5": 1000, "A8": 16, "A9": 100}
    assert quarantine == [(3, "down_mbps", "ambiguous_number"), (4, "down_mbps", "ambiguous_number"),
                          (5, "down_mbps", "ambiguous_number"), (7, "down_mbps", "ambiguous_number"),
                          (8, "down_mbps", "bad_number")]


def test_provider_speeds_in_an_undeclared_file_follow_the_column(tmp_path):
    down, quarantine = offers(tmp_path / "p.csv", ["1.5", "50.00", "2.5 Gbit/s", "100"])
    assert down == {"A1": 1.5, "A2": 50, "A3": 2500, "A4": 100}
    assert quarantine == []
    down, quarantine = offers(tmp_path / "p.csv", ["100", "16.000 kbit/s", "1.000"])
    assert down == {"A1": 100}
    assert quarantine == [(3, "down_mbps", "ambiguous_number"), (4, "down_mbps", "ambiguous_number")]
    down, quarantine = offers(tmp_path / "p.csv", ["100", "120.000 kbit/s", "1000000000"])
    assert down == {"A1": 100}  # a value implausible for its unit is still caught by the speed check
    assert quarantine == [(3, "down_mbps", "ambiguous_number"), (4, "down_mbps", "absurd_speed")]


# --- XLSX text cells and vector attributes: the same rules -------------------------------------------

def _xlsx_offers(path: Path, cells: list[object]) -> tuple[dict[str, float], list[tuple]]:
    pd.DataFrame({"address_id": [f"A{i}" for i in range(1, len(cells) + 1)], "provider": "Netz",
                  "technology": "FTTH", "down_mbps": pd.Series(cells, dtype=object)}).to_excel(path, index=False)
    records, quarantine, _n = read_provider_table(ProviderConfig(path=path, format=ProviderFormat.ADDRESS_TABLE),
                                                  CRS, ALIASES)
    return dict(zip(records["address_id"], records["down_mbps"], strict=True)), outcomes(quarantine)


def test_xlsx_numeric_cells_stay_numbers_and_text_cells_are_parsed_per_column(tmp_path):
    down, quarantine = _xlsx_offers(tmp_path / "p.xlsx", [16.5, 1.234, 250, "250,0", "1.000", "2,5 Gbit/s"])
    assert down == {"A1": 16.5, "A2": 1.234, "A3": 250, "A4": 250.0, "A5": 1000, "A6": 2500}
    assert quarantine == []
    # numeric cells carry no convention: a lone text 1.000 among them is not guessed
    down, quarantine = _xlsx_offers(tmp_path / "p.xlsx", [16.5, 1.234, "1.000"])
    assert down == {"A1": 16.5, "A2": 1.234}
    assert quarantine == [(4, "down_mbps", "ambiguous_number")]


def test_polygon_string_attributes_use_the_same_rules(tmp_path):
    path = tmp_path / "cable.gpkg"
    cells = box(X0, Y0, X0 + 10, Y0 + 10)
    gpd.GeoDataFrame({"down_mbps": ["250,0", "1.000", "16,5"], "up_mbps": ["25", "50", "1.000,5"]},
                     geometry=[cells] * 3, crs=CRS).to_file(path, layer="coverage")
    cfg = ProviderConfig(path=path, format=ProviderFormat.POLYGONS, provider="Kabel", technology="DOCSIS 3.1",
                         max_upload_ratio=100.0)
    polygons, quarantine, _n = read_provider_polygons(cfg, CRS, ALIASES)
    assert polygons["down_mbps"].tolist() == [250.0, 1000, 16.5]
    assert polygons["up_mbps"].tolist() == [25, 50, 1000.5]
    assert outcomes(quarantine) == []
    gpd.GeoDataFrame({"down_mbps": ["1.000", "50"], "up_mbps": [1.234, 2.0]}, geometry=[cells] * 2,
                     crs=CRS).to_file(path, layer="coverage")
    polygons, quarantine, _n = read_provider_polygons(cfg, CRS, ALIASES)
    assert polygons["down_mbps"].tolist() == [50] and polygons["up_mbps"].tolist() == [2.0]
    assert outcomes(quarantine) == [(1, "down_mbps", "ambiguous_number")]
    gpd.GeoDataFrame({"down_mbps": [100.0], "up_mbps": [1.234]}, geometry=[cells], crs=CRS).to_file(
        path, layer="coverage")  # typed attributes stay numbers
    polygons, _q, _n = read_provider_polygons(cfg, CRS, ALIASES)
    assert polygons["up_mbps"].tolist() == [1.234]


# --- a file read so badly stops the run ----------------------------------------------------------------

@pytest.fixture
def world(tmp_path):
    write_world(tmp_path)
    return tmp_path


def _fails(world: Path, capsys, *messages: str) -> None:
    assert main(["validate", "--config", str(world / "run.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert len(err) >= 1 and err[-1].startswith("bbcov: error: ")
    for message in messages:
        assert message in err[-1], err[-1]


def test_mostly_quarantined_addresses_stop_the_run_naming_file_and_reasons(world, capsys):
    (world / "addresses.csv").write_text("address_id;x;y;households\n"
                                         f"A1;{X0 + 100:.0f};{Y0 + 100:.0f};1.000\n"
                                         f"A2;{X0 + 500:.0f};{Y0 + 500:.0f};2.000\n"
                                         f"A3;{X0 + 1500:.0f};{Y0 + 500:.0f};3.000\n"
                                         f"A4;{X0 + 1500:.0f};{Y0 + 1500:.0f};1\n", encoding="utf-8")
    _fails(world, capsys, "addresses.csv: only 1 of 4 rows accepted (25%, below analysis.min_accepted_share = 0.5)",
           "top reasons: ambiguous_number 3 (column households)")
    cfg = world / "run.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("[analysis]\n", "[analysis]\nmin_accepted_share = 0.2\n"),
                   encoding="utf-8")
    _state, ledger = validate_inputs(load_config(cfg))
    assert ledger.accounting[1].rows_out == 1 and ledger.accounting[1].quarantined == {"ambiguous_number": 3}


@pytest.mark.parametrize(("edit", "message"), [
    ("[analysis]\nmin_accepted_share = 1.5\n", "analysis.min_accepted_share: expected a share between 0 and 1"),
    ("[analysis]\nmin_accepted_share = \"half\"\n", "analysis.min_accepted_share: expected a finite number"),
])
def test_min_accepted_share_is_checked(world, capsys, edit, message):
    cfg = world / "run.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("[analysis]\n", edit), encoding="utf-8")
    _fails(world, capsys, message)


def test_declared_decimal_mark_is_checked(world, capsys):
    cfg = world / "run.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace('path = "dsl.csv"', 'path = "dsl.csv"\ndecimal = ";"'),
                   encoding="utf-8")
    _fails(world, capsys, "providers[0].decimal: expected \",\" or \".\", got ';'")


# --- text as it is -------------------------------------------------------------------------------------

HEAD = "address_id;x;y;households;site_name;locality\n"


def _row(i: int, name: str = "", locality: str = "") -> str:
    return f"A{i};{X0 + 100 * i:.0f};{Y0 + 100:.0f};1;{name};{locality}\n"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
def test_unicode_line_separators_inside_fields_do_not_split_rows(tmp_path, separator):
    name = f"Schule{separator}Nord"
    accepted, quarantine = addresses(tmp_path / "a.csv", HEAD + _row(1, f'"{name}"') + _row(2, name) + _row(3))
    assert quarantine == []
    assert accepted["site_name"].tolist() == [name, name, ""]
    assert accepted["source_row"].tolist() == [2, 3, 4]


def test_a_stray_cp1252_byte_in_a_utf8_file_quarantines_its_row_only(tmp_path):
    raw = (HEAD + _row(1, locality="Rügen") + _row(2, locality="Usedom")).encode("utf-8") \
        + _row(3, locality="Gro\udcdfenbrode").encode("utf-8", "surrogateescape") + _row(4).encode("utf-8")
    accepted, quarantine = addresses(tmp_path / "a.csv", raw)
    assert quarantine == [(4, "locality", "bad_encoding")]
    assert accepted["locality"].tolist() == ["Rügen", "Usedom", ""]  # no mojibake
    offset = raw.index(b"\xdf")
    with pytest.raises(DataSourceError, match=f"cannot decode as utf-8 at byte {offset}, line 4 "
                                              r"\(byte 0xdf: invalid continuation byte\)"):
        addresses(tmp_path / "a.csv", raw, encoding="utf-8")
    # a file with no UTF-8 at all is cp1252, as before
    accepted, quarantine = addresses(tmp_path / "b.csv", HEAD + _row(1, locality="Großenbrode"), "cp1252")
    assert quarantine == [] and accepted["locality"].tolist() == ["Großenbrode"]


def test_the_stray_byte_is_reported_in_the_quarantine_detail(tmp_path):
    raw = (HEAD + _row(1, locality="Rügen")).encode("utf-8") + _row(2, locality="R\udcfcgen").encode(
        "utf-8", "surrogateescape")
    offset = raw.index(b"\xfc")
    path = tmp_path / "a.csv"
    path.write_bytes(raw)
    _a, quarantine, _n = read_addresses(AddressesConfig(path=path, crs=CRS), CRS)
    assert quarantine["value"].tolist() == ["R\ufffdgen"]
    assert quarantine["detail"].tolist() == [
        f"bytes that are not UTF-8 in a UTF-8 file (shown as \ufffd; the file's first at byte {offset}, line 3 (0xfc))"]


def test_fields_longer_than_the_csv_modules_limit_are_read(tmp_path):
    long = "x" * 300_000
    accepted, quarantine = addresses(tmp_path / "a.csv", HEAD + _row(1, long) + _row(2))
    assert quarantine == [] and accepted["site_name"].str.len().tolist() == [300_000, 0]
    # also when the file needs the csv module (a row with an extra field)
    accepted, quarantine = addresses(tmp_path / "a.csv", HEAD + _row(1, f'"{long}"') + _row(2) + "A3;1;2;3;4;5;6\n")
    assert quarantine == [(4, "*", "bad_row")] and accepted["site_name"].str.len().tolist() == [300_000, 0]


def test_a_row_with_an_extra_field_is_quarantined_not_the_file(tmp_path):
    text = HEAD + _row(1) + f"A2;{X0:.0f};{Y0:.0f};1;Schule;Ort;zuviel\n" + _row(3, "Amt") + _row(4)[:-3] + "\n"
    accepted, quarantine = addresses(tmp_path / "a.csv", text)
    assert accepted["address_id"].tolist() == ["A1", "A3", "A4"]
    assert accepted["site_name"].tolist() == ["", "Amt", ""]
    assert quarantine == [(3, "*", "bad_row")]
    path = tmp_path / "a.csv"
    _a, q, _n = read_addresses(AddressesConfig(path=path, crs=CRS), CRS)
    assert q["value"].tolist() == [f"A2;{X0:.0f};{Y0:.0f};1;Schule;Ort;zuviel"]
    assert q["detail"].tolist() == ["the row has more fields than the header's 6"]


def test_rows_ending_in_a_delimiter_the_header_lacks_are_not_shifted(world, capsys, tmp_path):
    # pandas would take the ids as the index and move every cell one column to the left
    text = "address_id;x;y;households\n" + "".join(f"A{i};{X0 + 100 * i:.0f};{Y0 + 100:.0f};2;\n" for i in (1, 2, 3))
    accepted, quarantine = addresses(tmp_path / "a.csv", text)
    assert len(accepted) == 0 and quarantine == [(2, "*", "bad_row"), (3, "*", "bad_row"), (4, "*", "bad_row")]
    (world / "addresses.csv").write_text(text, encoding="utf-8")
    _fails(world, capsys, "only 0 of 3 rows accepted", "top reasons: bad_row 3 (column *)")


def test_an_unclosed_quote_is_still_a_one_line_file_error(world, capsys):
    (world / "addresses.csv").write_text(HEAD + _row(1) + "A2;1;2;3;4;5;6\n" + 'A3;"1;2;3\n', encoding="utf-8")
    _fails(world, capsys, "addresses.csv: not a readable ';'-separated table")


def test_provider_table_quarantines_bad_rows_and_bytes(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes("address_id;provider;technology;down_mbps\nA1;Küstennetz;VDSL;50,5\n".encode()
                     + b"A2;K\xfcstennetz;VDSL;16\nA3;Netz;VDSL;16;zuviel\nA4;Netz;VDSL;1.000\n")
    records, quarantine, n = read_provider_table(ProviderConfig(path=path, format=ProviderFormat.ADDRESS_CSV),
                                                 CRS, ALIASES)
    assert n == 4
    assert dict(zip(records["address_id"], records["down_mbps"], strict=True)) == {"A1": 50.5, "A4": 1000}
    assert records["provider"].astype(str).tolist() == ["Küstennetz", "Netz"]
    assert outcomes(quarantine) == [(3, "provider", "bad_encoding"), (4, "*", "bad_row")]


# --- property: an accepted value is the intended number --------------------------------------------------

UNITS = {"": 1.0, " Mbit/s": 1.0, "Mbit/s": 1.0, " kbit/s": 0.001, " Gbit/s": 1000.0}


@st.composite
def written_number(draw, convention: str):
    """(number text, unit, intended number) of one value written in ``convention`` ("de" or "en")."""
    whole = draw(st.integers(0, 10**9))
    decimals = draw(st.integers(0, 4))
    fraction = draw(st.integers(0, 10**decimals - 1)) if decimals else 0
    grouped = draw(st.booleans())
    sign = draw(st.sampled_from(["", "", "", "-"]))
    group, mark = (".", ",") if convention == "de" else (",", ".")
    digits = f"{whole:,}".replace(",", group) if grouped else str(whole)
    text = sign + digits + (f"{mark}{fraction:0{decimals}d}" if decimals else "")
    intended = float(sign + (f"{whole}.{fraction:0{decimals}d}" if decimals else str(whole)))
    return text, draw(st.sampled_from(sorted(UNITS))), intended


@st.composite
def column(draw):
    convention = draw(st.sampled_from(["de", "en"]))
    cells = draw(st.lists(written_number(convention), min_size=1, max_size=25))
    declared = draw(st.sampled_from([None, "," if convention == "de" else "."]))
    return convention, cells, declared


def _check(convention, declared, texts, intended, parsed) -> None:
    values, ambiguous = parsed
    for text, want, value, unsure in zip(texts, intended, values, ambiguous, strict=True):
        if unsure:
            assert math.isnan(value), text
            assert declared is None, f"{text!r} flagged although the column declares {declared!r}"
        else:
            assert value == pytest.approx(want, rel=1e-12, abs=0), (convention, text, value)


@settings(max_examples=400, deadline=None)
@given(column())
def test_property_accepted_values_are_the_intended_numbers(case):
    """Never a different number: each cell is its intended value or flagged (only without a declaration)."""
    convention, cells, declared = case
    speeds_text = [number + unit for number, unit, _ in cells]
    _check(convention, declared, speeds_text, [v * UNITS[unit] for _, unit, v in cells],
           parse_speeds(pd.Series(speeds_text, dtype="string"), declared))
    plain = [number for number, _, _ in cells]
    _check(convention, declared, plain, [v for _, _, v in cells], parse_numbers(pd.Series(plain, dtype="string"),
                                                                                 declared))
