"""Writes the data files of the atlas' interactive page maps (see :mod:`coverage.report.pagemap`).

::

    maps/layers.js      every Gemeinde's value in every layer (all pages share it)
    maps/grid.js        the run's 100 m cells (internal atlas; loaded when the grid layer is chosen)
    addr/<ags>.js       a Gemeinde's addresses and cost-estimate lines (internal atlas only; loaded
                        when "Adressen" or the tree is switched on, on Gemeinde and Amt pages)

The grid and the cost trees are read back from the run's own GeoPackages with :mod:`sqlite3`
(a GeoPackage is an SQLite file; its geometry blobs are a short header plus WKB): the attributes
of 60,000 cells or the 230,000 tree lines of MV read in a fraction of the time GDAL takes.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from coverage.crs import INSPIRE_GRID_CRS, transform_xy
from coverage.errors import DataSourceError
from coverage.model import threshold_tag
from coverage.report.pagemap import address_data, grid_data, js_assign, layer_data
from pipelines import io

log = logging.getLogger(__name__)

GRID_FILE = "grid/grid_100m.gpkg"
TREE_FILE = "costs/costs_tree.gpkg"
#: GeoPackage binary header: envelope size by the flags' envelope indicator (bits 1–3)
_ENVELOPE = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def _query(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            return con.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise DataSourceError(f"{path}: cannot read it as a GeoPackage ({exc})") from exc


def _columns(path: Path, table: str) -> list[str]:
    return [str(r[1]) for r in _query(path, f'PRAGMA table_info("{table}")')]


def read_grid_cells(path: Path, thresholds: Sequence[float], groups: Sequence[str]) -> pd.DataFrame:
    """``north, east, households, hh_ge_<t>_<g>`` of every cell of the run's grid GeoPackage."""
    have = set(_columns(path, "grid_100m"))
    wanted = ["north", "east", "households"] + [f"hh_ge_{threshold_tag(t)}_{g}" for g in groups for t in thresholds]
    cols = [c for c in wanted if c in have]
    if not {"north", "east", "households"} <= set(cols):
        raise DataSourceError(f"{path}: layer grid_100m lacks north/east/households")
    rows = _query(path, "SELECT " + ", ".join(f'"{c}"' for c in cols) + ' FROM "grid_100m"')
    return pd.DataFrame.from_records(rows, columns=cols)


def _wkb(blob: bytes) -> bytes:
    """The WKB inside a GeoPackage geometry blob."""
    flags = blob[3]
    return blob[8 + _ENVELOPE.get((flags >> 1) & 0b111, 0):]


def read_tree_lines(path: Path, level: str = "gemeinde") -> pd.DataFrame:
    """``area, kind, x0, y0, x1, y1`` of the cost-estimate lines of one level."""
    geom = _query(path, "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = 'costs_tree'")
    if not geom:
        raise DataSourceError(f"{path}: no geometry column registered for layer costs_tree")
    rows = _query(path, f'SELECT "area", "kind", "{geom[0][0]}" FROM "costs_tree" WHERE "level" = ?', (level,))
    if not rows:
        return pd.DataFrame(columns=["area", "kind", "x0", "y0", "x1", "y1"])
    area, kind, blobs = zip(*rows, strict=True)
    return pd.DataFrame({"area": np.asarray(area, dtype=object), "kind": np.asarray(kind, dtype=object),
                         **dict(zip(("x0", "y0", "x1", "y1"), _endpoints(list(blobs)).T, strict=True))})


def _endpoints(blobs: list[bytes]) -> np.ndarray:
    """(n, 4) first and last point of each line. Two-point little-endian lines (what the cost estimate
    writes) of one blob size are read straight from the bytes; anything else through shapely."""
    sizes = {len(b) for b in blobs}
    if len(sizes) == 1:
        size = sizes.pop()
        buf = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), size)
        off = 8 + _ENVELOPE.get((int(buf[0, 3]) >> 1) & 0b111, 0)
        head = buf[:, off:off + 9].copy()
        if size == off + 41 and (buf[:, 3] == buf[0, 3]).all() and (head[:, 0] == 1).all() \
                and (head[:, 1:5].view("<u4")[:, 0] == 2).all() and (head[:, 5:9].view("<u4")[:, 0] == 2).all():
            return buf[:, off + 9:off + 41].copy().view("<f8").reshape(len(blobs), 4)
    geoms = shapely.from_wkb(np.asarray([_wkb(b) for b in blobs], dtype=object))
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    first = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    last = np.r_[first[1:] - 1, len(index) - 1]
    return np.column_stack([coords[first], coords[last]])


def write_layers(out_dir: Path, gem: pd.DataFrame, groups: Sequence[str], thresholds: Sequence[float],
                 default: str, grid: bool) -> str:
    io.write_text(out_dir / "maps" / "layers.js",
                  js_assign("layers", None, layer_data(gem, groups, thresholds, default, grid)))
    return "maps/layers.js"


def write_grid(out_dir: Path, run_dir: Path | None, map_crs: object, thresholds: Sequence[float],
               groups: Sequence[str]) -> list[str]:
    """``maps/grid.js`` from the run's grid, or nothing when the run has none (``--no-grid``)."""
    if run_dir is None or not (run_dir / GRID_FILE).exists():
        return []
    cells = read_grid_cells(run_dir / GRID_FILE, thresholds, groups)
    size = 100.0
    x, y = transform_xy(cells["east"].to_numpy(dtype="float64") + size / 2,
                        cells["north"].to_numpy(dtype="float64") + size / 2, INSPIRE_GRID_CRS, map_crs)
    io.write_text(out_dir / "maps" / "grid.js",
                  js_assign("grid", None, grid_data(cells, np.asarray(x), np.asarray(y), groups, thresholds, size)))
    return ["maps/grid.js"]


def write_addresses(out_dir: Path, results: pd.DataFrame, run_dir: Path | None, groups: Sequence[str],
                    rules: Sequence[tuple[str, str]]) -> tuple[list[str], set[str]]:
    """``addr/<ags>.js`` per Gemeinde with addresses; returns the files and the Gemeinden with tree lines."""
    per, with_tree = address_layer(results, run_dir, groups, rules)
    return write_address_files(out_dir, per), with_tree


def address_layer(results: pd.DataFrame, run_dir: Path | None, groups: Sequence[str],
                  rules: Sequence[tuple[str, str]]) -> tuple[dict[str, Any], set[str]]:
    """The address layer's data per Gemeinde (see :func:`write_address_files`) and the Gemeinden with
    tree lines: what the pages need to know before the files are written."""
    tree = None
    if run_dir is not None and (run_dir / TREE_FILE).exists():
        tree = read_tree_lines(run_dir / TREE_FILE)
    per = address_data(results, groups, rules, tree)
    with_tree = {k for k, rec in per.items() if "tree" in rec}
    log.info("report: address layer for %d Gemeinden (%d addresses), cost-estimate lines for %d", len(per),
             len(results), len(with_tree))
    return per, with_tree


def write_address_files(out_dir: Path, per: Mapping[str, Any]) -> list[str]:
    """``addr/<ags>.js`` per Gemeinde of :func:`address_layer`; returns the files."""
    written = []
    for key, rec in per.items():
        name = f"addr/{key}.js"
        io.write_text(out_dir / name, js_assign("addr", key, rec))
        written.append(name)
    return written


def figure_data(root: str, grid: bool, addr_keys: Sequence[str], tree: bool, default: str) -> Mapping[str, str]:
    """The ``data-map-*`` attributes of a page's map figure (``root``: "" or "../")."""
    data = {"layers": f"{root}maps/layers.js", "default": default}
    if grid:
        data["grid"] = f"{root}maps/grid.js"
    if addr_keys:
        data["addr"] = json.dumps(list(addr_keys))
        data["addr-base"] = f"{root}addr/"
        if tree:
            data["tree"] = "1"
    return data


__all__ = ["address_layer", "figure_data", "read_grid_cells", "read_tree_lines", "write_address_files",
           "write_addresses", "write_grid", "write_layers"]
