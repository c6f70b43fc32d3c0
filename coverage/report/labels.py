"""German labels of table columns for pages and downloads (column names in the data stay English)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from coverage.model import GROUP_LABELS
from coverage.quarantine import REASONS_DE
from coverage.technology import TECHNOLOGY_LABELS, technology_label

__all__ = ["TECHNOLOGY_LABELS", "german_label", "german_labels", "note_label", "reason_label", "stage_label",
           "technology_label"]

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


def reason_label(code: str, long: bool = False) -> str:
    """A quarantine reason code in German: the short reason, or (``long``) its explanation."""
    short, explanation = REASONS_DE.get(code, (code, code))
    return explanation if long else short


#: Stage names of the row accounting (pipelines.stages) in German: exact names, then name prefixes.
_STAGES = {"boundaries": "Gebietsgrenzen", "locate": "Verortung der Adressen", "best service": "Beste Versorgung",
           "households from Zensus": "Haushalte aus dem Zensus", "aggregate": "Zusammenfassung je Gebiet",
           "sites": "Standorte"}
_STAGE_PREFIXES = (("read ", "Einlesen "), ("provider ", "Anbieterdaten "), ("objections ", "Einwendungen "),
                   ("businesses ", "Unternehmen "), ("sites ", "Standorte "))


def stage_label(stage: str) -> str:
    """``"provider dsl.csv"`` -> ``"Anbieterdaten dsl.csv"`` (the file name stays)."""
    if stage in _STAGES:
        return _STAGES[stage]
    for prefix, word in _STAGE_PREFIXES:
        if stage.startswith(prefix):
            return word + stage[len(prefix):]
    return stage


#: The accounting notes the stages write (English, they are also in manifest.json), in German. The
#: patterns cover the notes of pipelines.stages and coverage.households; a note none matches is shown
#: as it is (tested: every note of the demo run is translated).
_NOTES = tuple((re.compile(p), r) for p, r in (
    (r"(\d+) Ämter, (\d+) Kreise", r"\1 Ämter, \2 Kreise"),
    (r"(\d+) assigned to the nearest Gemeinde within tolerance", r"\1 innerhalb der Toleranz der nächsten Gemeinde "
     "zugeordnet"),
    (r"(\d+) whose cadastre AGS is another Gemeinde \(ags_mismatch\.csv\)",
     r"\1 mit abweichendem Kataster-AGS (ags_mismatch.csv)"),
    (r"(\d+) offers added, (\d+) withdrawals", r"\1 Angebote ergänzt, \2 zurückgezogen"),
    (r"(\d+) offers withdrawn by objections", r"\1 Angebote durch Einwendungen zurückgezogen"),
    (r"(\d+) offers", r"\1 Angebote"),
    (r"(\d+) polygon\(s\) cover no address", r"\1 Polygon(e) ohne Adresse"),
    (r"(\d+) addresses in served cells, (\d+) outside the raster, (\d+) quarantined",
     r"\1 Adressen in versorgten Zellen, \2 außerhalb des Rasters, \3 in Quarantäne"),
    (r"(\d+) block\(s\) read \(rows = addresses sampled\)", r"\1 Block/Blöcke gelesen (Zeilen = abgefragte Adressen)"),
    (r"planned supply counted until ([\d-]+)", r"geplanter Ausbau bis \1 berücksichtigt"),
    (r"([\d.]+) households in (\d+) Gemeinden", r"\1 Haushalte in \2 Gemeinden"),
    (r"([\d.]+) unallocated \(Zensus cells without address\)", r"\1 nicht zugeordnet (Zensus-Zellen ohne Adresse)"),
    (r"addresses with a site_kind", "Adressen mit Standortart"),
    (r"(\d+) businesses at (\d+) addresses", r"\1 Unternehmen an \2 Adressen"),
    (r"(\d+) sites \(", r"\1 Standorte ("),
    (r"([\d.]+) households estimated from (\d+) Zensus 1 km cells",
     r"\1 Haushalte aus \2 Zensus-1-km-Zellen geschätzt"),
    (r"(\d+) spread evenly, (\d+) moved to the nearest address",
     r"\1 gleich verteilt, \2 zur nächsten Adresse verschoben"),
    (r"([\d.]+) unallocated from (\d+) cells", r"\1 nicht zugeordnet aus \2 Zellen"),
    (r"(\d+) cells without estimate \((\d+) inhabitants, (\d+) addresses get none\)",
     r"\1 Zellen ohne Schätzung (\2 Einwohner, \3 Adressen ohne Haushalte)"),
    (r"(\d+) cells outside the run's Gemeinden ignored \((\d+) addresses in them get none\)",
     r"\1 Zellen außerhalb der Gemeinden des Laufs nicht berücksichtigt (\2 Adressen darin ohne Haushalte)"),
    (r"\b(\d+) (amt_office|gemeinde_office|kreis_office|school)\b", lambda m: f"{m.group(1)} " + {
        "amt_office": "Amtsverwaltungen", "gemeinde_office": "Gemeindeverwaltungen",
        "kreis_office": "Kreisverwaltungen", "school": "Schulen"}[m.group(2)]),
    (r"\b(\d+) (accepted|rejected|pending)\b", lambda m: f"{m.group(1)} " + {
        "accepted": "angenommen", "rejected": "abgelehnt", "pending": "offen"}[m.group(2)]),
))


def note_label(note: str) -> str:
    """An accounting note in German (see :data:`_NOTES`); reason codes in it become German words."""
    for pattern, repl in _NOTES:
        note = pattern.sub(repl, note)
    return re.sub(r"\b(\d+) ([a-z_]+)\b", lambda m: f"{m.group(1)} {reason_label(m.group(2))}"
                  if m.group(2) in REASONS_DE else m.group(0), note)
