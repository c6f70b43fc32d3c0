"""[businesses] and [sites]: their own lists, linked to the addresses like provider records."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from coverage.config import LocatedListConfig, config_from_dict
from coverage.errors import ConfigError, SchemaError
from coverage.sources.address_lists import link_businesses, link_sites
from pipelines.cli import main
from tests.conftest import CRS, X0, Y0, tiny_addresses
from tests.world import write_world


def located():
    addresses = tiny_addresses()
    return addresses, pd.Index(["AQ"])  # AQ: an address id the address stage quarantined


def quarantine_rows(frame: pd.DataFrame) -> list[list]:
    return frame[["row", "column", "value", "reason", "key"]].values.tolist()


def test_businesses_are_linked_like_provider_records_and_summed_per_address(tmp_path):
    (tmp_path / "b.csv").write_text(
        "address_id;x;y;street;house_number;postcode;businesses\n"
        "A1;;;;;;2\n"                                           # row 2: by id
        f";{X0 + 500:.0f};{Y0 + 500:.0f};;;;\n"                # row 3: empty count -> missing_value
        f";{X0 + 503:.0f},0;{Y0 + 500:.0f},0;;;;1\n"          # row 4: 3 m from A2
        ";;;Hauptstraße;2 A;17000;3\n"                        # row 5: street address of A2 (2a)
        "A9;;;;;;1\n"                                           # row 6: unknown_address
        f";{X0 + 900:.0f};{Y0 + 900:.0f};;;;1\n"               # row 7: no_address_nearby
        ";;;Nirgendweg;5;;1\n"                                  # row 8: address_not_found
        ";;;;;;1\n"                                             # row 9: missing_locator
        "A3;;;;;;zwei\n"                                        # row 10: bad_number
        "A3;;;;;;-1\n"                                          # row 11: negative_value
        "AQ;;;;;;1\n"                                           # row 12: address_quarantined
        "A3;;;;;;1,5\n",                                        # row 13: by id, decimal comma
        encoding="utf-8")
    addresses, rejected = located()
    linked = link_businesses(LocatedListConfig(tmp_path / "b.csv", crs=CRS), addresses, rejected, CRS, 25.0)
    assert linked.values["businesses"].tolist() == [2.0, 4.0, 1.5, 0.0]
    assert (linked.rows_read, linked.linked) == (12, 4)
    assert linked.note == "7.5 businesses at 3 addresses"
    assert sorted(quarantine_rows(linked.quarantine)) == [
        [3, "businesses", "", "missing_value", ""],
        [6, "address_id", "A9", "unknown_address", ""],
        [7, "x", "300900.0 5900900.0", "no_address_nearby", ""],
        [8, "street", "Nirgendweg 5, ", "address_not_found", ""],
        [9, "address_id", "", "missing_locator", ""],
        [10, "businesses", "zwei", "bad_number", "A3"],
        [11, "businesses", "-1", "negative_value", "A3"],
        [12, "address_id", "AQ", "address_quarantined", ""],
    ]
    assert set(linked.quarantine["source"]) == {"b.csv"}


def test_a_business_list_without_counts_counts_one_per_row(tmp_path):
    (tmp_path / "b.csv").write_text("address_id\nA3\nA3\nA1\n", encoding="utf-8")
    addresses, rejected = located()
    linked = link_businesses(LocatedListConfig(tmp_path / "b.csv"), addresses, rejected, CRS, 25.0)
    assert linked.values["businesses"].tolist() == [1.0, 0.0, 2.0, 0.0]
    assert (linked.rows_read, linked.linked, len(linked.quarantine)) == (3, 3, 0)


def test_sites_set_kind_and_name_the_second_site_at_an_address_is_quarantined(tmp_path):
    (tmp_path / "s.csv").write_text(
        "address_id;site_kind;site_name\n"
        "A1;Gemeinde_Office;Gemeindeverwaltung Eins\n"   # row 2
        "A4;school;Grundschule Drei\n"                   # row 3
        "A1;school;Schule Eins\n"                        # row 4: A1 is a site already
        "A2;rathaus;Rathaus\n"                           # row 5: unknown_site_kind
        "A3;;Irgendwas\n"                                # row 6: missing_value
        "A9;amt_office;Amt Neun\n",                      # row 7: unknown_address
        encoding="utf-8")
    addresses, rejected = located()
    linked = link_sites(LocatedListConfig(tmp_path / "s.csv"), addresses, rejected, CRS, 25.0)
    assert linked.values["site_kind"].tolist() == ["gemeinde_office", "", "", "school"]
    assert linked.values["site_name"].tolist() == ["Gemeindeverwaltung Eins", "", "", "Grundschule Drei"]
    assert (linked.rows_read, linked.linked) == (6, 2)
    assert linked.note == "2 sites (1 gemeinde_office, 1 school)"
    assert sorted(quarantine_rows(linked.quarantine)) == [
        [4, "site_kind", "school Schule Eins", "duplicate_site", "A1"],
        [5, "site_kind", "rathaus", "unknown_site_kind", "A2"],
        [6, "site_kind", "", "missing_value", "A3"],
        [7, "address_id", "A9", "unknown_address", ""],
    ]
    dup = linked.quarantine[linked.quarantine["reason"] == "duplicate_site"]
    assert dup["detail"].tolist() == ["address A1 already holds the site of row 2 (gemeinde_office)"]


def test_file_level_problems_are_one_line_naming_the_file(tmp_path):
    addresses, rejected = located()
    (tmp_path / "s.csv").write_text("address_id;name\nA1;x\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"s\.csv: missing column\(s\) 'site_kind'; found 'address_id', 'name'"):
        link_sites(LocatedListConfig(tmp_path / "s.csv"), addresses, rejected, CRS, 25.0)
    (tmp_path / "b.csv").write_text("firma;businesses\nX;1\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"b\.csv: no locator column"):
        link_businesses(LocatedListConfig(tmp_path / "b.csv"), addresses, rejected, CRS, 25.0)
    (tmp_path / "b.csv").write_text("x;y\n300100;5900100\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"b\.csv: coordinates in columns x/y need a CRS: set \[businesses\] crs"):
        link_businesses(LocatedListConfig(tmp_path / "b.csv"), addresses, rejected, CRS, 25.0)


def test_config_sections_and_stage_inputs(tmp_path):
    from pipelines.stages import plan

    base = {"boundaries": {"path": "b.gpkg", "format": "vector"}, "addresses": {"path": "a.csv", "crs": CRS}}
    cfg = config_from_dict({**base, "businesses": {"path": "biz.csv", "delimiter": ";"},
                            "sites": {"path": "sites.xlsx", "columns": {"site_kind": "Art"}}}, tmp_path)
    assert cfg.businesses is not None and cfg.businesses.table.delimiter == ";"
    assert cfg.sites is not None and dict(cfg.sites.columns) == {"site_kind": "Art"}
    stage = next(s for s in plan(cfg, date(2024, 1, 1)) if s.name == "addresses")
    assert stage.inputs == ((tmp_path / "a.csv").resolve(), (tmp_path / "biz.csv").resolve(),
                            (tmp_path / "sites.xlsx").resolve())
    assert stage.params["businesses"] == cfg.businesses and stage.params["sites"] == cfg.sites
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['kind'\] in \[sites\]"):
        config_from_dict({**base, "sites": {"path": "s.csv", "kind": "school"}}, tmp_path)
    with pytest.raises(ConfigError, match="missing required key"):
        config_from_dict({**base, "businesses": {}}, tmp_path)


def test_run_takes_businesses_and_sites_from_their_lists(tmp_path):
    config = write_world(tmp_path)
    (tmp_path / "businesses.csv").write_text("address_id;businesses\nA1;2\nA3;1\nA5;1\nA9;1\n", encoding="utf-8")
    (tmp_path / "sites.csv").write_text("address_id;site_kind;site_name\nA2;gemeinde_office;Gemeinde Eins\n"
                                        "A4;school;Grundschule Drei\n", encoding="utf-8")
    text = config.read_text(encoding="utf-8").replace(
        "[[providers]]", '[businesses]\npath = "businesses.csv"\n[sites]\npath = "sites.csv"\n[[providers]]', 1)
    config.write_text(text, encoding="utf-8")
    assert main(["run", "--config", str(config), "--no-report"]) == 0
    run_dir = tmp_path / "out" / "latest"
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    acct = {a["stage"]: a for a in manifest["accounting"]}
    assert acct["businesses businesses.csv"] == {
        "stage": "businesses businesses.csv", "rows_in": 4, "rows_out": 2, "linked": 2, "balanced": True,
        "quarantined": {"address_quarantined": 1, "unknown_address": 1}, "note": "3 businesses at 2 addresses"}
    assert acct["sites sites.csv"]["rows_in"] == acct["sites sites.csv"]["rows_out"] == 2
    quarantine = pd.read_csv(run_dir / "quarantine" / "businesses.csv", dtype=str, keep_default_na=False)
    assert sorted(quarantine[["row", "value", "reason"]].values.tolist()) == [["4", "A5", "address_quarantined"],
                                                                      ["5", "A9", "unknown_address"]]
    g = pd.read_csv(run_dir / "tables" / "coverage_gemeinde.csv", dtype={"ags": str}).set_index("ags")
    assert g["businesses"].tolist() == [2, 1, 0]
    sites = pd.read_csv(run_dir / "sites.csv", dtype=str)
    assert sorted(sites[["address_id", "site_kind"]].values.tolist()) == [["A2", "gemeinde_office"],
                                                                          ["A4", "school"]]
