"""German labels of table columns for pages and downloads (column names in the data stay English)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from coverage.model import GROUP_LABELS

_PLAIN = {
    "ags": "AGS", "vwg_ars": "ARS Amt", "krs_ags": "Kreisschlüssel", "land": "Land",
    "name": "Name", "households": "Haushalte", "addresses": "Adressen", "businesses": "Unternehmen",
    "sites": "Standorte", "address_id": "Adress-ID", "site_kind": "Standortart (Code)",
    "site_kind_label": "Standortart", "site_name": "Standort", "street": "Straße",
    "house_number": "Hausnummer", "postcode": "PLZ", "locality": "Ort", "gemeinde_name": "Gemeinde",
    "amt_name": "Amt", "kreis_name": "Kreis", "best_down": "Beste Bandbreite Download (Mbit/s)",
    "best_up": "Beste Bandbreite Upload (Mbit/s)", "best_tech": "Technologie", "best_provider": "Anbieter",
    "plan_best_down": "Download mit Planung (Mbit/s)", "service_class": "Versorgungsklasse",
    "source": "Quelle", "row": "Zeile", "column": "Spalte", "value": "Wert", "reason": "Grund",
    "detail": "Erläuterung", "count": "Anzahl", "rule": "Regel", "label": "Bezeichnung",
    "version": "Fassung", "description": "Kriterium", "biz_no_offer": "Unternehmen an Adressen ohne Angebot",
    "bez": "Art (BKG)", "display_name": "Gebiet",
}
_COUNT_RE = re.compile(r"^(plan_)?(share_ge|hh_ge|hh_lt|biz_share_ge|biz_ge)_(\d+(?:\.\d+)?)_([a-z]+)$")
_FUND_RE = re.compile(r"^(hh|addr|biz)_fund_([a-z0-9_]+?)(_plan)?$")
_SITES_RE = re.compile(r"^(share_)?sites_ge_(\d+(?:\.\d+)?)$")
#: Objections (Stellungnahmen): per-address flags and their counts per area.
_OBJECTION_LABELS = {
    "contested": "Stellungnahme liegt vor", "objection_withdrew": "Angebot durch Stellungnahme zurückgezogen",
    "objection_changed": "Durch Stellungnahme geändert",
    "addr_contested": "Adressen mit Stellungnahme", "hh_contested": "Haushalte an Adressen mit Stellungnahme",
    "biz_contested": "Unternehmen an Adressen mit Stellungnahme",
    "addr_objection_changed": "Adressen, durch Stellungnahmen geändert",
    "hh_objection_changed": "Haushalte, durch Stellungnahmen geändert",
    "biz_objection_changed": "Unternehmen, durch Stellungnahmen geändert",
}
_SOURCE_RE = re.compile(r"^(plan_)?best_source_([a-z][a-z0-9_]*)$")


def german_label(column: str, rule_labels: Mapping[str, str] | None = None) -> str:
    """``plan_share_ge_100_all`` -> ``Anteil ≥ 100 Mbit/s (alle Technologien), mit Planung``."""
    if column in _PLAIN:
        return _PLAIN[column]
    if column in _OBJECTION_LABELS:
        return _OBJECTION_LABELS[column]
    m = _SOURCE_RE.match(column)
    if m:
        return (f"Quelle des besten Angebots ({GROUP_LABELS.get(m.group(2), m.group(2))})"
                + (", mit Planung" if m.group(1) else ""))
    m = _COUNT_RE.match(column)
    if m:
        plan, kind, t, group = m.groups()
        t = f"{float(t):g}"
        glabel = GROUP_LABELS.get(group, group)
        text = {"share_ge": f"Anteil ≥ {t} Mbit/s ({glabel}) in %",
                "hh_ge": f"Haushalte ≥ {t} Mbit/s ({glabel})",
                "hh_lt": f"Haushalte < {t} Mbit/s ({glabel})",
                "biz_share_ge": f"Anteil Unternehmen ≥ {t} Mbit/s ({glabel}) in %",
                "biz_ge": f"Unternehmen ≥ {t} Mbit/s ({glabel})"}[kind]
        return text + (", mit Planung" if plan else "")
    m = _FUND_RE.match(column)
    if m:
        unit, rule, plan = m.groups()
        rule_label = (rule_labels or {}).get(rule, rule)
        what = {"hh": "Haushalte", "addr": "Adressen", "biz": "Unternehmen"}[unit]
        return f"{what} förderfähig: {rule_label}" + (", mit Planung" if plan else "")
    m = _SITES_RE.match(column)
    if m:
        share, t = m.groups()
        t = f"{float(t):g}"
        return f"Anteil Standorte ≥ {t} Mbit/s in %" if share else f"Standorte ≥ {t} Mbit/s"
    return column


def german_labels(columns: Iterable[str], rule_labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """Column -> unique German label (a duplicate label gets the column name appended)."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for c in columns:
        label = german_label(str(c), rule_labels)
        if label in seen:
            label = f"{label} [{c}]"
        seen.add(label)
        out[str(c)] = label
    return out
