"""Frozen, typed run configuration loaded from TOML.

Unknown keys are errors (a typo must not silently fall back to a default).
Relative paths are resolved against the directory of the config file, so a
config and its data can be moved together.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, get_type_hints

from pyproj import CRS

from coverage.crs import DEFAULT_WORKING_CRS, parse_crs, working_crs
from coverage.errors import ConfigError, DataSourceError, UnknownCodeError
from coverage.funding import DEFAULT_RULES, FundingRule, rules_from_config
from coverage.model import BoundaryFormat, OfferStatus, ProviderFormat
from coverage.technology import DEFAULT_GROUPS, Technology, alias_table, validate_groups

DEFAULT_THRESHOLDS = (2, 16, 30, 50, 100, 200, 400, 1000)


@dataclass(frozen=True)
class TableOptions:
    """How to read a delimited or spreadsheet file; ``None`` means sniff."""

    encoding: str | None = None
    delimiter: str | None = None
    decimal: str | None = None
    sheet: str | None = None
    header_row: int | None = None


@dataclass(frozen=True)
class BoundariesConfig:
    path: Path
    land: str | None = None
    areas: tuple[str, ...] = ()  # ARS prefixes to keep: Kreis "13075", Amt "130755553", Gemeinde (12 digits)
    format: BoundaryFormat = BoundaryFormat.BKG  # "bkg" bundle (VG250/VG5000 ebenen) or "vector" with a column map
    layer: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AddressesConfig:
    path: Path
    crs: str | None = None
    layer: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    table: TableOptions = field(default_factory=TableOptions)


@dataclass(frozen=True)
class ProviderConfig:
    path: Path
    format: ProviderFormat
    provider: str | None = None
    technology: str | None = None
    down_mbps: float | None = None
    up_mbps: float | None = None
    status: OfferStatus = OfferStatus.CURRENT
    planned_date: str | None = None
    max_upload_ratio: float = 1.0  # upload above download × this is quarantined (upload_above_download)
    crs: str | None = None
    layer: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    table: TableOptions = field(default_factory=TableOptions)
    label: str | None = None  # set for one partition of a delivery, so it keeps the delivery's name

    @property
    def name(self) -> str:
        """A stable label for logs, manifests and quarantine rows."""
        return self.label or self.path.name


@dataclass(frozen=True)
class AnalysisConfig:
    crs: str = DEFAULT_WORKING_CRS
    thresholds_mbps: tuple[float, ...] = DEFAULT_THRESHOLDS
    groups: Mapping[str, tuple[Technology, ...]] = field(default_factory=lambda: dict(DEFAULT_GROUPS))
    locate_tolerance_m: float = 500.0
    match_distance_m: float = 25.0
    planned_horizon_years: float = 3.0
    reference_date: str | None = None  # ISO date the planned horizon counts from; default: run date
    change_tolerance_pp: float = 0.5  # share changes within ± this are not flagged as noteworthy
    #: a file whose readers accept fewer than this share of its rows stops the run (exit 2)
    min_accepted_share: float = 0.5

    @property
    def working_crs(self) -> CRS:
        return working_crs(self.crs)


@dataclass(frozen=True)
class OutputConfig:
    dir: Path
    reports_dir: Path
    grid: bool = True  # write the 100 m INSPIRE grid (GeoPackage + GeoTIFF)


@dataclass(frozen=True)
class ReportConfig:
    """What the planner-facing report says about the data (German UI text)."""

    title: str = "Breitbandversorgung"
    data_date: str | None = None  # date the provider data describes, e.g. "2021-06-30"
    attributions: tuple[str, ...] = ()  # shown with every map, besides the BKG line derived from the boundaries


@dataclass(frozen=True)
class RunConfig:
    source: Path | None
    boundaries: BoundariesConfig
    addresses: AddressesConfig
    providers: tuple[ProviderConfig, ...]
    analysis: AnalysisConfig
    output: OutputConfig
    report: ReportConfig = field(default_factory=ReportConfig)
    funding_rules: tuple[FundingRule, ...] = DEFAULT_RULES
    technology_aliases: Mapping[str, str] = field(default_factory=dict)
    #: the configuration file as read (recorded in the manifest and the atlas: read once)
    source_text: str = ""
    source_bytes: bytes = b""

    @property
    def aliases(self) -> dict[str, Technology]:
        return alias_table(self.technology_aliases)


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML run configuration."""
    path = Path(path)
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError as exc:
        raise DataSourceError(f"{path}: config file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataSourceError(f"{path}: cannot read config file ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    return dataclasses.replace(config_from_dict(raw, base_dir=path.resolve().parent, source=path, text=text),
                               source_bytes=data)


def config_from_dict(raw: Mapping[str, Any], base_dir: Path, source: Path | None = None,
                     text: str = "") -> RunConfig:
    """Build a :class:`RunConfig` from parsed TOML; every problem names its key."""
    prefix = f"{source}: " if source else ""
    try:
        return dataclasses.replace(_build(raw, base_dir, source), source_text=text)
    except ConfigError as exc:
        raise ConfigError(prefix + str(exc)) from exc


def _build(raw: Mapping[str, Any], base_dir: Path, source: Path | None) -> RunConfig:
    _check_keys(raw, {"boundaries", "addresses", "providers", "analysis", "output", "report",
                      "funding_rules", "technology_aliases"}, "")
    for required in ("boundaries", "addresses"):
        if required not in raw:
            raise ConfigError(f"missing section [{required}]")
    providers = raw.get("providers", [])
    if not isinstance(providers, list):
        raise ConfigError("[[providers]] must be an array of tables")
    analysis = dict(raw.get("analysis", {}))
    if "thresholds_mbps" in analysis:
        analysis["thresholds_mbps"] = _thresholds(analysis["thresholds_mbps"])
    if "groups" in analysis:
        analysis["groups"] = _groups(analysis["groups"])
    aliases = raw.get("technology_aliases", {})
    if not isinstance(aliases, Mapping):
        raise ConfigError("[technology_aliases] must be a table of word = technology")
    # Without [output], results go to the project folder the command runs in (data/processed, reports);
    # paths given in [output] are relative to the config file like every other path.
    output = {"dir": "data/processed", "reports_dir": "reports", **raw.get("output", {})}
    output_base = base_dir if "output" in raw else Path.cwd()
    cfg = RunConfig(
        source=source,
        boundaries=_section(BoundariesConfig, raw["boundaries"], "boundaries", base_dir),
        addresses=_section(AddressesConfig, raw["addresses"], "addresses", base_dir),
        providers=tuple(expanded for i, p in enumerate(providers)
                        for expanded in _expand_glob(_section(ProviderConfig, p, f"providers[{i}]", base_dir),
                                                     p.get("path", ""), f"providers[{i}]")),
        analysis=_section(AnalysisConfig, analysis, "analysis", base_dir),
        output=_section(OutputConfig, output, "output", output_base),
        report=_section(ReportConfig, raw.get("report", {}), "report", base_dir),
        funding_rules=rules_from_config(raw["funding_rules"]) if "funding_rules" in raw else DEFAULT_RULES,
        technology_aliases=dict(aliases),
    )
    _check_semantics(cfg)
    return cfg


def _check_semantics(cfg: RunConfig) -> None:
    cfg.analysis.working_crs  # noqa: B018 - raises ConfigError for unusable CRSs
    try:
        alias_table(cfg.technology_aliases)
    except UnknownCodeError as exc:
        raise ConfigError(f"[technology_aliases]: {exc}") from exc
    if cfg.addresses.crs is not None:
        parse_crs(cfg.addresses.crs, "addresses.crs")
    names = [p.name for p in cfg.providers]
    if len(set(names)) != len(names):
        raise ConfigError(f"[[providers]]: file names must be unique (they name quarantine files), got {names}")
    for i, p in enumerate(cfg.providers):
        key = f"providers[{i}]"
        if p.format in (ProviderFormat.POLYGONS, ProviderFormat.RASTER) and not (p.provider and p.technology):
            raise ConfigError(f"{key}: format {str(p.format)!r} needs 'provider' and 'technology'")
        if p.crs is not None:
            parse_crs(p.crs, f"{key}.crs")
    for a in ("locate_tolerance_m", "match_distance_m", "planned_horizon_years"):
        if getattr(cfg.analysis, a) < 0:
            raise ConfigError(f"analysis.{a}: must not be negative")
    if not 0.0 <= cfg.analysis.min_accepted_share <= 1.0:
        raise ConfigError(f"analysis.min_accepted_share: expected a share between 0 and 1, "
                          f"got {cfg.analysis.min_accepted_share!r}")
    tables = [("addresses", cfg.addresses.table), *((f"providers[{i}]", p.table) for i, p in enumerate(cfg.providers))]
    for where, table in tables:
        if table.decimal not in (None, ",", "."):
            raise ConfigError(f"{where}.decimal: expected \",\" or \".\", got {table.decimal!r}")


def _expand_glob(cfg: ProviderConfig, raw_path: str, where: str) -> list[ProviderConfig]:
    """``path = "deliveries/*.csv"`` becomes one delivery per matching file, in name order, so a
    new file dropped into the folder is picked up by the next scheduled run."""
    if not any(ch in raw_path for ch in "*?["):
        return [cfg]
    matches = sorted(p for p in cfg.path.parent.glob(cfg.path.name) if p.is_file())
    if not matches:
        raise ConfigError(f"{where}.path: {raw_path!r} matches no file")
    names = [m.name for m in matches]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}.path: {raw_path!r} matches several files with the same name")
    return [dataclasses.replace(cfg, path=m) for m in matches]


def _thresholds(value: object) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("analysis.thresholds_mbps: expected a non-empty list of numbers")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
            raise ConfigError(f"analysis.thresholds_mbps: {v!r} is not a positive number")
        out.append(int(v) if float(v).is_integer() else float(v))
    if len(set(out)) != len(out):
        raise ConfigError("analysis.thresholds_mbps: duplicate thresholds")
    return tuple(sorted(out))


def _groups(value: object) -> dict[str, tuple[Technology, ...]]:
    if not isinstance(value, Mapping):
        raise ConfigError("analysis.groups: expected a table of group = [technologies]")
    try:
        return validate_groups(value)
    except ValueError as exc:
        raise ConfigError(f"analysis.groups: {exc}") from exc


def _choice(vocabulary: type[StrEnum], value: str, where: str) -> StrEnum:
    """``value`` as a member of a closed vocabulary (format, status), or a ConfigError naming the choices."""
    try:
        return vocabulary(value)
    except ValueError:
        names = [m.value for m in vocabulary]
        expected = f"{names[0]!r} or {names[1]!r}" if len(names) == 2 else f"one of {names}"
        raise ConfigError(f"{where}: expected {expected}, got {value!r}") from None


def _check_keys(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a table")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        label = f"[{where}]" if where else "top level"
        raise ConfigError(f"unknown key(s) {unknown} in {label}; allowed: {sorted(allowed)}")


def _section(cls: type, raw: Mapping[str, Any], where: str, base_dir: Path):
    """Build dataclass ``cls`` from ``raw``, checking keys and resolving paths."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    table_keys = {f.name for f in dataclasses.fields(TableOptions)} if "table" in fields else set()
    _check_keys(raw, (set(fields) - {"table"}) | table_keys, where)
    kwargs: dict[str, Any] = {}
    table_kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in table_keys:
            table_kwargs[key] = value
            continue
        hint = hints[key]
        if hint is Path or key in ("path", "dir", "reports_dir"):
            if not isinstance(value, str):
                raise ConfigError(f"{where}.{key}: expected a path string, got {value!r}")
            value = (base_dir / Path(value).expanduser()).resolve()
        elif key == "columns":
            if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
                raise ConfigError(f"{where}.columns: expected a table of canonical = \"source column\"")
            value = dict(value)
        elif key in ("land", "crs", "provider", "technology", "status", "planned_date", "layer",
                     "format", "title", "data_date", "reference_date"):
            if not isinstance(value, str):
                raise ConfigError(f"{where}.{key}: expected a string, got {value!r}")
            if isinstance(hint, type) and issubclass(hint, StrEnum):
                value = _choice(hint, value, f"{where}.{key}")
        elif key == "areas":
            if not isinstance(value, list) or not all(isinstance(v, str) and v.isdigit() for v in value):
                raise ConfigError(f"{where}.areas: expected a list of ARS prefixes as strings, e.g. [\"13075\"]")
            value = tuple(value)
        elif key == "grid":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.grid: expected true or false")
        elif key == "attributions":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}.attributions: expected a list of strings")
            value = tuple(value)
        elif key in ("down_mbps", "up_mbps", "locate_tolerance_m", "match_distance_m", "planned_horizon_years",
                     "max_upload_ratio", "change_tolerance_pp", "min_accepted_share"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
            value = float(value)
        kwargs[key] = value
    if table_kwargs:
        kwargs["table"] = TableOptions(**table_kwargs)
    missing = [n for n, f in fields.items()
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and n not in kwargs]
    if missing:
        raise ConfigError(f"[{where}] is missing required key(s) {missing}")
    return cls(**kwargs)
