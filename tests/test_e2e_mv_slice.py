"""End to end on real geography: demo data for one Kreis (Vorpommern-Greifswald, with Usedom),
built by `bbcov synth` code, run by the `bbcov` CLI into a temporary folder."""

import json
import re

import pandas as pd
import pytest

from demo.build_mv import build_demo
from pipelines.cli import main

KREIS = "13075"  # Vorpommern-Greifswald: 138 Gemeinden, islands (Usedom), a coast and a Land border


@pytest.fixture(scope="module")
def slice_run(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("slice")
    build_demo(shared_data, root / "demo", kreise=(KREIS,))
    config = (root / "demo" / "bbcov.toml").read_text(encoding="utf-8")
    config = config.replace('land = "13"', f'land = "13"\nareas = ["{KREIS}"]')
    config += '\n[output]\ndir = "../out"\nreports_dir = "../reports"\n'
    (root / "demo" / "slice.toml").write_text(config, encoding="utf-8")
    assert main(["run", "--config", str(root / "demo" / "slice.toml")]) == 0
    return root


def test_tables_cover_every_gemeinde_of_the_kreis_and_add_up(slice_run):
    tables = slice_run / "out" / "latest" / "tables"
    gem = pd.read_csv(tables / "coverage_gemeinde.csv", dtype={"ags": str, "vwg_ars": str, "krs_ags": str})
    kreis = pd.read_csv(tables / "coverage_kreis.csv", dtype={"krs_ags": str})
    amt = pd.read_csv(tables / "coverage_amt.csv", dtype={"vwg_ars": str})
    assert len(gem) == 138 and gem["ags"].str.startswith(KREIS).all()
    assert kreis["krs_ags"].tolist() == [KREIS]
    # households estimated from the Zensus (the demo config's [households] source = "zensus")
    total = pd.read_parquet(slice_run / "out" / "latest" / "addresses.parquet", columns=["households"]).sum().iloc[0]
    assert total > 0
    assert kreis["households"].iloc[0] == pytest.approx(gem["households"].sum(), abs=1e-6)
    assert gem["households"].sum() == pytest.approx(amt["households"].sum(), abs=1e-6)
    assert gem["households"].sum() == pytest.approx(total, abs=1e-6)
    for t in (2, 16, 30, 50, 100, 200, 400, 1000):
        assert (gem[f"hh_ge_{t}_all"] >= gem[f"hh_ge_{t}_wired"]).all()
        share = gem[f"share_ge_{t}_all"].dropna()
        assert share.between(0, 100).all()
    assert (gem["hh_ge_30_all"] >= gem["hh_ge_100_all"]).all()  # monotone in the threshold


def test_nothing_lost_and_demo_inputs_validate_cleanly(slice_run):
    manifest = json.loads((slice_run / "out" / "latest" / "manifest.json").read_text(encoding="utf-8"))
    assert all(a["balanced"] for a in manifest["accounting"])
    assert manifest["quarantine_total"] == 0
    parquet = pd.read_parquet(slice_run / "out" / "latest" / "addresses.parquet")
    assert len(parquet) == len(pd.read_csv(slice_run / "demo" / "addresses.csv"))
    sites = pd.read_csv(slice_run / "out" / "latest" / "sites.csv", dtype=str)
    assert (sites["site_kind"] == "kreis_office").sum() == 1
    assert sites.loc[sites["site_kind"] == "kreis_office", "gemeinde_name"].iloc[0] == "Greifswald"


def test_report_has_a_choropleth_of_every_gemeinde(slice_run):
    index = slice_run / "reports" / "latest" / "index.html"
    html = index.read_text(encoding="utf-8")
    assert "<svg" in html and html.count('class="area"') >= 138
    assert "http://" not in html and "https://" not in html


def test_compare_bba_reports_differences_and_unmatched_keys(slice_run, shared_data, capsys):
    bba = shared_data / "breitbandatlas" / "gemeinde_bezirke_privat_2021_mitte.csv"
    assert main(["compare-bba", str(slice_run / "out" / "latest"), str(bba)]) == 0
    out = capsys.readouterr().out
    compare = slice_run / "out" / "latest" / "compare"
    summary = pd.read_csv(compare / "bba_gemeinde_bezirke_privat_2021_mitte_summary.csv")
    dsl = summary[summary["group"] == "dsl"]
    assert len(dsl) >= 5 and (dsl["mean_abs_diff_pp"] < 2).all()  # the demo is calibrated to this table
    assert "only in the Breitbandatlas table" in out


def corrupt_demo(demo, out):
    """Copy the demo inputs and plant known faults: the documented way to see quarantine at work.

    hauskoordinaten.txt (HK-DE): 3 East values in UTM zone 34, 2 duplicated records, 1 empty East value,
    1 point in Poland. dsl_kuestennetz.csv (cp1252): 4 unknown technologies, 2 negative speeds,
    1 unknown address_id.
    """
    import shutil

    shutil.copytree(demo, out)
    lines = (out / "hauskoordinaten.txt").read_text(encoding="utf-8").splitlines()
    east = lines[0].split(";").index("EEEEEEEE,EEE")
    for i in (10, 20, 30):
        cells = lines[i].split(";")
        cells[east] = "34" + cells[east][2:]
        lines[i] = ";".join(cells)
    lines += [lines[40], lines[50]]
    cells = lines[60].split(";")
    cells[east] = ""
    lines[60] = ";".join(cells)
    cells = lines[70].split(";")
    value = float(cells[east][2:].replace(",", ".")) + 150_000  # 150 km east
    cells[east] = "33" + f"{value:.3f}".replace(".", ",")
    lines[70] = ";".join(cells)
    (out / "hauskoordinaten.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    dsl = out / "providers" / "dsl_kuestennetz.csv"
    rows = dsl.read_text(encoding="cp1252").splitlines()
    for i in (5, 6, 7, 8):
        rows[i] = rows[i].replace("VDSL", "Brieftaube").replace("ADSL", "Brieftaube").replace("SVDSL", "Brieftaube")
    for i in (11, 12):
        parts = rows[i].split(";")
        parts[3] = "-" + parts[3]
        rows[i] = ";".join(parts)
    parts = rows[13].split(";")
    parts[0] = "MV-9999999"
    rows[13] = ";".join(parts)
    dsl.write_bytes(("\r\n".join(rows) + "\r\n").encode("cp1252"))


def test_corrupted_demo_inputs_give_exactly_the_planted_quarantine(slice_run):
    from coverage.config import load_config
    from pipelines.runner import validate_inputs

    corrupt_demo(slice_run / "demo", slice_run / "corrupt")
    _state, ledger = validate_inputs(load_config(slice_run / "corrupt" / "slice.toml"))
    assert all(a.balanced for a in ledger.accounting)
    quarantine = ledger.all_quarantine()
    found = quarantine.groupby(["source", "reason"]).size().to_dict()
    rejected_ids = set(quarantine.loc[(quarantine["source"] == "hauskoordinaten.txt")
                                      & (quarantine["reason"] != "duplicate_address_id"), "key"])
    assert len(rejected_ids) == 5
    dsl_ids = pd.read_csv(slice_run / "corrupt" / "providers" / "dsl_kuestennetz.csv", sep=";", encoding="cp1252",
                          usecols=["address_id"])["address_id"]
    already = set(quarantine.loc[(quarantine["source"] == "dsl_kuestennetz.csv")
                                 & quarantine["reason"].isin(["unknown_technology", "negative_value"]), "row"])
    file_rows = pd.Series(range(2, len(dsl_ids) + 2))  # header is row 1
    expected_cascade = int((dsl_ids.isin(rejected_ids) & ~file_rows.isin(already)).sum())
    assert expected_cascade >= 3
    # business and site rows at those addresses are reported the same way
    lists = {name: int(pd.read_csv(slice_run / "corrupt" / name, dtype=str)["address_id"].isin(rejected_ids).sum())
             for name in ("businesses.csv", "sites.csv")}
    # fibre is located by coordinates: its rows at a rejected address reach no address (if none is near)
    addr = pd.read_csv(slice_run / "corrupt" / "addresses.csv", dtype={"address_id": str},
                       usecols=["address_id", "x", "y"])
    fib = pd.read_csv(slice_run / "corrupt" / "providers" / "fibre_seenplatte.csv", sep=";", decimal=",",
                      encoding="utf-8-sig", usecols=["x", "y"])
    at_rejected = fib.round(2).merge(addr[addr["address_id"].isin(rejected_ids)][["x", "y"]].round(2), on=["x", "y"])
    fibre_lost = found.pop(("fibre_seenplatte.csv", "no_address_nearby"), 0)
    assert fibre_lost <= len(at_rejected)
    assert found == {
        ("hauskoordinaten.txt", "bad_utm_zone"): 3,
        ("hauskoordinaten.txt", "duplicate_address_id"): 2,
        ("hauskoordinaten.txt", "missing_coordinates"): 1,
        ("hauskoordinaten.txt", "outside_municipalities"): 1,
        **{(name, "address_quarantined"): n for name, n in lists.items() if n},
        ("dsl_kuestennetz.csv", "unknown_technology"): 4,
        ("dsl_kuestennetz.csv", "negative_value"): 2,
        ("dsl_kuestennetz.csv", "unknown_address"): 1,
        # DSL records of the addresses quarantined above are reported as such, not as unknown:
        ("dsl_kuestennetz.csv", "address_quarantined"): expected_cascade,
    }


def test_every_accounting_note_of_the_run_reads_in_german(slice_run):
    """The provenance page shows the stages' accounting notes (English in manifest.json) through
    coverage.report.labels.note_label: none of the demo run's notes may stay English."""
    from coverage.report.labels import note_label

    manifest = json.loads((slice_run / "out" / "latest" / "manifest.json").read_text(encoding="utf-8"))
    notes = [a["note"] for a in manifest["accounting"] if a.get("note")]
    assert len(notes) >= 5  # boundaries, Zensus households, businesses, sites, planned supply …
    english = re.compile(r"\b(households?|addresses|offers?|cells?|assigned|nearest|unallocated|spread|moved|"
                         r"outside|without|polygons?|blocks?|planned|sites|businesses|whose|estimated|from|"
                         r"with|counted|until|added|withdrawn|accepted|rejected|pending|school)\b")
    left = {n: note_label(n) for n in notes if english.search(note_label(n))}
    assert left == {}
