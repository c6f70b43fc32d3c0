"""Closed vocabulary of access technologies, the alias table and technology groups.

Provider wording (``Glasfaser``, ``DOCSIS 3.1``, ``VDSL2-Vectoring`` …) is mapped
to a :class:`Technology` by one explicit table. An unknown word is an error the
caller reports (quarantine), never silently "other".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum

from coverage.errors import UnknownCodeError


class Technology(StrEnum):
    DSL = "dsl"
    HFC = "hfc"
    FTTB = "fttb"
    FTTH = "ftth"
    FWA = "fwa"
    LTE = "lte"
    NR5G = "5g"
    SATELLITE = "satellite"


#: The technologies as planners say them (pages, ``bbcov explain``); ``none`` is "no service".
TECHNOLOGY_LABELS: dict[str, str] = {
    "ftth": "Glasfaser (FTTH)", "fttb": "Glasfaser (FTTB)", "dsl": "DSL", "vdsl": "DSL (VDSL)", "hfc": "Kabel (HFC)",
    "fwa": "Richtfunk/FWA", "lte": "Mobilfunk (LTE)", "5g": "Mobilfunk (5G)", "satellite": "Satellit",
    "none": "keine", "": ""}


def technology_label(value: object) -> str:
    """``"ftth"`` -> ``"Glasfaser (FTTH)"``; an unknown word is shown as it is."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return TECHNOLOGY_LABELS.get(str(value).strip().lower(), str(value))


#: Technology groups as the Breitbandatlas reports them. ``all`` excludes satellite.
DEFAULT_GROUPS: dict[str, tuple[Technology, ...]] = {
    "all": (Technology.DSL, Technology.HFC, Technology.FTTB, Technology.FTTH,
            Technology.FWA, Technology.LTE, Technology.NR5G),
    "wired": (Technology.DSL, Technology.HFC, Technology.FTTB, Technology.FTTH),
    "dsl": (Technology.DSL,),
    "hfc": (Technology.HFC,),
    "fibre": (Technology.FTTB, Technology.FTTH),
    "mobile": (Technology.LTE, Technology.NR5G),
}

#: Fixed networks as the funding rules count them (mobile and satellite never make
#: an address ineligible).
FIXED_NETWORKS: tuple[Technology, ...] = (
    Technology.DSL, Technology.HFC, Technology.FTTB, Technology.FTTH, Technology.FWA,
)

_ALIASES: dict[str, Technology] = {
    # DSL family
    "dsl": Technology.DSL, "adsl": Technology.DSL, "adsl2": Technology.DSL, "adsl2+": Technology.DSL,
    "vdsl": Technology.DSL, "vdsl2": Technology.DSL, "vdsl2 vectoring": Technology.DSL,
    "vectoring": Technology.DSL, "supervectoring": Technology.DSL, "svdsl": Technology.DSL,
    "super vectoring": Technology.DSL, "vdsl supervectoring": Technology.DSL, "g.fast": Technology.DSL,
    "kupfer": Technology.DSL,
    # cable
    "hfc": Technology.HFC, "kabel": Technology.HFC, "catv": Technology.HFC, "tv kabel": Technology.HFC,
    "kabelnetz": Technology.HFC, "docsis": Technology.HFC, "docsis 3.0": Technology.HFC,
    "docsis 3.1": Technology.HFC, "docsis 4.0": Technology.HFC, "koax": Technology.HFC,
    # fibre
    "ftth": Technology.FTTH, "glasfaser": Technology.FTTH, "glasfaser ftth": Technology.FTTH,
    "ftth glasfaser": Technology.FTTH, "fiber": Technology.FTTH, "fibre": Technology.FTTH,
    "gpon": Technology.FTTH, "xgs pon": Technology.FTTH, "xgspon": Technology.FTTH,
    "fttb": Technology.FTTB, "glasfaser fttb": Technology.FTTB, "ftth/b": Technology.FTTH,
    # fixed wireless
    "fwa": Technology.FWA, "richtfunk": Technology.FWA, "wlan richtfunk": Technology.FWA,
    "funk": Technology.FWA, "wimax": Technology.FWA,
    # mobile
    "lte": Technology.LTE, "4g": Technology.LTE, "lte advanced": Technology.LTE, "lte a": Technology.LTE,
    "5g": Technology.NR5G, "5g nr": Technology.NR5G, "nr": Technology.NR5G, "5g sa": Technology.NR5G,
    "5g nsa": Technology.NR5G,
    # satellite
    "satellit": Technology.SATELLITE, "satellite": Technology.SATELLITE, "sat": Technology.SATELLITE,
    "leo": Technology.SATELLITE,
}


def normalise_alias(word: str) -> str:
    """Fold provider wording to the alias-table key: lower case, ``-``/``_`` as space, single spaces."""
    text = str(word).strip().casefold().replace("_", " ").replace("-", " ")
    return re.sub(r"\s+", " ", text)


def alias_table(extra: Mapping[str, str] | None = None) -> dict[str, Technology]:
    """The built-in alias table, extended by user aliases (``{"VDSL-250": "dsl"}``)."""
    table = dict(_ALIASES)
    for word, tech in (extra or {}).items():
        try:
            table[normalise_alias(word)] = Technology(normalise_alias(tech))
        except ValueError as exc:
            raise UnknownCodeError(
                f"technology alias {word!r} -> {tech!r}: target must be one of {[t.value for t in Technology]}"
            ) from exc
    for tech in Technology:
        table.setdefault(tech.value, tech)
    return table


def parse_technology(word: object, table: Mapping[str, Technology]) -> Technology:
    """Map one provider word to a :class:`Technology`; unknown words raise :class:`UnknownCodeError`."""
    key = normalise_alias(str(word))
    try:
        return table[key]
    except KeyError as exc:
        raise UnknownCodeError(f"unknown technology {word!r}; add it to [technology_aliases] in the config") from exc


def validate_groups(groups: Mapping[str, object]) -> dict[str, tuple[Technology, ...]]:
    """Turn a user mapping ``{"fibre": ["ftth", "fttb"]}`` into checked groups."""
    out: dict[str, tuple[Technology, ...]] = {}
    for name, members in groups.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise UnknownCodeError(f"technology group name {name!r} must be lower-case letters, digits and _")
        if not isinstance(members, Iterable):  # e.g. `fast = 5` in TOML; was a bare TypeError
            raise UnknownCodeError(f"technology group {name!r}: expected a list of technologies, got {members!r}")
        try:
            out[name] = tuple(Technology(str(m)) for m in members)
        except ValueError as exc:
            raise UnknownCodeError(
                f"technology group {name!r}: members must be among {[t.value for t in Technology]}, got {members!r}"
            ) from exc
    return out
