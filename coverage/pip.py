"""Exact point-in-polygon for a polygon coverage, tens of millions of points per second.

:class:`PolygonIndex` answers, for every point, "which polygon contains it or has it on its boundary",
choosing the **smallest position** when several do (callers sort polygons by key first, so this is
"smallest AGS" on shared borders) and ``-1`` when none does. The answer equals GEOS ``intersects``
(what ``STRtree.query(predicate="intersects")`` and ``sjoin(predicate="intersects")`` use).

Method
------
A uniform grid of square cells covers the bounding box of the polygons. At build time:

1. every polygon edge is rasterised (conservatively, with a margin ``m`` far larger than any rounding
   error) onto the cells it comes within ``m`` of: those cells are *mixed* and the edge's polygon is one
   of their *edge candidates*;
2. every polygon is scan-line filled at the cell centres. A polygon that contains a cell's centre but
   has no edge within ``m`` of the cell contains the whole (margin-expanded) cell.

A cell without edge candidates is *labelled* with the smallest polygon containing it, or ``-1``
(empty). A mixed cell keeps a default answer (the smallest polygon containing it entirely, or ``-1``)
and, in ascending order, only the edge candidates smaller than that default. For every (grid row,
polygon) the polygon's edges that reach into the row's strip are stored contiguously (CSR), sorted by
their largest x, descending.

A point in a labelled cell is answered by one lookup. A point in a mixed cell is tested against its
candidates in ascending order, with the ray-crossing rule of GEOS' ``RayCrossingCounter`` on the
candidate's edges in the cell's row strip (a ray to the right crosses only edges in that strip); the
first candidate that contains the point or has it on its boundary wins.

Exactness
---------
The crossing test is a port of GEOS ``RayCrossingCounter::countSegment``: exact comparisons for
vertices and horizontal edges, and GEOS' own floating-point orientation filter
(``CGAlgorithmsDD::orientationIndexFilter``, the same double expression, so the same bits) for the
side of an edge. When that filter cannot decide (the point lies on, or within ~1e-15 relative of, an
edge's line) GEOS switches to double-double arithmetic; we instead mark the point and answer it with
GEOS itself (``STRtree.query(predicate="intersects")``) afterwards. This *fallback* triggers only for
points on, or within about a nanometre of, an edge's line (on real address data essentially never; on
synthetic points placed exactly on edge midpoints, for most of those).

The rule is the one of GEOS' indexed point-in-area locator (used by prepared geometries, hence by
``STRtree.query`` and ``sjoin``): a point is covered if it lies on any ring's edge, else if a ray from it
crosses the edges of all the polygon's rings an odd number of times. For valid (Multi)Polygons this is
exactly "inside or on the boundary, holes excluded"; it also holds for GEOS-invalid polygons such as the
self-touching rings in VG5000 (three Gemeinden), which are therefore indexed like the others. Geometries
that are not (Multi)Polygons are left out of the grid and answered by GEOS (points in their bounding box).
Empty geometries and ``None`` are never matched. Points with NaN or infinite coordinates get ``-1``.

The hot loops are compiled with numba (``parallel=True``); they run on ``numba.get_num_threads()``
threads and give the same answer for every thread count.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import shapely


def _import_numba():
    """Import numba although this package is called ``coverage``.

    numba probes for coverage.py (``import coverage``) when it is imported and would find this package
    instead; hide it for the duration of the import (numba then simply runs without coverage.py support).
    """
    if "numba" in sys.modules:
        return sys.modules["numba"]
    saved = sys.modules.get("coverage")
    # None makes `import coverage` raise ImportError inside numba (documented import-system behaviour;
    # typeshed types sys.modules as holding modules only).
    sys.modules["coverage"] = None  # type: ignore[assignment]
    try:
        import numba
    finally:
        if saved is None:
            del sys.modules["coverage"]
        else:
            sys.modules["coverage"] = saved
    return numba


numba = _import_numba()
njit, prange = numba.njit, numba.prange

#: Answer codes used inside the kernels.
NONE = -1
_UNSURE = -2  # orientation filter undecided: the point is answered by GEOS afterwards


@dataclass(frozen=True, eq=False)
class PolygonIndex:
    """A grid index over polygons; build with :meth:`PolygonIndex.build`, query with :meth:`locate`."""

    n_polygons: int
    x0: float
    y0: float
    cell_size: float  # of the fine cells
    block: int  # fine cells per coarse cell side
    nx: int  # fine cells (a multiple of ``block``)
    ny: int
    coarse: np.ndarray  # int32 per coarse cell: >= 0 polygon, -1 none, <= -2 block number (-2 - b)
    fine: np.ndarray  # int32, block * block per block: >= 0 polygon, -1 none, <= -2 offset in `mixed` (-2 - o)
    mixed: np.ndarray  # float64 records of mixed fine cells, see `_mixed_records`
    n_mixed: int
    geometries: np.ndarray  # the input, for the GEOS fallback
    geos_only: np.ndarray  # int64 positions of non-polygonal geometries (answered by GEOS)
    build_seconds: float

    def stats(self) -> dict:
        """Sizes that explain speed and memory."""
        return {"polygons": self.n_polygons, "cell_size": self.cell_size, "block": self.block,
                "cells": self.nx * self.ny, "coarse_cells": len(self.coarse),
                "coarse_split": len(self.fine) // self.block**2, "mixed_cells": self.n_mixed,
                "mixed_share": self.n_mixed / max(1, self.nx * self.ny), "geos_only_polygons": len(self.geos_only),
                "build_seconds": self.build_seconds,
                "megabytes": (self.coarse.nbytes + self.fine.nbytes + self.mixed.nbytes) / 1e6}

    @classmethod
    def build(cls, geometries, cell_size: float | None = None, block: int = 4) -> PolygonIndex:
        """Index ``geometries`` (array-like of shapely Polygons/MultiPolygons; None and empty allowed).

        ``cell_size`` (fine cells, CRS units) is by default chosen from the extent and the total boundary
        length; ``block`` fine cells per side make one coarse cell.
        """
        t0 = time.perf_counter()
        geoms = np.asarray(geometries, dtype=object)
        if geoms.ndim != 1:
            raise ValueError(f"geometries must be one-dimensional, got shape {geoms.shape}")
        n = len(geoms)
        missing = shapely.is_missing(geoms)
        # numpy's stubs reject None as the fill scalar; at run time it is an object-dtype None.
        empty = missing | shapely.is_empty(np.where(missing, None, geoms))  # type: ignore[call-overload]
        polygonal = np.isin(shapely.get_type_id(geoms), (3, 6))
        gridded = ~empty & polygonal
        geos_only = np.flatnonzero(~empty & ~polygonal)

        ex1, ey1, ex2, ey2, epoly = _edges(geoms, np.flatnonzero(gridded))
        if len(ex1):
            xmin, xmax = min(ex1.min(), ex2.min()), max(ex1.max(), ex2.max())
            ymin, ymax = min(ey1.min(), ey2.min()), max(ey1.max(), ey2.max())
        else:
            xmin = ymin = 0.0
            xmax = ymax = 1.0
        width, height = max(xmax - xmin, 1e-9), max(ymax - ymin, 1e-9)
        if cell_size is None:
            cell_size = default_cell_size(width, height, float(np.hypot(ex2 - ex1, ey2 - ey1).sum()))
        cs = float(cell_size)
        if not cs > 0 or not math.isfinite(cs):
            raise ValueError(f"cell_size must be a positive number, got {cell_size!r}")
        scale = max(abs(xmin), abs(xmax), abs(ymin), abs(ymax), width, height)
        margin = 1e-9 * scale + 1e-6 * cs  # >> rounding errors (~1e-16 * scale), << cell size
        pad = 2 * margin + 1e-3 * cs
        x0, y0 = xmin - pad, ymin - pad
        nx = int(math.floor((xmax + pad - x0) / cs)) + 1  # noqa: RUF046 (numba: keep the int explicit)
        ny = int(math.floor((ymax + pad - y0) / cs)) + 1  # noqa: RUF046 (numba: keep the int explicit)
        if nx * ny > 2**31 - 2:
            raise ValueError(f"cell_size {cs} gives {nx} x {ny} cells; choose a larger one")

        # 1. edge candidates: (cell, polygon) pairs, and the row strips: (row, polygon, edge) triples
        pair_cell, pair_poly, strip_row, strip_edge = _rasterise_edges(ex1, ey1, ex2, ey2, epoly, x0, y0, cs, nx,
                                                                        ny, margin)
        key = np.unique(pair_cell.astype(np.int64) * n + pair_poly)
        mixed_cells = np.unique(key // n)
        ecell_m = np.searchsorted(mixed_cells, key // n).astype(np.int64)  # mixed number of each pair
        epoly_sorted = (key % n).astype(np.int32)
        eptr = np.searchsorted(ecell_m, np.arange(len(mixed_cells) + 1)).astype(np.int64)
        cells = np.full(nx * ny, NONE, dtype=np.int32)
        cells[mixed_cells] = (-2 - np.arange(len(mixed_cells))).astype(np.int32)

        # 2. scan-line fill of cell centres: labels and the default answers of mixed cells
        big = np.iinfo(np.int32).max
        idef = np.full(len(mixed_cells), big, dtype=np.int32)
        order = np.argsort(epoly, kind="stable")  # edges are already grouped by polygon; keep that explicit
        pptr = np.searchsorted(epoly[order], np.arange(n + 1)).astype(np.int64)
        _fill_centres(ex1[order], ey1[order], ex2[order], ey2[order], pptr, x0, y0, cs, nx, ny, cells, idef, eptr,
                      epoly_sorted)

        # 3. keep only candidates smaller than the default; mixed cells left without any become labelled
        keep = epoly_sorted < idef[ecell_m]
        counts = np.bincount(ecell_m[keep], minlength=len(mixed_cells))
        still = counts > 0
        done = mixed_cells[~still]
        cells[done] = np.where(idef[~still] == big, NONE, idef[~still])
        renumber = np.cumsum(still) - 1
        kept_cells = mixed_cells[still]
        cells[kept_cells] = (-2 - np.arange(len(kept_cells))).astype(np.int32)
        mixed_default = np.where(idef[still] == big, NONE, idef[still]).astype(np.int32)
        cand_poly = epoly_sorted[keep]
        cand_m = renumber[ecell_m[keep]]
        mixed_ptr = np.searchsorted(cand_m, np.arange(len(kept_cells) + 1)).astype(np.int64)

        # 4. row strips: edges grouped by (row, polygon), largest x first; each candidate points at its group
        sx1, sy1, sx2, sy2 = ex1[strip_edge], ey1[strip_edge], ex2[strip_edge], ey2[strip_edge]
        sxmax = np.maximum(sx1, sx2)
        skey = strip_row.astype(np.int64) * n + epoly[strip_edge]
        sorder = np.lexsort((-sxmax, skey))
        skey = skey[sorder]
        cand_key = (kept_cells[cand_m] // nx).astype(np.int64) * n + cand_poly
        cand_start = np.searchsorted(skey, cand_key, side="left").astype(np.int64)
        cand_end = np.searchsorted(skey, cand_key, side="right").astype(np.int64)
        offsets, mixed = _mixed_records(kept_cells, nx, x0, cs, margin, mixed_default, mixed_ptr, cand_poly,
                                        cand_start, cand_end, sx1[sorder], sy1[sorder], sx2[sorder], sy2[sorder])
        if len(mixed) >= 2**31 - 2:
            raise ValueError(f"cell_size {cs} gives too many mixed-cell records; choose a larger one")
        cells[kept_cells] = (-2 - offsets).astype(np.int32)

        # 5. two levels: coarse cells (block x block fine cells) stay in cache; only split ones point at fine cells
        block = int(block)
        nbx, nby = -(-nx // block), -(-ny // block)
        full = np.full((nby * block, nbx * block), NONE, dtype=np.int32)
        full[:ny, :nx] = cells.reshape(ny, nx)
        tiles = full.reshape(nby, block, nbx, block).transpose(0, 2, 1, 3).reshape(nby * nbx, block * block)
        uniform = (tiles == tiles[:, :1]).all(axis=1) & (tiles[:, 0] >= NONE)
        coarse = np.where(uniform, tiles[:, 0], 0).astype(np.int32)
        split = np.flatnonzero(~uniform)
        coarse[split] = (-2 - np.arange(len(split))).astype(np.int32)
        return cls(n_polygons=n, x0=float(x0), y0=float(y0), cell_size=cs, block=block, nx=nbx * block,
                   ny=nby * block, coarse=coarse, fine=np.ascontiguousarray(tiles[split]).ravel(), mixed=mixed,
                   n_mixed=len(kept_cells), geometries=geoms, geos_only=geos_only.astype(np.int64),
                   build_seconds=time.perf_counter() - t0)

    def locate(self, x, y, *, with_details: bool = False):
        """Position of the polygon covering each point (smallest if several), -1 if none; int32 array.

        With ``with_details=True`` returns ``(positions, maybe_shared, n_fallback)``: ``maybe_shared`` is
        True where the point lies exactly on an edge of the returned polygon or was answered by GEOS, i.e.
        where another polygon may cover it too (for non-overlapping polygons, False guarantees that the
        returned polygon is the only one); ``n_fallback`` counts the points answered by GEOS.
        """
        x = np.ascontiguousarray(x, dtype=np.float64)
        y = np.ascontiguousarray(y, dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError(f"x and y must be 1-d arrays of equal length, got shapes {x.shape} and {y.shape}")
        out = np.empty(len(x), dtype=np.int32)
        on_edge = np.empty(len(x), dtype=np.bool_)
        _locate_kernel(x, y, self.x0, self.y0, 1.0 / self.cell_size, self.nx, self.ny, self.block, self.coarse,
                       self.fine, self.mixed, out, on_edge)
        unsure = np.flatnonzero(out == _UNSURE)
        if len(unsure):
            out[unsure] = self._geos(x[unsure], y[unsure], np.arange(self.n_polygons))
            on_edge[unsure] = True
        if len(self.geos_only):
            xmin, ymin, xmax, ymax = shapely.total_bounds(self.geometries[self.geos_only])
            near = np.flatnonzero((x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax))
            other = self._geos(x[near], y[near], self.geos_only)
            better = (other >= 0) & ((out[near] < 0) | (other < out[near]))
            out[near[better]] = other[better]
            on_edge[near[other >= 0]] = True
        return (out, on_edge, len(unsure)) if with_details else out

    def _geos(self, x: np.ndarray, y: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """GEOS answer (smallest intersecting position among ``positions``, else -1) for a few points."""
        res = np.full(len(x), NONE, dtype=np.int32)
        if len(x) == 0 or len(positions) == 0:
            return res
        tree = shapely.STRtree(self.geometries[positions])
        pt, hit = tree.query(shapely.points(x, y), predicate="intersects")
        if len(pt):
            best = np.full(len(x), np.iinfo(np.int64).max)
            np.minimum.at(best, pt, positions[hit])
            found = best != np.iinfo(np.int64).max
            res[found] = best[found]
        return res


def default_cell_size(width: float, height: float, edge_length: float) -> float:
    """Cell size giving few mixed cells while the cell array stays small.

    The share of cells that boundaries cross is about ``1.5 * L * s / A`` (``L`` total edge length,
    counted once per polygon, ``A`` bbox area). Aim at ~6 % of the area, but keep the grid between
    2^16 and 2^23 cells (32 MB of int32).
    """
    area = width * height
    s = 0.06 * area / (1.5 * max(edge_length, 1e-9))
    s = min(s, math.sqrt(area / 2**16))
    return max(s, math.sqrt(area / 2**23))


def _edges(geoms: np.ndarray, positions: np.ndarray):
    """All ring edges (x1, y1, x2, y2, polygon position) of the polygons at ``positions``."""
    if len(positions) == 0:
        z = np.zeros(0)
        return z, z, z, z, np.zeros(0, dtype=np.int32)
    parts, part_of = shapely.get_parts(geoms[positions], return_index=True)
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    xy, coord_ring = shapely.get_coordinates(rings, return_index=True)
    same = coord_ring[:-1] == coord_ring[1:]
    first = np.flatnonzero(same)
    poly = positions[part_of[ring_of[coord_ring[first]]]].astype(np.int32)
    return (np.ascontiguousarray(xy[first, 0]), np.ascontiguousarray(xy[first, 1]),
            np.ascontiguousarray(xy[first + 1, 0]), np.ascontiguousarray(xy[first + 1, 1]), poly)


@njit(cache=True)
def _row_range(ylo, yhi, y0, cs, ny, margin):
    r0 = int(math.floor((ylo - margin - y0) / cs))  # noqa: RUF046 (numba: keep the int explicit)
    r1 = int(math.floor((yhi + margin - y0) / cs))  # noqa: RUF046 (numba: keep the int explicit)
    return max(r0, 0), min(r1, ny - 1)


@njit(cache=True)
def _rasterise_edges(ex1, ey1, ex2, ey2, epoly, x0, y0, cs, nx, ny, margin):
    """Cells every edge comes within ``margin`` of (conservative), and the row strips it reaches."""
    ne = len(ex1)
    n_pairs = 0
    n_strip = 0
    for pass_ in range(2):
        if pass_ == 1:
            pair_cell = np.empty(n_pairs, dtype=np.int64)
            pair_poly = np.empty(n_pairs, dtype=np.int64)
            strip_row = np.empty(n_strip, dtype=np.int64)
            strip_edge = np.empty(n_strip, dtype=np.int64)
            n_pairs = 0
            n_strip = 0
        for e in range(ne):
            xa, ya, xb, yb = ex1[e], ey1[e], ex2[e], ey2[e]
            ylo, yhi = min(ya, yb), max(ya, yb)
            xlo, xhi = min(xa, xb), max(xa, xb)
            r0, r1 = _row_range(ylo, yhi, y0, cs, ny, margin)
            for r in range(r0, r1 + 1):
                if pass_ == 1:
                    strip_row[n_strip] = r
                    strip_edge[n_strip] = e
                n_strip += 1
                s_lo = max(ylo, y0 + r * cs - margin)
                s_hi = min(yhi, y0 + (r + 1) * cs + margin)
                if yb != ya and s_lo <= s_hi:
                    t = (xb - xa) / (yb - ya)
                    u = xa + (s_lo - ya) * t
                    v = xa + (s_hi - ya) * t
                    lo = max(min(u, v), xlo) - margin
                    hi = min(max(u, v), xhi) + margin
                else:
                    lo, hi = xlo - margin, xhi + margin
                c0 = max(int(math.floor((lo - x0) / cs)), 0)  # noqa: RUF046 (numba: keep the int explicit)
                c1 = min(int(math.floor((hi - x0) / cs)), nx - 1)  # noqa: RUF046 (numba: keep the int explicit)
                if pass_ == 1:
                    for c in range(c0, c1 + 1):
                        pair_cell[n_pairs] = r * nx + c
                        pair_poly[n_pairs] = epoly[e]
                        n_pairs += 1
                else:
                    n_pairs += max(c1 - c0 + 1, 0)
    return pair_cell, pair_poly, strip_row, strip_edge


@njit(cache=True)
def _fill_centres(ex1, ey1, ex2, ey2, pptr, x0, y0, cs, nx, ny, cells, idef, eptr, epoly_sorted):
    """Scan-line fill of cell centres per polygon (even-odd over all its rings).

    A labelled cell gets the smallest polygon containing its centre; a mixed cell's default is the smallest
    polygon containing its centre that is not one of its edge candidates (so it contains the whole cell).
    """
    n = len(pptr) - 1
    xs = np.empty(64, dtype=np.float64)
    for p in range(n):
        a, b = pptr[p], pptr[p + 1]
        if a == b:
            continue
        ylo = min(ey1[a:b].min(), ey2[a:b].min())
        yhi = max(ey1[a:b].max(), ey2[a:b].max())
        r0 = max(int(math.ceil((ylo - y0) / cs - 0.5)), 0)  # noqa: RUF046 (numba: keep the int explicit)
        r1 = min(int(math.floor((yhi - y0) / cs - 0.5)), ny - 1)  # noqa: RUF046 (numba: keep the int explicit)
        for r in range(r0, r1 + 1):
            yc = y0 + (r + 0.5) * cs
            k = 0
            for e in range(a, b):
                ya, yb = ey1[e], ey2[e]
                if (ya > yc) != (yb > yc):
                    if k == len(xs):
                        bigger = np.empty(2 * k, dtype=np.float64)
                        bigger[:k] = xs
                        xs = bigger
                    xs[k] = ex1[e] + (yc - ya) * (ex2[e] - ex1[e]) / (yb - ya)
                    k += 1
            if k < 2:
                continue
            srt = np.sort(xs[:k])
            for j in range(0, k - 1, 2):
                c0 = max(int(math.ceil((srt[j] - x0) / cs - 0.5)), 0)  # noqa: RUF046 (numba: keep the int explicit)
                c1 = min(int(math.floor((srt[j + 1] - x0) / cs - 0.5)), nx - 1)  # noqa: RUF046 (numba: keep the int explicit)
                for c in range(c0, c1 + 1):
                    cell = r * nx + c
                    v = cells[cell]
                    if v >= 0:
                        if p < v:
                            cells[cell] = p
                    elif v == -1:
                        cells[cell] = p
                    else:
                        m = -2 - v
                        edge_candidate = False
                        for q in range(eptr[m], eptr[m + 1]):
                            if epoly_sorted[q] == p:
                                edge_candidate = True
                                break
                        if not edge_candidate and p < idef[m]:
                            idef[m] = p


@njit(cache=True, inline="always")
def _sign(v):
    if v > 0.0:
        return 1
    if v < 0.0:
        return -1
    return 0


@njit(cache=True, inline="always")
def _orientation(p1x, p1y, p2x, p2y, qx, qy):
    """GEOS ``CGAlgorithmsDD::orientationIndexFilter``: -1, 0, 1, or 2 when it cannot decide."""
    detleft = (p1x - qx) * (p2y - qy)
    detright = (p1y - qy) * (p2x - qx)
    det = detleft - detright
    if detleft > 0.0:
        if detright <= 0.0:
            return _sign(det)
        detsum = detleft + detright
    elif detleft < 0.0:
        if detright >= 0.0:
            return _sign(det)
        detsum = -detleft - detright
    else:
        return _sign(det)
    errbound = 1e-15 * detsum
    if det >= errbound or -det >= errbound:
        return _sign(det)
    return 2


@njit(cache=True)
def _mixed_records(kept_cells, nx, x0, cs, margin, mixed_default, mixed_ptr, cand_poly, cand_start, cand_end,
                   sx1, sy1, sx2, sy2):
    """One contiguous float64 record per mixed fine cell, so that a point costs one cache miss more:

    ``[default, n_candidates, (polygon, n_edges, x1, y1, x2, y2, ...) per candidate]``, candidates in
    ascending order, each with its row-strip edges that reach the cell (x max >= cell's left side), x max
    descending. Returns (offset of each mixed cell's record, records).
    """
    nm = len(kept_cells)
    offsets = np.empty(nm, dtype=np.int64)
    take = np.empty(len(cand_poly), dtype=np.int64)
    size = 0
    for m in range(nm):
        xleft = x0 + (kept_cells[m] % nx) * cs - margin
        offsets[m] = size
        size += 2
        for k in range(mixed_ptr[m], mixed_ptr[m + 1]):
            t = 0
            for e in range(cand_start[k], cand_end[k]):
                if max(sx1[e], sx2[e]) < xleft:
                    break
                t += 1
            take[k] = t
            size += 2 + 4 * t
    rec = np.empty(size, dtype=np.float64)
    for m in range(nm):
        o = offsets[m]
        rec[o] = mixed_default[m]
        rec[o + 1] = mixed_ptr[m + 1] - mixed_ptr[m]
        o += 2
        for k in range(mixed_ptr[m], mixed_ptr[m + 1]):
            rec[o] = cand_poly[k]
            rec[o + 1] = take[k]
            o += 2
            for e in range(cand_start[k], cand_start[k] + take[k]):
                rec[o] = sx1[e]
                rec[o + 1] = sy1[e]
                rec[o + 2] = sx2[e]
                rec[o + 3] = sy2[e]
                o += 4
    return offsets, rec


@njit(cache=True, inline="always")
def _covers(px, py, rec, o, n_edges):
    """For the rings whose edges are ``rec[o:o + 4 * n_edges]``: 1 if the point is inside, 3 if it is on an edge,
    0 if outside, 2 if GEOS' orientation filter cannot decide. A port of GEOS ``RayCrossingCounter``."""
    crossings = 0
    for j in range(n_edges):
        e = o + 4 * j
        x1, y1, x2, y2 = rec[e], rec[e + 1], rec[e + 2], rec[e + 3]
        if x1 < px and x2 < px:
            break  # sorted by x max, descending: no further edge reaches the ray
        if (px == x2 and py == y2) or (px == x1 and py == y1):
            return 3
        if y1 == py and y2 == py:
            if min(x1, x2) <= px <= max(x1, x2):
                return 3
            continue
        if (y1 > py) != (y2 > py):
            orient = _orientation(x1, y1, x2, y2, px, py)
            if orient == 2:
                return 2
            if orient == 0:
                return 3
            if y2 < y1:
                orient = -orient
            if orient > 0:
                crossings += 1
    return crossings & 1


@njit(parallel=True, cache=True)
def _locate_kernel(x, y, x0, y0, inv_cs, nx, ny, block, coarse, fine, rec, out, on_edge):
    nbx = nx // block
    for i in prange(len(x)):
        px, py = x[i], y[i]
        on_edge[i] = False
        fx = (px - x0) * inv_cs
        fy = (py - y0) * inv_cs
        if not (fx >= 0.0 and fy >= 0.0 and fx < nx and fy < ny):  # also NaN and inf
            out[i] = NONE
            continue
        ix, iy = int(fx), int(fy)
        v = coarse[(iy // block) * nbx + ix // block]
        if v >= NONE:
            out[i] = v
            continue
        v = fine[(-2 - v) * block * block + (iy % block) * block + ix % block]
        if v >= NONE:
            out[i] = v
            continue
        o = -2 - v
        res: np.int32 | int = np.int32(rec[o])  # or _UNSURE; local annotations are never evaluated
        nc = int(rec[o + 1])
        o += 2
        for _ in range(nc):
            ne = int(rec[o + 1])
            hit = _covers(px, py, rec, o + 2, ne)
            if hit == 1 or hit == 3:
                res = np.int32(rec[o])
                on_edge[i] = hit == 3
                break
            if hit == 2:
                res = _UNSURE
                break
            o += 2 + 4 * ne
        out[i] = res
