"""Output writers never die on data: control characters, text longer than a cell, multi-line parser errors.

The tiny world of tests/world.py with a site name, a provider name, streets and a quarantined value
holding NUL, BEL, ESC sequences (CSI colour, OSC title), a vertical tab, U+0085, a 40,000-character
street and a formula. The rule under test is the one of :mod:`coverage.text`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from coverage.text import one_line, terminal_line, terminal_text
from pipelines import io
from pipelines.cli import main
from tests.conftest import X0, Y0
from tests.world import write_world

HOSTILE = "Grund\x00schule\x07 \x1b[31mDrei\x1b[0m\x0bzwei\x85ende"
HOSTILE_SHOWN = "Grund\\x00schule\\x07 \\x1b[31mDrei\\x1b[0m\\x0bzwei\\x85ende"
PROVIDER = "Küsten\x1b]0;pwned\x07netz\x1b[2J (fiktiv)"
PROVIDER_SHOWN = "Küsten\\x1b]0;pwned\\x07netz\\x1b[2J (fiktiv)"
LONG = "L" * 40_000
FORMULA = '=HYPERLINK("http://x","y")'
TECH = "Brief\x1b[31mtaube\x00"
#: What XLSX cells and HTML must never hold (tab, line feed and carriage return may stay).
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def write_hostile_world(root: Path) -> Path:
    config = write_world(root)
    (root / "addresses.csv").write_bytes((
        "address_id;x;y;households;site_kind;site_name;street;house_number;locality\n"
        f"A1;{X0 + 100:.0f},5;{Y0 + 100:.0f};3;school;{FORMULA};{LONG};1;Eins\n"
        f"A2;{X0 + 500:.0f};{Y0 + 500:.0f};2;school;Schule Zwei;Weg\x1b[31m;2;Eins\n"
        f"A3;{X0 + 1500:.0f};{Y0 + 500:.0f};5;;;;;Zwei\n"
        f"A4;{X0 + 1000:.0f};{Y0 + 1500:.0f};0;school;{HOSTILE};Markt\x00;4;Drei\n"
    ).encode())
    (root / "dsl.csv").write_bytes((
        "address_id;provider;technology;down_mbps;up_mbps\n"
        f'A1;"{PROVIDER}";VDSL2-Vectoring;50,0;10,0\n'
        f'A2;"{PROVIDER}";SVDSL;100 Mbit/s;40\n'
        f'A4;"{PROVIDER}";{TECH};50;10\n'                      # unknown technology -> quarantine
    ).encode())
    return config


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    config = write_hostile_world(root)
    assert main(["run", "--config", str(config)]) == 0
    return root / "out" / "latest", root / "reports" / "latest"


def test_reader_keeps_cells_with_vertical_tab_and_nel_in_one_row(hostile_run):
    run_dir, _ = hostile_run
    sites = pd.read_parquet(run_dir / "addresses.parquet").set_index("address_id")
    assert sorted(sites.index) == ["A1", "A2", "A3", "A4"]
    assert sites.loc["A4", "site_name"] == HOSTILE and sites.loc["A4", "street"] == "Markt\x00"


def test_xlsx_opens_and_holds_escaped_and_cut_values(hostile_run):
    run_dir, report = hostile_run
    wb = load_workbook(report / "downloads" / "coverage.xlsx")
    ws = wb["Standorte"]
    header = [c.value for c in ws[1]]
    rows = {r[0]: dict(zip(header, r, strict=True)) for r in ws.iter_rows(min_row=2, values_only=True)}
    assert sorted(rows) == ["A1", "A2", "A4"]
    assert rows["A4"]["Standort"] == HOSTILE_SHOWN
    assert rows["A4"]["Straße"] == "Markt\\x00"
    assert rows["A2"]["Straße"] == "Weg\\x1b[31m"
    assert rows["A2"]["Anbieter"] == PROVIDER_SHOWN
    assert rows["A1"]["Standort"] == "'" + FORMULA
    assert rows["A1"]["Straße"] == "L" * (io.EXCEL_CELL_CHARS - len(io.CUT_MARKER)) + "…[gekürzt]"
    assert len(rows["A1"]["Straße"]) == 32_767
    assert not any(isinstance(c.value, str) and RAW_CONTROL.search(c.value)
                   for sheet in wb for row in sheet.iter_rows() for c in row)
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    assert ("WARNING pipelines.io: sheet Standorte, column street: 1 text value(s) longer than 32767 characters "
            "cut, ending with '…[gekürzt]'\n") in log


def test_csv_keeps_the_values_one_field_each(hostile_run):
    run_dir, report = hostile_run
    for path, options in ((run_dir / "sites.csv", {}), (report / "downloads" / "sites.csv", {}),
                          (report / "downloads" / "sites_de.csv", {"sep": ";", "encoding": "utf-8-sig"})):
        sites = pd.read_csv(path, dtype=str, keep_default_na=False, **options)
        assert len(sites) == 3, path
        by_id = sites.set_index(sites.columns[0])
        name, street = by_id.columns[1], by_id.columns[2]  # site_name/street or their German labels
        assert by_id.loc["A4", name] == HOSTILE and by_id.loc["A4", street] == "Markt\x00"
        assert by_id.loc["A1", name] == "'" + FORMULA and by_id.loc["A1", street] == LONG
    quarantined = pd.read_csv(run_dir / "quarantine" / "dsl.csv", dtype=str)
    assert quarantined[["row", "value", "reason"]].to_numpy().tolist() == [["4", TECH, "unknown_technology"]]


def test_html_and_svg_hold_no_raw_control_characters(hostile_run):
    _, report = hostile_run
    pages = sorted(p for p in report.rglob("*") if p.suffix in (".html", ".svg"))
    assert len(pages) > 10
    for page in pages:
        assert not RAW_CONTROL.search(page.read_text(encoding="utf-8")), page
    gemeinde = (report / "gemeinde" / "13000003.html").read_text(encoding="utf-8")
    assert HOSTILE_SHOWN in gemeinde


def test_explain_prints_no_escape_sequences(hostile_run, capsys):
    run_dir, _ = hostile_run
    assert main(["explain", "A1", "--run", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"  {PROVIDER_SHOWN} | DSL | 50/10 Mbit/s | aktuell | dsl.csv | zugeordnet über Adress-ID\n" in out
    assert re.search(r"\n  DSL +" + re.escape(f"50/10 Mbit/s DSL ({PROVIDER_SHOWN})\n"), out)
    assert main(["explain", "A4", "--run", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Adresse A4: Markt\\x00 4, Drei\n")
    assert f"  Haushalte 0, Unternehmen 0, Standort: Schule {HOSTILE_SHOWN}\n" in out
    assert "\x1b" not in out and not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", out)


def test_error_quoting_a_value_is_one_escaped_line(hostile_run, capsys):
    run_dir, _ = hostile_run
    assert main(["-q", "explain", "A\n\x1b[31mB", "--run", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err == (f"bbcov: error: A | \\x1b[31mB: no such address in run {run_dir.resolve().name} "
                   "(quarantined addresses are listed in its quarantine/ folder)\n")


def test_validate_table_and_log_lines_escape_file_names(tmp_path, capsys):
    config = write_world(tmp_path)
    (tmp_path / "dsl.csv").rename(tmp_path / "dsl\x1b[31m.csv")
    config.write_text(config.read_text(encoding="utf-8").replace('path = "dsl.csv"', 'path = "dsl\\u001b[31m.csv"'),
                      encoding="utf-8")
    assert main(["validate", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out and "\x1b" not in captured.err
    assert "\ndsl\\x1b[31m.csv          5         3            2 unknown_address 1, unknown_technology 1\n" in (
        captured.out)
    assert "INFO    provider dsl\\x1b[31m.csv: 5 rows read, 4 accepted, 1 quarantined\n" in captured.err


def test_a_row_with_extra_fields_is_quarantined_not_a_parser_error(tmp_path, capsys):
    """pandas' tokenizer error for it ended with a newline inside the message; the row is now quarantined
    (bad_row) and the rest of the file read. A real parser error is folded to one line (next test)."""
    config = write_world(tmp_path)
    path = tmp_path / "addresses.csv"
    path.write_bytes(path.read_bytes() + b"A7;1;2;3;;;x;too;many\n")  # 9 fields where the header has 7
    assert main(["-q", "validate", "--config", str(config)]) == 0
    assert "bad_row 1" in capsys.readouterr().out


def test_parser_error_with_several_lines_and_escapes_is_folded(tmp_path, capsys, monkeypatch):
    config = write_world(tmp_path)

    def fail(*args, **kwargs):
        raise pd.errors.ParserError("Error tokenizing data.\n\n  C error: line 3 \x1b[31mred\r\nmore\n")

    monkeypatch.setattr("coverage.sources.tables.pd.read_csv", fail)
    assert main(["-q", "validate", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err == (f"bbcov: error: {tmp_path / 'addresses.csv'}: not a readable ';'-separated table "
                   "(Error tokenizing data. | C error: line 3 \\x1b[31mred | more)\n")


def test_text_rules():
    assert one_line("a\n\n  b \r\nc\x85d\u2028e\n") == "a | b | c | d | e"
    assert terminal_text("t\tn\nr\r\x1b[0m\x7f\x9b") == "t\\tn\\nr\\r\\x1b[0m\\x7f\\x9b"
    assert terminal_line("x\n\x07y") == "x | \\x07y"
    assert terminal_text("Küstennetz ≥ 100 Mbit/s") == "Küstennetz ≥ 100 Mbit/s"


def test_lone_carriage_return_stays_in_its_field(tmp_path):
    frame = pd.DataFrame({"name": ["a\rb", "c\r\nd", "plain"], "n": [1.5, 2.0, 3.0]})
    for german, options in ((False, {}), (True, {"sep": ";", "decimal": ",", "encoding": "utf-8-sig"})):
        path = io.write_csv(tmp_path / f"x{german}.csv", frame, german=german)
        back = pd.read_csv(path, **options)
        assert back["name"].tolist() == ["a\rb", "c\r\nd", "plain"] and back["n"].tolist() == [1.5, 2.0, 3.0]
    clean = io.write_csv(tmp_path / "clean.csv", frame.iloc[2:], german=True)
    assert clean.read_bytes() == "\ufeffname;n\nplain;3,0\n".encode()


def test_cut_counts_utf16_units_and_keeps_short_text(caplog):
    frame = pd.DataFrame({"c": ["😀" * 20_000, "kurz", None], "n": [1, 2, 3]})
    with caplog.at_level("WARNING", logger="pipelines.io"):
        cells = io.spreadsheet_cells(frame, "S")
    cut = cells["c"].iloc[0]
    assert cut == "😀" * 16_378 + "…[gekürzt]"  # 16,378 x 2 + 10 = 32,766 units: a pair is never split
    assert cells["c"].iloc[1] == "kurz" and pd.isna(cells["c"].iloc[2]) and cells["n"].tolist() == [1, 2, 3]
    assert caplog.messages == ["sheet S, column c: 1 text value(s) longer than 32767 characters cut, "
                               "ending with '…[gekürzt]'"]


def test_csv_parts_equal_one_csv_per_group_and_neutralise_every_kind_of_text_column(tmp_path):
    frame = pd.DataFrame({
        "amt": ["b", "a", "b", None, "a"],
        "text": ["=1+1", "ok", "-x", "+y", "@z"],  # Arrow strings
        "objects": pd.Series(["\tTab", 3, None, "\rCR", "fine"], dtype=object),
        "python": pd.Series(["=a", None, "b", "-", "c"], dtype="string[python]"),
        "cats": pd.Categorical(["=k", "k", "=k", "m", None]),
        "number": [-1.5, 2.0, float("nan"), 4.0, -5.0]})
    for given in (frame.drop(columns="objects"), frame):  # through Arrow; mixed objects: part by part
        parts = io.write_csv_parts(given, "amt", lambda key: tmp_path / "parts" / f"{key}.csv")
        assert [key for key, _ in parts] == ["a", "b"]  # sorted; a row without a key is in no part (as groupby)
        for key, path in parts:
            io.write_csv(tmp_path / f"{key}.csv", given[given["amt"] == key])
            assert path.read_bytes() == (tmp_path / f"{key}.csv").read_bytes()
    b = pd.read_csv(tmp_path / "parts" / "b.csv", dtype=str, keep_default_na=False)
    assert b["text"].tolist() == ["'=1+1", "'-x"] and b["python"].tolist() == ["'=a", "b"]
    assert b["cats"].tolist() == ["'=k", "'=k"] and b["number"].tolist() == ["-1.5", ""]
    a = pd.read_csv(tmp_path / "parts" / "a.csv", dtype=str, keep_default_na=False)
    assert a["objects"].tolist() == ["3", "fine"] and a["text"].tolist() == ["ok", "'@z"]


def test_a_full_disk_met_by_a_geopackage_is_an_oserror_and_leaves_no_file(tmp_path):
    """GDAL reports a full disk while writing a GeoPackage as SQLite's message, not as an OSError: the
    writer raises it as ENOSPC (the CLI's one line, exit 2); another GDAL error stays what it was."""
    import errno

    from pyogrio.errors import DataLayerError

    target = tmp_path / "grid.gpkg"
    with pytest.raises(OSError) as caught, io.atomic_path(target):
        raise DataLayerError("Error while writing batch to OGR layer: sqlite3_exec(COMMIT) failed: "
                             "database or disk is full")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert isinstance(caught.value.__cause__, DataLayerError)
    with pytest.raises(DataLayerError), io.atomic_path(target):
        raise DataLayerError("Error while writing batch to OGR layer: no such column")
    assert list(tmp_path.iterdir()) == []
