"""Why an address has the figures it has: every offer, how it was matched, the best per group,
and each funding rule's verdict with the offers that decided it.

The lines are for a terminal: control characters from the data (an ESC sequence in a provider
name, a line break in a street) are shown escaped, see :func:`coverage.text.terminal_text`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from coverage.funding import FundingRule, disqualifying_offers
from coverage.model import OBJECTION_METHOD, OBJECTION_SOURCE_PREFIX, OfferStatus
from coverage.technology import Technology
from coverage.text import terminal_text


def _speed(down: float, up: float) -> str:
    up_text = "?" if up is None or np.isnan(up) else f"{up:g}"
    return f"{down:g}/{up_text} Mbit/s"


def _provider_key(value: object) -> str:
    return str(value).strip().casefold()


def _withdrawn_by(offers: pd.DataFrame, objections: pd.DataFrame) -> pd.Series:
    """Per offer: the applied no_offer objection that withdraws it (``"file row N"``), or ""."""
    gone = {_provider_key(o.provider): f"{o.source} row {o.row}" for o in objections.itertuples()
            if o.claim == "no_offer" and o.applied}
    return pd.Series([gone.get(_provider_key(o.provider), "") if o.match_method != OBJECTION_METHOD else ""
                      for o in offers.itertuples()], index=offers.index, dtype=object)


def _objection_lines(objections: pd.DataFrame, withdrawn_by: pd.Series) -> list[str]:
    lines = [f"Objections ({len(objections)}):"]
    for o in objections.itertuples():
        what = f"{o.claim} {o.provider}"
        if o.claim == "offer":
            what += f" {o.technology} {_speed(float(o.down_mbps), float(o.up_mbps))} {o.status}"
        decision = o.decision + (f" by {o.decided_by} on {o.decided_on}" if o.decision != "pending" else "")
        told = "; ".join(p for p in (f"submitted by {o.submitted_by}" if o.submitted_by else "",
                                     f"evidence: {o.evidence}" if o.evidence else "") if p)
        if not o.applied:
            effect = "not applied" + (" (kept for the record)" if o.decision == "rejected" else " (listed)")
        elif o.claim == "offer":
            effect = "applied, added this offer"
        else:
            effect = f"applied, withdrew {int((withdrawn_by == f'{o.source} row {o.row}').sum())} offer(s)"
        lines.append(f"  {o.source} row {o.row}: {what} — {decision}" + (f" ({told})" if told else "")
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
             f"  Gemeinde {a['ags']}, Amt {a['vwg_ars']}, Kreis {a['krs_ags']}; located {a['locate_method']}"
             + (f" ({a['locate_distance_m']:.0f} m outside, nearest Gemeinde)"
                if a["locate_method"] == "nearest" else ""),
             f"  households {a['households']:g}, businesses {a.get('businesses', 0):g}"
             + (f", site: {a['site_kind']} {a.get('site_name', '')}" if a.get("site_kind") else "")]
    lines.append(f"Offers ({len(offers)}):")
    if offers.empty:
        lines.append("  none — no provider delivery reaches this address")
    for o in offers.sort_values(["status", "down_mbps"], ascending=[True, False]).itertuples():
        how = o.match_method + (f" {o.match_distance_m:.1f} m" if o.match_method == "xy" else "")
        status = o.status + (f" ({o.planned_date})" if o.status == OfferStatus.PLANNED and o.planned_date else "")
        gone = withdrawn_by[o.Index]
        lines.append(f"  {o.provider} | {o.technology} | {_speed(o.down_mbps, o.up_mbps)} | {status} | "
                     f"{o.source} | matched by {how}" + (f" | withdrawn by {gone}" if gone else ""))
    if len(objections):
        lines += _objection_lines(objections, withdrawn_by)
        if "objection_changed" in a:
            lines.append("  effect: " + ("the accepted objections changed this address' best service or funding "
                                         "verdicts (compared with the deliveries alone)" if a["objection_changed"]
                                         else "no change of best service or funding verdicts"))
    offers = offers[(withdrawn_by == "").to_numpy()]
    lines.append("Best service per group (current; with planned supply until " + planned_until + "):")
    for g in groups:
        cur = (f"{_speed(a[f'best_down_{g}'], a[f'best_up_{g}'])} {a[f'best_tech_{g}']} "
               f"({a[f'best_provider_{g}'] or '-'})") if a[f"best_tech_{g}"] != "none" else "no service"
        plan = a[f"plan_best_down_{g}"]
        source = str(a.get(f"best_source_{g}", ""))
        if source.startswith(OBJECTION_SOURCE_PREFIX):  # the winning offer is one an accepted objection added
            cur += f" [added by objection, {source.removeprefix(OBJECTION_SOURCE_PREFIX)}]"
        lines.append(f"  {g:<7} {cur}" + (f"; planned {plan:g} Mbit/s" if plan > a[f"best_down_{g}"] else ""))
    lines.append("Funding rules:")
    current = offers[offers["status"] == OfferStatus.CURRENT]
    for rule in rules:
        for suffix, scope in (("", current), ("_plan", offers)):
            flag = bool(a[f"fund_{rule.name}{suffix}"])
            label = rule.label + (" (mit Planung)" if suffix else "")
            if flag:
                lines.append(f"  {label}: eligible — {rule.describe()}")
                continue
            best = scope[disqualifying_offers(scope, rule)].sort_values("down_mbps", ascending=False).head(3)
            why = "; ".join(f"{o.provider} {o.technology} {_speed(o.down_mbps, o.up_mbps)}" for o in best.itertuples())
            lines.append(f"  {label}: not eligible — disqualified by {why}")
    return [terminal_text(line) for line in lines]
