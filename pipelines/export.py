"""Downloads of the report: an XLSX workbook, CSV in two flavours and a GeoPackage of the areas.

- ``coverage.xlsx``: one sheet per level, sites, funding rules and the quarantine summary;
  German headers, numbers as numbers, frozen header row, column widths from the content,
  text that a spreadsheet would execute (``=…``, ``+…``, ``-…``, ``@…``) prefixed with ``'``,
  control characters escaped and text longer than a cell cut (:func:`pipelines.io.spreadsheet_cells`).
- ``<name>.csv`` (UTF-8, ``,``, ``.``, the data's column names) and ``<name>_de.csv``
  (BOM, ``;``, decimal comma, German headers) via :func:`pipelines.io.write_csv`. A plain CSV
  the run folder already holds with the same bytes (``tables/coverage_<level>.csv``) is a hard
  link of that file, written only where no link can be made (another file system).
- ``areas.gpkg``: layers gemeinde, amt, kreis, land with the boundaries' geometry and every figure.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from coverage.funding import FundingRule
from coverage.model import LEVEL_KEYS, Boundaries
from coverage.report.atlas import quarantine_summary
from coverage.report.labels import german_labels
from coverage.text import document_text
from pipelines import io

log = logging.getLogger(__name__)

SHEET_NAMES = {"gemeinde": "Gemeinden", "amt": "Ämter", "kreis": "Kreise", "land": "Land"}
LEVEL_ORDER = ("land", "kreis", "amt", "gemeinde")


def funding_rules_frame(rules: Sequence[FundingRule], land: pd.DataFrame) -> pd.DataFrame:
    """One row per funding rule: name, label, version, criterion and the Land's counts (households,
    addresses, then businesses)."""
    rows = []
    for r in rules:
        rec: dict[str, object] = {"rule": r.name, "label": r.label, "version": r.version, "description": r.describe()}
        for col in (f"hh_fund_{r.name}", f"addr_fund_{r.name}", f"hh_fund_{r.name}_plan",
                    f"addr_fund_{r.name}_plan", f"biz_fund_{r.name}", f"biz_fund_{r.name}_plan"):
            rec[col.replace(f"_{r.name}", "")] = float(land[col].sum()) if col in land.columns else np.nan
        rows.append(rec)
    return pd.DataFrame(rows, columns=["rule", "label", "version", "description", "hh_fund", "addr_fund",
                                       "hh_fund_plan", "addr_fund_plan", "biz_fund", "biz_fund_plan"])


_FUND_LABELS = {"hh_fund": "Haushalte förderfähig", "addr_fund": "Adressen förderfähig",
                "hh_fund_plan": "Haushalte förderfähig, mit Planung",
                "addr_fund_plan": "Adressen förderfähig, mit Planung", "biz_fund": "Unternehmen förderfähig",
                "biz_fund_plan": "Unternehmen förderfähig, mit Planung"}


def download_frames(tables: Mapping[str, pd.DataFrame], sites: pd.DataFrame, rules: Sequence[FundingRule],
                    quarantine: pd.DataFrame | None) -> dict[str, tuple[str, pd.DataFrame]]:
    """file stem -> (sheet name, frame) of everything offered for download, in workbook order."""
    out: dict[str, tuple[str, pd.DataFrame]] = {}
    for level in LEVEL_ORDER:
        out[f"coverage_{level}"] = (SHEET_NAMES[level], tables[level])
    out["sites"] = ("Standorte", sites)
    out["funding_rules"] = ("Förderregeln", funding_rules_frame(rules, tables["land"]))
    out["quarantine_summary"] = ("Quarantäne", quarantine_summary(quarantine))
    return out


def _labels(frame: pd.DataFrame, rules: Sequence[FundingRule]) -> dict[str, str]:
    labels = german_labels(frame.columns, {r.name: r.label for r in rules})
    for k, v in _FUND_LABELS.items():
        if k in labels:
            labels[k] = v
    return labels


def _cell_value(v: object) -> object:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return None
        return int(f) if f.is_integer() and abs(f) < 2**53 else f
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    return v if isinstance(v, (int, str)) else str(v)


def write_workbook(path: Path, sheets: Sequence[tuple[str, pd.DataFrame, Mapping[str, str]]]) -> Path:
    """XLSX with one sheet per (name, frame, labels): bold frozen header row, widths from the content."""
    wb = Workbook(write_only=True)
    header_font = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="DDE3F0")
    for name, frame, labels in sheets:
        ws = wb.create_sheet(title=name[:31])
        safe = io.spreadsheet_cells(frame, name)
        headers = [document_text(labels.get(str(c), str(c))) for c in safe.columns]
        for j, col in enumerate(safe.columns, start=1):
            sample = safe[col].head(200).astype("string").fillna("").str.len()
            text_len = int(sample.max()) if len(sample) else 0
            width = min(max(len(headers[j - 1]) * 0.55, text_len * 1.1, 8) + 2, 60)
            ws.column_dimensions[get_column_letter(j)].width = width
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = f"A1:{get_column_letter(max(len(headers), 1))}{len(safe) + 1}"
        head_cells = []
        for h in headers:
            c = WriteOnlyCell(ws, value=h)
            c.font = header_font
            c.fill = header_fill
            c.alignment = Alignment(wrap_text=True, vertical="top")
            head_cells.append(c)
        ws.append(head_cells)
        for rec in safe.astype(object).to_numpy().tolist():
            ws.append([_cell_value(v) for v in rec])
    with io.atomic_path(path) as tmp:
        wb.save(tmp)
    return path


def write_geopackage(path: Path, boundaries: Boundaries, tables: Mapping[str, pd.DataFrame]) -> Path:
    """One layer per level: the boundaries' geometry (not simplified) with every figure of the table."""
    with io.atomic_path(path) as tmp:
        tmp.unlink()
        for level in LEVEL_ORDER:
            key = LEVEL_KEYS[level]
            geo = boundaries.level(level)
            cols = [key] + (["bez"] if "bez" in geo.columns and "bez" not in tables[level] else []) + ["geometry"]
            shapes = geo[cols].assign(**{key: geo[key].astype(str)})
            shapes = shapes.dissolve(by=key, as_index=False) if shapes[key].duplicated().any() else shapes
            invalid = ~shapes.geometry.is_valid
            if invalid.any():  # e.g. self-touching rings in the source; QGIS tools refuse invalid polygons
                log.info("areas.gpkg: %d %s geometries repaired with make_valid", int(invalid.sum()), level)
                shapes.loc[invalid, "geometry"] = shapely.make_valid(shapes.geometry[invalid].values)
            table = tables[level].assign(**{key: tables[level][key].astype(str)})
            layer = gpd.GeoDataFrame(table.merge(shapes, on=key, how="left", validate="1:1"),
                                     geometry="geometry", crs=geo.crs)
            layer.to_file(tmp, layer=level, driver="GPKG", engine="pyogrio")
    return path


def _link_or_write_csv(path: Path, frame: pd.DataFrame, same: Path | None) -> None:
    """``path`` as a hard link of ``same`` when given and possible, else written from ``frame``.

    ``same`` must hold the bytes :func:`pipelines.io.write_csv` writes for ``frame`` (the run's
    copy of the table). The link is made under a temporary name and renamed into place, so the
    download appears whole like every output; across file systems the link fails and the file
    is written.
    """
    if same is not None and same.is_file() and link_file(path, same):
        return
    io.write_csv(path, frame)


def link_file(path: Path, same: Path) -> bool:
    """Make ``path`` a hard link of ``same`` (under a temporary name, renamed into place); False when
    the file system refuses (another device), and the caller writes the file instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.link-{os.getpid()}{path.suffix}")
    try:
        tmp.unlink(missing_ok=True)
        os.link(same, tmp)
        os.replace(tmp, path)
        return True
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        log.info("%s: no hard link to %s (%s), written instead", path.name, same, exc.strerror or exc)
        return False


def write_downloads(out_dir: Path, tables: Mapping[str, pd.DataFrame], sites: pd.DataFrame,
                    rules: Sequence[FundingRule], quarantine: pd.DataFrame | None,
                    boundaries: Boundaries, same_files: Mapping[str, Path] | None = None,
                    pool: Executor | None = None, pending: dict[str, Future] | None = None,
                    csv_jobs: list[Callable[[], object]] | None = None) -> list[str]:
    """Write ``downloads/`` under ``out_dir``; return the written paths relative to ``out_dir``.

    ``same_files``: file stem (e.g. ``coverage_gemeinde``) -> a file that already holds the bytes of
    that plain CSV (the run folder's table); the download is then a hard link of it, not a copy.
    ``pool``: the workbook and the GeoPackage (the slow two) are written by its worker processes while
    the caller goes on; their futures (result None) are added to ``pending`` under their paths.
    ``csv_jobs``: the CSV files are not written here but added to it as jobs for the caller to run (the
    atlas runs them in a process of its own while it writes pages).
    """
    folder = out_dir / "downloads"
    frames = download_frames(tables, sites, rules, quarantine)
    same_files = same_files or {}
    written = []
    sheets = []
    for stem, (sheet, frame) in frames.items():
        labels = _labels(frame, rules)
        sheets.append((sheet, frame, labels))
        writes: list[Callable[[], object]] = [
            functools.partial(_link_or_write_csv, folder / f"{stem}.csv", frame, same_files.get(stem)),
            functools.partial(_write_german_csv, folder / f"{stem}_de.csv", frame, labels)]
        if csv_jobs is None:
            for write in writes:
                write()
        else:
            csv_jobs += writes
        written += [f"downloads/{stem}.csv", f"downloads/{stem}_de.csv"]
    slow: dict[str, Callable[[], None]] = {
        "downloads/coverage.xlsx": functools.partial(_workbook_job, folder / "coverage.xlsx", sheets),
        "downloads/areas.gpkg": functools.partial(_geopackage_job, folder / "areas.gpkg", boundaries, dict(tables))}
    for rel, job in slow.items():
        if pool is None:
            job()
        else:
            if pending is None:
                raise ValueError("write_downloads: a pool needs a pending dict for its futures")
            pending[rel] = pool.submit(job)
    written += list(slow)
    return written


def _write_german_csv(path: Path, frame: pd.DataFrame, labels: Mapping[str, str]) -> None:
    io.write_csv(path, frame.rename(columns=labels), german=True)


def _workbook_job(path: Path, sheets: Sequence[tuple[str, pd.DataFrame, Mapping[str, str]]]) -> None:
    write_workbook(path, sheets)  # None: nothing to send back from a worker process


def _geopackage_job(path: Path, boundaries: Boundaries, tables: Mapping[str, pd.DataFrame]) -> None:
    write_geopackage(path, boundaries, tables)
