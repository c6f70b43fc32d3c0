"""Frozen, typed run configuration loaded from TOML.

Unknown keys are errors (a typo must not silently fall back to a default).
Relative paths are resolved against the directory of the config file, so a
config and its data can be moved together.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, get_type_hints

from pyproj import CRS

from coverage.crs import DEFAULT_WORKING_CRS, parse_crs, working_crs
from coverage.errors import ConfigError, DataSourceError, UnknownCodeError
from coverage.funding import DEFAULT_RULES, FundingRule, rules_from_config
from coverage.model import AddressFormat, BoundaryFormat, OfferStatus, ProviderFormat
from coverage.sections import (
    CostConfig,
    ProjectAreasConfig,
    PublishConfig,
    costs_from_config,
    project_areas_from_config,
    publish_config,
)
from coverage.technology import DEFAULT_GROUPS, Technology, alias_table, normalise_alias, validate_groups

DEFAULT_THRESHOLDS = (2, 16, 30, 50, 100, 200, 400, 1000)
#: Plausible maximum for any delivered speed (Mbit/s); above is a unit mistake.
MAX_SPEED_MBPS = 100_000.0


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
    format: AddressFormat = AddressFormat.TABLE  # "table" (CSV/XLSX/Parquet/vector) or "hk-de" (HK-DE text file)
    decode: Path | None = None  # hk-de only: the delivery's Entschlüsselungsdatei (street names by street key)
    max_households: float = 1000.0  # more households at one address is a typo, not a block of flats: quarantined


@dataclass(frozen=True)
class HouseholdsConfig:
    """Where households per address come from: the address list, or estimated from the Zensus 2022 grids."""

    source: str = "addresses"  # "addresses" (its households column) or "zensus"
    grid_1km: tuple[Path, ...] = ()  # einwohner + hh_groesse_d: a parquet file or the official CSVs
    grid_100m: tuple[Path, ...] = ()  # dwellings per 100 m cell (weights); optional
    max_distance_m: float = 1000.0  # households of a cell without address go to the nearest one within this
    replace: bool = False  # estimate even where the address list has a households column

    @property
    def estimated(self) -> bool:
        return self.source == "zensus"

    @property
    def paths(self) -> tuple[Path, ...]:
        return (*self.grid_1km, *self.grid_100m) if self.estimated else ()


HOUSEHOLD_SOURCES = ("addresses", "zensus")


@dataclass(frozen=True)
class LocatedListConfig:
    """[businesses] or [sites]: a table (CSV/XLSX/Parquet) whose rows are linked to the addresses like
    provider records (by address_id, x/y within match_distance_m, or street address)."""

    path: Path
    crs: str | None = None  # for x/y columns
    columns: Mapping[str, str] = field(default_factory=dict)
    table: TableOptions = field(default_factory=TableOptions)

    @property
    def name(self) -> str:
        """The label of its rows in logs, accounting and quarantine."""
        return self.path.name


@dataclass(frozen=True)
class ObjectionsConfig:
    """[[objections]]: a table (CSV/XLSX/Parquet) of objections and their decisions (Stellungnahmen),
    located like provider table records (address_id, or street + house_number [+ postcode]); accepted
    ones are applied as their own layer on top of the deliveries (see :mod:`coverage.sources.objections`)."""

    path: Path
    columns: Mapping[str, str] = field(default_factory=dict)
    table: TableOptions = field(default_factory=TableOptions)

    @property
    def name(self) -> str:
        """The label of its rows: offers' ``source``, quarantine and objections.csv."""
        return self.path.name


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
    band: int | None = None  # rasters: the band holding the download speed (1-based); required for multi-band
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


REPORT_PROFILES = ("internal", "public")


@dataclass(frozen=True)
class ReportConfig:
    """What the planner-facing report says about the data (German UI text)."""

    title: str = "Breitbandversorgung"
    data_date: str | None = None  # date the provider data describes, e.g. "2021-06-30"
    attributions: tuple[str, ...] = ()  # shown with every map, besides the BKG line derived from the boundaries
    #: "internal": the planners' atlas (every figure, sites with providers, quarantine, configuration);
    #: "public": only the figures `bbcov publish` publishes (same disclosure control, rules of [publish]),
    #: no sites, no provider names, no quarantine or configuration details
    profile: str = "internal"
    #: also print one PDF "Steckbrief" per Kreis and Amt into reports/<run>/pdf/ (headless Chromium;
    #: the same as `bbcov run --pdf`)
    pdf: bool = False

    def __post_init__(self) -> None:
        if self.profile not in REPORT_PROFILES:
            raise ConfigError(f"report.profile: {self.profile!r} is not one of {', '.join(REPORT_PROFILES)}")


@dataclass(frozen=True)
class RunConfig:
    source: Path | None
    boundaries: BoundariesConfig
    addresses: AddressesConfig
    providers: tuple[ProviderConfig, ...]
    analysis: AnalysisConfig
    output: OutputConfig
    report: ReportConfig = field(default_factory=ReportConfig)
    households: HouseholdsConfig = field(default_factory=HouseholdsConfig)
    funding_rules: tuple[FundingRule, ...] = DEFAULT_RULES
    #: business locations: their counts replace the address list's businesses column
    businesses: LocatedListConfig | None = None
    #: administrative sites and schools: they set site_kind/site_name of their addresses
    sites: LocatedListConfig | None = None
    technology_aliases: Mapping[str, str] = field(default_factory=dict)
    publish: PublishConfig = field(default_factory=PublishConfig)  # [publish]: `bbcov publish` only
    project_areas: tuple[ProjectAreasConfig, ...] = ()  # [[project_areas]]: polygons for lists and costs
    costs: CostConfig | None = None  # [costs]: the user's prices; without it no cost estimate
    #: [[objections]]: objection tables, applied in order on top of the deliveries
    objections: tuple[ObjectionsConfig, ...] = ()
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
                      "funding_rules", "technology_aliases", "households", "businesses", "sites", "publish",
                      "project_areas", "costs", "objections"}, "")
    for required in ("boundaries", "addresses"):
        if required not in raw:
            raise ConfigError(f"missing section [{required}]")
    providers = raw.get("providers", [])
    if not isinstance(providers, list):
        raise ConfigError("[[providers]] must be an array of tables")
    objections = raw.get("objections", [])
    if not isinstance(objections, list) or not all(isinstance(o, Mapping) for o in objections):
        raise ConfigError("[[objections]] must be an array of tables")
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
        households=_households(raw.get("households", {}), base_dir),
        funding_rules=rules_from_config(raw["funding_rules"]) if "funding_rules" in raw else DEFAULT_RULES,
        technology_aliases=dict(aliases),
        **{key: _section(LocatedListConfig, raw[key], key, base_dir) for key in ("businesses", "sites") if key in raw},
        publish=publish_config(raw.get("publish", {})),
        objections=tuple(_section(ObjectionsConfig, o, f"objections[{i}]", base_dir) for i, o in enumerate(objections)),
    )
    cfg = dataclasses.replace(
        cfg, project_areas=project_areas_from_config(raw.get("project_areas", []), base_dir),
        costs=costs_from_config(raw["costs"], base_dir, [r.name for r in cfg.funding_rules]) if "costs" in raw
        else None)
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
    _check_hkde(cfg.addresses)
    for key in ("businesses", "sites"):
        section = getattr(cfg, key)
        if section is not None and section.crs is not None:
            parse_crs(section.crs, f"{key}.crs")
    names = [p.name for p in cfg.providers]
    if len(set(names)) != len(names):
        raise ConfigError(f"[[providers]]: file names must be unique (they name quarantine files), got {names}")
    taken = [o.name for o in cfg.objections if o.name in names]
    if taken or len({o.name for o in cfg.objections}) != len(cfg.objections):
        raise ConfigError(f"[[objections]]: file names must be unique and differ from the deliveries' (they name "
                          f"offer sources and quarantine files), got {[o.name for o in cfg.objections]}")
    for i, p in enumerate(cfg.providers):
        key = f"providers[{i}]"
        if p.format in (ProviderFormat.POLYGONS, ProviderFormat.RASTER) and not (p.provider and p.technology):
            raise ConfigError(f"{key}: format {str(p.format)!r} needs 'provider' and 'technology'")
        if p.crs is not None:
            parse_crs(p.crs, f"{key}.crs")
        if p.band is not None and p.format != ProviderFormat.RASTER:
            raise ConfigError(f"{key}.band: applies to format = \"raster\" only, not {str(p.format)!r}")
        _check_offer_defaults(p, key, cfg.aliases)
    for a in ("locate_tolerance_m", "change_tolerance_pp"):
        if getattr(cfg.analysis, a) < 0:
            raise ConfigError(f"analysis.{a}: must not be negative, got {getattr(cfg.analysis, a):g}")
    if cfg.analysis.match_distance_m <= 0:
        raise ConfigError(f"analysis.match_distance_m: must be a positive distance in metres, "
                          f"got {cfg.analysis.match_distance_m:g}")
    if not 0 <= cfg.analysis.planned_horizon_years <= MAX_HORIZON_YEARS:
        raise ConfigError(f"analysis.planned_horizon_years: expected 0 to {MAX_HORIZON_YEARS} years, "
                          f"got {cfg.analysis.planned_horizon_years:g}")
    if not 0.0 <= cfg.analysis.min_accepted_share <= 1.0:
        raise ConfigError(f"analysis.min_accepted_share: expected a share between 0 and 1, "
                          f"got {cfg.analysis.min_accepted_share!r}")
    tables = [("addresses", cfg.addresses.table), *((f"providers[{i}]", p.table) for i, p in enumerate(cfg.providers)),
              *((f"objections[{i}]", o.table) for i, o in enumerate(cfg.objections))]
    for where, table in tables:
        if table.decimal not in (None, ",", "."):
            raise ConfigError(f"{where}.decimal: expected \",\" or \".\", got {table.decimal!r}")
    if cfg.addresses.max_households <= 0:
        raise ConfigError(f"addresses.max_households: must be positive, got {cfg.addresses.max_households:g}")
    for i, p in enumerate(cfg.providers):
        if p.max_upload_ratio <= 0:
            raise ConfigError(f"providers[{i}].max_upload_ratio: must be positive, got {p.max_upload_ratio:g}")
    _check_dates(cfg)
    _check_output(cfg.output)


#: planned supply further out than this is no plan a funding decision can count on
MAX_HORIZON_YEARS = 30


def _check_dates(cfg: RunConfig) -> None:
    """Dates are ISO (YYYY-MM-DD): ``01.07.2021`` or ``2021/07/01`` would be read differently by people."""
    found = [("analysis.reference_date", cfg.analysis.reference_date), ("report.data_date", cfg.report.data_date)]
    found += [(f"providers[{i}].planned_date", p.planned_date) for i, p in enumerate(cfg.providers)]
    for where, value in found:
        if value in (None, ""):
            continue
        try:
            date.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a date in the form YYYY-MM-DD (e.g. 2021-06-30)") from None
        if len(str(value)) != 10:
            raise ConfigError(f"{where}: {value!r} is not a date in the form YYYY-MM-DD (e.g. 2021-06-30)")


def _check_output(output: OutputConfig) -> None:
    if output.dir.exists() and not output.dir.is_dir():
        raise ConfigError(f"output.dir: {output.dir} is a file, not a folder")
    if output.reports_dir.exists() and not output.reports_dir.is_dir():
        raise ConfigError(f"output.reports_dir: {output.reports_dir} is a file, not a folder")
    if output.dir.resolve() == output.reports_dir.resolve():
        raise ConfigError(f"output.reports_dir: must differ from output.dir ({output.dir}): runs and reports "
                          "keep their own 'latest' and partial folders")


def _check_offer_defaults(p: ProviderConfig, key: str, aliases: Mapping[str, Technology]) -> None:
    """A technology word or speed given for a whole delivery is checked here, once, not per row: a
    mistake in it would otherwise quarantine every record of the delivery."""
    if p.technology is not None and normalise_alias(p.technology) not in aliases:
        raise ConfigError(f"{key}.technology: unknown technology {p.technology!r}; use one of "
                          f"{[t.value for t in Technology]} or a word of the alias table (README, "
                          "Technologies and groups), or add it under [technology_aliases]")
    for name in ("down_mbps", "up_mbps"):
        value = getattr(p, name)
        if value is None:
            continue
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{key}.{name}: expected a speed in Mbit/s ≥ 0, got {value:g}")
        if value > MAX_SPEED_MBPS:
            raise ConfigError(f"{key}.{name}: {value:g} Mbit/s is above the plausible maximum of "
                              f"{MAX_SPEED_MBPS:g} (a unit mistake? speeds are in Mbit/s)")
    if p.max_upload_ratio <= 0:
        raise ConfigError(f"{key}.max_upload_ratio: must be positive, got {p.max_upload_ratio:g}")


def _households(raw: Mapping[str, Any], base_dir: Path) -> HouseholdsConfig:
    """The [households] section: paths (one or a list) relative to the config file, checked values."""
    _check_keys(raw, {f.name for f in dataclasses.fields(HouseholdsConfig)}, "households")
    source = raw.get("source", "addresses")
    if source not in HOUSEHOLD_SOURCES:
        raise ConfigError(f"households.source: expected {HOUSEHOLD_SOURCES[0]!r} or {HOUSEHOLD_SOURCES[1]!r}, "
                          f"got {source!r}")
    grids: dict[str, tuple[Path, ...]] = {}
    for key in ("grid_1km", "grid_100m"):
        value = raw.get(key, [])
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError(f"households.{key}: expected a path string or a list of them, got {value!r}")
        grids[key] = tuple((base_dir / Path(v).expanduser()).resolve() for v in values)
    distance = raw.get("max_distance_m", 1000.0)
    if isinstance(distance, bool) or not isinstance(distance, int | float) or not distance > 0:
        raise ConfigError(f"households.max_distance_m: expected a positive number of metres, got {distance!r}")
    replace = raw.get("replace", False)
    if not isinstance(replace, bool):
        raise ConfigError(f"households.replace: expected true or false, got {replace!r}")
    if source == "zensus" and not grids["grid_1km"]:
        raise ConfigError("households: source = \"zensus\" needs grid_1km (the Zensus 2022 1 km grid)")
    if source != "zensus" and (grids["grid_1km"] or grids["grid_100m"] or "max_distance_m" in raw or replace):
        raise ConfigError("households: grid_1km, grid_100m, max_distance_m and replace apply to source = \"zensus\" "
                          "only")
    return HouseholdsConfig(source, grids["grid_1km"], grids["grid_100m"], float(distance), replace)


def _check_hkde(a: AddressesConfig) -> None:
    """HK-DE files say their own layout, zone and encoding: table keys would silently do nothing."""
    if a.format != AddressFormat.HKDE:
        if a.decode is not None:
            raise ConfigError('addresses.decode: only used with format = "hk-de"')
        return
    unused = [k for k, v in (("crs", a.crs), ("layer", a.layer), ("columns", a.columns or None),
                             ("table options", a.table if a.table != TableOptions() else None)) if v is not None]
    if unused:
        raise ConfigError(f'[addresses] format = "hk-de": {", ".join(unused)} not used (the file defines its columns, '
                          "encoding and UTM zone per row); remove them")


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
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
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
        if hint is Path or key in ("path", "dir", "reports_dir", "decode"):
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
        elif key == "band":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}.band: expected a band number (an integer ≥ 1), got {value!r}")
        elif key in ("grid", "pdf"):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key}: expected true or false")
        elif key == "attributions":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}.attributions: expected a list of strings")
            value = tuple(value)
        elif key in ("down_mbps", "up_mbps", "locate_tolerance_m", "match_distance_m", "planned_horizon_years",
                     "max_upload_ratio", "change_tolerance_pp", "max_households", "min_accepted_share"):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(f"{where}.{key}: expected a finite number, got {value!r}")
            value = float(value)
        kwargs[key] = value
    if table_kwargs:
        kwargs["table"] = TableOptions(**table_kwargs)
    missing = [n for n, f in fields.items()
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and n not in kwargs]
    if missing:
        raise ConfigError(f"[{where}] is missing required key(s) {missing}")
    return cls(**kwargs)
