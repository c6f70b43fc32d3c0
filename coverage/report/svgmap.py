"""Fast SVG maps written directly from the simplified geometry (no matplotlib).

Used for the many small maps of the atlas (one per Kreis, Amt and Gemeinde page): an
SVG is one ``<path d=…>`` per area, so writing it costs milliseconds and gives exact
control over links and tooltips. The legend, title and attributions are HTML around
the map (see :func:`legend_entries`). Every text from the data is XML-escaped.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np
import pandas as pd
import shapely

from coverage.errors import InputDataError
from coverage.report.geometry import AreaLookup, MapGeometry
from coverage.report.maps import (
    AREA_EDGE_ZOOM,
    CONTEXT_EDGE,
    CONTEXT_FACE,
    HIGHLIGHT_EDGE,
    HIGHLIGHT_HALO,
    KREIS_EDGE,
    Classes,
    _check_table,
    _default_tooltip_columns,
    _tooltip,
    classes_for,
    classify,
)
from coverage.text import document_text

SVG_NS = "http://www.w3.org/2000/svg"
AMT_EDGE = "#525252"


def _esc(text: object) -> str:
    return html.escape(document_text(str(text)), quote=True)  # XML has no place for control characters


@dataclass(frozen=True)
class _Frame:
    """Data -> SVG user units: x' = (x - x0) * s, y' = (y1 - y) * s."""

    x0: float
    y1: float
    s: float
    width: float
    height: float

    def d(self, geom: shapely.Geometry | None) -> str:
        """Path data of a (Multi)Polygon; one subpath per ring (holes drawn by the even-odd rule)."""
        if geom is None or shapely.is_empty(geom):
            return ""
        parts = []
        for poly in shapely.get_parts(geom):
            if not isinstance(poly, shapely.Polygon):
                continue
            for ring in (poly.exterior, *poly.interiors):
                xy = shapely.get_coordinates(ring)[:-1]
                if len(xy) < 3:
                    continue
                px = np.round((xy[:, 0] - self.x0) * self.s, 1)
                py = np.round((self.y1 - xy[:, 1]) * self.s, 1)
                pts = " ".join(f"{x:g},{y:g}" for x, y in zip(px.tolist(), py.tolist(), strict=True))
                parts.append(f"M{pts}Z")
        return "".join(parts)


def _frame(bounds: Sequence[float], max_width: float, max_height: float, margin: float) -> _Frame:
    x0, y0, x1, y1 = (float(b) for b in bounds)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    x0, x1, y0, y1 = x0 - w * margin, x1 + w * margin, y0 - h * margin, y1 + h * margin
    s = min(max_width / (x1 - x0), max_height / (y1 - y0))
    return _Frame(x0, y1, s, round((x1 - x0) * s, 1), round((y1 - y0) * s, 1))


def legend_entries(table: pd.DataFrame, value_column: str, classes: Classes | None = None
                   ) -> list[dict[str, object]]:
    """Legend rows (colour, label, number of areas) of a map of ``table[value_column]``."""
    values = pd.to_numeric(table[value_column], errors="coerce")
    classes = classes or classes_for(value_column, values)
    cls = classify(values, classes)
    counts = np.bincount(cls[cls >= 0], minlength=len(classes.breaks)) if len(cls) else np.zeros(0, int)
    rows = [{"colour": c, "label": lab, "count": int(counts[i])}
            for i, (c, lab) in enumerate(zip(classes.colours, classes.labels, strict=True))]
    rows.append({"colour": classes.nodata_colour, "label": classes.nodata_label, "count": int((cls < 0).sum())})
    return rows


@dataclass(frozen=True)
class AreaMap:
    """One map drawn from the geometry once; :meth:`svg` assembles it as inline element or ``.svg`` file.

    ``context`` and ``areas`` hold (element, escaped link target or ``None``) pairs, so the linked
    map of a page and the unlinked map file come from the same drawing.
    """

    width: float
    height: float
    label: str
    context: tuple[tuple[str, str | None], ...]
    areas: tuple[tuple[str, str | None], ...]
    borders: tuple[str, ...]
    labels: tuple[str, ...] = ()
    #: data -> SVG user units (x0, y1, s): read by ``static/map.js`` to place grid cells and addresses
    frame: tuple[float, float, float] = (0.0, 0.0, 1.0)

    def svg(self, *, standalone: bool = False, links: bool = True) -> str:
        """``standalone=True``: document with XML declaration and namespace (for a ``.svg`` file);
        otherwise an ``<svg>`` element to inline in HTML (no URL in it). ``links=False`` leaves out
        every ``<a href>``."""
        out = []
        if standalone:
            out.append('<?xml version="1.0" encoding="utf-8"?>\n')
        ns = f' xmlns="{SVG_NS}"' if standalone else ""
        aria = f' role="img" aria-label="{_esc(self.label)}"' if self.label else ""
        x0, y1, sc = self.frame
        out.append(f'<svg{ns} class="atlas-map" viewBox="0 0 {self.width:g} {self.height:g}" '
                   f'width="{self.width:g}" height="{self.height:g}"{aria} '
                   f'data-x0="{x0:.2f}" data-y1="{y1:.2f}" data-s="{sc:.8g}">')
        out.append(f'<rect width="{self.width:g}" height="{self.height:g}" fill="#ffffff"/>')
        out.append(f'<g class="context" fill="{CONTEXT_FACE}" stroke="{CONTEXT_EDGE}" stroke-width="0.6">')
        out += [_linked(item, href, links) for item, href in self.context]
        out.append("</g>")
        out.append(f'<g class="areas" stroke="{AREA_EDGE_ZOOM}" stroke-width="0.7">')
        out += [_linked(item, href, links) for item, href in self.areas]
        out.append("</g>")
        # Borders of the administrative levels above, over the fills, never catching the mouse.
        out.append('<g class="borders" fill="none" pointer-events="none">')
        out += self.borders
        out.append("</g>")
        if self.labels:
            out.append('<g class="labels" pointer-events="none">')
            out += self.labels
            out.append("</g>")
        out.append("</svg>")
        return "".join(out)


    def with_highlight(self, geoms: Iterable[shapely.Geometry | None]) -> AreaMap:
        """The same drawing with ``geoms`` outlined over it, as :func:`draw_area_map` with ``highlight``
        draws them (in that order): the locator maps of an Amt's Gemeinden differ only in the outline, so
        the Amt is drawn once and each Gemeinde's map is this."""
        x0, y1, s = self.frame
        fr = _Frame(x0, y1, s, self.width, self.height)
        return dataclasses.replace(self, borders=self.borders + tuple(
            p for g in geoms for p in _highlight_paths(fr.d(g))))


def _highlight_paths(d: str) -> tuple[str, str]:
    """Black line on a white halo: visible on every class colour."""
    return (f'<path class="highlight" d="{d}" stroke="{HIGHLIGHT_HALO}" stroke-width="5"/>',
            f'<path class="highlight" d="{d}" stroke="{HIGHLIGHT_EDGE}" stroke-width="2.4"/>')


def _linked(item: str, href: str | None, links: bool) -> str:
    return f'<a href="{href}">{item}</a>' if links and href is not None else item


def _href(template: str | None, key: str) -> str | None:
    return None if template is None else _esc(template.format(key=quote(key, safe="")))


def _in_view(gb: np.ndarray, view: Sequence[float]) -> np.ndarray:
    """Bounding boxes that overlap the view (vectorised; enough to decide what to draw)."""
    return (gb[:, 0] <= view[2]) & (gb[:, 2] >= view[0]) & (gb[:, 1] <= view[3]) & (gb[:, 3] >= view[1])


def _mapped_keys(table: pd.DataFrame, key: str, level: str, geom_by_key: dict) -> list[str]:
    """The table's area keys, each with a geometry (else :class:`InputDataError`)."""
    keys = table[key].astype(str).tolist()
    unknown = [k for k in keys if k not in geom_by_key]
    if unknown:
        raise InputDataError(f"{level} table: {len(unknown)} key(s) have no geometry in the map "
                             f"(first: {key}={unknown[0]!r})")
    if not keys:
        raise InputDataError(f"{level} map: the table has no rows to draw")
    return keys


def _context_items(look: AreaLookup, in_table: set[str], visible: np.ndarray, fr: _Frame,
                   link_template: str | None) -> list[tuple[str, str | None]]:
    """Grey, titled neighbours in view that are not in the table."""
    items = []
    for k, g in zip(look.keys[visible].tolist(), look.geoms[visible].tolist(), strict=True):
        if k in in_table:
            continue
        d = fr.d(g)
        if not d:
            continue
        items.append((f'<g class="context-area" data-key="{_esc(k)}"><title>{_esc(look.name_by_key[k])}</title>'
                      f'<path d="{d}" fill-rule="evenodd"/></g>', _href(link_template, k)))
    return items


def _area_items(table: pd.DataFrame, keys: list[str], cls: np.ndarray, classes: Classes, fr: _Frame,
                geom_by_key: dict, tooltip_columns: Sequence[str], link_template: str | None, level: str,
                key: str) -> list[tuple[str, str | None]]:
    """One coloured, titled ``<g class="area">`` per row of the table."""
    needed = list(dict.fromkeys(["name", *tooltip_columns]))
    records = [dict(zip(needed, vals, strict=True))
               for vals in table[needed].astype(object).to_numpy().tolist()]
    items = []
    for k, rec, c in zip(keys, records, cls, strict=True):
        d = fr.d(geom_by_key[k])
        if not d:
            raise InputDataError(f"{level} map: area {key}={k!r} has an empty geometry and cannot be drawn")
        colour = classes.nodata_colour if c < 0 else classes.colours[c]
        tip = _tooltip(rec, tooltip_columns)
        data_class = "nodata" if c < 0 else str(int(c))
        items.append((f'<g class="area" data-key="{_esc(k)}" data-class="{data_class}"><title>{_esc(tip)}</title>'
                      f'<path d="{d}" fill="{colour}" fill-rule="evenodd"/></g>', _href(link_template, k)))
    return items


def _border_paths(map_geometry: MapGeometry, level: str, fr: _Frame, view: Sequence[float],
                  highlight: Iterable[str] | str | None, geom_by_key: dict) -> list[str]:
    """Amt and Kreis borders above ``level`` in view, then the outline of the highlighted areas."""
    out = []
    if level == "gemeinde":
        amt = map_geometry.lookup("amt")
        for g in amt.geoms[_in_view(amt.bounds, view)]:
            out.append(f'<path d="{fr.d(g)}" stroke="{AMT_EDGE}" stroke-width="1.1"/>')
    if level in ("gemeinde", "amt"):
        kreis = map_geometry.lookup("kreis")
        for g in kreis.geoms[_in_view(kreis.bounds, view)]:
            out.append(f'<path d="{fr.d(g)}" stroke="{KREIS_EDGE}" stroke-width="2"/>')
    if highlight is not None:
        hl = {highlight} if isinstance(highlight, str) else {str(h) for h in highlight}
        for k in sorted(hl & set(geom_by_key)):
            out += _highlight_paths(fr.d(geom_by_key[k]))
    return out


#: Approximate advance of one character of the label font (11 px sans-serif), for collision tests.
_CHAR_W = 6.0
_LABEL_PX = 11


def _place_labels(look: AreaLookup, keys: list[str], weights: np.ndarray, fr: _Frame, max_labels: int,
                  anchors: dict[str, tuple[float, float]]) -> list[str]:
    """Names of the largest areas (by ``weights``, e.g. households) that fit without overlapping,
    at a point inside each area; at most ``max_labels``. Greedy: a label is kept when its box
    touches no box kept before it and lies inside the map."""
    order = np.argsort(-np.nan_to_num(weights, nan=0.0), kind="stable")
    placed: list[tuple[float, float, float, float]] = []
    out: list[str] = []
    for i in order.tolist():
        if len(out) >= max_labels:
            break
        k = keys[i]
        name = str(look.name_by_key.get(k, k))
        x, y = anchors[k]
        px, py = (x - fr.x0) * fr.s, (fr.y1 - y) * fr.s
        w, h = len(name) * _CHAR_W + 4, _LABEL_PX + 3
        box = (px - w / 2, py - h / 2, px + w / 2, py + h / 2)
        if box[0] < 0 or box[1] < 0 or box[2] > fr.width or box[3] > fr.height:
            continue
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
            continue
        placed.append(box)
        out.append(f'<text x="{px:.1f}" y="{py + 4:.1f}" text-anchor="middle">{_esc(name)}</text>')
    return out


def _anchors(geom_by_key: dict, keys: list[str]) -> dict[str, tuple[float, float]]:
    """A point inside each area (vectorised ``point_on_surface``)."""
    pts = shapely.get_coordinates(shapely.point_on_surface(np.asarray([geom_by_key[k] for k in keys],
                                                                       dtype=object)))
    return {k: (float(x), float(y)) for k, (x, y) in zip(keys, pts.tolist(), strict=True)}


def draw_area_map(
    map_geometry: MapGeometry,
    table: pd.DataFrame,
    level: str,
    value_column: str,
    *,
    link_template: str | None = None,
    context_link_template: str | None = None,
    highlight: Iterable[str] | str | None = None,
    classes: Classes | None = None,
    tooltip_columns: Sequence[str] | None = None,
    label: str = "",
    max_width: float = 760,
    max_height: float = 620,
    margin: float = 0.04,
    max_labels: int = 0,
) -> AreaMap:
    """Draw the map of :func:`area_map_svg` once; its :meth:`AreaMap.svg` gives the inline and file forms.

    ``max_labels`` > 0 labels up to that many areas of the table with their names, largest
    (households, else area) first, leaving out those that would overlap."""
    if tooltip_columns is None:
        tooltip_columns = _default_tooltip_columns(table, value_column)
    key = _check_table(table, level, value_column, tooltip_columns)
    look = map_geometry.lookup(level)
    geom_by_key = look.geom_by_key
    keys = _mapped_keys(table, key, level, geom_by_key)
    values = pd.to_numeric(table[value_column], errors="coerce")
    classes = classes or classes_for(value_column, values)
    cls = classify(values, classes)

    b = shapely.bounds(np.asarray([geom_by_key[k] for k in keys], dtype=object))
    fr = _frame((b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()), max_width, max_height, margin)
    view = (fr.x0, fr.y1 - fr.height / fr.s, fr.x0 + fr.width / fr.s, fr.y1)
    context = _context_items(look, set(keys), _in_view(look.bounds, view), fr, context_link_template)
    areas = _area_items(table, keys, cls, classes, fr, geom_by_key, tooltip_columns, link_template, level, key)
    borders = _border_paths(map_geometry, level, fr, view, highlight, geom_by_key)
    labels: list[str] = []
    if max_labels > 0:
        weights = (pd.to_numeric(table["households"], errors="coerce").to_numpy(dtype="float64")
                   if "households" in table.columns else shapely.area(np.asarray([geom_by_key[k] for k in keys])))
        labels = _place_labels(look, keys, weights, fr, max_labels, _anchors(geom_by_key, keys))
    return AreaMap(fr.width, fr.height, label, tuple(context), tuple(areas), tuple(borders), tuple(labels),
                   (fr.x0, fr.y1, fr.s))


def area_map_svg(
    map_geometry: MapGeometry,
    table: pd.DataFrame,
    level: str,
    value_column: str,
    *,
    link_template: str | None = None,
    context_link_template: str | None = None,
    highlight: Iterable[str] | str | None = None,
    classes: Classes | None = None,
    tooltip_columns: Sequence[str] | None = None,
    label: str = "",
    max_width: float = 760,
    max_height: float = 620,
    margin: float = 0.04,
    standalone: bool = False,
    max_labels: int = 0,
) -> str:
    """Choropleth of the areas in ``table`` (one row per area of ``level``), neighbours in grey.

    Each mapped area is ``<g class="area" data-key=… data-class=…><title>…</title><path/></g>``,
    wrapped in ``<a href>`` when ``link_template`` (``str.format`` with ``{key}``) is given;
    neighbouring areas in view are grey, titled, and linked with ``context_link_template``.
    Amt and Kreis borders are drawn over the fills; ``highlight`` keys get a black outline.
    ``standalone=True`` returns a document with XML declaration and namespace (for a ``.svg``
    file); otherwise an ``<svg>`` element to inline in HTML (no URL in it). To write both forms
    of one map, draw it once with :func:`draw_area_map`.
    """
    drawn = draw_area_map(map_geometry, table, level, value_column, link_template=link_template,
                          context_link_template=context_link_template, highlight=highlight, classes=classes,
                          tooltip_columns=tooltip_columns, label=label, max_width=max_width,
                          max_height=max_height, margin=margin, max_labels=max_labels)
    return drawn.svg(standalone=standalone)
