"""The whole `bbcov run` on the hand-built three-Gemeinden world, from real file formats.

Every number asserted below can be checked by hand from the files written here.
"""

import json
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio

from pipelines.cli import main
from tests.world import write_world


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    config = write_world(root)
    assert main(["run", "--config", str(config), "--no-report"]) == 0
    return root / "out" / "latest"


def table(run_dir, level):
    return pd.read_csv(run_dir / "tables" / f"coverage_{level}.csv", dtype={"ags": str, "vwg_ars": str,
                                                                            "krs_ags": str, "land": str})


def test_gemeinde_figures_by_hand(run_dir):
    g = table(run_dir, "gemeinde").set_index("ags")
    # G1: A1 (3 hh: FTTH 1000, DSL 50, LTE 40) and A2 (2 hh: SVDSL 100, LTE 40).
    assert g.loc["13000001", ["households", "addresses", "hh_ge_1000_all", "hh_ge_100_all"]].tolist() == [5, 2, 3, 5]
    assert g.loc["13000001", "share_ge_1000_fibre"] == pytest.approx(60)
    assert g.loc["13000001", "hh_ge_30_mobile"] == 5 and g.loc["13000001", "hh_ge_100_mobile"] == 0
    # G2: A3 (5 hh): ADSL 16 Mbit/s, cable polygon 250; fibre only planned (in horizon).
    g2 = g.loc["13000002"]
    assert g2[["hh_ge_16_dsl", "hh_ge_30_dsl", "hh_ge_100_hfc", "hh_ge_1000_all"]].tolist() == [5, 0, 5, 0]
    assert g.loc["13000002", "plan_hh_ge_1000_fibre"] == 5
    # G3: the school only.
    assert g.loc["13000003", ["households", "addresses", "sites"]].tolist() == [0, 1, 1]
    assert np.isnan(g.loc["13000003", "share_ge_2_all"])


def test_levels_add_up(run_dir):
    land = table(run_dir, "land").iloc[0]
    assert (land["households"], land["addresses"], land["hh_ge_100_all"]) == (10, 4, 10)
    assert table(run_dir, "amt")["households"].sum() == table(run_dir, "kreis")["households"].sum() == 10


def test_every_bad_row_is_quarantined_with_its_reason(run_dir):
    files = sorted(p.name for p in (run_dir / "quarantine").glob("*.csv"))
    assert files == ["addresses.csv", "dsl.csv"]
    addr = pd.read_csv(run_dir / "quarantine" / "addresses.csv")
    assert sorted(zip(addr["row"], addr["reason"], strict=True)) == [
        (6, "bad_number"), (7, "outside_municipalities"), (8, "duplicate_address_id")]
    dsl = pd.read_csv(run_dir / "quarantine" / "dsl.csv")
    assert sorted(zip(dsl["row"], dsl["reason"], dsl["value"], strict=True)) == [
        (5, "unknown_address", "A9"), (6, "unknown_technology", "Brieftaube")]


def test_manifest_accounts_for_every_row(run_dir):
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    acct = {a["stage"]: a for a in manifest["accounting"]}
    assert acct["read addresses.csv"] == {"stage": "read addresses.csv", "rows_in": 7, "rows_out": 5,
                                          "quarantined": {"bad_number": 1, "duplicate_address_id": 1},
                                          "balanced": True, "note": ""}
    assert (acct["locate"]["rows_in"], acct["locate"]["rows_out"]) == (5, 4)
    assert acct["provider dsl.csv"]["quarantined"] == {"unknown_address": 1, "unknown_technology": 1}
    assert all(a["balanced"] for a in manifest["accounting"])
    assert len(manifest["inputs"]) == 6 and all(len(i["sha256"]) == 64 for i in manifest["inputs"])


def test_addresses_parquet_keeps_every_located_address_with_explanation(run_dir):
    addresses = pd.read_parquet(run_dir / "addresses.parquet").set_index("address_id")
    assert sorted(addresses.index) == ["A1", "A2", "A3", "A4"]
    assert addresses.loc["A4", "best_tech_all"] == "none"
    assert addresses.loc["A1", ["best_down_all", "best_up_all", "best_tech_all"]].tolist() == [1000, 500, "ftth"]
    offers = pd.read_parquet(run_dir / "offers.parquet")
    assert set(offers["match_method"]) == {"address_id", "xy", "polygon", "raster"}
    fibre = offers[offers["source"] == "fibre.csv"].set_index("address_id")
    assert fibre.loc["A1", "match_distance_m"] == pytest.approx(0.0, abs=1e-6)


def test_user_mistake_is_one_line_and_exit_code_2(tmp_path, capsys):
    config = write_world(tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace('path = "dsl.csv"', 'path = "nope.csv"'),
                      encoding="utf-8")
    assert main(["run", "--config", str(config), "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bbcov: error: ") and "nope.csv: file not found" in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "out" / "latest").exists()  # a failed run publishes nothing


def test_explain_lists_offers_best_service_and_funding_reasons(run_dir, capsys):
    assert main(["explain", "A1", "--run", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "Angebote (3):" in out
    assert ("Glasfaser eG (fiktiv) | Glasfaser (FTTH) | 1000/500 Mbit/s | aktuell | fibre.csv | "
            "zugeordnet über Koordinaten 0,0 m") in out
    assert "Hansefunk (fiktiv) | Mobilfunk (LTE) | 40/? Mbit/s | aktuell | mobile.tif | zugeordnet über Raster" in out
    assert re.search(r"\n  alle Technologien +1000/500 Mbit/s Glasfaser \(FTTH\) \(Glasfaser eG \(fiktiv\)\)\n", out)
    assert ("Weißer Fleck (< 30 Mbit/s): nicht förderfähig — ausgeschlossen durch Glasfaser eG (fiktiv) "
            "Glasfaser (FTTH) 1000/500 Mbit/s; Küstennetz (fiktiv) DSL 50/10 Mbit/s\n") in out
    assert "Offers" not in out and "eligible" not in out and "matched" not in out
    # Only the fibre offer meets 300/150; DSL 50/10 is not named as a reason.
    assert ("Gigabit-Richtlinie 2024 (Änderung): nicht förderfähig — ausgeschlossen durch "
            "Glasfaser eG (fiktiv) Glasfaser (FTTH) 1000/500 Mbit/s\n") in out
    assert main(["explain", "A3", "--run", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "Gigabit-Richtlinie 2023: förderfähig" in out
    assert "Gigabit-Richtlinie 2023 (mit Planung): nicht förderfähig" in out
    assert main(["explain", "NOPE", "--run", str(run_dir)]) == 2
    assert "NOPE: no such address" in capsys.readouterr().err


def test_inspire_grid_outputs_match_the_addresses(run_dir):
    cells = gpd.read_file(run_dir / "grid" / "grid_100m.gpkg")
    assert cells["households"].sum() == 10 and cells["addresses"].sum() == 4
    assert cells["cell_id"].str.fullmatch(r"CRS3035RES100mN\d{7}E\d{7}").all()
    assert (cells["share_ge_100_all"].dropna() == 100).all()
    with rasterio.open(run_dir / "grid" / "grid_100m.tif") as src:
        assert src.crs.to_epsg() == 3035 and src.res == (100, 100)
        assert src.descriptions[0] == "households" and "share_ge_1000_fibre" in src.descriptions
        hh = src.read(1)
        assert np.nansum(hh) == 10 and np.isfinite(hh).sum() == len(cells)
        # The cell of A3 (5 households, DSL 16) reads 0 % for DSL >= 30 through the raster too.
        a3 = cells[cells["households"] == 5].iloc[0]
        row, col = src.index(a3["east"] + 50, a3["north"] + 50)
        assert src.read(src.descriptions.index("share_ge_30_dsl") + 1)[row, col] == 0


def test_validate_prints_a_summary_per_file_and_writes_nothing(tmp_path, capsys):
    config = write_world(tmp_path)
    assert main(["validate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert lines["addresses.csv"].split()[1:4] == ["7", "5", "2"]
    assert "bad_number 1, duplicate_address_id 1" in lines["addresses.csv"]
    assert lines["dsl.csv"].split()[1:4] == ["5", "3", "2"]
    assert "5 row(s) quarantined" in out
    assert not (tmp_path / "out").exists()


def test_outputs_are_readable_by_others(run_dir):
    import stat

    for name in ("manifest.json", "tables/coverage_land.csv", "addresses.parquet", "grid/grid_100m.tif"):
        assert (run_dir / name).stat().st_mode & stat.S_IROTH, name


def test_forgotten_addresses_and_unmatched_records_both_ways(run_dir):
    # Every address is reached at least by the cable polygon or the raster except A4 (the school in G3).
    forgotten = pd.read_csv(run_dir / "forgotten_addresses.csv")
    assert forgotten["address_id"].tolist() == ["A4"] and forgotten["gemeinde_name"].tolist() == ["Drei"]
    g = table(run_dir, "gemeinde").set_index("ags")
    assert g.loc["13000003", ["addr_no_offer", "hh_no_offer"]].tolist() == [1, 0]
    assert g.loc["13000001", "addr_no_offer"] == 0
    unmatched = pd.read_csv(run_dir / "unmatched_provider_records.csv")
    assert unmatched[["source", "row", "reason"]].values.tolist() == [["dsl.csv", 5, "unknown_address"]]


def test_explain_and_diff_find_the_runs_of_a_config(run_dir, tmp_path, monkeypatch, capsys):
    config = run_dir.parent.parent / "run.toml"
    monkeypatch.chdir(tmp_path)  # no ./data/processed here: only --config can find the runs
    assert main(["explain", "A1"]) == 2
    assert "latest: not a run folder" in capsys.readouterr().err
    assert main(["explain", "A1", "--config", str(config)]) == 0
    assert "Angebote (3):" in capsys.readouterr().out
    run_id = run_dir.resolve().name
    assert main(["diff", run_id, "latest", "--config", str(config), "--out", str(tmp_path / "d")]) == 0
    assert f"changes {run_id} -> {run_id}" in capsys.readouterr().out
    assert main(["compare-bba", "run-nope", "bba.csv", "--config", str(config)]) == 2
    assert f"run-nope: not a run folder (no manifest.json); give a path, or 'latest' or a run id under " \
           f"{config.parent / 'out' / 'runs'}" in capsys.readouterr().err
