"""Scheduled reruns: skip what did not change, rerun what did, report the change, survive kill -9, one at a time."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from coverage.config import load_config
from pipelines import fingerprint
from pipelines.cli import main
from pipelines.lock import run_lock
from tests.world import write_world


@pytest.fixture
def world(tmp_path):
    config = write_world(tmp_path)
    text = config.read_text(encoding="utf-8").replace('path = "dsl.csv"', 'path = "deliveries/dsl*.csv"')
    config.write_text(text, encoding="utf-8")
    (tmp_path / "deliveries").mkdir()
    (tmp_path / "dsl.csv").rename(tmp_path / "deliveries" / "dsl_kuestennetz.csv")
    return tmp_path


def run(world, *extra):
    return main(["run", "--config", str(world / "run.toml"), "--no-report", *extra])


def manifest(world):
    return json.loads((world / "out" / "latest" / "manifest.json").read_text(encoding="utf-8"))


def statuses(world):
    return {name: s["status"] for name, s in manifest(world)["stages"].items() if name != "report"}


def test_second_run_on_unchanged_inputs_does_nothing(world, capsys):
    assert run(world) == 0
    first = (world / "out" / "latest").resolve()
    assert run(world) == 3
    assert "nothing changed since" in capsys.readouterr().out
    assert (world / "out" / "latest").resolve() == first
    assert len(list((world / "out" / "runs").iterdir())) == 1


def test_a_run_leaves_no_pickles_and_its_catalog_points_into_its_own_outputs(world):
    assert run(world) == 0
    run_dir = (world / "out" / "latest").resolve()
    assert not [p for p in run_dir.rglob("*") if p.suffix in (".pkl", ".pickle")]
    stages = manifest(world)["stages"]
    assert stages["addresses"]["outputs"]["addresses"]["file"] == "addresses.parquet"
    rows = stages["provider dsl_kuestennetz.csv"]["outputs"]["offers"]["dsl_kuestennetz.csv"]["rows"]
    offers = pd.read_parquet(run_dir / "offers.parquet").iloc[rows[0]:rows[1]]
    assert set(offers["source"]) == {"dsl_kuestennetz.csv"} and len(offers) == 3  # A1, A2, A3
    assert [f for f, _ in stages["addresses"]["quarantine"]] == ["quarantine/addresses.csv"]


REPO = fingerprint.PROJECT_ROOT


@pytest.fixture
def code_copy(tmp_path, monkeypatch):
    """The project's code in a temporary copy that the fingerprints read (the running code stays as it is)."""
    copy = tmp_path / "code"
    for package in fingerprint.PROJECT_PACKAGES:
        shutil.copytree(REPO / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "PROJECT_ROOT", copy)
    return copy


def test_editing_a_helper_module_reruns_every_stage_that_uses_it(world, code_copy):
    """coverage/columns.py is used by every reading stage, though no stage names it: an upgrade that
    changes it must never answer "nothing changed"."""
    assert run(world) == 0
    with (code_copy / "coverage" / "columns.py").open("a", encoding="utf-8") as fh:
        fh.write("\n# an upgrade\n")
    assert run(world) == 0
    assert set(statuses(world).values()) == {"ran"}


def test_editing_a_module_only_the_counts_use_reruns_only_from_there(world, code_copy):
    assert run(world) == 0
    with (code_copy / "coverage" / "grid.py").open("a", encoding="utf-8") as fh:
        fh.write("\n# grid tweak\n")
    assert run(world) == 0
    s = statuses(world)
    assert (s["addresses"], s["service"], s["provider dsl_kuestennetz.csv"]) == ("reused", "reused", "reused")
    assert (s["counts"], s["aggregate"]) == ("ran", "ran")


def test_changed_provider_file_reruns_only_what_depends_on_it_and_reports_the_change(world):
    assert run(world) == 0
    first = manifest(world)["run_id"]
    dsl = world / "deliveries" / "dsl_kuestennetz.csv"
    # Plant one difference: A3's DSL goes from 16 Mbit/s (ADSL2+) to 100 Mbit/s (SVDSL).
    dsl.write_bytes(dsl.read_bytes().replace(b"A3;K\xfcstennetz (fiktiv);ADSL2+;16.000 kbit/s;1",
                                             b"A3;K\xfcstennetz (fiktiv);SVDSL;100;40"))
    assert run(world) == 0
    # boundaries, counts and aggregate always run: recomputing them is as cheap as reading them back
    assert statuses(world) == {
        "boundaries": "ran", "addresses": "reused", "provider dsl_kuestennetz.csv": "ran",
        "provider fibre.csv": "reused", "provider cable.gpkg": "reused", "provider mobile.tif": "reused",
        "service": "ran", "counts": "ran", "aggregate": "ran"}
    changes = world / "out" / "latest" / "changes"
    assert manifest(world)["previous_run"] == first
    moved = pd.read_csv(changes / "address_changes.csv", dtype={"crossed": str})
    assert moved[["address_id", "group", "direction", "crossed", "down_a", "down_b", "tech_b"]].values.tolist() == [
        ["A3", "dsl", "gained", "30;100", 16.0, 100.0, "dsl"]]
    gem = pd.read_csv(changes / "changes_gemeinde.csv", dtype={"ags": str})
    changed = gem[gem["hh_ge_delta"] != 0]
    assert changed[["ags", "group", "threshold_mbps", "hh_ge_delta", "delta_pp"]].values.tolist() == [
        ["13000002", "dsl", 30, 5.0, 100.0], ["13000002", "dsl", 100, 5.0, 100.0]]
    assert changed["noteworthy"].all() and gem.loc[gem["hh_ge_delta"] == 0, "delta_pp"].fillna(0).eq(0).all()
    assert pd.read_csv(changes / "address_list_changes.csv").empty
    providers = pd.read_csv(changes / "provider_changes.csv")
    assert set(providers["change"]) == {"unchanged"}


def test_new_file_in_the_delivery_folder_is_picked_up(world):
    assert run(world) == 0
    (world / "deliveries" / "dsl_reseller.csv").write_bytes(
        "address_id;provider;technology;down_mbps;up_mbps\nA4;Wiederverkauf (fiktiv);VDSL;50;10\n".encode("cp1252"))
    assert len(load_config(world / "run.toml").providers) == 5
    assert run(world) == 0
    s = statuses(world)
    assert s["provider dsl_reseller.csv"] == "ran" and s["provider dsl_kuestennetz.csv"] == "reused"
    providers = pd.read_csv(world / "out" / "latest" / "changes" / "provider_changes.csv")
    assert providers.loc[providers["change"] == "appeared", ["provider", "technology"]].values.tolist() == [
        ["Wiederverkauf (fiktiv)", "dsl"]]
    funding = pd.read_csv(world / "out" / "latest" / "changes" / "funding_changes.csv")
    assert set(funding["address_id"]) == {"A4"} and "white" in set(funding["rule"])


def test_force_and_from_override_the_fingerprints(world, capsys):
    assert run(world) == 0
    assert run(world, "--from", "service") == 0
    s = statuses(world)
    assert (s["service"], s["aggregate"], s["addresses"]) == ("ran", "ran", "reused")
    assert run(world, "--force") == 0
    assert set(statuses(world).values()) == {"ran"}
    assert run(world, "--from", "nonsense") == 2
    assert "no such stage" in capsys.readouterr().err


def test_a_second_run_waits_or_exits_cleanly_while_one_holds_the_lock(world, capsys):
    with run_lock(world / "out"):
        started = time.monotonic()
        assert run(world, "--wait", "0.5") == 4
        assert time.monotonic() - started >= 0.5
        err = capsys.readouterr().err
        assert "another bbcov run is in progress" in err and "Traceback" not in err
    assert run(world) == 0  # lock released: runs normally


def test_kill_9_during_a_run_leaves_the_previous_run_intact_and_the_next_run_completes(world):
    assert run(world) == 0
    before = (world / "out" / "latest").resolve()
    before_manifest = manifest(world)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--config", str(world / "run.toml"),
                             "--force"], cwd=world, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    runs = world / "out" / "runs"
    while not list(runs.glob(".*.partial")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    time.sleep(0.3)  # well inside the run: stages are executing
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (world / "out" / "latest").resolve() == before
    assert manifest(world) == before_manifest  # previous outputs untouched
    assert list(runs.glob(".*.partial"))  # the killed run's leftovers are there …
    assert run(world, "--force") == 0  # … and the next run completes and removes them
    assert not list(runs.glob(".*.partial"))
    assert (world / "out" / "latest").resolve() != before


def _descendants(pid: int) -> set[int]:
    """Processes descending from ``pid`` (children, their children …; from /proc)."""
    parent_of = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent_of[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    grew = True
    while grew:
        new = {p for p, parent in parent_of.items() if (parent == pid or parent in found) and p not in found}
        found |= new
        grew = bool(new)
    return found


def test_kill_9_during_the_report_leaves_no_worker_process_behind(world):
    """The atlas draws its maps in worker processes (forked by a fork server): killed with the run, neither
    they nor the fork server may live on."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--config", str(world / "run.toml")],
                            cwd=world, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    workers: set[int] = set()
    while len(workers) < 3 and time.monotonic() < deadline and proc.poll() is None:  # fork server + 2 workers
        workers |= _descendants(proc.pid)
        time.sleep(0.02)
    assert proc.poll() is None and workers, "no worker process was seen before the run ended"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.1)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()
             and "zombie" not in Path(f"/proc/{w}/status").read_text(errors="replace")]
    assert alive == [], f"worker processes outlived the killed run: {alive}"


def test_a_replaced_input_during_the_run_stops_it(world, monkeypatch, capsys):
    """The manifest's SHA-256 must name the bytes the results came from: a file that changed after it was
    hashed stops the run (exit 2), nothing is published."""
    from pipelines import runner

    real = runner._write

    def write_then_touch(record, staging, *hooks):
        out = real(record, staging, *hooks)
        dsl = world / "deliveries" / "dsl_kuestennetz.csv"
        dsl.write_bytes(dsl.read_bytes() + b"A4;K\xfcstennetz (fiktiv);VDSL;50;10\n")
        return out

    monkeypatch.setattr(runner, "_write", write_then_touch)
    assert run(world) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("bbcov: error: ")
    assert "dsl_kuestennetz.csv: changed while the run was reading it" in err.strip().splitlines()[-1]
    assert not (world / "out" / "latest").exists()


def test_manifest_sha256_is_what_sha256sum_prints(world):
    import hashlib

    assert run(world) == 0
    inputs = {Path(i["path"]).name: i for i in manifest(world)["inputs"]}
    dsl = world / "deliveries" / "dsl_kuestennetz.csv"
    assert inputs["dsl_kuestennetz.csv"]["sha256"] == hashlib.sha256(dsl.read_bytes()).hexdigest()
    config = world / "run.toml"
    assert manifest(world)["config_sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()


def test_a_changed_change_tolerance_is_not_nothing_changed(world):
    assert run(world) == 0
    cfg = world / "run.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("[analysis]", "[analysis]\nchange_tolerance_pp = 2.0", 1),
                   encoding="utf-8")
    assert run(world) == 0


def test_moving_an_input_to_another_folder_does_not_invalidate_the_results(world):
    """Content and file name count (names appear in quarantine files and accounting), the folder does not."""
    assert run(world) == 0
    (world / "inbox").mkdir()
    (world / "addresses.csv").rename(world / "inbox" / "addresses.csv")
    cfg = world / "run.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace('path = "addresses.csv"', 'path = "inbox/addresses.csv"'),
                   encoding="utf-8")
    assert run(world) == 3


def test_the_report_gets_a_changes_page_with_the_planted_difference(world):
    assert main(["run", "--config", str(world / "run.toml")]) == 0
    dsl = world / "deliveries" / "dsl_kuestennetz.csv"
    dsl.write_bytes(dsl.read_bytes().replace(b"A1;K\xfcstennetz (fiktiv);VDSL2-Vectoring;50,0;10,0\n", b""))
    cable = world / "cable.gpkg"
    cable.unlink()  # G2 loses its 250 Mbit/s cable: A3 drops below 100 in 'all' (it now reaches A1 only:
    # a delivery that reaches no address at all would stop the run)
    import geopandas as gpd
    from shapely.geometry import box

    from tests.conftest import CRS, X0, Y0
    gpd.GeoDataFrame({"down_mbps": [250.0], "up_mbps": [25.0]}, geometry=[box(X0 + 50, Y0 + 50, X0 + 150, Y0 + 150)],
                     crs=CRS).to_file(cable, layer="coverage")
    assert main(["run", "--config", str(world / "run.toml")]) == 0
    page = (world / "reports" / "latest" / "changes.html").read_text(encoding="utf-8")
    index = (world / "reports" / "latest" / "index.html").read_text(encoding="utf-8")
    assert 'href="changes.html"' in index
    assert "Veränderungen" in page and "Zwei" in page and "−100,0 pp" in page
    assert 'href="gemeinde/13000002.html"' in page


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 300 kB tmpfs (root only; where mounting is impossible the test says so and is skipped, CI runs as root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _with_output(world, folder):
    cfg = world / "run.toml"
    text = cfg.read_text(encoding="utf-8")
    text = text.replace('dir = "out"', f'dir = "{folder}/out"').replace('reports_dir = "reports"',
                                                                     f'reports_dir = "{folder}/reports"')
    cfg.write_text(text, encoding="utf-8")


def test_a_full_disk_is_one_line_and_exit_2(world, small_tmpfs, capsys):
    _with_output(world, small_tmpfs)
    assert main(["run", "--config", str(world / "run.toml")]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert last.startswith("bbcov: error: ") and "No space left on device" in last and str(small_tmpfs) in last
    assert not (small_tmpfs / "out" / "latest").exists()


def test_a_read_only_output_folder_is_one_line_and_exit_2(world, small_tmpfs, capsys):
    (small_tmpfs / "out").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    _with_output(world, small_tmpfs)
    assert main(["run", "--config", str(world / "run.toml")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Read-only file system" in err.strip().splitlines()[-1]


def test_a_planted_lock_symlink_is_refused_and_its_target_untouched(world, capsys):
    victim = world / "precious.txt"
    victim.write_text("keep me", encoding="utf-8")
    (world / "out").mkdir()
    (world / "out" / ".bbcov.lock").symlink_to(victim)
    assert run(world) == 2
    assert "cannot open the lock file" in capsys.readouterr().err.strip().splitlines()[-1]
    assert victim.read_text(encoding="utf-8") == "keep me"


def test_two_deliveries_with_one_stem_keep_their_own_quarantine_file(world):
    """telekom.csv and telekom.txt: neither quarantine file may overwrite the other."""
    deliveries = world / "deliveries"
    (deliveries / "dsl_kuestennetz.txt").write_bytes(
        "address_id;provider;technology;down_mbps;up_mbps\nA4;Zweitnetz (fiktiv);VDSL;50;10\n"
        "A9;Zweitnetz (fiktiv);VDSL;50;10\n".encode("cp1252"))
    cfg = world / "run.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace('path = "deliveries/dsl*.csv"', 'path = "deliveries/dsl*"'),
                   encoding="utf-8")
    assert run(world) == 0
    files = sorted(p.name for p in (world / "out" / "latest" / "quarantine").glob("dsl_kuestennetz*.csv"))
    assert files == ["dsl_kuestennetz.csv", "dsl_kuestennetz_2.csv"]
    sources = {pd.read_csv(world / "out" / "latest" / "quarantine" / f)["source"].iloc[0] for f in files}
    assert sources == {"dsl_kuestennetz.csv", "dsl_kuestennetz.txt"}


def test_a_stage_fingerprint_covers_its_code_not_the_features_around_the_run(world):
    """Editing the atlas, the publication or the cost estimate must not rerun the reading stages:
    coverage/config.py (in every closure) keeps its sections' code apart (coverage/sections.py)."""
    from datetime import date

    from pipelines.stages import plan

    stages = {s.name: s for s in plan(load_config(world / "run.toml"), date(2022, 1, 1))}
    for name in ("addresses", "provider dsl_kuestennetz.csv", "service"):
        _, modules = fingerprint.code_closure(stages[name].fn)
        closure = fingerprint.import_closure(modules, fingerprint.PROJECT_ROOT)
        assert "coverage.config" in closure  # config's own code counts: it builds the parameters
        foreign = [m for m in closure if m.startswith(("coverage.report", "coverage.disclosure", "coverage.costs",
                                                         "coverage.eligible", "pipelines.report"))]
        assert foreign == [], (name, foreign)


def test_a_run_sharing_only_the_reports_folder_waits_for_the_other(world, capsys):
    """Another configuration writing to the same reports folder holds its lock: this run must not start
    (it would remove that run's partial report as leftovers)."""
    with run_lock(world / "reports"):
        assert run(world) == 4
        assert "another bbcov run is in progress" in capsys.readouterr().err
    assert run(world) == 0


def test_changed_disclosure_rules_rerun_the_public_atlas(world):
    cfg = world / "run.toml"
    public = ('[report]\nprofile = "public"\n[publish]\nurl = "https://example.org/bb"\nmin_addresses = 5\n'
              '[publish.contact]\norganisation = "Test"\nemail = "t@example.org"\n')
    cfg.write_text(cfg.read_text(encoding="utf-8") + public, encoding="utf-8")
    assert run(world) == 0
    assert run(world) == 3
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("min_addresses = 5", "min_addresses = 2"),
                   encoding="utf-8")
    assert run(world) == 0  # the public atlas shows the published figures: new rules, new atlas
