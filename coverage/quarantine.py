"""Row-level problems: a quarantine table instead of an aborted run.

Every rejected input row becomes one quarantine row naming the file, the
1-based row number in that file, the column, the offending value and a reason
code from :data:`REASONS`. Counting them per reason is how the manifest proves
that nothing was lost.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

QUARANTINE_COLUMNS = ("source", "row", "column", "value", "reason", "detail", "key")

#: Every reason code: (what it means, in English, for the quarantine files and the README;
#: short German reason and German explanation, for the atlas).
_REASON_TEXTS: dict[str, tuple[str, str, str]] = {
    "missing_value": (
        "a required cell is empty",
        "Wert fehlt",
        "Eine Pflichtzelle ist leer.",
    ),
    "bad_number": (
        "a number cannot be parsed",
        "keine Zahl",
        "Eine Zahl lässt sich nicht lesen.",
    ),
    "ambiguous_number": (
        "a number whose value depends on the decimal convention (1.000, 1,000) in a column that does not "
        "settle it, or that contradicts its column's (1.5 among 16,5)",
        "mehrdeutige Zahl",
        "Der Wert hängt von der Schreibweise ab (1.000 oder 1,000) und die Spalte klärt sie nicht, oder er "
        "widerspricht der Schreibweise der Spalte (1.5 neben 16,5).",
    ),
    "bad_row": (
        "a row with more fields than the header",
        "fehlerhafte Zeile",
        "Die Zeile hat mehr Felder als die Kopfzeile.",
    ),
    "bad_encoding": (
        "a cell with bytes that are not UTF-8 in a UTF-8 file",
        "falsche Zeichenkodierung",
        "Eine Zelle enthält Bytes, die in einer UTF-8-Datei kein UTF-8 sind.",
    ),
    "negative_value": (
        "a count or speed is negative",
        "negativer Wert",
        "Eine Anzahl oder Bandbreite ist negativ.",
    ),
    "absurd_speed": (
        "a speed above the plausible maximum",
        "unplausible Bandbreite",
        "Die Bandbreite liegt über dem plausiblen Höchstwert.",
    ),
    "implausible_value": (
        "a count above the plausible maximum (e.g. addresses.max_households)",
        "unplausible Anzahl",
        "Eine Anzahl liegt über dem plausiblen Höchstwert (z. B. addresses.max_households).",
    ),
    "upload_above_download": (
        "upload exceeds download by more than the allowed factor",
        "Upload über Download",
        "Der Upload übersteigt den Download um mehr als den zulässigen Faktor.",
    ),
    "unknown_technology": (
        "technology wording not in the alias table",
        "unbekannte Technologie",
        "Die Technologiebezeichnung steht nicht in der Zuordnungstabelle.",
    ),
    "bad_status": (
        "status is neither current nor planned",
        "unbekannter Status",
        "Der Status ist weder „current“ (aktuell) noch „planned“ (geplant).",
    ),
    "bad_date": (
        "planned_date is not a date",
        "kein Datum",
        "planned_date ist kein Datum.",
    ),
    "missing_coordinates": (
        "no usable coordinates or empty geometry",
        "Koordinaten fehlen",
        "Keine verwendbaren Koordinaten oder leere Geometrie.",
    ),
    "not_a_point": (
        "an address geometry that is not a point",
        "kein Punkt",
        "Die Geometrie einer Adresse ist kein Punkt.",
    ),
    "bad_utm_zone": (
        "an HK-DE East value whose UTM zone (its first two digits) is not 31, 32 or 33",
        "falsche UTM-Zone",
        "Der Ostwert einer HK-DE-Zeile hat keine UTM-Zone 31, 32 oder 33 (seine ersten beiden Ziffern).",
    ),
    "deleted_record": (
        "an HK-DE change record that deletes its address (NBA = L)",
        "gelöschte Adresse",
        "Ein HK-DE-Änderungssatz löscht seine Adresse (NBA = L).",
    ),
    "invalid_geometry": (
        "a polygon that is not valid",
        "ungültige Geometrie",
        "Ein Polygon ist geometrisch ungültig.",
    ),
    "duplicate_address_id": (
        "an address_id that occurred earlier in the file",
        "doppelte Adress-ID",
        "Die Adress-ID kam weiter oben in der Datei schon vor.",
    ),
    "outside_municipalities": (
        "a point farther than the tolerance from every municipality",
        "außerhalb der Gemeinden",
        "Der Punkt liegt weiter als die Toleranz von jeder Gemeinde entfernt.",
    ),
    "unknown_address": (
        "a provider record whose address_id is not in the address list",
        "unbekannte Adresse",
        "Ein Anbietersatz nennt eine Adress-ID, die nicht im Adressbestand steht.",
    ),
    "address_quarantined": (
        "a provider record whose address was itself quarantined",
        "Adresse in Quarantäne",
        "Ein Anbietersatz nennt eine Adresse, die selbst in Quarantäne steht.",
    ),
    "no_address_nearby": (
        "a provider record with no address within the match distance",
        "keine Adresse in der Nähe",
        "Ein Anbietersatz hat keine Adresse innerhalb der Zuordnungsentfernung.",
    ),
    "address_not_found": (
        "a provider record whose street address matches no address",
        "Anschrift nicht gefunden",
        "Die Anschrift eines Anbietersatzes passt zu keiner Adresse.",
    ),
    "ambiguous_address": (
        "a provider record whose street address matches several addresses (add postcode, locality or ags to "
        "tell them apart)",
        "Anschrift mehrdeutig",
        "Die Anschrift eines Anbietersatzes passt zu mehreren Adressen (PLZ, Ort oder AGS ergänzen).",
    ),
    "missing_locator": (
        "a provider record with neither address_id, coordinates nor street address",
        "keine Ortsangabe",
        "Ein Anbietersatz hat weder Adress-ID noch Koordinaten noch Anschrift.",
    ),
    "unknown_site_kind": (
        "a [sites] row whose site_kind is not gemeinde_office, amt_office, kreis_office or school",
        "unbekannte Standortart",
        "site_kind einer [sites]-Zeile ist weder gemeinde_office, amt_office, kreis_office noch school.",
    ),
    "duplicate_site": (
        "a [sites] row linked to an address that an earlier row already made a site",
        "doppelter Standort",
        "Eine [sites]-Zeile nennt eine Adresse, die eine frühere Zeile schon zum Standort gemacht hat.",
    ),
    "unknown_claim": (
        "an objection whose claim is neither offer nor no_offer",
        "unbekannte Einwendung",
        "Die Einwendung ist weder „offer“ (Angebot) noch „no_offer“ (kein Angebot).",
    ),
    "unknown_decision": (
        "an objection whose decision is neither accepted, rejected nor pending",
        "unbekannte Entscheidung",
        "Die Entscheidung ist weder accepted, rejected noch pending.",
    ),
    "no_offer_to_withdraw": (
        "an accepted no_offer objection naming a provider without an offer at that address",
        "kein Angebot zum Zurückziehen",
        "Eine angenommene Einwendung „no_offer“ nennt einen Anbieter ohne Angebot an dieser Adresse.",
    ),
}

#: Reason codes and what they mean (documented in the README).
REASONS: dict[str, str] = {code: en for code, (en, _, _) in _REASON_TEXTS.items()}
#: The reason codes in German, for the atlas (short reason, explanation); same keys as :data:`REASONS`.
REASONS_DE: dict[str, tuple[str, str]] = {code: (de, why) for code, (_, de, why) in _REASON_TEXTS.items()}


def empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in QUARANTINE_COLUMNS})


def rows(source: str, row_numbers: pd.Series, column: str, values: pd.Series, reason: str,
         detail: str = "", keys: pd.Series | None = None) -> pd.DataFrame:
    """Build quarantine rows for the given row numbers (aligned Series).

    ``keys`` is the row's own identifier where it has one (the address_id), so a
    rejected address can be traced to the provider records that point at it.
    """
    if reason not in REASONS:
        raise ValueError(f"unknown quarantine reason {reason!r}")
    n = len(row_numbers)
    return pd.DataFrame({
        "source": [source] * n,
        "row": row_numbers.to_numpy(),
        "column": [column] * n,
        "value": values.astype("string").fillna("").to_numpy(),
        "reason": [reason] * n,
        "detail": [detail or REASONS[reason]] * n,
        "key": keys.astype("string").fillna("").to_numpy() if keys is not None else [""] * n,
    })


def concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else empty()


class RowFilter:
    """Collect row-level rejections while parsing a frame, first reason wins.

    ``reject(mask, column, reason)`` marks rows that are still accepted and
    match ``mask``; ``quarantine`` and ``accepted`` give the two halves, so
    every input row ends up in exactly one of them.
    """

    def __init__(self, frame: pd.DataFrame, source: str, row_numbers: pd.Series):
        self.frame = frame
        self.source = source
        self.row_numbers = row_numbers
        self.ok = pd.Series(True, index=frame.index)
        self._parts: list[pd.DataFrame] = []

    def reject(self, mask: pd.Series, column: str, reason: str,
               values: pd.Series | Callable[[pd.Series], pd.Series] | None = None, detail: str = "") -> None:
        """``values`` (what the quarantine shows) may be a function of the hit mask, so text for
        messages is only built for the rejected rows (tens of millions of good rows pay nothing)."""
        hit = mask.fillna(False).astype(bool) & self.ok
        if not hit.any():
            return
        if callable(values):
            shown = values(hit)
        else:
            shown = (values if values is not None else self.frame[column] if column in self.frame.columns
                     else pd.Series("", index=self.frame.index))[hit]
        keys = self.frame["address_id"][hit] if "address_id" in self.frame.columns else None
        self._parts.append(rows(self.source, self.row_numbers[hit], column, shown, reason, detail, keys))
        self.ok &= ~hit

    @property
    def quarantine(self) -> pd.DataFrame:
        return concat(self._parts)
