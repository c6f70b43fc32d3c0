"""Downloads of the atlas: XLSX, CSV (plain and German) and GeoPackage hold the run's numbers, safely."""

from __future__ import annotations

import errno
import os

import numpy as np
import pandas as pd
import pyogrio
import pytest
from openpyxl import load_workbook

from coverage.report.labels import german_label
from pipelines import io
from pipelines.export import _link_or_write_csv, write_downloads
from tests.atlas_world import FORMULA, build_mv_record
from tests.test_report import EVIL

KEYS = {"ags": str, "vwg_ars": str, "krs_ags": str, "land": str}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    record = build_mv_record(root / "in")
    state = record.state
    out = root / "out"
    written = write_downloads(out, state.tables, state.sites, record.cfg.funding_rules, record.quarantine,
                              state.boundaries)
    return out / "downloads", record, written


def _numeric(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]


def test_written_files(exported):
    folder, _, written = exported
    assert "downloads/coverage.xlsx" in written and "downloads/areas.gpkg" in written
    for stem in ("coverage_gemeinde", "coverage_amt", "coverage_kreis", "coverage_land", "sites",
                 "funding_rules", "quarantine_summary"):
        assert (folder / f"{stem}.csv").is_file() and (folder / f"{stem}_de.csv").is_file()


def test_xlsx_sheets_numbers_headers_frozen(exported):
    folder, record, _ = exported
    wb = load_workbook(folder / "coverage.xlsx")
    assert wb.sheetnames == ["Land", "Kreise", "Ämter", "Gemeinden", "Standorte", "Förderregeln", "Quarantäne"]
    gem = record.state.tables["gemeinde"]
    ws = wb["Gemeinden"]
    assert ws.freeze_panes == "A2"
    header = [c.value for c in ws[1]]
    assert header[:2] == ["AGS", "Name"]
    assert "Haushalte" in header and "Anteil ≥ 100 Mbit/s (alle Technologien) in %" in header
    assert "Haushalte förderfähig: Weißer Fleck (< 30 Mbit/s)" in header
    assert "Anteil Unternehmen ≥ 100 Mbit/s (alle Technologien) in %" in header
    assert "Unternehmen förderfähig: Weißer Fleck (< 30 Mbit/s), mit Planung" in header
    assert ws[1][0].font.b
    assert ws.column_dimensions["B"].width > 10
    assert ws.max_row == len(gem) + 1
    # numbers are numbers and equal the table; NaN shares are empty cells
    data = pd.read_excel(folder / "coverage.xlsx", sheet_name="Gemeinden", dtype={"AGS": str, "ARS Amt": str})
    assert list(data.columns) == [german_label(c, {r.name: r.label for r in record.cfg.funding_rules})
                                  for c in gem.columns]
    for col in ("households", "hh_ge_100_all", "share_ge_100_all", "hh_fund_white", "hh_fund_grey_plan",
                "biz_ge_100_all", "biz_share_ge_100_all", "biz_fund_white"):
        got = data[german_label(col, {r.name: r.label for r in record.cfg.funding_rules})].to_numpy(dtype=float)
        np.testing.assert_allclose(got, gem[col].to_numpy(dtype=float), equal_nan=True)
    row = next(r for r in ws.iter_rows(min_row=2) if r[0].value == gem["ags"].iloc[10])
    assert isinstance(row[header.index("Haushalte")].value, int)
    # Land, funding rules and quarantine summary
    land = pd.read_excel(folder / "coverage.xlsx", sheet_name="Land")
    assert land["Haushalte"].iloc[0] == record.state.tables["land"]["households"].iloc[0]
    rules = pd.read_excel(folder / "coverage.xlsx", sheet_name="Förderregeln")
    assert list(rules["Regel"]) == ["white", "grey", "gigabit_2023", "gigabit_2024"]
    assert rules.loc[0, "Haushalte förderfähig"] == record.state.tables["land"]["hh_fund_white"].iloc[0]
    assert rules.loc[0, "Unternehmen förderfähig"] == record.state.tables["land"]["biz_fund_white"].iloc[0]
    q = pd.read_excel(folder / "coverage.xlsx", sheet_name="Quarantäne")
    assert q[["Quelle", "Grund", "Anzahl"]].to_numpy().tolist() == [["addresses.csv", "bad_number", 2],
                                                                    ["dsl.csv", "unknown_technology", 1]]


def test_formulas_and_markup_are_inert(exported):
    folder, _record, _ = exported
    wb = load_workbook(folder / "coverage.xlsx")
    names = {c.value: c for c in wb["Gemeinden"]["B"][1:]}
    cell = names["'" + FORMULA]
    assert cell.data_type == "s"  # text, not a formula
    assert EVIL in names  # markup is just text in a spreadsheet
    assert all(c.data_type != "f" for ws in wb for r in ws.iter_rows() for c in r)
    site_names = [c.value for c in wb["Standorte"]["D"][1:]]
    assert "'" + FORMULA in site_names
    for name in ("coverage_gemeinde.csv", "coverage_gemeinde_de.csv", "sites.csv"):
        text = (folder / name).read_text(encoding="utf-8-sig")
        assert "'=HYPERLINK" in text and '\n=HYPERLINK' not in text and ',=HYPERLINK' not in text
        assert ';=HYPERLINK' not in text


def test_csv_flavours_hold_the_numbers(exported):
    folder, record, _ = exported
    gem = record.state.tables["gemeinde"]
    plain = pd.read_csv(folder / "coverage_gemeinde.csv", dtype=KEYS)
    assert list(plain.columns) == list(gem.columns)
    assert (folder / "coverage_gemeinde.csv").read_bytes()[:3] != b"\xef\xbb\xbf"
    raw_de = (folder / "coverage_gemeinde_de.csv").read_bytes()
    assert raw_de[:3] == b"\xef\xbb\xbf"
    labels = {r.name: r.label for r in record.cfg.funding_rules}
    de = pd.read_csv(folder / "coverage_gemeinde_de.csv", sep=";", decimal=",", encoding="utf-8-sig",
                     dtype={"AGS": str, "ARS Amt": str, "Kreisschlüssel": str, "Land": str})
    assert de.columns[0] == "AGS" and german_label("share_ge_100_all") in de.columns
    assert list(de["AGS"]) == list(gem["ags"]) == list(plain["ags"])
    for col in _numeric(gem):
        np.testing.assert_allclose(plain[col].to_numpy(dtype=float), gem[col].to_numpy(dtype=float),
                                   equal_nan=True, err_msg=col)
        np.testing.assert_allclose(de[german_label(col, labels)].to_numpy(dtype=float),
                                   gem[col].to_numpy(dtype=float), equal_nan=True, err_msg=col)
    share = gem["share_ge_100_all"].dropna().iloc[0]
    assert f"{share}".replace(".", ",") in raw_de.decode("utf-8-sig")


def test_geopackage_layers_for_qgis(exported):
    folder, record, _ = exported
    layers = dict(pyogrio.list_layers(folder / "areas.gpkg"))
    assert set(layers) == {"gemeinde", "amt", "kreis", "land"}
    tables = record.state.tables
    boundaries = record.state.boundaries
    for level, key in (("gemeinde", "ags"), ("amt", "vwg_ars"), ("kreis", "krs_ags"), ("land", "land")):
        layer = pyogrio.read_dataframe(folder / "areas.gpkg", layer=level)
        assert len(layer) == len(tables[level]), level
        assert layer.crs.equals(boundaries.gemeinde.crs)
        assert layer.geometry.notna().all() and layer.geometry.is_valid.all()
        merged = layer.merge(tables[level], on=key, suffixes=("", "_t"))
        assert len(merged) == len(tables[level])
        for col in ("households", "hh_ge_100_all", "share_ge_1000_fibre", "hh_fund_grey", "biz_share_ge_100_all",
                    "biz_fund_grey"):
            np.testing.assert_allclose(merged[col].to_numpy(dtype=float), merged[f"{col}_t"].to_numpy(dtype=float),
                                       equal_nan=True)
    gem = pyogrio.read_dataframe(folder / "areas.gpkg", layer="gemeinde")
    assert gem.geometry.area.sum() == pytest.approx(boundaries.gemeinde.geometry.area.sum(), rel=1e-6)


def test_plain_csvs_are_hard_links_of_the_runs_tables(exported, tmp_path, monkeypatch):
    """No second copy of a table the run folder holds; written where no link can be made."""
    folder, record, written = exported
    state = record.state
    same = {f"coverage_{level}": io.write_csv(tmp_path / "run" / "tables" / f"coverage_{level}.csv", table)
            for level, table in state.tables.items()}
    out = tmp_path / "report"
    assert write_downloads(out, state.tables, state.sites, record.cfg.funding_rules, record.quarantine,
                           state.boundaries, same) == written
    for stem, source in same.items():
        target = out / "downloads" / f"{stem}.csv"
        assert target.samefile(source)
        assert target.read_bytes() == (folder / f"{stem}.csv").read_bytes()  # what the unlinked export writes
    assert not (out / "downloads" / "coverage_gemeinde_de.csv").samefile(same["coverage_gemeinde"])
    assert not [p for p in (out / "downloads").iterdir() if p.name.startswith(".")]  # no temporary names left

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "link", cross_device)
    target = tmp_path / "elsewhere" / "coverage_gemeinde.csv"
    _link_or_write_csv(target, state.tables["gemeinde"], same["coverage_gemeinde"])
    assert not target.samefile(same["coverage_gemeinde"])
    assert target.read_bytes() == same["coverage_gemeinde"].read_bytes()
    assert [p.name for p in target.parent.iterdir()] == ["coverage_gemeinde.csv"]
