"""Demo schools chosen to the Breitbandatlas Kreis table, and `compare-bba` with that table (.xls)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from demo.sites import choose_schools, fit_class_counts, school_names

KREIS_XLS = "breitbandatlas/2021_BBA_Kreisdaten.xls"


def test_fit_class_counts_meets_rounded_targets_when_classes_suffice():
    # 10 sites, ≥ t1: 70 %, ≥ t2: 30 % -> 3 in class 0, 4 in class 1, 3 in class 2
    out = fit_class_counts(np.array([20, 20, 20]), np.array([7.0, 3.0]), 10)
    assert out.tolist() == [3, 4, 3]


def test_fit_class_counts_respects_capacity_and_takes_the_nearest_class():
    # wanted [3, 4, 3] but class 1 has only 1 candidate: the 3 missing go where they cost least
    out = fit_class_counts(np.array([20, 1, 20]), np.array([7.0, 3.0]), 10)
    assert out.sum() == 10 and out[1] == 1 and (out <= [20, 1, 20]).all()
    ge = np.cumsum(out[::-1])[::-1][1:]
    # best possible: |ge1 − 7| + |ge2 − 3| with ge1 = 1 + ge2 -> 3 (e.g. ge2 = 3..6)
    assert np.abs(ge - [7, 3]).sum() == 3


def test_choose_schools_per_kreis_by_class_then_rank():
    krs = np.array(["13001"] * 6 + ["13002"] * 3)
    rank = np.array([5, 4, 3, 2, 1, 0, 0, 1, 2])
    down = np.array([10.0, 10.0, 100.0, 100.0, 1000.0, 1000.0, 50.0, 50.0, 50.0])
    curves = {"13001": (np.array([16.0, 1000.0]), np.array([50.0, 0.0]))}  # 2 schools: one < 16, one 16–1000
    keep, lift = choose_schools(krs, rank, down, {"13001": 2, "13002": 2}, curves)
    assert not lift.any()  # every class has candidates of its own
    # 13001: the lowest-rank candidate of class 0 (rank 4) and of class 1 (rank 2); 13002 has no curve: ranks 0, 1
    assert np.flatnonzero(keep).tolist() == [1, 3, 6, 7]


def test_choose_schools_lifts_candidates_into_a_class_none_reaches():
    """Half the schools should be in 16–1000 but every candidate is < 16 or >= 1000: the nearest lower
    candidate is kept and lifted (issue 19: Rostock's places rarely reach exactly 200–400)."""
    krs = np.array(["13001"] * 4)
    rank = np.array([0, 1, 2, 3])
    down = np.array([10.0, 10.0, 1000.0, 1000.0])
    curves = {"13001": (np.array([16.0, 1000.0]), np.array([50.0, 0.0]))}
    keep, lift = choose_schools(krs, rank, down, {"13001": 2}, curves)
    assert np.flatnonzero(keep).tolist() == [0, 1] and lift.tolist() == [0, 1, 0, 0]


def test_school_names_number_only_where_a_gemeinde_has_several():
    ags = pd.Series(["13000001", "13000002", "13000001"])
    names = school_names(ags, {"13000001": "Eins", "13000002": "Zwei"})
    assert names == ["Schule Eins 1", "Schule Zwei", "Schule Eins 2"]


def _kreis_run(tmp_path, shared_data, offset: float):
    """A run folder whose Kreis tables are the published Kreis shares of two MV Kreise + ``offset`` pp."""
    from coverage.sources.breitbandatlas import read_bba_kreis_table

    pub = read_bba_kreis_table(shared_data / KREIS_XLS)
    pub = pub[pub["key"].isin(["13003", "13004"])]
    schools = pub[(pub["kind"] == "schools") & (pub["threshold_mbps"] >= 16)]
    sites = schools.pivot_table(index="key", columns="threshold_mbps", values="share")
    sites.columns = [f"share_sites_ge_{t:g}" for t in sites.columns]
    sites = (sites + offset).reset_index().rename(columns={"key": "krs_ags"}).assign(site_kind="school", sites=[69, 32])
    other = sites.assign(site_kind="gemeinde_office", sites=1)  # other kinds are not compared
    hh = pub[(pub["kind"] == "households") & (pub["group"] == "dsl") & (pub["threshold_mbps"] == 50)]
    kreise = pd.DataFrame({"krs_ags": hh["key"].to_numpy(), "households": [1000, 500], "businesses": [0, 0],
                           "share_ge_50_dsl": hh["share"].to_numpy() - offset})
    run = tmp_path / "run"
    (run / "tables").mkdir(parents=True)
    (run / "manifest.json").write_text("{}", encoding="utf-8")
    kreise.to_csv(run / "tables" / "coverage_kreis.csv", index=False)
    pd.concat([sites, other]).to_csv(run / "tables" / "sites_kreis.csv", index=False)
    return run


def test_compare_bba_with_the_kreis_table_compares_schools_and_households(tmp_path, shared_data, capsys):
    from pipelines.cli import main

    run = _kreis_run(tmp_path, shared_data, 2.5)
    out = tmp_path / "cmp"
    assert main(["compare-bba", str(run), str(shared_data / KREIS_XLS), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Compared per Kreis" in text and "Schools per Kreis" in text
    summary = pd.read_csv(out / "bba_2021_BBA_Kreisdaten_summary.csv").set_index(["kind", "group", "threshold_mbps"])
    schools = summary.loc["schools"]
    assert sorted(schools.index.get_level_values("threshold_mbps")) == [16, 30, 50, 100, 200, 400, 1000]
    assert (schools["kreise"] == 2).all()
    assert schools["mean_abs_diff_pp"].to_numpy() == pytest.approx(2.5)
    assert summary.loc[("households", "dsl", 50.0), "mean_abs_diff_pp"] == pytest.approx(2.5)
    assert "businesses" not in summary.index.get_level_values("kind")  # the run has no business shares
    detail = pd.read_csv(out / "bba_2021_BBA_Kreisdaten_kreise.csv", dtype={"key": str})
    assert set(detail.loc[detail["kind"] == "schools", "weight"]) == {69, 32}


def test_compare_bba_with_an_unreadable_xls_is_a_one_line_error(tmp_path, shared_data, capsys):
    from pipelines.cli import main

    run = _kreis_run(tmp_path, shared_data, 0.0)
    bad = tmp_path / "kreise.xls"
    bad.write_text("krs;name\n13003;Rostock\n", encoding="utf-8")
    assert main(["compare-bba", str(run), str(bad)]) == 2
    err = capsys.readouterr()
    assert "kreise.xls" in err.err + err.out and "Traceback" not in err.err
