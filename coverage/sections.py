"""Configuration sections of the features around a run: publication ([publish]), cost estimate
([costs]) and project areas ([[project_areas]]).

Kept apart from the code that uses them (coverage/disclosure.py, costs.py, eligible.py) so that
coverage/config.py, which every stage's code fingerprint includes, does not import that code: an
edit to the cost estimate must not rerun the address stage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coverage.errors import ConfigError

CONTACT_REQUIRED = ("organisation", "email")
CONTACT_OPTIONAL = ("name", "position", "phone", "url", "address", "city", "postalcode", "country")


@dataclass(frozen=True)
class DisclosureRules:
    min_addresses: int = 5
    round_to: int = 10
    dominance_share: float = 0.85


@dataclass(frozen=True)
class Contact:
    organisation: str
    email: str
    name: str | None = None
    position: str | None = None
    phone: str | None = None
    url: str | None = None
    address: str | None = None
    city: str | None = None
    postalcode: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class PublishConfig:
    """``[publish]``: the rules, and what the metadata says (nothing of it is invented when absent)."""

    rules: DisclosureRules = field(default_factory=DisclosureRules)
    url: str | None = None  # where the package is (to be) downloaded: the metadata's resource locator
    title: str | None = None  # default: [report] title
    abstract: str | None = None
    contact: Mapping[str, str] = field(default_factory=dict)

    def metadata_contact(self) -> Contact:
        """The contact for the metadata; a one-line error naming every missing key."""
        missing = [f"[publish.contact] {k}" for k in CONTACT_REQUIRED if not self.contact.get(k)]
        if not self.url:
            missing.insert(0, "[publish] url")
        if missing:
            raise ConfigError(f"publish needs {', '.join(missing)} in the configuration (the INSPIRE metadata "
                              "names who publishes the data and where; nothing is invented)")
        return Contact(**dict(self.contact.items()))


def publish_config(raw: Mapping[str, Any]) -> PublishConfig:
    """``[publish]`` of a configuration, checked key by key."""
    if not isinstance(raw, Mapping):
        raise ConfigError("[publish] must be a table")
    allowed = {"min_addresses", "round_to", "dominance_share", "url", "title", "abstract", "contact"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in [publish]; allowed: {sorted(allowed)}")
    for key in ("min_addresses", "round_to"):
        v = raw.get(key, 1)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"publish.{key}: expected a whole number ≥ 1, got {v!r}")
    share = raw.get("dominance_share", 0.85)
    if isinstance(share, bool) or not isinstance(share, int | float) or not (0 < share <= 1):
        raise ConfigError(f"publish.dominance_share: expected a number in (0, 1], got {share!r}")
    for key in ("url", "title", "abstract"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"publish.{key}: expected a string, got {raw[key]!r}")
    contact = raw.get("contact", {})
    if not isinstance(contact, Mapping):
        raise ConfigError("[publish.contact] must be a table")
    bad = sorted(set(contact) - set(CONTACT_REQUIRED) - set(CONTACT_OPTIONAL))
    if bad:
        raise ConfigError(f"unknown key(s) {bad} in [publish.contact]; allowed: "
                          f"{sorted(CONTACT_REQUIRED + CONTACT_OPTIONAL)}")
    if not all(isinstance(v, str) for v in contact.values()):
        raise ConfigError("[publish.contact]: every value must be a string")
    defaults = DisclosureRules()
    rules = DisclosureRules(int(raw.get("min_addresses", defaults.min_addresses)),
                            int(raw.get("round_to", defaults.round_to)), float(share))
    return PublishConfig(rules=rules, url=raw.get("url"), title=raw.get("title"), abstract=raw.get("abstract"),
                         contact=dict(contact))


@dataclass(frozen=True)
class CostConfig:
    """``[costs]``: every price and share set by the user (no defaults for any of them)."""

    price_per_m: float  # civil works per metre of trench
    price_per_connection: float  # per house connection (eligible address)
    price_per_household: float  # per household (in-house work, ONT …)
    share_federal: float
    share_land: float
    share_municipal: float
    rule: str = "gigabit_2024"  # which funding rule's eligible addresses are connected
    plan: bool = False  # use the verdict with planned supply (fund_{rule}_plan)
    max_link_m: float | None = None  # tree edges longer than this are cut (each part linked on its own)
    isolated_m: float | None = None  # addresses whose nearest eligible neighbour is farther are listed
    network_points: Path | None = None  # points to link to instead of the served addresses
    currency: str = "EUR"
    label: str = ""  # e.g. "Beispielwerte, keine echten Preise": shown with every figure

    @property
    def fund_column(self) -> str:
        return f"fund_{self.rule}" + ("_plan" if self.plan else "")


_PRICES = ("price_per_m", "price_per_connection", "price_per_household")
_SHARES = ("share_federal", "share_land", "share_municipal")


def costs_from_config(raw: Mapping[str, Any], base_dir: Path, rule_names: Sequence[str]) -> CostConfig:
    """The ``[costs]`` table, checked: prices ≥ 0, shares in [0, 1] summing to 1, a known rule."""
    if not isinstance(raw, Mapping):
        raise ConfigError("[costs]: expected a table")
    allowed = {*_PRICES, *_SHARES, "rule", "plan", "max_link_m", "isolated_m", "network_points", "currency", "label"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in [costs]; allowed: {sorted(allowed)}")
    missing = [k for k in (*_PRICES, *_SHARES) if k not in raw]
    if missing:
        raise ConfigError(f"[costs] is missing {missing}: every price and share is set by the user "
                          "(there are no built-in prices)")
    values: dict[str, Any] = {}
    for key in (*_PRICES, *_SHARES, "max_link_m", "isolated_m"):
        if key not in raw:
            continue
        v = raw[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"costs.{key}: expected a finite number ≥ 0, got {v!r}")
        values[key] = float(v)
    for key in _SHARES:
        if values[key] > 1:
            raise ConfigError(f"costs.{key}: a share is between 0 and 1, got {values[key]:g}")
    total = sum(values[k] for k in _SHARES)
    if abs(total - 1.0) > 1e-9:
        raise ConfigError(f"costs: share_federal + share_land + share_municipal must be 1, got {total:g}")
    for key in ("max_link_m", "isolated_m"):
        if key in values and values[key] <= 0:
            raise ConfigError(f"costs.{key}: expected a positive distance in metres, got {values[key]:g}")
    rule = raw.get("rule", "gigabit_2024")
    if rule not in rule_names:
        raise ConfigError(f"costs.rule: unknown funding rule {rule!r}; known: {list(rule_names)}")
    plan = raw.get("plan", False)
    if not isinstance(plan, bool):
        raise ConfigError(f"costs.plan: expected true or false, got {plan!r}")
    for key in ("currency", "label", "network_points"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"costs.{key}: expected a string, got {raw[key]!r}")
    points = raw.get("network_points")
    return CostConfig(**values, rule=str(rule), plan=plan,
                      network_points=None if points is None else (base_dir / Path(points).expanduser()).resolve(),
                      currency=str(raw.get("currency", "EUR")), label=str(raw.get("label", "")))


@dataclass(frozen=True)
class ProjectAreasConfig:
    """``[[project_areas]]``: a polygon file with one feature per project area, named by ``name_column``."""

    path: Path
    layer: str | None = None
    name_column: str = "name"


def project_areas_from_config(raw: object, base_dir: Path) -> tuple[ProjectAreasConfig, ...]:
    if not isinstance(raw, list) or not all(isinstance(r, Mapping) for r in raw):
        raise ConfigError("[[project_areas]] must be an array of tables with path (and name_column, layer)")
    out = []
    for i, r in enumerate(raw):
        unknown = sorted(set(r) - {"path", "layer", "name_column"})
        if unknown:
            raise ConfigError(f"project_areas[{i}]: unknown key(s) {unknown}; allowed: ['layer', 'name_column', "
                              "'path']")
        if not isinstance(r.get("path"), str):
            raise ConfigError(f"project_areas[{i}].path: expected a path string")
        for key in ("layer", "name_column"):
            if key in r and not isinstance(r[key], str):
                raise ConfigError(f"project_areas[{i}].{key}: expected a string, got {r[key]!r}")
        out.append(ProjectAreasConfig((base_dir / Path(r["path"]).expanduser()).resolve(), r.get("layer"),
                                      r.get("name_column", "name")))
    return tuple(out)
