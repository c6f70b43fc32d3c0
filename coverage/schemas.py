"""Column names shared by the stages (the readers check their inputs' columns and
report every missing one in a single message)."""

from __future__ import annotations

#: Optional address columns besides address_id, households and the Point geometry.
ADDRESS_OPTIONAL = ("businesses", "site_kind", "site_name", "street", "house_number", "postcode", "locality")

#: Provider offers linked to addresses: one row per (address, offer). ``addr`` is the row position of the
#: address in the located addresses of the same run (or partition): how the compiled kernels find it
#: without hashing strings again; it is not written to ``offers.parquet``.
OFFER_COLUMNS = ("address_id", "addr", "provider", "technology", "down_mbps", "up_mbps", "status", "planned_date",
                 "source", "match_method")

#: Canonical names of the area key column per level.
LEVEL_KEYS = {"gemeinde": "ags", "amt": "vwg_ars", "kreis": "krs_ags", "land": "land"}
LEVELS = tuple(LEVEL_KEYS)


def threshold_tag(t: float) -> str:
    """``100`` -> ``'100'``, ``0.5`` -> ``'0.5'``: the threshold as it appears in column names."""
    return f"{t:g}"
