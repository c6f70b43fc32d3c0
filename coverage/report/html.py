"""The offline HTML overview (``index.html``) of a coverage run.

One self-contained file: CSS and JavaScript are read from the package
(``coverage/report/static``) and inlined, maps are inlined SVG, and nothing refers
to any external URL. All text goes through jinja2 autoescaping; only the CSS, the
JavaScript and SVGs produced by :mod:`coverage.report.maps` (whose text ElementTree
escaped) are marked safe. Control characters in any printed value are escaped first
(``\x1b``; the rule is in :mod:`coverage.text`).
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import KeysView, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, SupportsFloat, TypeAlias, cast
from urllib.parse import quote

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from coverage.errors import InputDataError, SchemaError
from coverage.model import GROUP_LABELS, LEVEL_KEYS
from coverage.report.maps import (
    SVG_NS,
    XLINK_NS,
    format_date,
    format_int,
    format_percent,
)
from coverage.text import DOCUMENT_CONTROLS, document_text

#: Thresholds (Mbit/s) shown as headline shares and table columns when the tables have them.
HEADLINE_THRESHOLDS = (30, 100, 1000)
#: Below this many Mbit/s a household counts as underserved ("weiße Flecken" of the NGA funding rules).
UNDERSERVED_T = 30
TOP_N = 25


def _t(t: float) -> str:
    return f"{t:g}"


class AreaRow(dict[str, Any]):
    """A table row as a dict (column -> value) that also answers ``row.index`` like a pandas row: the
    pages look up hundreds of figures each, and a dict lookup costs a fraction of a Series'."""

    @property
    def index(self) -> KeysView[str]:
        return self.keys()


#: One area's figures: a pandas row or an :class:`AreaRow`.
RowLike: TypeAlias = "pd.Series | AreaRow"


@dataclass(frozen=True)
class _Cell:
    text: str
    value: object = None  # raw number for sorting (data-value); None for text cells
    css: str = ""
    href: str = ""  # link target of the cell text (relative path), if any


@dataclass(frozen=True)
class _Column:
    label: str
    column: str
    kind: str  # "text", "int", "pct", "pp" (signed percentage points), "rank"

    @property
    def css(self) -> str:
        return "" if self.kind == "text" else "num"


def _cell(col: _Column, value: object) -> _Cell:
    if col.kind == "text":
        return _Cell("" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value))
    # a cell of a number column: a number, None or NaN (pandas hands it over untyped)
    raw = None if value is None or pd.isna(value) else float(cast(SupportsFloat, value))
    if col.kind == "pp":  # signed change in percentage points, German decimal comma
        text = "" if raw is None else f"{raw:+.1f} pp".replace(".", ",").replace("-", "−")
    else:
        text = format_percent(raw) if col.kind == "pct" else format_int(raw)
    return _Cell(text, "" if raw is None else repr(round(raw, 6)), "num")


def _rows(frame: pd.DataFrame | Sequence[Mapping[str, object]], columns: Sequence[_Column],
          links: Mapping[str, tuple[str, str]] | None = None) -> list[list[_Cell]]:
    """Table cells of a frame or of records (dicts; the small tables of an area page are built as
    records: a DataFrame per table cost more than its cells); ``links``: column -> (key column,
    ``str.format`` template with ``{key}``)."""
    links = dict(links or {})
    cols = list(dict.fromkeys([c.column for c in columns] + [k for k, _ in links.values()]))
    if isinstance(frame, pd.DataFrame):  # column by column: Python values without an object copy of the frame
        records: Sequence[Mapping[str, object]] = [
            dict(zip(cols, vals, strict=True)) for vals in zip(*(frame[c].tolist() for c in cols), strict=True)]
    else:
        records = frame
    rows = []
    for rec in records:
        row = []
        for c in columns:
            cell = _cell(c, rec[c.column])
            if c.column in links:
                key_col, template = links[c.column]
                key = rec[key_col]
                if key is not None and not (isinstance(key, float) and np.isnan(key)):
                    cell = _Cell(cell.text, cell.value, cell.css, template.format(key=quote(str(key), safe="")))
            row.append(cell)
        rows.append(row)
    return rows


def _finalize(value: object) -> object:
    """Every value a template prints, before autoescaping: control characters escaped as
    :mod:`coverage.text` says (HTML has no place for them); safe markup stays safe markup."""
    if isinstance(value, Markup):
        return Markup(document_text(str(value)))
    return document_text(value) if isinstance(value, str) else value


#: What :func:`_printed` changes in a text: markup characters (autoescaping) and control characters.
_TO_PRINT = re.compile(r"[&<>\"']|" + DOCUMENT_CONTROLS)


def _printed(value: object) -> str:
    """``value`` as ``{{ value }}`` prints it: :func:`_finalize`, then autoescaping (plain text without
    a character to change, most cells, is printed as it is)."""
    if type(value) is str and not _TO_PRINT.search(value):
        return value
    return str(escape(_finalize(value)))


def table_body(rows: Sequence[Sequence[_Cell]]) -> Markup:
    """The ``<tr>`` lines of a table's body, as a template loop over every cell wrote them (that loop
    was most of the atlas's page-writing time; ``_macros.html.j2`` calls this instead)."""
    out = []
    for row in rows:
        out.append("    <tr>\n")
        for cell in row:
            css = f' class="{_printed(cell.css)}"' if cell.css else ""
            value = f' data-value="{_printed(cell.value)}"' if cell.value is not None else ""
            text = _printed(cell.text)
            inner = f'<a href="{_printed(cell.href)}">{text}</a>' if cell.href else text
            out.append(f"      <td{css}{value}>{inner}</td>\n")
        out.append("    </tr>\n")
    return Markup("".join(out))


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("coverage.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters["de_int"] = format_int
    env.filters["de_pct"] = format_percent
    env.globals["table_body"] = table_body
    return env


@functools.cache
def _static(name: str) -> str:
    return files("coverage.report").joinpath("static", name).read_text(encoding="utf-8")


_URL_REF = re.compile(r"url\(#([^)\s]+)\)")


def inline_svg(svg: str, id_prefix: str, label: str = "") -> Markup:
    """Make an SVG document from :func:`~coverage.report.maps.choropleth_svg` embeddable in HTML.

    Drops the XML declaration and namespace declarations (HTML parses inline SVG without
    them, and the page then holds no URL at all) and prefixes every ``id`` (and each
    ``url(#…)``/``href="#…"`` reference) with ``id_prefix`` so several maps can share a page.
    """
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as exc:
        raise InputDataError(f"map {label or id_prefix!r}: not a well-formed SVG document ({exc})") from exc
    if root.tag != f"{{{SVG_NS}}}svg":
        raise InputDataError(f"map {label or id_prefix!r}: root element is {root.tag!r}, expected <svg>")
    hrefs = ("href", f"{{{XLINK_NS}}}href")
    for el in root.iter():
        for name, value in list(el.attrib.items()):
            if name == "id":
                el.set(name, f"{id_prefix}-{value}")
            elif name in hrefs and value.startswith("#"):
                el.set(name, f"#{id_prefix}-{value[1:]}")
            elif "url(#" in value:
                el.set(name, _URL_REF.sub(lambda m: f"url(#{id_prefix}-{m.group(1)})", value))
    root.set("role", "img")
    if label:
        root.set("aria-label", label)
    text = ET.tostring(root, encoding="unicode")
    head_end = text.index(">")
    head = re.sub(r'\s+xmlns(?::\w+)?="[^"]*"', "", text[:head_end])
    return Markup(head + text[head_end:])


def _require(tables: Mapping[str, pd.DataFrame], needed: dict[str, list[str]]) -> None:
    problems = []
    for level, cols in needed.items():
        if level not in tables:
            problems.append(f"table {level!r} is missing")
            continue
        missing = [c for c in dict.fromkeys(cols) if c not in tables[level].columns]
        if missing:
            problems.append(f"{level} table: missing column(s) {missing}")
    if problems:
        raise SchemaError("cannot render the overview: " + "; ".join(problems))


def _format_timestamp(value: object) -> str:
    text = "" if value is None else str(value)
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})", text)
    if not m:
        return format_date(text)
    return f"{m.group(3)}.{m.group(2)}.{m.group(1)}, {m.group(4)}:{m.group(5)} Uhr"


def funding_cards(row_or_frame: pd.DataFrame | RowLike) -> list[dict[str, str]]:
    """Headline cards of white- and grey-spot households (funding rules ``white``/``grey``), if present."""
    if isinstance(row_or_frame, pd.DataFrame):
        columns = set(row_or_frame.columns)

        def total(col: str) -> float:
            return float(pd.to_numeric(row_or_frame[col], errors="coerce").sum(min_count=1))
    else:  # one row (a Series or a dict): its value, NaN when it is no number
        columns = set(row_or_frame.index)

        def total(col: str) -> float:
            value = row_or_frame[col]
            if isinstance(value, (int, float, np.number)):
                return float(value)
            return float(pd.to_numeric(pd.Series([value]), errors="coerce").sum(min_count=1))
    hh = total("households")
    out = []
    for rule, label, below in (("white", "Weiße Flecken", 30), ("grey", "Graue Flecken", 100)):
        col = f"hh_fund_{rule}"
        if col not in columns:
            continue
        n = total(col)
        share = format_percent(100.0 * n / hh) if hh > 0 else "–"
        out.append({"label": f"{label} (Haushalte)", "value": format_int(n),
                    "note": f"{share} der Haushalte ohne Festnetz ≥ {below} Mbit/s (ohne Planung)"})
    return out


def sites_card(sites: pd.DataFrame, threshold: float = 100) -> dict[str, str]:
    """Headline card: administrative sites and schools below ``threshold`` Mbit/s (best download)."""
    down = pd.to_numeric(sites["best_down"], errors="coerce").fillna(0.0)
    n_below = int((down < threshold).sum())
    return {"label": f"Standorte unter {_t(threshold)} Mbit/s", "value": format_int(n_below),
            "note": f"von {format_int(len(sites))} Verwaltungen und Schulen"}


def business_figures(frame: pd.DataFrame) -> pd.Series:
    """The business counts (``businesses``, ``[plan_]biz_ge_*``) summed over the rows of ``frame``, with
    ``[plan_]biz_share_ge_*`` recomputed from the sums (empty without businesses)."""
    counts = [c for c in frame.columns if c == "businesses" or re.match(r"^(plan_)?biz_ge_", str(c))]
    row = frame[counts].apply(pd.to_numeric, errors="coerce").sum(min_count=1)
    n = float(row.get("businesses", 0.0))
    for c in counts:
        if c != "businesses":
            row[c.replace("biz_ge_", "biz_share_ge_")] = 100.0 * float(row[c]) / n if n > 0 else np.nan
    return row


def business_table(row: RowLike, groups: Sequence[str], thresholds: Sequence[float], tid: str) -> dict | None:
    """The "Gewerbe" table: share of businesses per technology group (rows) and threshold, the last
    column with planned supply; None when ``row`` has no business shares (tables of older runs)."""
    thresholds = [t for t in thresholds if any(f"biz_share_ge_{_t(t)}_{g}" in row.index for g in groups)]
    if not thresholds:
        return None
    last = _t(thresholds[-1])
    records = [{"group": GROUP_LABELS.get(g, g), **{f"t{_t(t)}": row.get(f"biz_share_ge_{_t(t)}_{g}", np.nan)
                                                   for t in thresholds},
                "plan": row.get(f"plan_biz_share_ge_{last}_{g}", np.nan)} for g in groups]
    cols = [_Column("Technologie", "group", "text")]
    cols += [_Column(f"≥ {_t(t)} Mbit/s", f"t{_t(t)}", "pct") for t in thresholds]
    cols.append(_Column(f"≥ {last} Mbit/s mit Planung", "plan", "pct"))
    return {"id": tid, "columns": cols, "rows": _rows(records, cols), "total": None}


def scope_name(tables: Mapping[str, pd.DataFrame]) -> str:
    """What the run covers, as its pages are headed: the one Amt ("Amt Neverin", an amtsfreie Gemeinde by
    its name), the one Kreis ("Landkreis Rostock"), else the Land ("Mecklenburg-Vorpommern")."""
    kreis, amt, land = tables["kreis"], tables["amt"], tables["land"]
    if len(kreis) == 1 and len(amt) == 1:
        row = amt.iloc[0]
        bez = str(row.get("bez", "") or "")
        return f"Amt {row['name']}" if bez == "Amt" and not str(row["name"]).startswith("Amt ") else str(row["name"])
    if len(kreis) == 1:
        return str(kreis["name"].iloc[0])
    return str(land["name"].iloc[0]) if len(land) == 1 else "Gebiet"


def scope_title(title: str, tables: Mapping[str, pd.DataFrame], default: str = "Breitbandversorgung") -> str:
    """The atlas title: the configured ``title``, or, if it is the ``default`` ([report] title not set),
    the default followed by :func:`scope_name` ("Breitbandversorgung Amt Neverin")."""
    return f"{title} {scope_name(tables)}" if title == default else title


def empty_gemeinden(gem: pd.DataFrame) -> pd.DataFrame:
    """The Gemeinden of the run without any address in the address data (all their figures are 0 or
    empty, which is not the same as unserved); empty when the table has no ``addresses`` column."""
    if "addresses" not in gem.columns:
        return gem.iloc[:0]
    n = pd.to_numeric(gem["addresses"], errors="coerce").fillna(0)
    return gem[(n == 0).to_numpy()].sort_values("name", key=lambda c: c.astype(str).str.lower())


def empty_list(gem: pd.DataFrame, link: str) -> list[dict[str, str]]:
    """:func:`empty_gemeinden` as name and link (``link``: ``str.format`` template with ``{key}``)."""
    e = empty_gemeinden(gem)
    return [{"name": str(n), "href": link.format(key=quote(str(k), safe=""))}
            for n, k in zip(e["name"], e["ags"], strict=True)]


def _headline_cards(land: pd.DataFrame, thresholds: Sequence[float], lt: str,
                    sites: pd.DataFrame | None) -> list[dict[str, str]]:
    """Households, shares at the headline thresholds, underserved, white/grey spots, sites (sums over ``land``)."""
    hh = float(land["households"].sum(min_count=1))
    cards = [{"label": "Haushalte", "value": format_int(hh), "note": "im Gebiet"}]

    def share(num_col: str) -> float:
        return 100.0 * float(land[num_col].sum(min_count=1)) / hh if hh > 0 else float("nan")

    for t in thresholds:
        num = f"hh_ge_{_t(t)}_all"
        value = share(num) if num in land.columns else float(land[f"share_ge_{_t(t)}_all"].iloc[0])
        cards.append({"label": f"Anteil ≥ {_t(t)} Mbit/s", "value": format_percent(value),
                      "note": "der Haushalte, alle Technologien"})
    cards.append({"label": f"Unterversorgte Haushalte (< {UNDERSERVED_T} Mbit/s)",
                  "value": format_int(land[lt].sum(min_count=1)),
                  "note": f"{format_percent(100.0 * float(land[lt].sum(min_count=1)) / hh if hh > 0 else np.nan)} "
                          "der Haushalte, alle Technologien"})
    cards += funding_cards(land)
    if sites is not None:
        cards.append(sites_card(sites))
    return cards


def _area_columns(thresholds: Sequence[float], fibre: str | None, lt: str) -> list[_Column]:
    """The figures of the Kreis and Amt tables."""
    area_cols = [_Column("Haushalte", "households", "int")]
    area_cols += [_Column(f"Anteil ≥ {_t(t)} Mbit/s", f"share_ge_{_t(t)}_all", "pct") for t in thresholds]
    if fibre:
        area_cols.append(_Column("Glasfaser ≥ 1000 Mbit/s", fibre, "pct"))
    area_cols.append(_Column(f"Haushalte < {UNDERSERVED_T} Mbit/s", lt, "int"))
    return area_cols


def _kreis_table(kreis: pd.DataFrame, land: pd.DataFrame, area_cols: Sequence[_Column], links: bool) -> dict:
    """Kreise by name, with the Land as total row."""
    k = kreis.assign(_name=kreis["name"].astype(str)).sort_values("_name", key=lambda s: s.str.lower())
    columns = [_Column("Kreis", "name", "text"), *area_cols]
    rows = _rows(k, columns, {"name": ("krs_ags", "kreis/{key}.html")} if links else None)
    land_total = land.assign(name="Summe " + land["name"].astype(str))
    total = _rows(land_total.head(1), columns)[0] if len(land) == 1 else None
    return {"id": "tabelle-kreise", "columns": columns, "rows": rows, "total": total}


def _amt_table(amt: pd.DataFrame, kreis_names: Mapping[str, str], area_cols: Sequence[_Column],
               links: bool) -> dict:
    """Ämter by Kreis and name."""
    a = amt.assign(kreis_name=amt["krs_ags"].astype(str).map(kreis_names))
    a = a.sort_values(["kreis_name", "name"], key=lambda s: s.astype(str).str.lower())
    columns = [_Column("Amt / amtsfreie Gemeinde", "name", "text"), _Column("Kreis", "kreis_name", "text"),
               *area_cols]
    rows = _rows(a, columns, {"name": ("vwg_ars", "amt/{key}.html"), "kreis_name": ("krs_ags", "kreis/{key}.html")}
                 if links else None)
    return {"id": "tabelle-aemter", "columns": columns, "total": None, "rows": rows}


def _top_table(gem: pd.DataFrame, kreis_names: Mapping[str, str], amt_names: Mapping[str, str], lt: str,
               links: bool) -> dict:
    """The :data:`TOP_N` Gemeinden with the most households below :data:`UNDERSERVED_T` Mbit/s."""
    g = gem.assign(
        amt_name=gem["vwg_ars"].astype(str).map(amt_names),
        kreis_name=gem["krs_ags"].astype(str).map(kreis_names),
        _lt=pd.to_numeric(gem[lt], errors="coerce").fillna(0),
    )
    g = g[g["_lt"] > 0].sort_values(["_lt", "name"], ascending=[False, True], kind="stable").head(TOP_N)
    g = g.assign(rank=np.arange(1, len(g) + 1))
    top_cols = [_Column("Rang", "rank", "int"), _Column("Gemeinde", "name", "text"),
                _Column("Amt", "amt_name", "text"), _Column("Kreis", "kreis_name", "text"),
                _Column("Haushalte", "households", "int"),
                _Column(f"Haushalte < {UNDERSERVED_T} Mbit/s", lt, "int"),
                _Column(f"Anteil ≥ {UNDERSERVED_T} Mbit/s", f"share_ge_{UNDERSERVED_T}_all", "pct")]
    top_links = {"name": ("ags", "gemeinde/{key}.html"), "amt_name": ("vwg_ars", "amt/{key}.html"),
                 "kreis_name": ("krs_ags", "kreis/{key}.html")}
    return {"id": "tabelle-unterversorgt", "columns": top_cols,
            "rows": _rows(g, top_cols, top_links if links else None), "total": None}


def _overview_maps(map_svgs: Mapping[str, str], map_files: Mapping[str, Mapping[str, str]] | None) -> list[dict]:
    """The maps inlined (ids prefixed ``karte1``, ``karte2``, …) with their file links."""
    files_of = map_files or {}
    return [{"caption": caption, "svg": inline_svg(svg, f"karte{i + 1}", caption),
             "png": files_of.get(caption, {}).get("png", ""),
             "svg_file": files_of.get(caption, {}).get("svg_file", "")}
            for i, (caption, svg) in enumerate(map_svgs.items())]


def render_overview(
    tables: Mapping[str, pd.DataFrame],
    map_svgs: Mapping[str, str],
    meta: Mapping,
    *,
    sites: pd.DataFrame | None = None,
    links: bool = False,
    map_files: Mapping[str, Mapping[str, str]] | None = None,
    downloads: Sequence[Mapping[str, str]] = (),
    provenance: str | None = None,
    changes: str | None = None,
    interactive: Mapping[str, object] | None = None,
    empty_link: str | None = None,
) -> str:
    """Render ``index.html``: headline figures, inlined maps, Kreis and Amt tables, top-25 Gemeinden.

    ``tables``: level -> per-area table (see the package docs for the columns);
    ``map_svgs``: caption -> SVG from :func:`~coverage.report.maps.choropleth_svg`, in display order;
    ``meta``: run_id, created, data_date, boundaries_date, title, thresholds, groups, attributions.
    ``sites``: the per-site table (adds the headline "sites below 100 Mbit/s");
    ``links``: link table rows to the atlas pages ``kreis/…``, ``amt/…``, ``gemeinde/…``;
    ``map_files``: caption -> {"png": path, "svg_file": path} offered next to each map;
    ``downloads``: dicts with label, href, size; ``provenance``: path of the provenance page;
    ``interactive``: the interactive map of all Gemeinden (svg, legend, legend_title, caption, data: the
    ``data-map-*`` attributes for ``static/map.js``), shown above the static maps.
    ``changes``: path of the "Veränderungen" page (on a first run it says that there is nothing to compare);
    ``empty_link``: link template of the Gemeinde pages for the warning about Gemeinden without addresses
    (default: pages when ``links``, else plain names).
    The "Gewerbe" section (business shares per group and threshold) appears when the tables have them.
    White/grey-spot headline figures appear when the land table has ``hh_fund_white``/``hh_fund_grey``.
    Returns one self-contained HTML5 document (CSS and JS inlined, no external URL).
    """
    thresholds = [t for t in HEADLINE_THRESHOLDS
                  if f"share_ge_{_t(t)}_all" in tables.get("land", pd.DataFrame()).columns]
    lt = f"hh_lt_{UNDERSERVED_T}_all"
    base = ["name", "households", lt, f"share_ge_{UNDERSERVED_T}_all"]
    _require(tables, {
        "land": ["land", *base],
        "kreis": ["krs_ags", *base],
        "amt": ["vwg_ars", "krs_ags", *base],
        "gemeinde": ["ags", "vwg_ars", "krs_ags", *base],
    })
    land, kreis, amt, gem = (tables[k] for k in ("land", "kreis", "amt", "gemeinde"))
    fibre = "share_ge_1000_fibre" if "share_ge_1000_fibre" in kreis.columns else None
    cards = _headline_cards(land, thresholds, lt, sites)
    area_cols = _area_columns(thresholds, fibre, lt)
    kreis_names = dict(zip(kreis["krs_ags"].astype(str), kreis["name"].astype(str), strict=False))
    amt_names = dict(zip(amt["vwg_ars"].astype(str), amt["name"].astype(str), strict=False))
    kreis_table = _kreis_table(kreis, land, area_cols, links)
    amt_table = _amt_table(amt, kreis_names, area_cols, links)
    top_table = _top_table(gem, kreis_names, amt_names, lt, links)
    maps = _overview_maps(map_svgs, map_files)
    biz = business_figures(land)
    biz_table = business_table(biz, [str(g) for g in meta.get("groups", [])],
                               [float(t) for t in meta.get("thresholds", [])], "tabelle-gewerbe")

    land_name = scope_name(tables)
    empty = empty_list(gem, empty_link or ("gemeinde/{key}.html" if links else ""))
    context = {
        "title": str(meta.get("title") or f"Breitbandversorgung {land_name}"),
        "empty_gemeinden": empty,
        "land_name": land_name,
        "run_id": str(meta.get("run_id", "")),
        "created": _format_timestamp(meta.get("created")),
        "data_date": format_date(meta.get("data_date")),
        "boundaries_date": format_date(meta.get("boundaries_date")),
        "thresholds": ", ".join(_t(float(t)) for t in meta.get("thresholds", [])),
        "groups": [GROUP_LABELS.get(str(grp), str(grp)) for grp in meta.get("groups", [])],
        "attributions": [str(x) for x in meta.get("attributions", [])],
        "card_items": cards,
        "links": links,
        "downloads": [dict(d) for d in downloads],
        "provenance": provenance or "",
        "changes": changes or "",
        "maps": maps,
        "interactive": ({**interactive, "svg": Markup(str(interactive["svg"]))} if interactive else None),
        "kreis_table": kreis_table,
        "amt_table": amt_table,
        "top_table": top_table,
        "top_n": TOP_N,
        "business": {"count": biz.get("businesses", np.nan), "table": biz_table} if biz_table else None,
        "underserved_t": UNDERSERVED_T,
        "disclosure_note": str(meta.get("disclosure_note") or ""),
        "n": {lvl: len(tables[lvl]) for lvl in LEVEL_KEYS},
        "css": Markup(_static("report.css") + _static("atlas.css")),
        "js": Markup(_static("tables.js") + "\n" + _static("map.js")),
        "search_js": Markup(_static("search.js")),
        "search_addresses": bool(meta.get("search_addresses")),
    }
    return _environment().get_template("index.html.j2").render(**context)
