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

#: Reason codes and what they mean (documented in the README).
REASONS = {
    "missing_value": "a required cell is empty",
    "bad_number": "a number cannot be parsed",
    "ambiguous_number": "a number whose value depends on the decimal convention (1.000, 1,000) in a column "
                        "that does not settle it, or that contradicts its column's (1.5 among 16,5)",
    "bad_row": "a row with more fields than the header",
    "bad_encoding": "a cell with bytes that are not UTF-8 in a UTF-8 file",
    "negative_value": "a count or speed is negative",
    "absurd_speed": "a speed above the plausible maximum",
    "implausible_value": "a count above the plausible maximum (e.g. addresses.max_households)",
    "upload_above_download": "upload exceeds download by more than the allowed factor",
    "unknown_technology": "technology wording not in the alias table",
    "bad_status": "status is neither current nor planned",
    "bad_date": "planned_date is not a date",
    "missing_coordinates": "no usable coordinates or empty geometry",
    "not_a_point": "an address geometry that is not a point",
    "bad_utm_zone": "an HK-DE East value whose UTM zone (its first two digits) is not 31, 32 or 33",
    "deleted_record": "an HK-DE change record that deletes its address (NBA = L)",
    "invalid_geometry": "a polygon that is not valid",
    "duplicate_address_id": "an address_id that occurred earlier in the file",
    "outside_municipalities": "a point farther than the tolerance from every municipality",
    "unknown_address": "a provider record whose address_id is not in the address list",
    "address_quarantined": "a provider record whose address was itself quarantined",
    "no_address_nearby": "a provider record with no address within the match distance",
    "address_not_found": "a provider record whose street address matches no address",
    "ambiguous_address": "a provider record whose street address matches several addresses (add postcode, "
                         "locality or ags to tell them apart)",
    "missing_locator": "a provider record with neither address_id, coordinates nor street address",
    "unknown_site_kind": "a [sites] row whose site_kind is not gemeinde_office, amt_office, kreis_office or school",
    "duplicate_site": "a [sites] row linked to an address that an earlier row already made a site",
    "unknown_claim": "an objection whose claim is neither offer nor no_offer",
    "unknown_decision": "an objection whose decision is neither accepted, rejected nor pending",
    "no_offer_to_withdraw": "an accepted no_offer objection naming a provider without an offer at that address",
}


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
