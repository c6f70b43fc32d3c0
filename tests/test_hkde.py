"""HK-DE (Hauskoordinaten Deutschland) as the cadastre delivers it: small files written here by hand."""

import dataclasses
import json
import logging

import pandas as pd
import pytest
from pyproj import Transformer

from coverage.config import AddressesConfig, config_from_dict
from coverage.errors import ConfigError, InputDataError, SchemaError
from coverage.sources.addresses import read_addresses
from pipelines.cli import main
from tests.conftest import CRS, X0, Y0
from tests.world import write_world

HEADER = "NBA;OI;QUA;LAN;RBZ;KRS;GMD;OTT;SSS;HNR;ADZ;EEEEEEEE,EEE;NNNNNNN,NNN;STN;PLZ;ONM;ZON;POT"


def read(path, decode=None, crs=CRS):
    return read_addresses(AddressesConfig(path=path, format="hk-de", decode=decode), crs)


def test_both_utm_zones_in_one_file_are_converted_row_by_row(tmp_path):
    (tmp_path / "hk.txt").write_text(
        HEADER + "\n"
        ";DEMV000000000001;A;13;0;71;001;0001;00123;12;a;33385802,013;5997341,214;Hauptstraße;17033;"
        "Neubrandenburg;;Innenstadt\n"
        ";DEMV000000000002;B;13;0;74;001;0002;00007;3;;32649925,060;5972341,100;Am Markt;23966;Wismar;;\n",
        encoding="utf-8")
    out, quarantine, rows = read(tmp_path / "hk.txt")
    assert rows == 2 and quarantine.empty
    # Zone 33 is the working CRS: the digits after the zone are the easting, unchanged.
    assert (out.geometry.x[0], out.geometry.y[0]) == (385802.013, 5997341.214)
    # Zone 32: E 649925.060 N 5972341.100 in EPSG:25832, converted by pyproj to EPSG:25833.
    x, y = Transformer.from_crs("EPSG:25832", "EPSG:25833", always_xy=True).transform(649925.060, 5972341.100)
    assert out.geometry.x[1] == pytest.approx(x, abs=1e-6) and out.geometry.y[1] == pytest.approx(y, abs=1e-6)
    assert out.crs.to_epsg() == 25833
    assert out.loc[0, ["address_id", "street", "house_number", "postcode", "locality", "locality_part",
                       "ags_cadastre", "qua", "households"]].tolist() == [
        "DEMV000000000001", "Hauptstraße", "12a", "17033", "Neubrandenburg", "Innenstadt", "13071001", "A", 0.0]
    assert out["source_row"].tolist() == [2, 3]
    # In a zone-32 working CRS it is the zone-33 row that is converted.
    out32, _, _ = read(tmp_path / "hk.txt", crs="EPSG:25832")
    assert (out32.geometry.x[1], out32.geometry.y[1]) == (649925.060, 5972341.100)
    x, y = Transformer.from_crs("EPSG:25833", "EPSG:25832", always_xy=True).transform(385802.013, 5997341.214)
    assert out32.geometry.x[0] == pytest.approx(x, abs=1e-6)


def test_older_latin1_file_without_header(tmp_path, caplog):
    (tmp_path / "hk_alt.txt").write_bytes(
        ";DEMV000000000001;A;13;0;72;055;0001;00042;7;;33311000,500;5960000,250;Schloßstraße;18273;Güstrow;;"
        "Sükow\n".encode("latin-1"))
    with caplog.at_level(logging.INFO, logger="coverage.sources.hkde"):
        out, quarantine, rows = read(tmp_path / "hk_alt.txt")
    assert "hk_alt.txt: read as Latin-1" in caplog.text
    assert rows == 1 and quarantine.empty
    assert out.loc[0, ["street", "locality", "locality_part", "source_row"]].tolist() == [
        "Schloßstraße", "Güstrow", "Sükow", 1]  # no header: the first record is line 1
    assert (out.geometry.x[0], out.geometry.y[0]) == (311000.5, 5960000.25)
    # Every address has 0 households, and the log says where households must come from.
    assert any(r.levelno == logging.WARNING and "hk_alt.txt" in r.getMessage()
               and '[households] source = "zensus"' in r.getMessage() for r in caplog.records)


def test_newer_file_keeps_its_extra_fields(tmp_path):
    (tmp_path / "hk_neu.txt").write_text(
        HEADER + ";PSN;DATUM\n"
        ";DEMV000000000001;A;13;0;71;001;0001;00123;1;;33385802,013;5997341,214;Ring;17033;Neubrandenburg;;;"
        "P17;2024-01-31\n", encoding="utf-8")
    out, _, _ = read(tmp_path / "hk_neu.txt")
    assert out.loc[0, ["psn", "datum"]].tolist() == ["P17", "2024-01-31"]
    # Without a header, fields past the 18th are named by their position.
    (tmp_path / "hk_neu2.txt").write_text(
        ";DEMV000000000001;A;13;0;71;001;0001;00123;1;;33385802,013;5997341,214;Ring;17033;Neubrandenburg;;;"
        "P17;2024-01-31\n", encoding="utf-8")
    out, _, _ = read(tmp_path / "hk_neu2.txt")
    assert out.loc[0, ["field_19", "field_20"]].tolist() == ["P17", "2024-01-31"]


def test_decoding_file_names_streets_where_stn_is_empty(tmp_path):
    # Gebäudereferenzen: no postal fields and no street name; the street key is AGS + SSS.
    (tmp_path / "gebref.txt").write_text(
        ";DEMV000000000001;A;13;0;71;001;0001;00123;1;;33385802,013;5997341,214\n"
        ";DEMV000000000002;A;13;0;71;002;0001;00123;2;;33385902,013;5997341,214\n"
        ";DEMV000000000003;A;13;0;71;001;0001;00999;3;;33386002,013;5997341,214\n", encoding="utf-8")
    (tmp_path / "decode.txt").write_text(
        "# Entschlüsselung der Straßenschlüssel\n"
        "13;0;71;001;00123;Lindenstraße\n"
        "1307100200123;Am Hafen\n"   # the same SSS in another Gemeinde is another street
        "13;0;71;Mecklenburgische Seenplatte\n", encoding="utf-8")
    out, quarantine, _ = read(tmp_path / "gebref.txt", decode=tmp_path / "decode.txt")
    assert quarantine.empty
    assert out["street"].tolist() == ["Lindenstraße", "Am Hafen", ""]  # 00999 is not in the decoding file
    assert out["postcode"].tolist() == ["", "", ""]
    # A key named twice with different names cannot be decided: one line naming file and line.
    (tmp_path / "decode.txt").write_text("13;0;71;001;00123;Lindenstraße\n1307100100123;Lindenweg\n",
                                         encoding="utf-8")
    with pytest.raises(InputDataError, match=r"decode.txt: line 2: street key 1307100100123 is 'Lindenweg' here "
                                             r"but 'Lindenstraße' on line 1"):
        read(tmp_path / "gebref.txt", decode=tmp_path / "decode.txt")


def test_bad_rows_are_quarantined_with_reason_and_line(tmp_path):
    (tmp_path / "hk.txt").write_text(
        HEADER + "\n"
        ";DEMV000000000001;A;13;0;71;001;0001;00123;1;;34385802,013;5997341,214;Ring;;;;\n"    # zone 34
        ";DEMV000000000002;A;13;0;71;001;0001;00123;2;;385802,013;5997341,214;Ring;;;;\n"      # no zone digits
        "\n"                                                                                     # blank: no record
        ";DEMV000000000003;A;13;0;71;001;0001;00123;3;;33385802,013;59973x1,214;Ring;;;;\n"    # bad North
        ";DEMV000000000004;A;13;0;71;001;0001;00123;4;;;;Ring;;;;\n"                           # no coordinates
        "L;DEMV000000000005;A;13;0;71;001;0001;00123;5;;33385802,013;5997341,214;Ring;;;;\n"   # deletion record
        ";DEMV000000000006;A;13;0;71;001;0001;00123;6;;33385802,013;5997341,214;Ring;;;;\n"
        ";DEMV000000000006;A;13;0;71;001;0001;00123;6;;33385802,013;5997341,214;Ring;;;;\n"    # duplicate OI
        ";;A;13;0;71;001;0001;00123;7;;33385802,013;5997341,214;Ring;;;;\n", encoding="utf-8")  # no OI
    out, quarantine, rows = read(tmp_path / "hk.txt")
    assert rows == 8 and out["address_id"].tolist() == ["DEMV000000000006"] and out["source_row"].tolist() == [8]
    got = sorted(zip(quarantine["row"], quarantine["column"], quarantine["reason"], quarantine["value"], strict=True))
    assert got == [(2, "EEEEEEEE,EEE", "bad_utm_zone", "34385802,013"),
                   (3, "EEEEEEEE,EEE", "missing_coordinates", "385802,013"),
                   (5, "NNNNNNN,NNN", "missing_coordinates", "59973x1,214"),
                   (6, "EEEEEEEE,EEE", "missing_coordinates", ""),
                   (7, "NBA", "deleted_record", "L"),
                   (9, "OI", "duplicate_address_id", "DEMV000000000006"),
                   (10, "OI", "missing_value", "")]


def test_not_an_hkde_file_is_one_clear_error(tmp_path):
    (tmp_path / "x.csv").write_text("address_id;x;y;households\nA1;1;2;3\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"x.csv: line 1: 4 ';'-separated field\(s\)"):
        read(tmp_path / "x.csv")
    (tmp_path / "y.txt").write_text("NBA;OI;QUA\n;A;A\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"y.txt: line 1: not an HK-DE header: missing field\(s\) \['LAN'"):
        read(tmp_path / "y.txt")


def test_config_refuses_keys_hkde_does_not_use(tmp_path):
    base = {"boundaries": {"path": "b.gpkg", "format": "vector"}}
    cfg = config_from_dict({**base, "addresses": {"path": "hk.txt", "format": "hk-de", "decode": "d.txt"}}, tmp_path)
    assert cfg.addresses.format == "hk-de" and cfg.addresses.decode == (tmp_path / "d.txt").resolve()
    with pytest.raises(ConfigError, match="crs not used"):
        config_from_dict({**base, "addresses": {"path": "hk.txt", "format": "hk-de", "crs": CRS}}, tmp_path)
    with pytest.raises(ConfigError, match='decode: only used with format = "hk-de"'):
        config_from_dict({**base, "addresses": {"path": "a.csv", "decode": "d.txt"}}, tmp_path)


def test_cli_run_lists_addresses_whose_cadastre_ags_is_another_gemeinde(tmp_path):
    config = write_world(tmp_path)
    # The tiny world's addresses as HK-DE; A3's point lies in G2 (13000002) but the cadastre says G1,
    # A2 is given in zone 32 (converted by pyproj here, to the millimetre).
    x32, y32 = Transformer.from_crs("EPSG:25833", "EPSG:25832", always_xy=True).transform(X0 + 500, Y0 + 500)
    (tmp_path / "hk.txt").write_text(
        HEADER + "\n"
        f";A1;A;13;0;00;001;0001;00001;1;;33{X0 + 100:.0f},500;{Y0 + 100:.0f},000;Hauptstraße;17000;Eins;;\n"
        f";A2;A;13;0;00;001;0001;00001;2;a;32{x32:.3f};{y32:.3f};Hauptstraße;17000;Eins;;\n".replace(".", ",")
        + f";A3;A;13;0;00;001;0001;00002;7;;33{X0 + 1500:.0f},000;{Y0 + 500:.0f},000;Dorfstraße;17001;Zwei;;\n"
        f";A4;A;13;0;00;003;0001;00003;1;;33{X0 + 1000:.0f},000;{Y0 + 1500:.0f},000;Schulweg;17002;Drei;;\n",
        encoding="utf-8")
    text = config.read_text(encoding="utf-8").replace(f'path = "addresses.csv"\ncrs = "{CRS}"',
                                                      'path = "hk.txt"\nformat = "hk-de"')
    config.write_text(text, encoding="utf-8")
    assert main(["run", "--config", str(config), "--no-report"]) == 0
    run_dir = tmp_path / "out" / "latest"
    mismatch = pd.read_csv(run_dir / "ags_mismatch.csv", dtype=str, keep_default_na=False)
    assert mismatch[["address_id", "ags_cadastre", "ags", "gemeinde_name_cadastre", "gemeinde_name"]
                    ].values.tolist() == [["A3", "13000001", "13000002", "Eins", "Zwei"]]
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    acct = {a["stage"]: a for a in manifest["accounting"]}
    assert acct["read hk.txt"]["rows_in"] == acct["read hk.txt"]["rows_out"] == 4
    assert "1 whose cadastre AGS is another Gemeinde (ags_mismatch.csv)" in acct["locate"]["note"]
    g = pd.read_csv(run_dir / "tables" / "coverage_gemeinde.csv", dtype={"ags": str}).set_index("ags")
    assert g["addresses"].tolist() == [2, 1, 1] and g["households"].sum() == 0


def test_decoding_file_is_an_input_of_the_addresses_stage(tmp_path):
    from datetime import date

    from pipelines.stages import plan

    cfg = config_from_dict({"boundaries": {"path": "b.gpkg", "format": "vector"},
                            "addresses": {"path": "hk.txt", "format": "hk-de", "decode": "d.txt"}}, tmp_path)
    stage = next(s for s in plan(cfg, date(2024, 1, 1)) if s.name == "addresses")
    assert stage.inputs == ((tmp_path / "hk.txt").resolve(), (tmp_path / "d.txt").resolve())
    # Its content counts (an input), not the folder it lies in.
    from pipelines.runner import _fingerprint_params

    moved = dataclasses.replace(cfg.addresses, path=tmp_path / "x" / "hk.txt", decode=tmp_path / "x" / "d.txt")
    assert _fingerprint_params({"section": cfg.addresses}) == _fingerprint_params({"section": moved})
