"""The atlas pages: one HTML page per Kreis, Amt and Gemeinde, and the provenance page.

Pure functions from tables to HTML strings; the pipeline decides where the files go.
Pages live one folder below the overview (``kreis/``, ``amt/``, ``gemeinde/``), so all
their links start with ``../``. Text from the data is escaped by jinja2's autoescaping;
only the package's CSS/JS and SVG maps written by :mod:`coverage.report.svgmap` or
:mod:`coverage.report.maps` (which escape every text) are marked safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np
import pandas as pd
from markupsafe import Markup

from coverage.disclosure import LICENCE_NAME, LICENCE_URL
from coverage.errors import InputDataError
from coverage.funding import FundingRule
from coverage.model import GROUP_LABELS, LEVEL_KEYS
from coverage.report.html import (
    HEADLINE_THRESHOLDS,
    UNDERSERVED_T,
    AreaRow,
    RowLike,
    _Column,
    _environment,
    _rows,
    _static,
    _t,
    business_table,
    empty_list,
    funding_cards,
    scope_name,
    sites_card,
)
from coverage.report.labels import note_label, reason_label, stage_label, technology_label
from coverage.report.maps import format_date, format_int, format_percent

LEVEL_WORDS = {"gemeinde": "Gemeinde", "amt": "Amt", "kreis": "Kreis", "land": "Land"}
ROOT = "../"


@dataclass(frozen=True)
class MapBlock:
    """A map shown on a page: inline SVG element, HTML legend and optional file links."""

    svg: str
    legend: list[dict[str, object]]
    legend_title: str
    caption: str
    png: str = ""
    svg_file: str = ""
    hint: str = ""
    #: ``data-map-*`` attributes of the figure for ``static/map.js`` (layer, grid and address files)
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AtlasData:
    """Everything the pages show, indexed once per run (see :func:`atlas_data`)."""

    tables: Mapping[str, pd.DataFrame]
    sites: pd.DataFrame
    rules: Sequence[FundingRule]
    meta: Mapping
    indexed: dict[str, pd.DataFrame] = field(default_factory=dict)
    sites_by: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    #: per level, key -> the area's row (:class:`AreaRow`), read by every page of the area
    rows: dict[str, dict[str, AreaRow]] = field(default_factory=dict)
    #: (level of the rows, level of the key) -> key -> positions of its rows in ``tables[level]`` (ascending):
    #: a page takes its Ämter and Gemeinden by position instead of comparing every row's key
    members: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)


def _row_records(frame: pd.DataFrame) -> dict[str, AreaRow]:
    """Key (the frame's index) -> its row as :class:`AreaRow`, with the values ``frame.loc[key]`` gives."""
    columns = [str(c) for c in frame.columns]
    values = zip(*(frame[c].astype(object).tolist() for c in frame.columns), strict=True)
    return {str(k): AreaRow(zip(columns, v, strict=True)) for k, v in zip(frame.index, values, strict=True)}


def atlas_data(tables: Mapping[str, pd.DataFrame], sites: pd.DataFrame, rules: Sequence[FundingRule],
               meta: Mapping) -> AtlasData:
    """Index the tables by their keys (as text) once, for fast per-page lookups."""
    indexed = {}
    for level, key in LEVEL_KEYS.items():
        t = tables[level]
        indexed[level] = t.assign(_key=t[key].astype(str)).set_index("_key", drop=False)
    sites = _with_address(sites)
    if "best_tech" in sites.columns:
        sites = sites.assign(_tech_label=sites["best_tech"].map(technology_label))
    sites_by = {level: {str(k): part for k, part in sites.groupby(sites[key].astype(str), sort=False)}
                for level, key in LEVEL_KEYS.items() if level != "land" and key in sites.columns}
    members = {(level, of): {str(k): pos for k, pos in tables[level].groupby(
                   tables[level][LEVEL_KEYS[of]].astype(str), sort=False).indices.items()}
               for level, of in (("amt", "kreis"), ("gemeinde", "kreis"), ("gemeinde", "amt"))
               if LEVEL_KEYS[of] in tables[level].columns}
    return AtlasData(tables=tables, sites=sites, rules=tuple(rules), meta=meta, indexed=indexed,
                     sites_by=sites_by, rows={level: _row_records(indexed[level]) for level in ("kreis", "amt",
                                                                                               "gemeinde")},
                     members=members)


def _members(data: AtlasData, level: str, of: str, key: str) -> pd.DataFrame:
    """The rows of ``tables[level]`` whose ``of`` key is ``key``, in table order (what
    ``t[t[key column].astype(str) == key]`` selects)."""
    t = data.tables[level]
    index = data.members.get((level, of))
    if index is None:
        return t[(t[LEVEL_KEYS[of]].astype(str) == key).to_numpy()]
    return t.iloc[index.get(key, np.zeros(0, dtype=np.intp))]


def _with_address(sites: pd.DataFrame) -> pd.DataFrame:
    s = sites.copy()
    if len(s) == 0:
        return s.assign(_address=pd.Series(dtype="object"))
    street = (s["street"].fillna("").astype(str) + " " + s["house_number"].fillna("").astype(str)).str.strip()
    place = (s["postcode"].fillna("").astype(str) + " " + s["locality"].fillna("").astype(str)).str.strip()
    s["_address"] = np.where(street != "", street + ", " + place, place)
    s["_address"] = s["_address"].astype(str).str.strip(", ")
    return s


def _base_context(data: AtlasData, page_title: str, subtitle: str, breadcrumbs: list[dict], root: str,
                  sections: list[dict]) -> dict:
    meta = data.meta
    return {
        "title": str(meta.get("title") or "Breitbandversorgung"),
        "page_title": page_title,
        "subtitle": subtitle,
        "breadcrumbs": breadcrumbs,
        "root": root,
        "sections": sections,
        "run_id": str(meta.get("run_id", "")),
        "data_date": format_date(meta.get("data_date")),
        "boundaries_date": format_date(meta.get("boundaries_date")),
        "attributions": [str(x) for x in meta.get("attributions", [])],
        "disclosure_note": str(meta.get("disclosure_note") or ""),
        "css": Markup(_static("report.css") + _static("atlas.css")),
        "js": Markup(_static("tables.js") + "\n" + _static("map.js")),
        "search_js": Markup(_static("search.js")),
        "search_addresses": bool(meta.get("search_addresses")),
    }


def _name(data: AtlasData, level: str, key: str) -> str:
    rows = data.rows.get(level)
    if rows is not None:
        return str(rows[key]["name"]) if key in rows else key
    idx = data.indexed[level]
    return str(idx.at[key, "name"]) if key in idx.index else key


def home_crumb(data: AtlasData, root: str = "") -> dict[str, str]:
    """The first breadcrumb: the overview, named after the Land; "Übersicht" when the run covers one Kreis or
    Amt (:func:`scope_name`), whose own crumb follows."""
    land = data.tables["land"]
    whole = len(data.tables["kreis"]) > 1 and len(land) == 1
    return {"label": scope_name(data.tables) if whole else "Übersicht", "href": f"{root}index.html"}


def _breadcrumbs(data: AtlasData, level: str, row: RowLike) -> list[dict]:
    crumbs = [home_crumb(data, ROOT)]
    if level in ("amt", "gemeinde"):
        k = str(row["krs_ags"])
        crumbs.append({"label": _name(data, "kreis", k), "href": f"{ROOT}kreis/{k}.html"})
    if level == "gemeinde":
        a = str(row["vwg_ars"])
        crumbs.append({"label": _name(data, "amt", a), "href": f"{ROOT}amt/{a}.html"})
    crumbs.append({"label": str(row["name"]), "href": ""})
    return crumbs


def _cards(row: RowLike, sites: pd.DataFrame | None) -> list[dict[str, str]]:
    hh = row.get("households")
    cards = [{"label": "Haushalte", "value": format_int(hh),
              "note": f"{format_int(row.get('addresses'))} Adressen"}]
    for t in HEADLINE_THRESHOLDS:
        col = f"share_ge_{_t(t)}_all"
        if col in row.index:
            cards.append({"label": f"Anteil ≥ {_t(t)} Mbit/s", "value": format_percent(row[col]),
                          "note": "der Haushalte, alle Technologien"})
    lt = f"hh_lt_{UNDERSERVED_T}_all"
    if lt in row.index:
        cards.append({"label": f"Unterversorgte Haushalte (< {UNDERSERVED_T} Mbit/s)", "value": format_int(row[lt]),
                      "note": "alle Technologien"})
    cards += funding_cards(row)
    if sites is not None:
        cards.append(sites_card(sites))
    return cards


def _tech_table(row: RowLike, groups: Sequence[str], thresholds: Sequence[float], tid: str) -> dict:
    records = []
    for g in groups:
        rec: dict[str, object] = {"group": GROUP_LABELS.get(g, g)}
        for t in thresholds:
            rec[f"t{_t(t)}"] = row.get(f"share_ge_{_t(t)}_{g}", np.nan)
        rec["plan"] = row.get(f"plan_share_ge_{_t(thresholds[-1])}_{g}", np.nan) if thresholds else np.nan
        records.append(rec)
    cols = [_Column("Technologie", "group", "text")]
    cols += [_Column(f"≥ {_t(t)} Mbit/s", f"t{_t(t)}", "pct") for t in thresholds]
    if thresholds:
        cols.append(_Column(f"≥ {_t(thresholds[-1])} Mbit/s mit Planung", "plan", "pct"))
    return {"id": tid, "columns": cols, "rows": _rows(records, cols), "total": None}


def _funding_table(row: RowLike, rules: Sequence[FundingRule], tid: str) -> dict:
    records = []
    for r in rules:
        records.append({"label": r.label, "describe": r.describe(),
                        "hh": row.get(f"hh_fund_{r.name}", np.nan), "addr": row.get(f"addr_fund_{r.name}", np.nan),
                        "hh_plan": row.get(f"hh_fund_{r.name}_plan", np.nan),
                        "addr_plan": row.get(f"addr_fund_{r.name}_plan", np.nan)})
    cols = [_Column("Regel", "label", "text"), _Column("Kriterium", "describe", "text"),
            _Column("Haushalte", "hh", "int"), _Column("Adressen", "addr", "int"),
            _Column("Haushalte mit Planung", "hh_plan", "int"), _Column("Adressen mit Planung", "addr_plan", "int")]
    return {"id": tid, "columns": cols, "rows": _rows(records, cols), "total": None}


def _business_funding_table(row: RowLike, rules: Sequence[FundingRule], tid: str) -> dict | None:
    """Businesses at addresses eligible per funding rule (today and with planned supply); None without them."""
    if not any(f"biz_fund_{r.name}" in row.index for r in rules):
        return None
    records = [{"label": r.label, "biz": row.get(f"biz_fund_{r.name}", np.nan),
                "biz_plan": row.get(f"biz_fund_{r.name}_plan", np.nan)} for r in rules]
    cols = [_Column("Regel", "label", "text"), _Column("Unternehmen", "biz", "int"),
            _Column("Unternehmen mit Planung", "biz_plan", "int")]
    return {"id": tid, "columns": cols, "rows": _rows(records, cols), "total": None}


def _business(row: RowLike, groups: Sequence[str], thresholds: Sequence[float],
              rules: Sequence[FundingRule]) -> dict | None:
    """The "Gewerbe" section of an area page, or None when the tables have no business figures."""
    table = business_table(row, groups, thresholds, "tabelle-gewerbe")
    if table is None:
        return None
    return {"count": row.get("businesses", np.nan), "table": table,
            "funding": _business_funding_table(row, rules, "tabelle-gewerbe-foerderung")}


SITE_COLUMNS = (("Art", "site_kind_label", "text"), ("Standort", "site_name", "text"),
                ("Adresse", "_address", "text"), ("Gemeinde", "gemeinde_name", "text"),
                ("Download (Mbit/s)", "best_down", "int"), ("Technologie", "best_tech", "text"),
                ("Anbieter", "best_provider", "text"), ("Mit Planung (Mbit/s)", "plan_best_down", "int"),
                ("Versorgung", "service_class", "text"))


def _sites_table(s: pd.DataFrame, tid: str) -> dict:
    if "_tech_label" in s.columns:  # labelled once for all pages by atlas_data
        cols = [_Column(label, "_tech_label" if col == "best_tech" else col, kind) for label, col, kind in SITE_COLUMNS]
    else:
        s = s.assign(best_tech=s["best_tech"].map(technology_label)) if len(s) else s
        cols = [_Column(label, col, kind) for label, col, kind in SITE_COLUMNS]
    links = {"gemeinde_name": ("ags", ROOT + "gemeinde/{key}.html")}
    # text-heavy (names, addresses, providers): printed on a landscape page
    return {"id": tid, "columns": cols, "rows": _rows(s, cols, links), "total": None, "wide": True}


def _area_columns(thresholds: Sequence[float], has: set[str]) -> list[_Column]:
    cols = [_Column("Haushalte", "households", "int")]
    cols += [_Column(f"Anteil ≥ {_t(t)} Mbit/s", f"share_ge_{_t(t)}_all", "pct") for t in thresholds]
    if "share_ge_1000_fibre" in has:
        cols.append(_Column("Glasfaser ≥ 1000 Mbit/s", "share_ge_1000_fibre", "pct"))
    cols.append(_Column(f"Haushalte < {UNDERSERVED_T} Mbit/s", f"hh_lt_{UNDERSERVED_T}_all", "int"))
    for rule, label in (("white", "Weiße Flecken (Haushalte)"), ("grey", "Graue Flecken (Haushalte)")):
        if f"hh_fund_{rule}" in has:
            cols.append(_Column(label, f"hh_fund_{rule}", "int"))
    return [c for c in cols if c.column in has]


class _SubTable(TypedDict):
    """A table section of an area page: the Ämter or the Gemeinden in the area."""

    section: str
    heading: str
    caption: str
    table: dict


_OBJECTION_CARDS = (("addr_contested", "hh_contested", "Adressen mit Stellungnahme",
                     "jede Entscheidung (angenommen, abgelehnt, offen); Haushalte dort"),
                    ("addr_objection_changed", "hh_objection_changed", "Durch Stellungnahmen geändert",
                     "Adressen, deren Versorgung oder Förderfähigkeit angenommene Stellungnahmen änderten"))


def objections_section(data: AtlasData, level: str, row: RowLike) -> dict | None:
    """The "Stellungnahmen" section of a Gemeinde or Amt page: contested addresses and those accepted
    objections changed (with their households), links to the Amt's eligible-address list and to
    objections.csv (under downloads/, where the report placed them); None when there is nothing to show."""
    if level not in ("gemeinde", "amt"):
        return None
    files = data.meta.get("funding_files", {}) or {}
    cards = [{"label": label, "value": format_int(row[addr]),
              "note": f"{format_int(row[hh])} Haushalte · {note}"}
             for addr, hh, label, note in _OBJECTION_CARDS if addr in row.index and hh in row.index]
    amt = str(row["vwg_ars"]) if level == "gemeinde" else str(row[LEVEL_KEYS["amt"]])
    links = []
    if amt in files:
        what = "dieses Amts" if level == "amt" else f"des Amts {_name(data, 'amt', amt)}"
        links.append({"label": f"Adressliste zur Förderung {what} (CSV: jede Adresse mit Förderfähigkeit, "
                               "entscheidendem Angebot und Stellungnahmen)", "href": ROOT + files[amt]})
    if "objections" in files:
        links.append({"label": "Alle Stellungnahmen mit Entscheidung (objections.csv)",
                      "href": ROOT + files["objections"]})
    if not cards and not links:
        return None
    return {"heading": "Stellungnahmen" if cards else "Adressliste zur Förderung", "cards": cards, "links": links}


def render_area_page(data: AtlasData, level: str, key: str, map_block: MapBlock | None,
                     steckbrief: Mapping[str, str] | None = None, context: Mapping | None = None) -> str:
    """HTML of the page of one Kreis, Amt or Gemeinde (``level``/``key``), for ``<level>/<key>.html``;
    ``steckbrief``: links to its print page, {"html": …, "pdf": … or ""} (Kreis and Amt), if there is one;
    ``context``: its :func:`area_page_context`, when the caller has it already (the Steckbrief shares it)."""
    context = dict(context or area_page_context(data, level, key, map_block))
    context["steckbrief"] = dict(steckbrief) if steckbrief else None
    return _environment().get_template("area.html.j2").render(**context)


#: Steckbrief pages: ``steckbrief/<level>_<key>.html`` (one folder below the atlas root, like the area pages)
STECKBRIEF_LEVELS = ("kreis", "amt")


def steckbrief_path(level: str, key: str) -> str:
    return f"steckbrief/{level}_{key}.html"


def render_steckbrief(data: AtlasData, level: str, key: str, map_block: MapBlock | None,
                      context: Mapping | None = None) -> str:
    """HTML of the print "Steckbrief" of a Kreis or Amt: the area page's figures laid out for A4 (map, key
    figures, its Gemeinden, funding, sites, data date, attributions), see ``steckbrief.html.j2``;
    ``context``: the area page's :func:`area_page_context`, if the caller has it."""
    if level not in STECKBRIEF_LEVELS:
        raise InputDataError(f"Steckbriefe exist for {' and '.join(STECKBRIEF_LEVELS)}, not {level!r}")
    context = dict(context or area_page_context(data, level, key, map_block))
    context["licence"] = f"{LICENCE_NAME} ({LICENCE_URL})"
    return _environment().get_template("steckbrief.html.j2").render(**context)


def area_page_context(data: AtlasData, level: str, key: str, map_block: MapBlock | None) -> dict:
    """Everything an area page shows (cards, map, tables), for the screen page and its print "Steckbrief"."""
    if level not in ("kreis", "amt", "gemeinde"):
        raise InputDataError(f"atlas pages exist for kreis, amt and gemeinde, not {level!r}")
    idx = data.indexed[level]
    rows = data.rows.get(level)
    if key not in (rows if rows is not None else idx.index):  # a dict: `in` on a text index may scan it
        raise InputDataError(f"{level} {key!r} is not in the {level} table")
    row = rows[key] if rows is not None else idx.loc[key]
    sites = data.sites_by.get(level, {}).get(key, data.sites.iloc[:0])
    thresholds = [t for t in HEADLINE_THRESHOLDS if f"share_ge_{_t(t)}_all" in idx.columns]
    all_t = [float(t) for t in data.meta.get("thresholds", [])]
    groups = [str(g) for g in data.meta.get("groups", [])]
    tech_t = [t for t in all_t if f"share_ge_{_t(t)}_all" in idx.columns]

    gem = data.tables["gemeinde"]
    sub_tables: list[_SubTable] = []
    has = set(gem.columns)
    if level == "kreis":
        amt = data.tables["amt"]
        a = _members(data, "amt", "kreis", key).sort_values("name", key=lambda s: s.astype(str).str.lower())
        cols = [_Column("Amt / amtsfreie Gemeinde", "name", "text"), *_area_columns(thresholds, set(amt.columns))]
        sub_tables.append({"section": "aemter", "heading": "Ämter und amtsfreie Gemeinden",
                           "caption": "Versorgung der Haushalte je Amt",
                           "table": {"id": "tabelle-aemter", "columns": cols, "total": None,
                                     "rows": _rows(a, cols, {"name": ("vwg_ars", ROOT + "amt/{key}.html")})}})
    in_area = _members(data, "gemeinde", level, key) if level in ("kreis", "amt") else gem.iloc[:0]
    if level in ("kreis", "amt"):
        g = in_area
        g = g.assign(amt_name=g["vwg_ars"].astype(str).map(lambda k: _name(data, "amt", k)))
        g = g.sort_values("name", key=lambda s: s.astype(str).str.lower())
        cols = [_Column("Gemeinde", "name", "text")]
        if level == "kreis":
            cols.append(_Column("Amt", "amt_name", "text"))
        cols += _area_columns(thresholds, has)
        links = {"name": ("ags", ROOT + "gemeinde/{key}.html"), "amt_name": ("vwg_ars", ROOT + "amt/{key}.html")}
        sub_tables.append({"section": "gemeinden", "heading": "Gemeinden",
                           "caption": "Versorgung der Haushalte je Gemeinde",
                           "table": {"id": "tabelle-gemeinden", "columns": cols, "total": None,
                                     "rows": _rows(g, cols, links)}})

    sections = [{"id": "kennzahlen", "label": "Kennzahlen"}]
    if map_block is not None:
        sections.append({"id": "karte", "label": "Karte"})
    sections.append({"id": "technologien", "label": "Technologien"})
    business = _business(row, groups, all_t, data.rules)
    if business is not None:
        sections.append({"id": "gewerbe", "label": "Gewerbe"})
    sections += [{"id": t["section"], "label": t["heading"]} for t in sub_tables]
    public = bool(data.meta.get("public"))  # the public atlas has no sites (addresses, providers)
    sections.append({"id": "foerderung", "label": "Förderung"})
    objections = None if public else objections_section(data, level, row)
    if objections is not None:
        sections.append({"id": "stellungnahmen", "label": objections["heading"]})
    if not public:
        sections.append({"id": "standorte", "label": "Standorte"})
    bez = str(row.get("bez", "") or "") if "bez" in row.index else ""
    subtitle = f"{bez or LEVEL_WORDS[level]} · Schlüssel {key}"
    context = _base_context(data, str(row["name"]), subtitle, _breadcrumbs(data, level, row), ROOT, sections)
    block = None
    if map_block is not None:
        block = {"svg": Markup(map_block.svg), "legend": map_block.legend, "legend_title": map_block.legend_title,
                 "caption": map_block.caption, "png": map_block.png, "svg_file": map_block.svg_file,
                 "hint": map_block.hint, "data": dict(map_block.data)}
    context.update({
        "card_items": _cards(row, None if public else sites),
        "map": block,
        "tech_table": _tech_table(row, groups, tech_t, "tabelle-technologien"),
        "business": business,
        "sub_tables": sub_tables,
        "funding_table": _funding_table(row, data.rules, "tabelle-foerderung"),
        "sites_table": None if public else _sites_table(sites, "tabelle-standorte"),
        "objections": objections,
        "no_addresses": level == "gemeinde" and "addresses" in row.index and not (
            pd.to_numeric(row["addresses"], errors="coerce") > 0),
        "empty_gemeinden": empty_list(in_area, ROOT + "gemeinde/{key}.html")
        if level in ("kreis", "amt") else [],
        "level": level, "key": key, "level_word": LEVEL_WORDS[level],
    })
    return context


def quarantine_summary(quarantine: pd.DataFrame | None) -> pd.DataFrame:
    """Quarantined rows counted per source and reason (columns source, reason, detail, count)."""
    cols = ["source", "reason", "detail", "count"]
    if quarantine is None or len(quarantine) == 0:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "count" else "object") for c in cols})
    q = quarantine.assign(detail=quarantine["detail"] if "detail" in quarantine.columns else "")
    out = (q.groupby(["source", "reason"], sort=True, dropna=False)
           .agg(detail=("detail", "first"), count=("reason", "size")).reset_index())
    return out[cols]


def render_provenance(data: AtlasData, inputs: Sequence[Mapping], config_text: str, config_path: str,
                      accounting: Sequence[Mapping], quarantine: pd.DataFrame | None,
                      suppressed: pd.DataFrame | None = None) -> str:
    """HTML of ``provenance.html``: input files (size, SHA-256), row accounting, quarantine, configuration.

    The public atlas passes ``suppressed`` (level, reason, count: suppressed figures) and nothing else: its
    page shows the disclosure rules and how many figures they suppressed, no input, quarantine or
    configuration detail."""
    if suppressed is not None:
        return _render_public_provenance(data, suppressed)
    inp = pd.DataFrame([{"path": str(i.get("path", "")), "files": i.get("files", 1), "bytes": i.get("bytes"),
                         "sha256": str(i.get("sha256", ""))} for i in inputs],
                       columns=["path", "files", "bytes", "sha256"])
    inp_cols = [_Column("Datei / Ordner", "path", "text"), _Column("Dateien", "files", "int"),
                _Column("Bytes", "bytes", "int"), _Column("SHA-256", "sha256", "text")]
    acc = pd.DataFrame([{"stage": stage_label(str(a.get("stage", ""))), "rows_in": a.get("rows_in"),
                         "rows_out": a.get("rows_out"), "quarantined": sum((a.get("quarantined") or {}).values()),
                         "reasons": ", ".join(f"{reason_label(str(k))}: {v}"
                                              for k, v in (a.get("quarantined") or {}).items()),
                         "balanced": "ja" if a.get("balanced", True) else "NEIN",
                         "note": note_label(str(a.get("note") or ""))}
                        for a in accounting],
                       columns=["stage", "rows_in", "rows_out", "quarantined", "reasons", "balanced", "note"])
    acc_cols = [_Column("Stufe", "stage", "text"), _Column("Zeilen ein", "rows_in", "int"),
                _Column("Zeilen aus", "rows_out", "int"), _Column("Quarantäne", "quarantined", "int"),
                _Column("Gründe", "reasons", "text"), _Column("ausgeglichen", "balanced", "text"),
                _Column("Hinweis", "note", "text")]
    qs = quarantine_summary(quarantine)
    # German for the reader: the reason in words and its explanation (the codes and the original
    # detail stay in the downloads)
    qs = qs.assign(detail=qs["reason"].map(lambda r: reason_label(str(r), long=True)),
                   reason=qs["reason"].map(lambda r: reason_label(str(r))))
    q_cols = [_Column("Quelle", "source", "text"), _Column("Grund", "reason", "text"),
              _Column("Erläuterung", "detail", "text"), _Column("Zeilen", "count", "int")]
    crumbs = [home_crumb(data), {"label": "Herkunft der Daten", "href": ""}]
    sections = [{"id": "eingaben", "label": "Eingabedaten"}, {"id": "zeilen", "label": "Zeilenbilanz"},
                {"id": "quarantaene", "label": "Quarantäne"}, {"id": "konfiguration", "label": "Konfiguration"}]
    context = _base_context(data, "Herkunft der Daten", "Eingaben, Zeilenbilanz und Konfiguration des Laufs",
                            crumbs, "", sections)
    context.update({
        "inputs_table": {"id": "tabelle-eingaben", "columns": inp_cols, "rows": _rows(inp, inp_cols), "total": None},
        "accounting_table": {"id": "tabelle-zeilen", "columns": acc_cols, "rows": _rows(acc, acc_cols),
                             "total": None},
        "quarantine_table": {"id": "tabelle-quarantaene", "columns": q_cols, "rows": _rows(qs, q_cols),
                             "total": None},
        "quarantine_total": int(qs["count"].sum()) if len(qs) else 0,
        "config_text": config_text,
        "config_path": config_path,
        "public": False,
        "suppressed_table": None,
    })
    return _environment().get_template("provenance.html.j2").render(**context)


_REASON_WORDS = {"min_addresses": "zu wenige Adressen", "dominance": "ein Anbieter dominiert",
                 "complementary": "ergänzend (sonst rückrechenbar)"}


def _render_public_provenance(data: AtlasData, suppressed: pd.DataFrame) -> str:
    crumbs = [home_crumb(data), {"label": "Herkunft der Daten", "href": ""}]
    frame = suppressed.assign(level=suppressed["level"].map(lambda v: LEVEL_WORDS.get(str(v), str(v))),
                              reason=suppressed["reason"].map(lambda v: _REASON_WORDS.get(str(v), str(v))))
    cols = [_Column("Ebene", "level", "text"), _Column("Grund", "reason", "text"),
            _Column("Gebiete", "areas", "int")]
    context = _base_context(data, "Herkunft der Daten", "Öffentliche Fassung: Geheimhaltung der Zahlen", crumbs,
                            "", [{"id": "geheimhaltung-regeln", "label": "Geheimhaltung"}])
    context.update({"public": True, "suppressed_table": {"id": "tabelle-geheimhaltung", "columns": cols,
                                                         "rows": _rows(frame, cols), "total": None},
                    "inputs_table": None, "accounting_table": None, "quarantine_table": None,
                    "quarantine_total": 0, "config_text": "", "config_path": ""})
    return _environment().get_template("provenance.html.j2").render(**context)
