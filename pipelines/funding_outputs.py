"""Files for a funding application: eligible-address lists and the cost estimate (Schätzung).

- ``eligible/<vwg_ars>.csv`` per Amt, written by every run (:func:`write_amt_lists`): every address of
  the Amt with each rule's verdict and the offer that decided it (:mod:`coverage.eligible`).
- ``costs/costs_{gemeinde,amt,project}.csv``, ``costs/costs_isolated.csv``, ``costs/costs_tree.gpkg``
  (the trees and links of the Gemeinden and project areas as lines) when the configuration has a
  ``[costs]`` section (:mod:`coverage.costs`); without it, none.
- :func:`write_list` writes one list as XLSX (German headers), CSV or GeoPackage (points) for
  ``bbcov eligible``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import shapely

from coverage.columns import concat_frames
from coverage.config import RunConfig
from coverage.costs import ESTIMATE_NOTE, AreaWork, area_costs
from coverage.eligible import OFFER_FIELDS, area_mask, eligible_list, list_input_columns, list_labels
from coverage.errors import ConfigError, CoverageError, DataSourceError
from coverage.funding import FundingRule
from coverage.sources.objections import withdrawn
from pipelines import io
from pipelines.cache import ADDRESSES_FILE, OBJECTIONS_FILE, OFFERS_FILE
from pipelines.outputs import flat_addresses
from pipelines.stages import RunState

log = logging.getLogger(__name__)


def project_polygons(cfg: RunConfig) -> dict[str, Any]:
    """Project area name -> polygon in the working CRS, from every ``[[project_areas]]`` file."""
    out: dict[str, Any] = {}
    for i, spec in enumerate(cfg.project_areas):
        where = f"project_areas[{i}] ({spec.path.name})"
        try:
            frame = gpd.read_file(spec.path, layer=spec.layer, engine="pyogrio")
        except (OSError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise DataSourceError(f"{where}: cannot read the polygon file ({exc})") from exc
        if spec.name_column not in frame.columns:
            raise ConfigError(f"{where}: no column {spec.name_column!r} (columns: {list(frame.columns)}); set "
                              "name_column")
        if frame.crs is None:
            raise ConfigError(f"{where}: the file has no CRS")
        frame = frame.to_crs(cfg.analysis.working_crs)
        for name, part in frame.groupby(frame[spec.name_column].astype(str), sort=True):
            if name in out:
                raise ConfigError(f"{where}: project area {name!r} is defined twice")
            out[name] = shapely.union_all(shapely.make_valid(part.geometry.to_numpy()))
    return out


def write_list(path: Path, frame: pd.DataFrame, labels: Mapping[str, str], crs: Any, sheet: str) -> Path:
    """One list by the suffix of ``path``: .xlsx (German headers), .csv (plain) or .gpkg (points)."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        from pipelines.export import write_workbook

        return write_workbook(path, [(sheet, frame, labels)])
    if suffix == ".csv":
        return io.write_csv(path, frame)
    if suffix == ".gpkg":
        points = gpd.GeoDataFrame(io.neutralise_formulas(frame), geometry=gpd.points_from_xy(frame["x"], frame["y"]),
                                  crs=crs)
        with io.atomic_path(path) as tmp:
            tmp.unlink()
            points.to_file(tmp, layer="adressen", driver="GPKG", engine="pyogrio")
        return path
    raise CoverageError(f"{path}: --out must end in .xlsx, .csv or .gpkg")


def gemeinde_names(tables: Mapping[str, pd.DataFrame]) -> dict[str, str]:
    g = tables["gemeinde"]
    col = "display_name" if "display_name" in g else "name"
    return dict(zip(g["ags"].astype(str), g[col].astype(str), strict=True))


def write_amt_lists(run_dir: Path, addresses: pd.DataFrame, offers: pd.DataFrame, groups: Sequence[str],
                    rules: Sequence[FundingRule], names: Mapping[str, str]) -> list[str]:
    """``eligible/<vwg_ars>.csv``: every address of each Amt, in address order."""
    full = eligible_list(addresses, offers, groups, rules, names)
    parts = io.write_csv_parts(full, "vwg_ars", lambda amt: run_dir / "eligible" / f"{amt}.csv")
    return [f"eligible/{amt}.csv" for amt, _ in parts]


def write_costs(run_dir: Path, addresses: pd.DataFrame, cfg: RunConfig, tables: Mapping[str, pd.DataFrame],
                polygons: Mapping[str, Any]) -> list[str]:
    """The cost estimate per Gemeinde, Amt and project area, the trees as lines, the isolated addresses."""
    costs = cfg.costs
    assert costs is not None
    fund = addresses[costs.fund_column].to_numpy(dtype=bool)
    rows = pd.DataFrame({"address_id": addresses["address_id"].astype(str).to_numpy(),
                             "x": addresses["x"].to_numpy(), "y": addresses["y"].to_numpy(),
                             "households": addresses["households"].to_numpy(dtype="float64"),
                             "ags": addresses["ags"].astype(str).to_numpy(),
                             "vwg_ars": addresses["vwg_ars"].astype(str).to_numpy()})
    targets = network_points(cfg, addresses, fund)
    chosen = rows[fund]  # the eligible addresses: these are connected
    levels: dict[str, tuple[str, pd.DataFrame]] = {"gemeinde": ("ags", chosen), "amt": ("vwg_ars", chosen)}
    if polygons:
        parts = [chosen[area_mask(chosen, _project(name), polygons)].assign(project=name) for name in polygons]
        levels["project"] = ("project", pd.concat(parts, ignore_index=True))
    written, edges, isolated = [], [], []
    reuse: AreaWork = {}  # an Amt that is one Gemeinde has the same rows of `chosen`: its trees are built once
    for level, (key, frame) in levels.items():
        result = area_costs(frame, key, targets, costs, reuse if frame is chosen else None)
        table = result.table
        if level in tables:
            t = tables[level]
            names = dict(zip(t[key].astype(str), t["display_name" if "display_name" in t else "name"].astype(str),
                             strict=True))
            table.insert(1, "name", table[key].astype(str).map(names).fillna(""))
        table.insert(0, "rule", costs.fund_column.removeprefix("fund_"))
        io.write_csv(run_dir / "costs" / f"costs_{level}.csv", table)
        written.append(f"costs/costs_{level}.csv")
        if level != "amt":  # the Amt trees repeat the Gemeinde trees nearly (and double the file)
            edges.append(result.edges.rename(columns={key: "area"}).assign(level=level))
        isolated.append(result.isolated.rename(columns={key: "area"}).assign(level=level))
    iso = pd.concat(isolated, ignore_index=True)
    iso["note"] = ESTIMATE_NOTE
    io.write_csv(run_dir / "costs" / "costs_isolated.csv", iso)
    lines = pd.concat(edges, ignore_index=True)
    geometry = shapely.linestrings(np.stack([lines[["x0", "y0"]].to_numpy(dtype="float64"),
                                             lines[["x1", "y1"]].to_numpy(dtype="float64")], axis=1))
    gdf = gpd.GeoDataFrame(lines[["level", "area", "kind", "length_m"]].assign(note=ESTIMATE_NOTE),
                           geometry=geometry, crs=cfg.analysis.working_crs)
    with io.atomic_path(run_dir / "costs" / "costs_tree.gpkg") as tmp:
        tmp.unlink()
        gdf.to_file(tmp, layer="costs_tree", driver="GPKG", engine="pyogrio", use_arrow=True)
    log.info("costs (Schätzung, rule %s): %d eligible addresses, %.0f m at Gemeinde level, %d isolated",
             costs.fund_column, len(chosen), float(lines.loc[lines["level"] == "gemeinde", "length_m"].sum()),
             int((iso["level"] == "gemeinde").sum()) if len(iso) else 0)
    return [*written, "costs/costs_isolated.csv", "costs/costs_tree.gpkg"]


def _project(name: str) -> Any:
    from coverage.eligible import Area

    return Area("project", name, name)


def network_points(cfg: RunConfig, addresses: pd.DataFrame, fund: np.ndarray) -> np.ndarray:
    """The points trees are linked to: the ``network_points`` file, else addresses not eligible (served)."""
    assert cfg.costs is not None
    path = cfg.costs.network_points
    if path is None:
        return np.column_stack([addresses["x"].to_numpy()[~fund], addresses["y"].to_numpy()[~fund]])
    try:
        frame = gpd.read_file(path, engine="pyogrio")
    except (OSError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise DataSourceError(f"costs.network_points: cannot read {path} ({exc})") from exc
    if frame.crs is None:
        raise ConfigError(f"costs.network_points: {path.name} has no CRS")
    pts = frame.to_crs(cfg.analysis.working_crs).geometry
    pts = pts[~pts.is_empty & pts.notna()].representative_point()
    return np.column_stack([pts.x.to_numpy(), pts.y.to_numpy()])


class FundingJob(NamedTuple):
    """What a worker process needs to write a single run's lists or cost estimate (picklable): the run's
    addresses and offers it reads back from the run folder's addresses.parquet and offers.parquet."""

    cfg: RunConfig
    run_dir: Path
    tables: dict[str, pd.DataFrame]
    withdrawals: pd.DataFrame | None  # the accepted withdrawals of the run's objections (None: none)


def funding_job(cfg: RunConfig, state: RunState, run_dir: Path) -> FundingJob:
    """The job of a single (not partitioned) run whose addresses.parquet and offers.parquet are written."""
    assert state.tables is not None
    withdrawals = concat_frames(list(state.withdrawals.values())) if state.withdrawals else None
    return FundingJob(cfg, run_dir, dict(state.tables), withdrawals)


def run_lists(job: FundingJob) -> tuple[list[str], float]:
    """The Amt lists of :func:`write_run_funding`, from the run folder (in a worker process, while the
    run writes its other outputs and the atlas); returns the files written and the seconds taken."""
    t0 = time.perf_counter()
    columns = ["address_id", "addr", *OFFER_FIELDS, "status"]  # addr: each offer's address position
    if job.withdrawals is not None:
        columns.append("match_method")
    path = job.run_dir / ADDRESSES_FILE
    groups, rules = list(job.cfg.analysis.groups), job.cfg.funding_rules
    addresses = pd.read_parquet(path, columns=list_input_columns(pq.read_schema(path).names, groups, rules))
    offers = pd.read_parquet(job.run_dir / OFFERS_FILE, columns=columns)
    if job.withdrawals is not None:
        offers = without_withdrawn(offers, job.withdrawals, addresses["address_id"])
    written = write_amt_lists(job.run_dir, addresses, offers, groups, rules, gemeinde_names(job.tables))
    return written, time.perf_counter() - t0


def run_costs(job: FundingJob) -> tuple[list[str], float]:
    """The cost estimate of :func:`write_run_funding` (none without ``[costs]``), from the run folder."""
    t0 = time.perf_counter()
    if job.cfg.costs is None:
        return [], 0.0
    columns = ["address_id", "x", "y", "households", "ags", "vwg_ars", job.cfg.costs.fund_column]
    addresses = pd.read_parquet(job.run_dir / ADDRESSES_FILE, columns=columns)
    written = write_costs(job.run_dir, addresses, job.cfg, job.tables, project_polygons(job.cfg))
    return written, time.perf_counter() - t0


def write_run_funding(cfg: RunConfig, state: RunState, run_dir: Path, partitioned: bool) -> list[str]:
    """After the other outputs of a run: its addresses and offers from memory (a partitioned run's
    from the part files it wrote)."""
    assert state.tables is not None
    if partitioned and cfg.costs is None and (lists := _lists_per_partition(cfg, state.tables, run_dir)) is not None:
        return lists
    if partitioned or state.results is None:
        addresses = pd.read_parquet(run_dir / ADDRESSES_FILE)
        offers = pd.read_parquet(run_dir / OFFERS_FILE, columns=["address_id", *OFFER_FIELDS, "status"])
    else:
        addresses, offers = flat_addresses(state.results), state.all_offers()
        if state.withdrawals:
            offers = without_withdrawn(offers, concat_frames(list(state.withdrawals.values())),
                                       addresses["address_id"])
    return write_funding_outputs(cfg, addresses, offers, state.tables, run_dir)


#: Addresses of one partition read at a time for its Amt lists (whole Ämter, at least one): NRW's 4.6 M
#: addresses with their 16 M offers as pandas frames took the Germany demo's run to 9.3 GB RSS. Two worker
#: processes each hold one such chunk.
LIST_CHUNK_ADDRESSES = 500_000
#: Worker processes writing the lists of a partitioned run (one partition each at a time; the machine's 2 cores).
LIST_WORKERS = 2


def _lists_per_partition(cfg: RunConfig, tables: Mapping[str, pd.DataFrame], run_dir: Path) -> list[str] | None:
    """A partitioned run's Amt lists, one partition's part files at a time, and within a partition whole
    Ämter of at most :data:`LIST_CHUNK_ADDRESSES` addresses at a time (the Germany demo's 74 M offers read
    at once took more than 20 GB); several partitions at once in :data:`LIST_WORKERS` worker processes.
    Only where every Amt lies in one partition (Länder do), so each list is written once and whole, as
    from all rows; else None (the caller reads everything)."""
    import pyarrow.dataset as ds

    def parts(folder: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for f in sorted((run_dir / folder).glob("*.parquet")):
            out.setdefault(f.name.rsplit("-", 1)[0], []).append(str(f))
        return out

    addr_parts, offer_parts = parts(ADDRESSES_FILE), parts(OFFERS_FILE)
    owner: dict[str, str] = {}
    jobs: list[tuple[int, _ListJob]] = []
    names = gemeinde_names(tables)
    for stem, files in addr_parts.items():
        counts = ds.dataset(files, format="parquet").to_table(columns=["vwg_ars"]).column(0).value_counts()
        sizes = dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
        for amt in sizes:
            if owner.setdefault(str(amt), stem) != stem:
                log.info("eligible lists: Amt %s has addresses in partitions %s and %s; lists from all rows at once",
                         amt, owner[str(amt)], stem)
                return None
        job = _ListJob(run_dir, files, offer_parts.get(stem, []), _amt_chunks(sizes, LIST_CHUNK_ADDRESSES),
                       list(cfg.analysis.groups), list(cfg.funding_rules), names)
        jobs.append((sum(sizes.values()), job))
    ordered = [job for _, job in sorted(jobs, key=lambda j: -j[0])]  # largest first: the workers end together
    written: list[str] = []
    if len(ordered) < 2:
        for job in ordered:
            written += _partition_lists(job)
    else:
        from pipelines.processes import worker_pool

        with worker_pool(LIST_WORKERS) as pool:
            for lists in pool.map(_partition_lists, ordered):
                written += lists
    return sorted(written)


class _ListJob(NamedTuple):
    """One partition's part of :func:`_lists_per_partition` (picklable for a worker process)."""

    run_dir: Path
    files: list[str]
    offer_files: list[str]
    chunks: list[list[Any]]
    groups: list[str]
    rules: list[FundingRule]
    names: dict[str, str]


def _partition_lists(job: _ListJob) -> list[str]:
    """The Amt lists of one partition, chunk by chunk (Ämter whole)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    written: list[str] = []
    columns = ["address_id", *OFFER_FIELDS, "status"]
    for amts in job.chunks:
        rows = None if len(job.chunks) == 1 else pc.field("vwg_ars").isin(amts)
        table = ds.dataset(job.files, format="parquet").to_table(filter=rows)
        ids = table.column("address_id")
        offers = (ds.dataset(job.offer_files, format="parquet").to_table(
                      columns=columns, filter=None if rows is None else pc.field("address_id").isin(ids)
                  ).to_pandas() if job.offer_files else pd.DataFrame(columns=columns))
        addresses = table.to_pandas()
        del table, ids
        written += write_amt_lists(job.run_dir, addresses, offers, job.groups, job.rules, job.names)
        del addresses, offers
    return written


def _amt_chunks(sizes: Mapping[Any, int], limit: int) -> list[list[Any]]:
    """Ämter (in the order given) in consecutive groups of at most ``limit`` addresses (an Amt larger than
    that alone)."""
    out: list[list[Any]] = []
    total = limit + 1
    for amt, n in sizes.items():
        if total + n > limit:
            out.append([])
            total = 0
        out[-1].append(amt)
        total += n
    return out


def without_withdrawn(offers: pd.DataFrame, withdrawals: pd.DataFrame, address_ids: pd.Series) -> pd.DataFrame:
    """The offers an accepted objection did not withdraw: a withdrawn offer decides no verdict in a list.
    ``offers`` need their ``addr`` positions into ``address_ids`` (offers.parquet of a single run has them)."""
    if not len(withdrawals) or not len(offers) or "addr" not in offers.columns:
        return offers
    return offers[~withdrawn(offers, withdrawals, address_ids)]


def run_withdrawals(run_dir: Path) -> pd.DataFrame:
    """The accepted withdrawals of a run, from its objections.csv (none without one)."""
    path = run_dir / OBJECTIONS_FILE
    if not path.exists():
        return pd.DataFrame(columns=["address_id", "provider"])
    listed = pd.read_csv(path, dtype=str, keep_default_na=False)
    applied = (listed["claim"] == "no_offer") & (listed["applied"].str.casefold() == "true")
    return listed.loc[applied, ["address_id", "provider"]].reset_index(drop=True)


def write_funding_outputs(cfg: RunConfig, addresses: pd.DataFrame, offers: pd.DataFrame,
                          tables: Mapping[str, pd.DataFrame], run_dir: Path) -> list[str]:
    """The run's part: eligible lists per Amt, and the cost estimate when ``[costs]`` is set."""
    groups = list(cfg.analysis.groups)
    written = write_amt_lists(run_dir, addresses, offers, groups, cfg.funding_rules, gemeinde_names(tables))
    if cfg.costs is not None:
        written += write_costs(run_dir, addresses, cfg, tables, project_polygons(cfg))
    return written


__all__ = ["list_labels", "project_polygons", "write_funding_outputs", "write_list"]
