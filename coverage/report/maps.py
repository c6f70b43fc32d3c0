"""Choropleth maps of per-area figures as SVG (interactive-ready) and PNG (print).

The figure is drawn with matplotlib's object API (:class:`matplotlib.figure.Figure`),
which needs no backend selection and leaves pyplot's global state alone. Every area
is its own patch with a ``gid``; the SVG is then post-processed with ElementTree so
each area becomes ``<g class="area" data-key="…"><title>…</title><path …/></g>``,
optionally wrapped in ``<a href="…">``. ElementTree escapes all text and attribute
values, so names from the data can never inject markup.

Text is rendered as glyph outlines of matplotlib's bundled DejaVu Sans, so the SVG
looks the same everywhere and needs no font.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, SupportsFloat, TypedDict
from urllib.parse import quote

import geopandas as gpd
import matplotlib as mpl
import numpy as np
import pandas as pd
import shapely
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, PathPatch, Polygon, Rectangle
from matplotlib.path import Path
from matplotlib.typing import RcKeyType

from coverage.errors import InputDataError, SchemaError
from coverage.model import GROUP_LABELS, LEVEL_KEYS, threshold_tag
from coverage.report.geometry import MapGeometry
from coverage.text import document_text

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"

#: Lower bounds of the share classes (percent); the last class is 95–100.
SHARE_BREAKS = (0.0, 25.0, 50.0, 75.0, 90.0, 95.0)
#: ColorBrewer YlGnBu, 6 classes: sequential, colour-blind safe, prints and photocopies well.
SHARE_COLOURS = ("#ffffcc", "#c7e9b4", "#7fcdbb", "#41b6c4", "#2c7fb8", "#253494")
NODATA_COLOUR = "#bdbdbd"
NODATA_LABEL = "keine Haushalte"
CONTEXT_FACE = "#f0f0f0"
CONTEXT_EDGE = "#d9d9d9"
AREA_EDGE = "#ffffff"
AREA_EDGE_ZOOM = "#6e6e6e"
KREIS_EDGE = "#252525"
HIGHLIGHT_EDGE = "#000000"
HIGHLIGHT_HALO = "#ffffff"

#: A4 landscape, inches.
FIG_SIZE = (11.69, 8.27)
MAP_BOX = (0.03, 0.085, 0.66, 0.78)  # left, bottom, width, height in figure fractions
PANEL_X = 0.725

LEVEL_LABELS = {"gemeinde": "Gemeinden", "amt": "Ämter", "kreis": "Kreise", "land": "Land"}
_PLAIN_LABELS = {"households": "Haushalte", "addresses": "Adressen", "businesses": "Unternehmen",
                 "sites": "Standorte", "name": "Name"}
_COLUMN_RE = re.compile(r"^(share_ge|hh_ge|hh_lt)_(\d+(?:\.\d+)?)_([a-z]+)$")


# --------------------------------------------------------------------------- formatting (German)

def format_int(value: SupportsFloat | None) -> str:
    """``1234.4`` -> ``"1.234"``; NaN/None -> ``"–"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return "–"
    return f"{round(float(value)):,d}".replace(",", ".")


def format_percent(value: SupportsFloat | None, digits: int = 1) -> str:
    """``56.73`` -> ``"56,7 %"`` (non-breaking space); NaN -> ``"–"``."""
    if value is None or pd.isna(value):
        return "–"
    text = f"{float(value):,.{digits}f}".replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text + "\u00a0%"


def format_date(value: object) -> str:
    """ISO ``2021-06-30`` (or a timestamp) -> ``30.06.2021``; other text is returned unchanged."""
    text = "" if value is None else str(value)
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})", text)
    return f"{m.group(3)}.{m.group(2)}.{m.group(1)}" if m else text


def format_value(column: str, value: SupportsFloat | None) -> str:
    return format_percent(value) if column.startswith("share_") else format_int(value)


def column_label(column: str) -> str:
    """German label of a table column: ``share_ge_100_all`` -> ``Anteil ≥ 100 Mbit/s (alle Technologien)``."""
    m = _COLUMN_RE.match(column)
    if not m:
        return _PLAIN_LABELS.get(column, column)
    kind, t, group = m.groups()
    t = threshold_tag(float(t))
    glabel = GROUP_LABELS.get(group, group)
    if kind == "share_ge":
        return f"Anteil ≥ {t} Mbit/s ({glabel})"
    if kind == "hh_ge":
        return f"Haushalte ≥ {t} Mbit/s ({glabel})"
    return f"Haushalte < {t} Mbit/s ({glabel})"


# --------------------------------------------------------------------------- classification

@dataclass(frozen=True)
class Classes:
    """A classed legend: class ``i`` holds values ``breaks[i] <= v < breaks[i+1]``; the last is open above.

    Values below ``breaks[0]`` fall into class 0, so every finite value has a class;
    NaN gets class ``-1`` (``nodata_label``).
    """

    breaks: tuple[float, ...]
    colours: tuple[str, ...]
    labels: tuple[str, ...]
    nodata_colour: str = NODATA_COLOUR
    nodata_label: str = NODATA_LABEL

    def __post_init__(self) -> None:
        if not (len(self.breaks) == len(self.colours) == len(self.labels)) or not self.breaks:
            raise InputDataError("Classes: breaks, colours and labels must have the same, non-zero length")
        if any(hi <= lo for lo, hi in pairwise(self.breaks)):
            raise InputDataError(f"Classes: breaks must be strictly increasing, got {self.breaks}")


def share_classes() -> Classes:
    """Fixed classes for shares in percent: <25, 25–<50, 50–<75, 75–<90, 90–<95, 95–100."""
    b = SHARE_BREAKS
    labels = [f"unter {b[1]:g} %"]
    labels += [f"{lo:g} bis unter {hi:g} %" for lo, hi in pairwise(b[1:])]
    labels.append(f"{b[-1]:g} bis 100 %")
    return Classes(breaks=b, colours=SHARE_COLOURS, labels=tuple(labels))


def _nice(x: float) -> float:
    if x <= 0:
        return 0.0
    p = 10 ** math.floor(math.log10(x))
    return min((m * p for m in (1, 2, 2.5, 5, 10)), key=lambda v: abs(v - x))


def count_classes(values: Iterable[float], n: int = 5) -> Classes:
    """Classes for counts (e.g. households below a threshold): 0, then rounded quantile breaks."""
    v = np.asarray(pd.to_numeric(pd.Series(list(values)), errors="coerce"), dtype=float)
    pos = v[np.isfinite(v) & (v > 0)]
    breaks = [0.0]
    if pos.size:
        breaks.append(1.0)
        for q in np.quantile(pos, np.linspace(0, 1, n + 1)[1:-1]):
            nb = _nice(float(q))
            if nb > breaks[-1]:
                breaks.append(nb)
    labels = ["0"] if len(breaks) > 1 else ["0 und mehr"]
    if len(breaks) > 1:
        labels = ["0"] + [f"{format_int(lo)} bis unter {format_int(hi)}" for lo, hi in pairwise(breaks[1:])]
        labels.append(f"{format_int(breaks[-1])} und mehr")
    cmap = mpl.colormaps["OrRd"]
    colours = [mpl.colors.to_hex(cmap(x)) for x in np.linspace(0.08, 0.95, len(breaks))]
    return Classes(breaks=tuple(breaks), colours=tuple(colours), labels=tuple(labels))


def classify(values: Iterable[float], classes: Classes) -> np.ndarray:
    """Class index per value (``-1`` for NaN/None)."""
    if isinstance(values, (np.ndarray, pd.Series)) and values.dtype.kind == "f":  # numbers already: no object copy
        v = np.asarray(values, dtype=float)
    else:
        v = np.asarray(pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce"), dtype=float)
    idx = np.searchsorted(np.asarray(classes.breaks, dtype=float), v, side="right") - 1
    idx = np.clip(idx, 0, len(classes.breaks) - 1)
    return np.where(np.isfinite(v), idx, -1)


def classes_for(column: str, values: Iterable[float]) -> Classes:
    return share_classes() if column.startswith("share_") else count_classes(values)


# --------------------------------------------------------------------------- drawing helpers

def _path(geom: shapely.Geometry | None) -> Path | None:
    """Compound matplotlib path of a (Multi)Polygon; rings keep their orientation (holes stay holes)."""
    if geom is None or shapely.is_empty(geom):
        return None
    verts: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    for poly in shapely.get_parts(geom):
        if not isinstance(poly, shapely.Polygon):
            continue
        for ring in (poly.exterior, *poly.interiors):
            xy = np.asarray(ring.coords)[:, :2]
            if len(xy) < 4:
                continue
            c = np.full(len(xy), Path.LINETO, dtype=np.uint8)
            c[0], c[-1] = Path.MOVETO, Path.CLOSEPOLY
            verts.append(xy)
            codes.append(c)
    if not verts:
        return None
    return Path(np.concatenate(verts), np.concatenate(codes))


def _extent(bounds: Sequence[float], box_w_in: float, box_h_in: float, margin: float = 0.03) -> tuple:
    """Data limits around ``bounds`` with a margin, widened to the axes' aspect ratio."""
    x0, y0, x1, y1 = bounds
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    x0, x1, y0, y1 = x0 - w * margin, x1 + w * margin, y0 - h * margin, y1 + h * margin
    w, h = x1 - x0, y1 - y0
    target = box_w_in / box_h_in
    if w / h < target:
        extra = (h * target - w) / 2
        x0, x1 = x0 - extra, x1 + extra
    else:
        extra = (w / target - h) / 2
        y0, y1 = y0 - extra, y1 + extra
    return x0, x1, y0, y1


def _scale_length_km(map_width_m: float) -> float:
    target = map_width_m / 1000 / 4
    candidates = [0.5, 1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500]
    return max([c for c in candidates if c <= target] or [candidates[0]])


def _draw_scale_bar(fig: Figure, m_per_inch: float, x: float, y: float) -> None:
    """Scale bar in figure coordinates, true to the map's scale (metres of the working CRS)."""
    fw = fig.get_size_inches()[0]
    km = _scale_length_km(m_per_inch * MAP_BOX[2] * fw)
    width_frac = km * 1000 / m_per_inch / fw
    seg = width_frac / 4
    hgt = 0.012
    for i in range(4):
        fig.add_artist(Rectangle((x + i * seg, y), seg, hgt, transform=fig.transFigure,
                                 facecolor="#252525" if i % 2 == 0 else "white", edgecolor="#252525", lw=0.6))
    for frac, val in ((0, 0), (0.5, km / 2), (1, km)):
        fig.text(x + frac * width_frac, y + hgt + 0.008, f"{val:g}".replace(".", ","),
                 ha="center", va="bottom", fontsize=7.5)
    fig.text(x + width_frac + 0.008, y + hgt / 2, "km", ha="left", va="center", fontsize=7.5)
    ratio = _nice(m_per_inch / 0.0254)
    fig.text(x, y - 0.012, f"Maßstab ca. 1 : {format_int(ratio)} (A4)", ha="left", va="top", fontsize=7,
             color="#444444")


def _draw_north_arrow(fig: Figure, x: float, y: float) -> None:
    """North arrow (grid north of the working CRS) in figure coordinates: half-filled triangle and 'N'."""
    fw, fh = fig.get_size_inches()
    w = 0.14 / fw
    h = 0.42 / fh
    left = Polygon([(x - w, y), (x, y + h), (x, y + h * 0.28)], closed=True, transform=fig.transFigure,
                   facecolor="#252525", edgecolor="#252525", lw=0.6)
    right = Polygon([(x + w, y), (x, y + h), (x, y + h * 0.28)], closed=True, transform=fig.transFigure,
                    facecolor="white", edgecolor="#252525", lw=0.6)
    fig.add_artist(left)
    fig.add_artist(right)
    fig.text(x, y + h + 0.008, "N", ha="center", va="bottom", fontsize=11, weight="bold")


# --------------------------------------------------------------------------- the figure

class _FigureOptions(TypedDict):
    """The keyword arguments of :func:`_build_figure` that :func:`choropleth_svg` and :func:`choropleth_png` share."""

    title: str
    legend_title: str
    subtitle: str | None
    classes: Classes | None
    tooltip_columns: Sequence[str] | None
    highlight: Iterable[str] | str | None
    attributions: Sequence[str]
    data_date: str | None


@dataclass(frozen=True)
class _Drawn:
    fig: Figure
    gids: dict[str, tuple[str, str, str]]  # gid -> (key, tooltip text, class id)


def _wrap(text: str, width: int) -> str:
    """Wrap a legend title without separating numbers from their unit or the ≥ sign."""
    glued = re.sub(r"(≥|<|>|≤) ", "\\1\u00a0", text)
    glued = re.sub(r"(\d) (Mbit/s|%|km)", "\\1\u00a0\\2", glued)
    return "\n".join(textwrap.wrap(glued, width))


def _check_table(table: pd.DataFrame, level: str, value_column: str, tooltip_columns: Sequence[str]) -> str:
    if level not in LEVEL_KEYS:
        raise InputDataError(f"map level {level!r} is unknown; expected one of {list(LEVEL_KEYS)}")
    key = LEVEL_KEYS[level]
    needed = [key, "name", value_column, *tooltip_columns]
    missing = sorted({c for c in needed if c not in table.columns})
    if missing:
        raise SchemaError(f"{level} table: missing column(s) {missing} needed for the map")
    dup = table[key][table[key].duplicated()]
    if len(dup):
        raise InputDataError(f"{level} table: key {key} is not unique (first duplicate: {dup.iloc[0]!r})")
    return key


def _tooltip(row: pd.Series, columns: Sequence[str]) -> str:
    lines = [document_text(str(row["name"]))]  # XML has no place for control characters
    lines += [f"{column_label(c)}: {format_value(c, row[c])}" for c in columns]
    return "\n".join(lines)


def _default_tooltip_columns(table: pd.DataFrame, value_column: str) -> list[str]:
    cols = [value_column, "households"]
    m = _COLUMN_RE.match(value_column)
    if m and m.group(1) == "share_ge":
        cols.append(f"hh_lt_{m.group(2)}_{m.group(3)}")
    return [c for c in dict.fromkeys(cols) if c in table.columns]


def _mapped_geometries(map_geometry: MapGeometry, table: pd.DataFrame, level: str, key: str
                       ) -> tuple[pd.Series, dict[str, shapely.Geometry]]:
    """The table's keys (as text) and the geometry of every area of ``level`` by key (the geometry's
    lookup, built once for every map)."""
    keys = table[key].astype(str)
    geom_by_key = map_geometry.lookup(level).geom_by_key
    unknown = sorted(set(keys) - set(geom_by_key))
    if unknown:
        raise InputDataError(f"{level} table: {len(unknown)} key(s) have no geometry in the map "
                             f"(first: {key}={unknown[0]!r})")
    return keys, geom_by_key


def _add_patch(ax: Axes, patch: PathPatch) -> None:
    """``ax.add_patch`` without widening the data limits to the patch: every map sets its limits
    itself, and measuring each area's path for limits nobody reads was half of a map's drawing time."""
    ax.add_artist(patch)


def _draw_context(ax: Axes, geom_by_key: dict[str, shapely.Geometry], in_table: set[str],
                  view: shapely.Geometry) -> None:
    """Neighbouring areas of the same level that are not in the table, light grey."""
    geoms = np.asarray(list(geom_by_key.values()), dtype=object)
    seen = shapely.intersects(geoms, view)  # one call for all areas, in the dict's order
    for k, g, hit in zip(geom_by_key, geoms.tolist(), seen.tolist(), strict=True):
        if k in in_table or not hit:
            continue
        p = _path(g)
        if p is not None:
            _add_patch(ax, PathPatch(p, facecolor=CONTEXT_FACE, edgecolor=CONTEXT_EDGE, lw=0.4, zorder=1))


def _draw_areas(ax: Axes, table: pd.DataFrame, keys: pd.Series, cls: np.ndarray, classes: Classes,
                geom_by_key: dict[str, shapely.Geometry], tooltip_columns: Sequence[str], level: str, key: str
                ) -> dict[str, tuple[str, str, str]]:
    """One coloured patch per row of the table; returns gid -> (key, tooltip, class id)."""
    maybe_paths = [_path(geom_by_key[k]) for k in keys]
    empty = [k for k, p in zip(keys, maybe_paths, strict=True) if p is None]
    if empty:
        raise InputDataError(f"{level} map: {len(empty)} area(s) have an empty geometry and cannot be drawn "
                             f"(first: {key}={empty[0]!r})")
    paths = [p for p in maybe_paths if p is not None]  # all of them: none is empty
    # Thin white borders read well between many small areas; a zoomed-in map with
    # few large areas needs visible grey borders (neighbours may share a light class).
    edge, edge_lw = (AREA_EDGE, 0.3) if len(keys) > 150 else (AREA_EDGE_ZOOM, 0.6)
    gids: dict[str, tuple[str, str, str]] = {}
    for i, (k, p, (_, row), c) in enumerate(zip(keys, paths, table.iterrows(), cls, strict=True)):
        gid = f"area-{i}"
        colour = classes.nodata_colour if c < 0 else classes.colours[c]
        _add_patch(ax, PathPatch(p, facecolor=colour, edgecolor=edge, lw=edge_lw, zorder=2, gid=gid))
        gids[gid] = (k, _tooltip(row, tooltip_columns), "nodata" if c < 0 else str(int(c)))
    return gids


def _draw_kreis_borders(ax: Axes, map_geometry: MapGeometry, view: shapely.Geometry) -> None:
    """Kreis borders over the fills (the Land outline for a Kreis map is the same lines)."""
    geoms = np.asarray(map_geometry.kreis.geometry.values, dtype=object)
    for g in geoms[shapely.intersects(geoms, view)].tolist():
        p = _path(g)
        if p is not None:
            _add_patch(ax, PathPatch(p, facecolor="none", edgecolor=KREIS_EDGE, lw=0.9, zorder=3))


def _draw_highlight(ax: Axes, highlight: Iterable[str] | str, geom_by_key: dict[str, shapely.Geometry]) -> None:
    """Black line on a white halo around the highlighted areas: visible on every class colour."""
    hl = {highlight} if isinstance(highlight, str) else {str(h) for h in highlight}
    for k in sorted(hl & set(geom_by_key)):
        p = _path(geom_by_key[k])
        if p is not None:
            _add_patch(ax, PathPatch(p, facecolor="none", edgecolor=HIGHLIGHT_HALO, lw=3.6, zorder=4))
            _add_patch(ax, PathPatch(p, facecolor="none", edgecolor=HIGHLIGHT_EDGE, lw=1.6, zorder=5))


def _draw_title(fig: Figure, title: str, subtitle: str | None) -> None:
    fig.text(0.03, 0.955, title, fontsize=16, weight="bold", va="top", ha="left", color="#111111")
    if subtitle:
        fig.text(0.03, 0.915, subtitle, fontsize=10.5, va="top", ha="left", color="#333333")


def _draw_legend(fig: Figure, cls: np.ndarray, classes: Classes, value_column: str, legend_title: str,
                 level: str, highlighted: bool, with_context: bool) -> None:
    """Legend with the number of areas per class, and a note right under it."""
    counts = np.bincount(cls[cls >= 0], minlength=len(classes.breaks)) if len(cls) else np.zeros(0, int)
    handles = [Patch(facecolor=col, edgecolor="#888888", lw=0.4) for col in classes.colours]
    labels = [f"{lab}  ({counts[i]})" for i, lab in enumerate(classes.labels)]
    n_nodata = int((cls < 0).sum())
    if n_nodata or value_column.startswith("share_"):
        handles.append(Patch(facecolor=classes.nodata_colour, edgecolor="#888888", lw=0.4))
        labels.append(f"{classes.nodata_label}  ({n_nodata})")
    if highlighted:
        handles.append(Patch(facecolor="none", edgecolor=HIGHLIGHT_EDGE, lw=1.6))
        labels.append("hervorgehoben")
    if with_context:
        handles.append(Patch(facecolor=CONTEXT_FACE, edgecolor=CONTEXT_EDGE, lw=0.4))
        labels.append("außerhalb des Ausschnitts")
    handles.append(Patch(facecolor="none", edgecolor=KREIS_EDGE, lw=0.9))
    labels.append("Kreisgrenze")
    level_word = LEVEL_LABELS.get(level, level)
    leg = fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(PANEL_X, 0.875), frameon=False,
                     fontsize=9, title=_wrap(legend_title, 30), title_fontsize=10,
                     alignment="left", handlelength=1.6, handleheight=1.1, labelspacing=0.55, borderaxespad=0)
    leg.get_title().set_fontweight("bold")
    # Measure the legend (layout only, no drawing) to put the note right under it.
    fw, fh = fig.get_size_inches()
    box = leg.get_window_extent(RendererAgg(fw * fig.dpi, fh * fig.dpi, fig.dpi)).transformed(
        fig.transFigure.inverted())
    fig.text(PANEL_X, box.y0 - 0.012, f"Zahl in Klammern: {level_word} je Klasse", fontsize=7.5,
             color="#444444", va="top")


def _draw_footer(fig: Figure, data_date: str | None, attributions: Sequence[str]) -> None:
    """Data date and attributions."""
    foot = []
    if data_date:
        foot.append(f"Datenstand: {format_date(data_date)}")
    foot += [str(a) for a in attributions]
    if foot:
        fig.text(0.03, 0.02, "\n".join(foot), fontsize=7, color="#444444", va="bottom", ha="left",
                 linespacing=1.4)


def _build_figure(
    map_geometry: MapGeometry, table: pd.DataFrame, level: str, value_column: str, *, title: str,
    legend_title: str, subtitle: str | None, tooltip_columns: Sequence[str] | None,
    highlight: Iterable[str] | str | None, attributions: Sequence[str], data_date: str | None,
    classes: Classes | None,
) -> _Drawn:
    if tooltip_columns is None:
        tooltip_columns = _default_tooltip_columns(table, value_column)
    key = _check_table(table, level, value_column, tooltip_columns)
    keys, geom_by_key = _mapped_geometries(map_geometry, table, level, key)
    values = pd.to_numeric(table[value_column], errors="coerce")
    classes = classes or classes_for(value_column, values)
    cls = classify(values, classes)

    fig = Figure(figsize=FIG_SIZE, dpi=100)
    fw, fh = FIG_SIZE
    ax = fig.add_axes(MAP_BOX)
    ax.set_axis_off()
    subset = gpd.GeoSeries([geom_by_key[k] for k in keys], crs=map_geometry.level(level).crs)
    x0, x1, y0, y1 = _extent(subset.total_bounds, MAP_BOX[2] * fw, MAP_BOX[3] * fh)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")

    in_table = set(keys)
    view = shapely.box(x0, y0, x1, y1)
    _draw_context(ax, geom_by_key, in_table, view)
    gids = _draw_areas(ax, table, keys, cls, classes, geom_by_key, tooltip_columns, level, key)
    _draw_kreis_borders(ax, map_geometry, view)
    if highlight is not None:
        _draw_highlight(ax, highlight, geom_by_key)
    _draw_title(fig, title, subtitle)
    _draw_legend(fig, cls, classes, value_column, legend_title, level, highlighted=highlight is not None,
                 with_context=len(in_table) < len(geom_by_key))
    m_per_inch = (x1 - x0) / (MAP_BOX[2] * fw)
    _draw_north_arrow(fig, PANEL_X + 0.02, 0.26)
    _draw_scale_bar(fig, m_per_inch, PANEL_X, 0.18)
    _draw_footer(fig, data_date, attributions)
    return _Drawn(fig=fig, gids=gids)


_RC: dict[RcKeyType, Any] = {"font.family": "DejaVu Sans", "svg.fonttype": "path", "svg.hashsalt": "bbcov-report",
                             "path.simplify": False, "figure.dpi": 100}


def _postprocess_svg(svg: str, drawn: _Drawn, link_template: str | None) -> str:
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    root = ET.fromstring(svg)
    # each element's parent and place in it: a linked area replaces its group in place, so places stay valid
    where = {child: (parent, i) for parent in root.iter() for i, child in enumerate(parent)}
    found = 0
    for g in list(root.iter(f"{{{SVG_NS}}}g")):
        info = drawn.gids.get(g.get("id", ""))
        if info is None:
            continue
        key, tip, cls = info
        found += 1
        g.set("class", "area")
        g.set("data-key", key)
        g.set("data-class", cls)
        title = ET.Element(f"{{{SVG_NS}}}title")
        title.text = tip
        g.insert(0, title)
        if link_template is not None:
            href = link_template.format(key=quote(key, safe=""))
            parent, idx = where[g]
            a = ET.Element(f"{{{SVG_NS}}}a", {"href": href, f"{{{XLINK_NS}}}href": href})
            a.append(g)
            parent[idx] = a
    if found != len(drawn.gids):  # pragma: no cover - matplotlib changed how it writes gids
        raise RuntimeError(f"SVG post-processing found {found} of {len(drawn.gids)} area groups")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def choropleth_svg(
    map_geometry: MapGeometry,
    table: pd.DataFrame,
    level: str,
    value_column: str,
    *,
    title: str,
    legend_title: str,
    subtitle: str | None = None,
    link_template: str | None = None,
    tooltip_columns: Sequence[str] | None = None,
    highlight: Iterable[str] | str | None = None,
    attributions: Sequence[str] = (),
    data_date: str | None = None,
    classes: Classes | None = None,
) -> str:
    """Classed choropleth of ``table[value_column]`` for the areas in ``table`` as an SVG document.

    ``table`` holds one row per area of ``level`` (key column per level as in
    :data:`coverage.model.LEVEL_KEYS`, plus ``name``); pass a subset (one Kreis,
    one Amt) to map only those areas — the other areas in view are drawn light grey.
    Every mapped area is one ``<g class="area" data-key=… data-class=…>`` with a ``<title>``
    tooltip (name and ``tooltip_columns``, default: the value, households and, for shares,
    the households below the threshold), wrapped in ``<a href>`` if ``link_template``
    (``str.format`` template with ``{key}``, e.g. ``"gemeinde/{key}.html"``) is given.
    Shares use the fixed classes of :func:`share_classes`, counts :func:`count_classes`.
    """
    opts = _FigureOptions(title=title, legend_title=legend_title, subtitle=subtitle, classes=classes,
                          tooltip_columns=tooltip_columns, highlight=highlight, attributions=attributions,
                          data_date=data_date)
    with mpl.rc_context(_RC):
        drawn = _build_figure(map_geometry, table, level, value_column, **opts)
        buf = io.StringIO()
        drawn.fig.savefig(buf, format="svg",
                          metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    return _postprocess_svg(buf.getvalue(), drawn, link_template)


def choropleth_png(
    map_geometry: MapGeometry,
    table: pd.DataFrame,
    level: str,
    value_column: str,
    *,
    title: str,
    legend_title: str,
    subtitle: str | None = None,
    tooltip_columns: Sequence[str] | None = None,
    highlight: Iterable[str] | str | None = None,
    attributions: Sequence[str] = (),
    data_date: str | None = None,
    classes: Classes | None = None,
    dpi: int = 170,
    link_template: str | None = None,  # accepted for symmetry with choropleth_svg; PNGs have no links
) -> bytes:
    """The same figure as :func:`choropleth_svg` as PNG bytes (A4 landscape, ``dpi`` for print)."""
    opts = _FigureOptions(title=title, legend_title=legend_title, subtitle=subtitle, classes=classes,
                          tooltip_columns=tooltip_columns, highlight=highlight, attributions=attributions,
                          data_date=data_date)
    with mpl.rc_context(_RC):
        drawn = _build_figure(map_geometry, table, level, value_column, **opts)
        buf = io.BytesIO()
        drawn.fig.savefig(buf, format="png", dpi=dpi, facecolor="white",
                          metadata={"Software": None})
    return buf.getvalue()
