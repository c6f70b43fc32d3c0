"""Shared fixtures: a tiny hand-built world whose answers can be computed by hand,
and the location of the real open data in ../shared/data."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import matplotlib
import pandas as pd
import pytest
from shapely.geometry import Point, box

from coverage.model import Boundaries
from coverage.sources.bkg import boundaries_from_gemeinden

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
BKG = SHARED_DATA / "bkg-vg5000-2021"
CRS = "EPSG:25833"
X0, Y0 = 300_000.0, 5_900_000.0


@contextlib.contextmanager
def _run_wide(tmp_path_factory, name: str) -> Iterator[tuple[Path, bool]]:
    """(folder, done) of a result shared by every xdist worker of this test run, held under a lock:
    the first worker to get here builds it (``done`` False) and the others wait and reuse it.
    Without xdist the folder is this session's own."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    shared.mkdir(parents=True, exist_ok=True)
    with (shared / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield shared, (shared / ".done").exists()
            (shared / ".done").touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def mv_atlas(tmp_path_factory):
    """(report folder, run record, written paths) of the full MV atlas, rendered once per test run
    (shared by the xdist workers: test_atlas.py and test_print.py may run in different ones). Tests
    read it and never write into it."""
    from pipelines.report import render_report
    from tests.atlas_world import build_mv_record

    record = build_mv_record(tmp_path_factory.mktemp("mv-atlas-in"))  # cheap; the same in every worker
    with _run_wide(tmp_path_factory, "mv-atlas") as (shared, done):
        out = shared / "reports" / "run-test"
        if not done:
            out.mkdir(parents=True)
            written = render_report(record, out)
            (shared / "written.json").write_text(json.dumps(written), encoding="utf-8")
    return out, record, json.loads((shared / "written.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"the real open data is expected at {SHARED_DATA} (see README: Test data)")
    return SHARED_DATA


def tiny_boundaries() -> Boundaries:
    """Three square Gemeinden (1 km²): G1 and G2 side by side in Amt A, G3 above them in Amt B.

    ::

        +---------------+
        |      G3       |   y 1000..2000
        +-------+-------+
        |  G1   |  G2   |   y 0..1000
        +-------+-------+
        x 0    1000    2000   (offset by X0, Y0 in EPSG:25833)
    """
    gem = gpd.GeoDataFrame({
        "ags": ["13000001", "13000002", "13000003"],
        "name": ["Eins", "Zwei", "Drei"],
        "ars": ["130000001001", "130000001002", "130000002003"],
        "vwg_name": ["Amt A", "Amt A", "Drei"],
        "geometry": [box(X0, Y0, X0 + 1000, Y0 + 1000), box(X0 + 1000, Y0, X0 + 2000, Y0 + 1000),
                     box(X0, Y0 + 1000, X0 + 2000, Y0 + 2000)],
    }, crs=CRS)
    return boundaries_from_gemeinden(gem, CRS)


def pt(x: float, y: float) -> Point:
    return Point(X0 + x, Y0 + y)


def tiny_addresses() -> gpd.GeoDataFrame:
    """A1, A2 in G1; A3 in G2; A4 (a school, no households) in G3."""
    return gpd.GeoDataFrame({
        "address_id": ["A1", "A2", "A3", "A4"],
        "households": [3.0, 2.0, 5.0, 0.0],
        "businesses": [0.0, 1.0, 0.0, 0.0],
        "site_kind": ["", "", "", "school"],
        "site_name": ["", "", "", "Grundschule Drei"],
        "street": ["Hauptstraße", "Hauptstraße", "Dorfstraße", "Schulweg"],
        "house_number": ["1", "2a", "7", "1"],
        "postcode": ["17000", "17000", "17001", "17002"],
        "locality": ["Eins", "Eins", "Zwei", "Drei"],
        "source_row": [2, 3, 4, 5],
        "geometry": [pt(100, 100), pt(500, 500), pt(1500, 500), pt(1000, 1500)],
    }, crs=CRS)


def offers(rows: list[tuple]) -> pd.DataFrame:
    """Offers from (address_id, provider, technology, down, up[, status, planned_date]) tuples."""
    full = [(*r, "current", "")[:7] if len(r) == 5 else r for r in rows]
    frame = pd.DataFrame(full, columns=["address_id", "provider", "technology", "down_mbps", "up_mbps",
                                        "status", "planned_date"])
    frame["down_mbps"] = frame["down_mbps"].astype(float)
    frame["up_mbps"] = frame["up_mbps"].astype(float)
    frame["source"] = "test"
    frame["match_method"] = "address_id"
    return frame


#: The slowest test files (a full MV synth, end-to-end runs, the full MV atlas), run first: `make test` hands
#: whole files to two workers in collection order (pytest-xdist --dist loadfile), so the long ones start at
#: once and the short ones fill in, instead of one long file running alone at the end.
SLOW_FIRST = ("test_synth.py", "test_incremental.py", "test_e2e_mv_slice.py", "test_atlas.py",
              "test_synth_germany.py", "test_browser.py", "test_objections.py", "test_publish.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a file is kept
