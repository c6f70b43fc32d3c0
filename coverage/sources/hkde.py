"""The official house coordinates "Hauskoordinaten Deutschland" (HK-DE, ZSHH/AdV) as delivered.

One ``;``-separated text file, with or without the header line
``NBA;OI;QUA;LAN;RBZ;KRS;GMD;OTT;SSS;HNR;ADZ;EEEEEEEE,EEE;NNNNNNN,NNN;STN;PLZ;ONM;ZON;POT``;
newer deliveries append fields (``PSN``, a date …), which are kept as extra columns (lower-case
header names, ``field_19`` … without a header). The "Gebäudereferenzen" variant lacks the postal
fields (PLZ, ONM, ZON, POT; often STN) and reads the same way. Encoding: UTF-8 when the bytes are
valid UTF-8 (format version 4.x), else Latin-1 (older versions); decimal comma.

The East value carries its ETRS89/UTM zone as its first two digits (``33385802,013`` = zone 33,
E 385802.013); each row is converted from its own zone (EPSG:25831–25833) to the working CRS.

Mapping to the address contract of :func:`coverage.sources.addresses.read_addresses`:
``address_id`` = OI; ``street`` = STN, or where STN is empty the name the decoding file
(Entschlüsselungsdatei, see :func:`read_street_names`) gives for the street key AGS + SSS;
``house_number`` = HNR + ADZ; ``postcode`` = PLZ; ``locality`` = ONM (+ " " + ZON);
``locality_part`` = POT; ``ags_cadastre`` = LAN+RBZ+KRS+GMD (8 digits, "" when malformed);
``qua`` = QUA. HK-DE has no households: every address gets 0 households and 0 businesses.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from coverage.columns import constant
from coverage.config import AddressesConfig
from coverage.crs import ETRS89_UTM_ZONES, utm_zones_to
from coverage.errors import DataSourceError, InputDataError, SchemaError
from coverage.membership import StringLookup
from coverage.quarantine import RowFilter

log = logging.getLogger(__name__)

#: The fields of an HK-DE record in delivery order, and the names this reader gives them.
FIELDS = {"NBA": "nba", "OI": "oi", "QUA": "qua", "LAN": "lan", "RBZ": "rbz", "KRS": "krs", "GMD": "gmd",
          "OTT": "ott", "SSS": "sss", "HNR": "hnr", "ADZ": "adz", "EEEEEEEE,EEE": "east", "NNNNNNN,NNN": "north",
          "STN": "stn", "PLZ": "plz", "ONM": "onm", "ZON": "zon", "POT": "pot"}
#: Fields a file must have (a header naming fewer is not HK-DE); the postal ones are optional.
REQUIRED = ("OI", "LAN", "RBZ", "KRS", "GMD", "SSS", "HNR", "ADZ", "EEEEEEEE,EEE", "NNNNNNN,NNN")
#: Columns besides the address contract that an HK-DE address list has.
HKDE_COLUMNS = ("locality_part", "ags_cadastre", "qua")

_EAST = r"^(\d{2})(\d{6}(?:[,.]\d+)?)$"  # zone (2 digits) + easting (6 digits)
_NORTH = r"^\d{6,7}(?:[,.]\d+)?$"


def decode_bytes(raw: bytes, path: Path) -> str:
    """Valid UTF-8 (format 4.x) is UTF-8, anything else Latin-1 (older versions); the log says which."""
    try:
        text, encoding = raw.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        text, encoding = raw.decode("latin-1"), "Latin-1 (not valid UTF-8)"
    log.info("%s: read as %s", path.name, encoding)
    return text.removeprefix("\ufeff")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise DataSourceError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DataSourceError(f"{path}: cannot read ({exc})") from exc


def read_hkde_table(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """The records as text columns named by :data:`FIELDS` (missing fields ""), plus ``source_row``
    (the 1-based line in the file); and the names of the extra fields."""
    text = decode_bytes(_read_bytes(path), path)
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise InputDataError(f"{path}: file is empty")
    head = [f.strip().upper() for f in lines[first].split(";")]
    has_header = head[:2] == ["NBA", "OI"]
    width = max(line.count(";") for line in lines) + 1
    if has_header:
        unknown_twice = [f for f in head if head.count(f) > 1]
        missing = [f for f in REQUIRED if f not in head]
        if missing or unknown_twice:
            raise SchemaError(f"{path}: line {first + 1}: not an HK-DE header: "
                              + (f"missing field(s) {missing}" if missing else f"repeated field(s) {unknown_twice}"))
        names = [FIELDS.get(f, f.lower() or f"field_{i + 1}") for i, f in enumerate(head)]
    else:
        if width < len(FIELDS) - 5:  # at least up to the North value
            raise SchemaError(f"{path}: line {first + 1}: {width} ';'-separated field(s), HK-DE records have at "
                              f"least 13 ({';'.join(list(FIELDS)[:13])}); is this an HK-DE file?")
        names = list(FIELDS.values())[:width]
    names += [f"field_{i + 1}" for i in range(len(names), width)]
    try:
        frame = pd.read_csv(io.StringIO(text), sep=";", header=None, names=names, dtype=str, keep_default_na=False,
                            quoting=csv.QUOTE_NONE, skip_blank_lines=False, engine="c")
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputDataError(f"{path}: not a readable ';'-separated HK-DE file ({exc})") from exc
    frame = frame.fillna("")
    frame["source_row"] = np.arange(len(frame), dtype="int64") + 1
    frame = frame.iloc[first + 1 if has_header else first:]
    frame = frame[(frame.drop(columns="source_row") != "").any(axis=1)]  # blank lines are no records
    for name in FIELDS.values():
        if name not in frame:
            frame[name] = ""
    extra = [n for n in names if n not in FIELDS.values()]
    return frame.reset_index(drop=True), extra


def read_street_names(path: Path) -> dict[str, str]:
    """Street names by street key from a delivery's decoding file (Entschlüsselungsdatei).

    ``;``-separated, lines starting with ``#`` are comments. A street line is
    ``LAN;RBZ;KRS;GMD;SSS;Straßenname`` or ``<AGS><SSS>;Straßenname``: the street key SSS is
    only unique within its Gemeinde, so the natural key is the 8-digit AGS (LAN+RBZ+KRS+GMD)
    followed by SSS (13 characters); the Ortsteil (OTT) is not part of it. Lines of any other
    shape (names of Kreise, Gemeinden, Ortsteile) are skipped. A key named twice with different
    names is an error (which name is right cannot be told).
    """
    text = decode_bytes(_read_bytes(path), path)
    names: dict[str, str] = {}
    where: dict[str, int] = {}
    skipped = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split(";")]
        if len(fields) == 6 and _ags(*fields[:4]):
            key, name = _ags(*fields[:4]) + fields[4], fields[5]
        elif len(fields) == 2 and len(fields[0]) == 13 and fields[0][:8].isdigit():
            key, name = fields[0], fields[1]
        else:
            skipped += 1
            continue
        if names.get(key, name) != name:
            raise InputDataError(f"{path}: line {number}: street key {key} is {name!r} here but "
                                 f"{names[key]!r} on line {where[key]}")
        names[key], where[key] = name, number
    log.info("%s: %d street names, %d other line(s) skipped", path.name, len(names), skipped)
    return names


def _ags(lan: str, rbz: str, krs: str, gmd: str) -> str:
    """The 8-digit AGS from its parts, or "" when a part is not digits of its length (never padded)."""
    parts = ((lan, 2), (rbz, 1), (krs, 2), (gmd, 3))
    return "".join(p for p, _ in parts) if all(len(p) == n and p.isdigit() for p, n in parts) else ""


def read_hkde(cfg: AddressesConfig, working_crs: object,
              households: str = "required") -> tuple[gpd.GeoDataFrame, pd.DataFrame, int]:
    """Read an HK-DE file; return (accepted addresses in the working CRS, quarantine, rows read).

    HK-DE carries no households: with ``households`` "optional"/"ignore" (estimated later, from the
    Zensus grids) they are NaN; otherwise 0, with a warning that the run will count no households."""
    path = Path(cfg.path)
    frame, extra = read_hkde_table(path)
    rows_read = len(frame)
    if rows_read == 0:
        raise InputDataError(f"{path}: no data rows (header only?)")
    text = {c: frame[c].str.strip() for c in (*FIELDS.values(), *extra)}
    frame["address_id"] = text["oi"]
    checks = RowFilter(frame, path.name, frame["source_row"])
    checks.reject(text["oi"] == "", "OI", "missing_value", values=text["oi"])
    checks.reject(text["nba"].str.upper() == "L", "NBA", "deleted_record", values=text["nba"])

    east = text["east"].str.extract(_EAST)
    north_ok = text["north"].str.match(_NORTH)
    checks.reject(text["east"] == "", "EEEEEEEE,EEE", "missing_coordinates", values=text["east"])
    checks.reject(text["north"] == "", "NNNNNNN,NNN", "missing_coordinates", values=text["north"])
    checks.reject(east[0].isna(), "EEEEEEEE,EEE", "missing_coordinates", values=text["east"],
                  detail="the East value is not the UTM zone (2 digits) and the easting (6 digits), "
                         "e.g. 33385802,013")
    checks.reject(~north_ok, "NNNNNNN,NNN", "missing_coordinates", values=text["north"],
                  detail="the North value is not a number of 6 or 7 digits, e.g. 5997341,214")
    zone = pd.to_numeric(east[0], errors="coerce")
    checks.reject(~zone.isin(ETRS89_UTM_ZONES), "EEEEEEEE,EEE", "bad_utm_zone", values=text["east"])

    ids = text["oi"]
    ok_ids = ids[checks.ok]
    repeated = pd.Series(StringLookup(ok_ids).duplicated, index=ok_ids.index).reindex(ids.index, fill_value=False)
    checks.reject(repeated, "OI", "duplicate_address_id", values=ids)

    ok = checks.ok.to_numpy()
    kept = {c: v[ok].reset_index(drop=True) for c, v in text.items()}
    x = pd.to_numeric(east[1][ok].str.replace(",", ".", regex=False), errors="raise").to_numpy()
    y = pd.to_numeric(kept["north"].str.replace(",", ".", regex=False), errors="raise").to_numpy()
    x, y = utm_zones_to(x, y, zone[ok].to_numpy().astype(int), working_crs)
    index = pd.RangeIndex(int(ok.sum()))
    well_formed = np.logical_and.reduce([kept[c].str.fullmatch(rf"\d{{{n}}}").to_numpy(dtype=bool)
                                         for c, n in (("lan", 2), ("rbz", 1), ("krs", 2), ("gmd", 3))])
    ags = (kept["lan"] + kept["rbz"] + kept["krs"] + kept["gmd"]).where(well_formed, "").astype(str)
    out = gpd.GeoDataFrame({
        "address_id": kept["oi"].astype(str),
        "households": np.zeros(len(index)) if households == "required" else np.full(len(index), np.nan),
        "businesses": np.zeros(len(index)),
        "site_kind": constant("", index),
        "site_name": constant("", index),
        "street": _streets(kept["stn"], ags, kept["sss"], cfg.decode, path),
        "house_number": (kept["hnr"] + kept["adz"]).astype(str),
        "postcode": kept["plz"].astype(str),
        "locality": (kept["onm"] + " " + kept["zon"]).str.strip().astype(str),
        "source_row": frame["source_row"][ok].to_numpy(),
        "locality_part": kept["pot"].astype(str),
        "ags_cadastre": ags,
        "qua": kept["qua"].astype(str),
        **{_extra_name(c): kept[c].astype(str) for c in extra},
    }, geometry=gpd.points_from_xy(x, y), crs=working_crs)
    bad_ags = int((ags == "").sum())
    if bad_ags:
        log.warning("%s: %d address(es) with a malformed cadastre AGS (LAN+RBZ+KRS+GMD is not 2+1+2+3 digits): "
                    "ags_cadastre is empty and they are not checked against their Gemeinde", path.name, bad_ags)
    quarantine = checks.quarantine
    log.info("addresses %s (HK-DE): %d rows read, %d accepted, %d quarantined", path.name, rows_read, len(out),
             len(quarantine))
    if households == "required":
        log.warning("%s: HK-DE has no households: all %d addresses count 0 households; households must come from "
                    "[households] source = \"zensus\"", path, len(out))
    return out, quarantine, rows_read


def _extra_name(name: str) -> str:
    taken = {"address_id", "households", "businesses", "site_kind", "site_name", "street", "house_number", "postcode",
             "locality", "source_row", "geometry", *HKDE_COLUMNS}
    return f"hkde_{name}" if name in taken else name


def _streets(stn: pd.Series, ags: pd.Series, sss: pd.Series, decode: Path | None, path: Path) -> pd.Series:
    """STN, and where it is empty the decoding file's name for AGS + SSS."""
    empty = stn == ""
    if not empty.any():
        return stn.astype(str)
    if decode is None:
        log.warning("%s: %d address(es) without a street name (STN); set [addresses] decode = \"…\" to the "
                    "delivery's Entschlüsselungsdatei to name their streets", path.name, int(empty.sum()))
        return stn.astype(str)
    names = read_street_names(Path(decode))
    keys = (ags + sss).where(empty & (ags != ""))
    filled = keys.map(names)
    unnamed = int((empty & filled.isna()).sum())
    log.info("%s: %d street name(s) from %s, %d address(es) still without one", path.name,
             int(filled.notna().sum()), Path(decode).name, unnamed)
    return stn.where(~empty, filled.fillna("")).astype(str)
