"""Objections (Stellungnahmen) as their own layer, on the tiny world: what an accepted, rejected and
pending objection and an accepted withdrawal change, and how bad rows are quarantined.

Baseline (tests/world.py): A1 3 hh (FTTH 1000/500, DSL 50/10 Küstennetz, LTE 40), A2 2 hh (SVDSL 100/40,
LTE 40; gigabit-eligible), A3 5 hh (ADSL 16, cable 250, FTTH planned), A4 0 hh (no offer).
"""

import pandas as pd
import pytest

from pipelines.cli import main
from tests.world import write_world

OBJECTIONS = (
    "address_id;claim;provider;technology;down_mbps;up_mbps;status;planned_date;submitted_by;evidence;decision;"
    "decided_by;decided_on\n"
    "A2;offer;Stadtwerke (fiktiv);FTTH;1000;1000;current;;Stadtwerke (fiktiv);Abnahmeprotokoll 17;accepted;"
    "Amt Eins;2022-03-01\n"                                                    # row 2: applied
    "A3;offer;Glasfaser eG (fiktiv);FTTH;1000;1000;current;;Gemeinde Zwei;Foto;rejected;Amt Zwei;2022-03-02\n"
    "A3;offer;Funkturm AG (fiktiv);FTTH;1000;1000;current;;Bürger;E-Mail;pending;;\n"      # row 4: listed
    "A1;no_offer;Küstennetz (fiktiv);;;;;;Bürger;Vertragsablehnung;accepted;Amt Eins;2022-03-04\n"  # row 5
    "A1;offer;Stadtwerke (fiktiv);FTTH;1000;1000;;;Bürger;;vielleicht;;\n"     # row 6: unknown_decision
    "A9;offer;Stadtwerke (fiktiv);FTTH;1000;1000;;;Bürger;;pending;;\n"        # row 7: unknown_address
    "A4;no_offer;Hansefunk (fiktiv);;;;;;Bürger;;accepted;Amt Drei;2022-03-05\n"  # row 8: no_offer_to_withdraw
    "A4;maybe;Hansefunk (fiktiv);;;;;;Bürger;;pending;;\n"                     # row 9: unknown_claim
    "A4;offer;Stadtwerke (fiktiv);FTTH;1000;1000;;;Bürger;;accepted;;2022-03-05\n"  # row 10: missing decided_by
)


def run_world(root, objections: str | None):
    config = write_world(root)
    if objections is not None:
        (root / "objections.csv").write_text(objections, encoding="utf-8")
        config.write_text(config.read_text(encoding="utf-8") + '\n[[objections]]\npath = "objections.csv"\n',
                          encoding="utf-8")
    assert main(["run", "--config", str(config), "--no-report"]) == 0
    return root / "out" / "latest"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = run_world(tmp_path_factory.mktemp("base"), None)
    contested = run_world(tmp_path_factory.mktemp("objections"), OBJECTIONS)
    return base, contested


def addresses(run_dir):
    return pd.read_parquet(run_dir / "addresses.parquet").set_index("address_id").sort_index()


def gemeinden(run_dir):
    return pd.read_csv(run_dir / "tables" / "coverage_gemeinde.csv", dtype={"ags": str}).set_index("ags")


FUND = ["fund_white", "fund_grey", "fund_gigabit_2023", "fund_gigabit_2024"]


def test_accepted_offer_turns_exactly_that_address_ineligible(runs):
    base, after = (addresses(r) for r in runs)
    assert base.loc["A2", ["fund_gigabit_2023", "fund_gigabit_2024"]].tolist() == [True, True]
    assert after.loc["A2", FUND].tolist() == [False] * 4
    assert after.loc["A2", ["best_down_all", "best_up_all", "best_provider_all"]].tolist() == [
        1000, 1000, "Stadtwerke (fiktiv)"]
    flags = [c for c in base.columns if c.startswith("fund_")]
    differs = (base[flags] != after[flags]).any(axis=1)
    assert differs[differs].index.tolist() == ["A2"]
    offers = pd.read_parquet(runs[1] / "offers.parquet")
    added = offers[offers["source"] == "objections.csv"]
    assert added[["address_id", "provider", "down_mbps", "up_mbps", "match_method"]].values.tolist() == [
        ["A2", "Stadtwerke (fiktiv)", 1000.0, 1000.0, "objection"]]


def test_area_counts_change_by_exactly_its_households(runs):
    base, after = (gemeinden(r) for r in runs)
    hh = [c for c in base.columns if c.startswith(("hh_", "plan_hh_"))]
    delta = after[hh] - base[hh]
    changed = delta.loc[:, (delta != 0).any()]
    assert set(changed.index[(changed != 0).any(axis=1)]) == {"13000001"}  # A2's Gemeinde only
    moved = changed.loc["13000001"]
    dsl = moved.index.str.endswith("_dsl")
    assert set(moved[~dsl].abs()) == {2}  # A2's 2 households, in every column that moved
    assert set(moved[dsl].abs()) == {3}  # A1's 3 households lose their withdrawn DSL offer
    assert delta.loc["13000001", "hh_fund_gigabit_2024"] == -2
    assert delta.loc["13000001", "hh_ge_1000_all"] == 2


def test_rejected_and_pending_change_nothing_but_are_listed(runs):
    base, after = (addresses(r) for r in runs)
    same = [c for c in base.columns if c != "contested"]
    pd.testing.assert_series_equal(base.loc["A3", same], after.loc["A3", same])
    listed = pd.read_csv(runs[1] / "objections.csv", dtype=str, keep_default_na=False)
    assert listed[["row", "address_id", "claim", "decision", "applied"]].values.tolist() == [
        ["2", "A2", "offer", "accepted", "true"], ["3", "A3", "offer", "rejected", "false"],
        ["4", "A3", "offer", "pending", "false"], ["5", "A1", "no_offer", "accepted", "true"]]
    assert listed.loc[1, "decided_by"] == "Amt Zwei" and listed.loc[1, "evidence"] == "Foto"
    assert after["contested"].to_dict() == {"A1": True, "A2": True, "A3": True, "A4": False}
    assert not base["contested"].any()  # the column is always there; without objections nothing is contested


def test_accepted_withdrawal_removes_exactly_that_providers_offer(runs):
    base, after = (addresses(r) for r in runs)
    assert base.loc["A1", "best_down_dsl"] == 50 and after.loc["A1", "best_down_dsl"] == 0
    assert after.loc["A1", ["n_prov_ge30_all", "n_prov_ge30_wired"]].tolist() == [2, 1]  # Küstennetz gone
    objection_columns = ("contested", "objection_withdrew", "objection_changed")
    keep = [c for c in base.columns if c not in objection_columns and "dsl" not in c
            and not c.startswith("n_prov_ge30")]
    pd.testing.assert_series_equal(base.loc["A1", keep], after.loc["A1", keep])
    assert after.loc["A1", "no_offer"] == base.loc["A1", "no_offer"]
    assert after["objection_withdrew"].to_dict() == {"A1": True, "A2": False, "A3": False, "A4": False}
    assert not base["objection_withdrew"].any()


def test_bad_rows_are_quarantined_with_their_reason(runs):
    quarantine = pd.read_csv(runs[1] / "quarantine" / "objections.csv")
    assert sorted(zip(quarantine["row"], quarantine["reason"], quarantine["column"], strict=True)) == [
        (6, "unknown_decision", "decision"), (7, "unknown_address", "address_id"),
        (8, "no_offer_to_withdraw", "provider"), (9, "unknown_claim", "claim"), (10, "missing_value", "decided_by")]


def test_explain_shows_the_objections_and_what_they_changed(runs, capsys):
    assert main(["explain", "A1", "--run", str(runs[1])]) == 0
    out = capsys.readouterr().out
    assert ("Küstennetz (fiktiv) | DSL | 50/10 Mbit/s | aktuell | dsl.csv | zugeordnet über Adress-ID"
            " | zurückgezogen durch objections.csv Zeile 5") in out
    assert "Einwendungen (1):" in out
    assert ("objections.csv Zeile 5: kein Angebot Küstennetz (fiktiv) — angenommen von Amt Eins am 2022-03-04 "
            "(eingereicht von Bürger; Nachweis: Vertragsablehnung): angewandt, 1 Angebot(e) zurückgezogen") in out
    assert "Wirkung: die angenommenen Einwendungen haben die beste Versorgung oder ein Förderurteil" in out
    assert main(["explain", "A2", "--run", str(runs[1])]) == 0
    out = capsys.readouterr().out
    assert ("1000/1000 Mbit/s Glasfaser (FTTH) (Stadtwerke (fiktiv)) [durch Einwendung hinzugefügt, "
            "objections.csv]") in out
    assert main(["explain", "A3", "--run", str(runs[1])]) == 0
    out = capsys.readouterr().out
    assert "Wirkung: keine Änderung der besten Versorgung oder der Förderurteile" in out
    assert "Einwendungen (2):" in out
    assert ("abgelehnt von Amt Zwei am 2022-03-02 (eingereicht von Gemeinde Zwei; Nachweis: Foto): "
            "nicht angewandt") in out
    assert "offen (eingereicht von Bürger; Nachweis: E-Mail): nicht angewandt" in out


def test_the_objections_stage_is_reused_with_its_withdrawals(tmp_path):
    before = addresses(run_world(tmp_path, OBJECTIONS))
    assert main(["run", "--config", str(tmp_path / "run.toml"), "--no-report", "--from", "service"]) == 0
    manifest = pd.read_json(tmp_path / "out" / "latest" / "manifest.json", typ="series")
    stages = manifest["stages"]
    assert stages["objections objections.csv"]["status"] == "reused" and stages["service"]["status"] == "ran"
    pd.testing.assert_frame_equal(before, addresses(tmp_path / "out" / "latest"))


def test_the_service_stage_says_which_offer_won_and_what_objections_changed(runs):
    base, after = (addresses(r) for r in runs)
    # the winning offer's source: the delivery, or the objections layer that added it
    assert after.loc["A2", "best_source_all"] == "objection:objections.csv"
    assert after.loc["A2", "best_source_mobile"] == base.loc["A2", "best_source_mobile"] == "mobile.tif"
    assert base.loc["A2", "best_source_all"] == "dsl.csv" and after.loc["A4", "best_source_all"] == ""
    assert str(after["best_source_all"].dtype) == "category"
    # A2 (offer added) and A1 (DSL withdrawn) changed; A3's rejected/pending objections change nothing
    assert after["objection_changed"].to_dict() == {"A1": True, "A2": True, "A3": False, "A4": False}
    assert not base["objection_changed"].any()


def test_area_tables_count_contested_and_changed_by_objections(runs):
    base, after = (gemeinden(r) for r in runs)
    assert "hh_contested" not in base.columns  # without [[objections]] the tables keep their columns
    g = after.loc["13000001"]  # A1 (3 hh) and A2 (2 hh); A3 (5 hh) is contested too
    others = after.drop(index="13000001")
    assert (g["addr_objection_changed"], g["hh_objection_changed"]) == (2, 5)
    assert g["addr_contested"] + others["addr_contested"].sum() == 3
    assert g["hh_contested"] + others["hh_contested"].sum() == 10
    land = pd.read_csv(runs[1] / "tables" / "coverage_land.csv")
    assert land.loc[0, "hh_objection_changed"] == 5 and land.loc[0, "addr_contested"] == 3


def test_change_report_separates_objections_from_deliveries(runs, tmp_path):
    from pipelines.changes import load_run, write_change_report

    base, after = runs
    write_change_report(load_run(base), load_run(after), tmp_path)
    moved = pd.read_csv(tmp_path / "address_changes.csv", dtype=str)
    assert set(moved["address_id"]) == {"A1", "A2"}
    assert set(moved["cause"]) == {"objections"}  # A2's added FTTH, A1's withdrawn DSL
    gem = pd.read_csv(tmp_path / "changes_gemeinde.csv", dtype={"ags": str})
    row = gem[(gem["ags"] == "13000001") & (gem["group"] == "all") & (gem["threshold_mbps"] == 1000)].iloc[0]
    assert (row["hh_ge_delta"], row["hh_ge_delta_objections"], row["hh_ge_delta_deliveries"]) == (2, 2, 0)
    dsl = gem[(gem["ags"] == "13000001") & (gem["group"] == "dsl") & (gem["threshold_mbps"] == 30)].iloc[0]
    assert (dsl["hh_ge_delta"], dsl["hh_ge_delta_objections"]) == (-3, -3)
    funding = pd.read_csv(tmp_path / "funding_changes.csv", dtype=str)
    assert set(funding["address_id"]) == {"A2"} and set(funding["cause"]) == {"objections"}
    # the reverse comparison: the objections' offers and withdrawal go away, still the objections' doing
    write_change_report(load_run(after), load_run(base), tmp_path / "back")
    back = pd.read_csv(tmp_path / "back" / "address_changes.csv", dtype=str)
    assert set(back["cause"]) == {"objections"}


def test_a_delivery_change_is_the_deliveries_doing(runs, tmp_path):
    """Same objections in both runs; run B's DSL delivery gives A3 100 Mbit/s: only A3 moves, by deliveries."""
    from pipelines.changes import load_run, write_change_report

    root = tmp_path / "b"
    root.mkdir()
    config = write_world(root)
    dsl = root / "dsl.csv"
    dsl.write_bytes(dsl.read_bytes().replace(b"A3;K\xfcstennetz (fiktiv);ADSL2+;16.000 kbit/s;1",
                                             b"A3;K\xfcstennetz (fiktiv);VDSL2-Vectoring;100;40"))
    (root / "objections.csv").write_text(OBJECTIONS, encoding="utf-8")
    config.write_text(config.read_text(encoding="utf-8") + '\n[[objections]]\npath = "objections.csv"\n',
                      encoding="utf-8")
    assert main(["run", "--config", str(config), "--no-report"]) == 0
    write_change_report(load_run(runs[1]), load_run(root / "out" / "latest"), tmp_path / "changes")
    moved = pd.read_csv(tmp_path / "changes" / "address_changes.csv", dtype=str)
    assert set(moved["address_id"]) == {"A3"} and set(moved["cause"]) == {"deliveries"}
    gem = pd.read_csv(tmp_path / "changes" / "changes_gemeinde.csv", dtype={"ags": str})
    row = gem[(gem["group"] == "dsl") & (gem["threshold_mbps"] == 100) & (gem["hh_ge_delta"] != 0)]
    assert row[["hh_ge_delta", "hh_ge_delta_deliveries", "hh_ge_delta_objections"]].values.tolist() == [[5, 5, 0]]


def test_atlas_pages_show_the_objections_and_link_the_lists(runs, tmp_path):
    """The report places the run's eligible lists and objections.csv under downloads/; the Amt and
    Gemeinde pages count contested and objection-changed addresses and link both files."""
    import re

    from coverage.funding import DEFAULT_RULES
    from coverage.model import LEVEL_KEYS
    from coverage.report.atlas import atlas_data, render_area_page
    from pipelines.report import SITE_COLUMNS, funding_downloads

    run = runs[1]
    files = funding_downloads(run, tmp_path)
    assert files == {"130000001": "downloads/eligible/130000001.csv", "130000002": "downloads/eligible/130000002.csv",
                     "objections": "downloads/objections.csv"}
    assert (tmp_path / files["objections"]).read_bytes() == (run / "objections.csv").read_bytes()
    eligible = pd.read_csv(tmp_path / files["130000001"], dtype=str).set_index("address_id")
    assert eligible["contested"].to_dict() == {"A1": "true", "A2": "true", "A3": "true"}
    assert eligible["objection_changed"].to_dict() == {"A1": "true", "A2": "true", "A3": "false"}
    keys = dict.fromkeys(LEVEL_KEYS.values(), str)
    tables = {level: pd.read_csv(run / "tables" / f"coverage_{level}.csv", dtype=keys).copy() for level in LEVEL_KEYS}
    sites = pd.DataFrame({c: pd.Series(dtype="object") for c in SITE_COLUMNS})
    data = atlas_data(tables, sites, DEFAULT_RULES, {"groups": ["all"], "thresholds": [30, 100],
                                                      "funding_files": files})
    html = render_area_page(data, "amt", "130000001", None)
    section = html[html.index('<section id="stellungnahmen">'):]
    section = section[:section.index("</section>")]
    assert "<h2>Stellungnahmen</h2>" in section
    values = re.findall(r'card-value">([^<]*)<', section)
    assert values == ["3", "2"]  # A1, A2, A3 contested in this Amt; A1 and A2 changed
    assert "10 Haushalte" in section and "5 Haushalte" in section
    links = re.findall(r'href="([^"]+)"', section)
    assert links == ["../downloads/eligible/130000001.csv", "../downloads/objections.csv"]
    for link in links:  # they resolve from amt/<key>.html inside the report folder
        assert (tmp_path / "amt" / link).resolve().is_file()
    without = atlas_data(tables, sites, DEFAULT_RULES, {"groups": ["all"], "thresholds": [30, 100]})
    assert 'id="stellungnahmen"' not in render_area_page(without, "kreis", "13000", None)
