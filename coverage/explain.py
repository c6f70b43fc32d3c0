"""Why an address has the figures it has: every offer, how it was matched, the best per group,
and each funding rule's verdict with the offers that decided it (German, as planners read it;
provider names, files and codes from the data stay as they are).

The lines are for a terminal: control characters from the data (an ESC sequence in a provider
name, a line break in a street) are shown escaped, see :func:`coverage.text.terminal_text`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from coverage.funding import FundingRule, disqualifying_offers
from coverage.model import GROUP_LABELS, OBJECTION_METHOD, OBJECTION_SOURCE_PREFIX, OfferStatus
from coverage.technology import Technology, technology_label
from coverage.text import terminal_text


def _speed(down: float, up: float) -> str:
    up_text = "?" if up is None or np.isnan(up) else f"{up:g}"
    return f"{down:g}/{up_text} Mbit/s"


LOCATE_WORDS = {"inside": "in der Gemeinde", "border": "auf der Gemeindegrenze", "nearest": "nächste Gemeinde"}
MATCH_WORDS = {"address_id": "Adress-ID", "xy": "Koordinaten", "address": "Anschrift",
               "address_no_postcode": "Anschrift ohne PLZ", "polygon": "Polygon", "raster": "Raster",
               OBJECTION_METHOD: "Einwendung"}
STATUS_WORDS = {"current": "aktuell", "planned": "geplant"}
CLAIM_WORDS = {"offer": "Angebot", "no_offer": "kein Angebot"}
DECISION_WORDS = {"accepted": "angenommen", "rejected": "abgelehnt", "pending": "offen"}
SITE_WORDS = {"gemeinde_office": "Gemeindeverwaltung", "amt_office": "Amtsverwaltung",
              "kreis_office": "Kreisverwaltung", "school": "Schule"}


def _word(words: Mapping[str, str], value: object) -> str:
    return words.get(str(value), str(value))


def _provider_key(value: object) -> str:
    return str(value).strip().casefold()


def _withdrawn_by(offers: pd.DataFrame, objections: pd.DataFrame) -> pd.Series:
    """Per offer: the applied no_offer objection that withdraws it (``"file Zeile N"``), or ""."""
    gone = {_provider_key(o.provider): f"{o.source} Zeile {o.row}" for o in objections.itertuples()
            if o.claim == "no_offer" and o.applied}
    return pd.Series([gone.get(_provider_key(o.provider), "") if o.match_method != OBJECTION_METHOD else ""
                      for o in offers.itertuples()], index=offers.index, dtype=object)


def _objection_lines(objections: pd.DataFrame, withdrawn_by: pd.Series) -> list[str]:
    lines = [f"Einwendungen ({len(objections)}):"]
    for o in objections.itertuples():
        what = f"{_word(CLAIM_WORDS, o.claim)} {o.provider}"
        if o.claim == "offer":
            what += (f" {technology_label(o.technology)} {_speed(float(o.down_mbps), float(o.up_mbps))} "
                     f"{_word(STATUS_WORDS, o.status)}")
        decision = _word(DECISION_WORDS, o.decision) + (
            f" von {o.decided_by} am {o.decided_on}" if o.decision != "pending" else "")
        told = "; ".join(p for p in (f"eingereicht von {o.submitted_by}" if o.submitted_by else "",
                                     f"Nachweis: {o.evidence}" if o.evidence else "") if p)
        if not o.applied:
            effect = "nicht angewandt" + (" (nur dokumentiert)" if o.decision == "rejected" else " (aufgeführt)")
        elif o.claim == "offer":
            effect = "angewandt, Angebot ergänzt"
        else:
            n = int((withdrawn_by == f"{o.source} Zeile {o.row}").sum())
            effect = f"angewandt, {n} Angebot(e) zurückgezogen"
        lines.append(f"  {o.source} Zeile {o.row}: {what} — {decision}" + (f" ({told})" if told else "")
                     + f": {effect}")
    return lines


def explain_address(address: pd.Series, offers: pd.DataFrame, groups: Mapping[str, Sequence[Technology]],
                    rules: Sequence[FundingRule], planned_until: str,
                    objections: pd.DataFrame | None = None) -> list[str]:
    """Lines of a plain-text explanation for one row of ``addresses.parquet``, its offers and the
    objections naming it (rows of objections.csv): offers an accepted objection withdrew are marked
    and decide no funding verdict."""
    a = address
    objections = objections if objections is not None else pd.DataFrame(columns=["claim", "provider", "applied"])
    withdrawn_by = _withdrawn_by(offers, objections)
    where = " ".join(str(a.get(c, "")) for c in ("street", "house_number")).strip()
    place = " ".join(str(a.get(c, "")) for c in ("postcode", "locality")).strip()
    lines = [f"Adresse {a['address_id']}: {', '.join(p for p in (where, place) if p) or '(ohne Anschrift)'}",
             f"  Gemeinde {a['ags']}, Amt {a['vwg_ars']}, Kreis {a['krs_ags']}; verortet: "
             f"{_word(LOCATE_WORDS, a['locate_method'])}"
             + (f" ({a['locate_distance_m']:.0f} m außerhalb, nächste Gemeinde)"
                if a["locate_method"] == "nearest" else ""),
             f"  Haushalte {a['households']:g}, Unternehmen {a.get('businesses', 0):g}"
             + (f", Standort: {_word(SITE_WORDS, a['site_kind'])} {a.get('site_name', '')}"
                if a.get("site_kind") else "")]
    lines.append(f"Angebote ({len(offers)}):")
    if offers.empty:
        lines.append("  keine — keine Anbieterlieferung erreicht diese Adresse")
    for o in offers.sort_values(["status", "down_mbps"], ascending=[True, False]).itertuples():
        how = _word(MATCH_WORDS, o.match_method) + (
            f" {o.match_distance_m:.1f} m".replace(".", ",") if o.match_method == "xy" else "")
        status = _word(STATUS_WORDS, o.status) + (
            f" ({o.planned_date})" if o.status == OfferStatus.PLANNED and o.planned_date else "")
        gone = withdrawn_by[o.Index]
        lines.append(f"  {o.provider} | {technology_label(o.technology)} | {_speed(o.down_mbps, o.up_mbps)} | "
                     f"{status} | {o.source} | zugeordnet über {how}"
                     + (f" | zurückgezogen durch {gone}" if gone else ""))
    if len(objections):
        lines += _objection_lines(objections, withdrawn_by)
        if "objection_changed" in a:
            lines.append("  Wirkung: " + ("die angenommenen Einwendungen haben die beste Versorgung oder ein "
                                          "Förderurteil dieser Adresse geändert (verglichen mit den Lieferungen "
                                          "allein)" if a["objection_changed"]
                                          else "keine Änderung der besten Versorgung oder der Förderurteile"))
    offers = offers[(withdrawn_by == "").to_numpy()]
    lines.append(f"Beste Versorgung je Technologiegruppe (heute; mit geplantem Ausbau bis {planned_until}):")
    width = max((len(GROUP_LABELS.get(g, g)) for g in groups), default=0)
    for g in groups:
        cur = (f"{_speed(a[f'best_down_{g}'], a[f'best_up_{g}'])} {technology_label(a[f'best_tech_{g}'])} "
               f"({a[f'best_provider_{g}'] or '-'})") if a[f"best_tech_{g}"] != "none" else "keine Versorgung"
        plan = a[f"plan_best_down_{g}"]
        source = str(a.get(f"best_source_{g}", ""))
        if source.startswith(OBJECTION_SOURCE_PREFIX):  # the winning offer is one an accepted objection added
            cur += f" [durch Einwendung hinzugefügt, {source.removeprefix(OBJECTION_SOURCE_PREFIX)}]"
        lines.append(f"  {GROUP_LABELS.get(g, g):<{width}}  {cur}"
                     + (f"; geplant {plan:g} Mbit/s" if plan > a[f"best_down_{g}"] else ""))
    lines.append("Förderregeln:")
    current = offers[offers["status"] == OfferStatus.CURRENT]
    for rule in rules:
        for suffix, scope in (("", current), ("_plan", offers)):
            flag = bool(a[f"fund_{rule.name}{suffix}"])
            label = rule.label + (" (mit Planung)" if suffix else "")
            if flag:
                lines.append(f"  {label}: förderfähig — {rule.describe()}")
                continue
            best = scope[disqualifying_offers(scope, rule)].sort_values("down_mbps", ascending=False).head(3)
            why = "; ".join(f"{o.provider} {technology_label(o.technology)} {_speed(o.down_mbps, o.up_mbps)}"
                            for o in best.itertuples())
            lines.append(f"  {label}: nicht förderfähig — ausgeschlossen durch {why}")
    return [terminal_text(line) for line in lines]
