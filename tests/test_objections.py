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
    keep = [c for c in base.columns if c != "contested" and "dsl" not in c and not c.startswith("n_prov_ge30")]
    pd.testing.assert_series_equal(base.loc["A1", keep], after.loc["A1", keep])
    assert after.loc["A1", "no_offer"] == base.loc["A1", "no_offer"]


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
    assert main(["explain", "A3", "--run", str(runs[1])]) == 0
    out = capsys.readouterr().out
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
