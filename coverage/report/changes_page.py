"""The "Veränderungen" page: what changed since the previous run, where, and by how much."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from coverage.model import GROUP_LABELS
from coverage.report.atlas import AtlasData, _base_context, home_crumb
from coverage.report.html import _Column, _environment, _rows
from coverage.report.labels import technology_label
from coverage.report.maps import format_int

#: (threshold, group) pairs shown on the page; the CSV files hold all of them.
SHOWN = ((30, "all"), (100, "all"), (1000, "all"), (1000, "fibre"))
GROUP_WORDS = GROUP_LABELS
LEVELS = (("kreis", "krs_ags", "Kreise", "Kreis", "kreis/{key}.html"),
          ("amt", "vwg_ars", "Ämter", "Amt", "amt/{key}.html"),
          ("gemeinde", "ags", "Gemeinden", "Gemeinde", "gemeinde/{key}.html"))


def render_changes(data: AtlasData, areas: Mapping[str, pd.DataFrame], providers: pd.DataFrame, summary: Mapping,
                   tolerance_pp: float) -> str:
    """HTML of ``changes.html`` from the change report of :mod:`coverage.changes`."""
    gained, lost = summary.get("addresses_gained", {}), summary.get("addresses_lost", {})
    cards = [
        {"label": "Adressen mit Verbesserung", "value": format_int(gained.get("all", 0)),
         "note": "über mindestens eine Schwelle, alle Technologien"},
        {"label": "Adressen mit Verschlechterung", "value": format_int(lost.get("all", 0)),
         "note": "unter mindestens eine Schwelle gefallen"},
        {"label": "Neue / entfallene Adressen",
         "value": f"{format_int(summary.get('addresses_appeared', 0))} / "
                  f"{format_int(summary.get('addresses_vanished', 0))}", "note": "im Adressverzeichnis"},
        {"label": "Geänderte Förderklassen", "value": format_int(summary.get("funding_changes", 0)),
         "note": "Adresse × Förderregel"},
    ]
    if "funding_changes_by_objections" in summary:  # addresses were compared: the objections' part
        by_gain = summary.get("addresses_gained_by_objections", {}).get("all", 0)
        by_loss = summary.get("addresses_lost_by_objections", {}).get("all", 0)
        cards.append({"label": "Davon durch Stellungnahmen",
                      "value": f"{format_int(by_gain)} / {format_int(by_loss)} / "
                               f"{format_int(summary['funding_changes_by_objections'])}",
                      "note": "Verbesserung / Verschlechterung / Förderklassen; der Rest durch Lieferungen"})
    tables = []
    tolerance = f"{tolerance_pp:g}".replace(".", ",")
    for level, key, heading, singular, link in LEVELS:
        frame = areas[level]
        pairs = pd.MultiIndex.from_arrays([frame["threshold_mbps"].astype(float), frame["group"]])
        shown = frame[frame["noteworthy"].to_numpy() & pairs.isin(SHOWN)]
        shown = shown.assign(what=[f"≥ {t:g} Mbit/s, {GROUP_WORDS.get(g, g)}"
                                   for t, g in zip(shown["threshold_mbps"], shown["group"], strict=True)],
                             size=shown["delta_pp"].abs()).sort_values("size", ascending=False)
        columns = [_Column(singular, "name", "text"), _Column("Schwelle", "what", "text"),
                   _Column("Anteil vorher", "share_a", "pct"), _Column("Anteil jetzt", "share_b", "pct"),
                   _Column("Veränderung", "delta_pp", "pp"), _Column("Haushalte mehr/weniger", "hh_ge_delta", "int")]
        if "hh_ge_delta_objections" in shown and shown["hh_ge_delta_objections"].notna().any():
            columns += [_Column("davon durch Lieferungen", "hh_ge_delta_deliveries", "int"),
                        _Column("davon durch Stellungnahmen", "hh_ge_delta_objections", "int")]
        table = {"id": f"tabelle-veraenderungen-{level}", "columns": columns,
                 "rows": _rows(shown, columns, links={"name": (key, link)}), "total": None}
        tables.append({"section": f"veraenderungen-{level}", "heading": heading, "table": table,
                       "caption": f"{heading} mit Veränderungen über ±{tolerance} Prozentpunkte"})
    prov = providers.assign(technology=providers["technology"].map(technology_label), change_de=providers["change"].map(
        {"appeared": "neu", "disappeared": "entfallen", "changed": "verändert", "unchanged": "unverändert"}))
    prov_cols = [_Column("Anbieter", "provider", "text"), _Column("Technologie", "technology", "text"),
                 _Column("Adressen vorher", "addresses_a", "int"), _Column("Adressen jetzt", "addresses_b", "int"),
                 _Column("Veränderung", "change_de", "text")]
    crumbs = [home_crumb(data), {"label": "Veränderungen", "href": ""}]
    sections = [{"id": "ueberblick", "label": "Überblick"}] + [
        {"id": t["section"], "label": t["heading"]} for t in tables] + [{"id": "anbieter", "label": "Anbieter"}]
    context = _base_context(data, "Veränderungen", "gegenüber dem vorigen Lauf", crumbs, "", sections)
    context.update({"first_run": None, "previous_run": str(summary.get("run_a", "")), "tolerance": tolerance,
                    "card_items": cards, "area_tables": tables,
                    "provider_table": {"id": "tabelle-anbieter", "columns": prov_cols, "rows": _rows(prov, prov_cols),
                                       "total": None}})
    return _environment().get_template("changes.html.j2").render(**context)


#: Why a run's atlas has nothing to compare (the text of the first-run page).
NO_COMPARISON = {
    "first_run": "Dies ist der erste Lauf mit diesen Ausgabeordnern: Es gibt noch keinen vorigen Lauf, mit dem er "
                 "verglichen werden könnte. Ab dem nächsten Lauf zeigt diese Seite, was sich seitdem geändert hat – "
                 "je Kreis, Amt und Gemeinde, je Anbieter und Technologie.",
    "public": "Die öffentliche Fassung des Atlas enthält keinen Vergleich mit dem vorigen Lauf: Er beruht auf "
              "Adressen und Anbieterdaten, die nicht veröffentlicht werden. Der interne Atlas zeigt ihn.",
}


def render_no_changes(data: AtlasData, why: str) -> str:
    """``changes.html`` of a run without a comparison (``why``: a key of :data:`NO_COMPARISON`)."""
    crumbs = [home_crumb(data), {"label": "Veränderungen", "href": ""}]
    context = _base_context(data, "Veränderungen", "gegenüber dem vorigen Lauf", crumbs, "",
                            [{"id": "ueberblick", "label": "Überblick"}])
    context.update({"first_run": NO_COMPARISON[why], "previous_run": "", "tolerance": "", "card_items": [],
                    "area_tables": [], "provider_table": None})
    return _environment().get_template("changes.html.j2").render(**context)
