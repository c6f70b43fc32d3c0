"""Partitioned runs (Germany scale) give exactly the tables of a single-process run — in process and on
a real Dask LocalCluster with 2 worker processes on loopback."""

import shutil

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Point

from pipelines.cli import main
from tests.conftest import CRS, X0, Y0
from tests.world import write_world

ADDRESSES = gpd.GeoDataFrame({
    "address_id": ["A1", "A2", "A3", "A4", "A5"], "households": [3, 2, 5, 0, 4], "businesses": 0,
    "site_kind": ["", "", "", "school", ""], "site_name": ["", "", "", "Schule", ""],
}, geometry=[Point(X0 + 100, Y0 + 100), Point(X0 + 500, Y0 + 500), Point(X0 + 1500, Y0 + 500),
             Point(X0 + 1000, Y0 + 1500), Point(X0 + 990, Y0 + 990)], crs=CRS)
DSL = pd.DataFrame({"address_id": ["A1", "A2", "A3", "A5", "A9"], "provider": "K", "technology": "VDSL",
                    "down_mbps": [50.0, 100.0, 16.0, 250.0, 50.0], "up_mbps": [10.0, 40.0, 1.0, 40.0, 5.0],
                    "status": "current", "planned_date": ""})
PARTS = {"land=a": ["A1", "A2", "A9"], "land=b": ["A3", "A4", "A5"]}


def write_variant(root, partitioned: bool, parts=None):
    config = write_world(root)
    if partitioned:
        for part, ids in (PARTS if parts is None else parts).items():
            (root / "adr" / part).mkdir(parents=True)
            ADDRESSES[ADDRESSES["address_id"].isin(ids)].to_parquet(root / "adr" / part / "part-000.parquet")
            (root / "dsl" / part).mkdir(parents=True)
            DSL[DSL["address_id"].isin(ids)].to_parquet(root / "dsl" / part / "part-000.parquet")
    else:
        (root / "adr").mkdir()
        ADDRESSES.to_parquet(root / "adr" / "all.parquet")
        (root / "dsl").mkdir()
        DSL.to_parquet(root / "dsl" / "all.parquet")
    text = config.read_text(encoding="utf-8").replace('path = "addresses.csv"', 'path = "adr"')
    text = text.replace('path = "dsl.csv"\nformat = "address-csv"', 'path = "dsl"\nformat = "address-table"')
    # The fibre CSV is located by coordinates: not splittable by partition, so both variants leave it out.
    text = text.replace('[[providers]]\npath = "fibre.csv"\nformat = "address-csv"\ncrs = "EPSG:25833"\n', "")
    config.write_text(text, encoding="utf-8")
    return config


def tables(root):
    out = {}
    for level in ("gemeinde", "amt", "kreis", "land"):
        frame = pd.read_csv(root / "out" / "latest" / "tables" / f"coverage_{level}.csv", dtype=str)
        out[level] = frame
    return out


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    assert main(["run", "--config", str(write_variant(root, False)), "--no-report"]) == 0
    return root


@pytest.mark.parametrize("extra", [[], ["--workers", "2"]], ids=["in-process", "dask-localcluster-2-workers"])
def test_partitioned_run_equals_single_process_run(single, tmp_path, extra):
    config = write_variant(tmp_path, True)
    assert main(["run", "--config", str(config), "--no-report", *extra]) == 0
    for level, expected in tables(single).items():
        pd.testing.assert_frame_equal(tables(tmp_path)[level], expected, check_like=False)
    run = tmp_path / "out" / "latest"
    addresses = pd.read_parquet(run / "addresses.parquet")  # a folder of part files, read as one
    assert sorted(addresses["address_id"]) == ["A1", "A2", "A3", "A4", "A5"]
    unmatched = pd.read_csv(run / "unmatched_provider_records.csv")
    assert unmatched[["value", "reason"]].values.tolist() == [["A9", "unknown_address"]]
    # the per-Amt eligible lists too (a partitioned run writes them partition by partition where every Amt
    # lies in one partition, else from all rows at once)
    lists = sorted(p.name for p in (single / "out" / "latest" / "eligible").glob("*.csv"))
    assert lists and lists == sorted(p.name for p in (run / "eligible").glob("*.csv"))
    for name in lists:
        assert (run / "eligible" / name).read_bytes() == (single / "out" / "latest" / "eligible" / name).read_bytes()
    grid_single = gpd.read_file(single / "out" / "latest" / "grid" / "grid_100m.gpkg")
    grid_parts = gpd.read_file(run / "grid" / "grid_100m.gpkg")
    assert grid_parts["households"].sum() == grid_single["households"].sum() == 14


def test_eligible_lists_partition_by_partition_equal_the_single_process_lists(single, tmp_path, monkeypatch):
    """Partitions that split no Amt (as Länder): the lists are written one partition at a time, the same bytes."""
    import pipelines.funding_outputs as funding

    located = pd.read_parquet(single / "out" / "latest" / "addresses.parquet")
    by_amt = {f"land={i}": list(g["address_id"]) for i, (_, g) in enumerate(located.groupby("vwg_ars"))}
    by_amt[next(iter(by_amt))].append("A9")  # the record without an address stays in some partition
    assert len(by_amt) >= 2
    calls = []
    real = funding._lists_per_partition
    monkeypatch.setattr(funding, "_lists_per_partition", lambda *a: calls.append(real(*a)) or calls[-1])
    assert main(["run", "--config", str(write_variant(tmp_path, True, by_amt)), "--no-report"]) == 0
    assert calls and calls[0] is not None  # the per-partition path was taken
    _assert_same_lists(single / "out" / "latest" / "eligible", tmp_path / "out" / "latest" / "eligible")


def test_eligible_lists_of_a_large_partition_read_in_chunks_of_whole_amter(single, tmp_path, monkeypatch):
    """A partition with more addresses than LIST_CHUNK_ADDRESSES is read a few Ämter at a time (here: one),
    each Amt whole, and gives the same lists as all rows at once."""
    import pipelines.funding_outputs as funding
    from coverage.config import load_config

    run = single / "out" / "latest"
    staged = tmp_path / "run"
    for name in ("addresses.parquet", "offers.parquet"):  # one partition "land=0" holding every Amt
        (staged / name).mkdir(parents=True)
        shutil.copy(run / name, staged / name / "land=0-000.parquet")
    reads = []
    write = funding.write_amt_lists
    monkeypatch.setattr(funding, "write_amt_lists",
                        lambda d, a, *r: reads.append(sorted(a["vwg_ars"])) or write(d, a, *r))
    monkeypatch.setattr(funding, "LIST_CHUNK_ADDRESSES", 1)
    tables = {level: pd.read_csv(run / "tables" / f"coverage_{level}.csv", dtype=str) for level in ("gemeinde",)}
    written = funding._lists_per_partition(load_config(single / "run.toml"), tables, staged)
    amts = sorted(pd.read_parquet(run / "addresses.parquet")["vwg_ars"].unique())
    assert len(amts) >= 2 and [r[0] for r in sorted(reads)] == amts  # one read per Amt
    assert all(len(set(r)) == 1 for r in reads)  # never two Ämter in one read
    assert written == sorted(f"eligible/{a}.csv" for a in amts)
    _assert_same_lists(run / "eligible", staged / "eligible")


def _assert_same_lists(expected, got):
    lists = sorted(p.name for p in expected.glob("*.csv"))
    assert lists and sorted(p.name for p in got.glob("*.csv")) == lists
    for name in lists:
        assert (got / name).read_bytes() == (expected / name).read_bytes(), name


def test_provider_table_not_partitioned_like_the_addresses_is_a_clear_error(tmp_path, capsys):
    config = write_variant(tmp_path, True)
    (tmp_path / "dsl2").mkdir()
    DSL.to_parquet(tmp_path / "dsl2" / "all.parquet")
    (tmp_path / "dsl2" / "sub").mkdir()
    DSL.to_parquet(tmp_path / "dsl2" / "sub" / "x.parquet")
    config.write_text(config.read_text(encoding="utf-8").replace('path = "dsl"', 'path = "dsl2"'), encoding="utf-8")
    assert main(["run", "--config", str(config), "--no-report"]) == 2
    assert "is not partitioned like the addresses" in capsys.readouterr().err


def test_no_record_and_no_address_vanishes_between_partitions(tmp_path):
    """A provider partition without an address partition is read and its rows quarantined as unknown_address;
    an address id that an earlier partition already holds is a duplicate_address_id, counted once."""
    config = write_variant(tmp_path, True)
    (tmp_path / "dsl" / "land=c").mkdir()
    DSL.assign(address_id=["A7", "A8", "A1", "A2", "A3"]).to_parquet(tmp_path / "dsl" / "land=c" / "part-000.parquet")
    again = ADDRESSES[ADDRESSES["address_id"] == "A1"]
    again.to_parquet(tmp_path / "adr" / "land=b" / "part-001.parquet")  # A1 again, in the later partition
    assert main(["run", "--config", str(config), "--no-report"]) == 0
    run = tmp_path / "out" / "latest"
    unmatched = pd.read_csv(run / "unmatched_provider_records.csv")
    orphans = unmatched[unmatched["detail"].str.contains("no address partition land=c")]
    assert sorted(orphans["value"]) == ["A1", "A2", "A3", "A7", "A8"]
    assert set(orphans["reason"]) == {"unknown_address"}
    quarantine = pd.concat([pd.read_csv(f) for f in (run / "quarantine").glob("*.csv")])
    dup = quarantine[quarantine["reason"] == "duplicate_address_id"]
    assert dup["value"].tolist() == ["A1"] and "earlier partition" in dup["detail"].iloc[0]
    land = pd.read_csv(run / "tables" / "coverage_land.csv")
    assert land["addresses"].sum() == 5 and land["households"].sum() == 14  # A1 counted once


def test_a_flat_provider_folder_beside_partitioned_addresses_is_an_error_not_ignored(tmp_path, capsys):
    config = write_variant(tmp_path, True)
    (tmp_path / "dsl3").mkdir()
    DSL.to_parquet(tmp_path / "dsl3" / "all.parquet")  # every record in one file: no partition would read it
    config.write_text(config.read_text(encoding="utf-8").replace('path = "dsl"', 'path = "dsl3"'), encoding="utf-8")
    assert main(["run", "--config", str(config), "--no-report"]) == 2
    assert "is not partitioned like the addresses" in capsys.readouterr().err


def _run_files(run):
    """Every table and per-address part file of a run, by path, as bytes."""
    files = [*(run / "tables").rglob("*"), *(run / "addresses.parquet").glob("*"), *(run / "offers.parquet").glob("*")]
    return {str(f.relative_to(run)): f.read_bytes() for f in sorted(files) if f.is_file()}


def test_partitions_on_two_worker_processes_equal_partitions_one_after_another(tmp_path, monkeypatch):
    """The default pool of worker processes (largest partition first, part files written by the workers)
    writes the same tables and the same part files, byte for byte, as the partitions run in this process."""
    import pipelines.partitioned as partitioned

    pools = []
    real = partitioned._in_pool
    monkeypatch.setattr(partitioned, "_in_pool", lambda *a: pools.append(a[-1]) or real(*a))
    runs = {}
    for processes in (1, 2):
        monkeypatch.setattr(partitioned, "PARTITION_WORKERS", processes)
        root = tmp_path / f"p{processes}"
        root.mkdir()
        assert main(["run", "--config", str(write_variant(root, True)), "--no-report"]) == 0
        runs[processes] = root / "out" / "latest"
    assert pools == [2]  # the second run went through the pool, the first did not
    sequential, pooled = _run_files(runs[1]), _run_files(runs[2])
    assert any(name.startswith("addresses.parquet/land=b") for name in pooled)
    assert any(name.startswith("tables/") for name in pooled)
    assert pooled.keys() == sequential.keys()
    for name, data in sequential.items():
        assert pooled[name] == data, name
    quarantine = [pd.read_csv(run / "unmatched_provider_records.csv") for run in runs.values()]
    pd.testing.assert_frame_equal(quarantine[0], quarantine[1])


def test_partitions_side_by_side_stay_within_the_address_budget(monkeypatch):
    """The scheduler starts the largest pending partition that fits beside the running ones; one larger
    than the budget runs alone rather than never."""
    from pathlib import Path

    import pipelines.partitioned as partitioned

    monkeypatch.setattr(partitioned, "ADDRESSES_AT_ONCE", 10)
    parts = [partitioned.Partition(name, Path(name), {}, rows, rows) for name, rows in
             (("big", 12), ("a", 7), ("b", 4), ("c", 3), ("d", 1))]
    pick = partitioned._next_partition
    assert pick(parts, []).name == "big"  # alone, although above the budget
    assert pick(parts[1:], [parts[0]]) is None  # nothing beside it
    assert pick(parts[2:], [parts[1]]).name == "c"  # 7 + 4 > 10, 7 + 3 fits
    assert pick([parts[4]], [parts[1], parts[3]]) is None  # 7 + 3 + 1 > 10
    assert pick([], []) is None
