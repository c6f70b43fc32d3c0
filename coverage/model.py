"""The data model: the types, column contracts and closed vocabularies the stages share.

Readers (:mod:`coverage.sources`) build these; aggregation, matching, the service
evaluation and the report only consume them, so they import this module and never a
reader for a type.

The closed vocabularies are :class:`enum.StrEnum`: a member equals its string
(``ProviderFormat.RASTER == "raster"``), so comparisons with plain strings keep
working, and config fingerprints stay what they were (enums hash by ``.value``).
Technology groups are not one of them: ``[analysis.groups]`` lets users name their
own (see :func:`coverage.technology.validate_groups`); the default names are the keys
of :data:`coverage.technology.DEFAULT_GROUPS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd

from coverage.errors import InputDataError
from coverage.technology import Technology

if TYPE_CHECKING:
    from affine import Affine


class ProviderFormat(StrEnum):
    """``format`` of a ``[[providers]]`` delivery."""

    ADDRESS_CSV = "address-csv"
    ADDRESS_TABLE = "address-table"
    POLYGONS = "polygons"
    RASTER = "raster"


class BoundaryFormat(StrEnum):
    """``format`` of ``[boundaries]``: a BKG VG250/VG5000 bundle or any vector file with a column map."""

    BKG = "bkg"
    VECTOR = "vector"


class AddressFormat(StrEnum):
    """``format`` of ``[addresses]``: a table or vector file with a column map, or the cadastre's
    "Hauskoordinaten Deutschland" text file as delivered (:mod:`coverage.sources.hkde`)."""

    TABLE = "table"
    HKDE = "hk-de"


class OfferStatus(StrEnum):
    """Whether an offer is available now or announced for later (``planned_date``)."""

    CURRENT = "current"
    PLANNED = "planned"


#: Canonical names of the area key column per level.
LEVEL_KEYS = {"gemeinde": "ags", "amt": "vwg_ars", "kreis": "krs_ags", "land": "land"}
LEVELS = tuple(LEVEL_KEYS)

#: Optional address columns besides address_id, households and the Point geometry.
ADDRESS_OPTIONAL = ("businesses", "site_kind", "site_name", "street", "house_number", "postcode", "locality")

#: What every provider record says about its offer, whatever the delivery format.
OFFER_FIELDS = ("provider", "technology", "down_mbps", "up_mbps", "status", "planned_date")

#: Provider offers linked to addresses: one row per (address, offer). ``addr`` is the row position of the
#: address in the located addresses of the same run (or partition): how the compiled kernels find it
#: without hashing strings again; it is not written to ``offers.parquet``.
OFFER_COLUMNS = ("address_id", "addr", "provider", "technology", "down_mbps", "up_mbps", "status", "planned_date",
                 "source", "match_method")

#: German names of the default technology groups, as maps, pages and downloads show them. The fibre
#: label follows the Breitbandatlas, which planners read ("FTTH/B ≥ 200 Mbit/s"). Groups a user adds
#: in ``[analysis.groups]`` are shown by their own name.
GROUP_LABELS = {
    "all": "alle Technologien",
    "wired": "leitungsgebunden",
    "dsl": "DSL",
    "hfc": "Kabel (HFC)",
    "fibre": "Glasfaser (FTTH/B)",
    "mobile": "Mobilfunk (LTE/5G)",
}


def threshold_tag(t: float) -> str:
    """``100`` -> ``'100'``, ``0.5`` -> ``'0.5'``: the threshold as it appears in column names.

    Exact (shortest round-trip form), so two thresholds never share a column: ``1234567`` and ``1234568``
    are two tags (``:g`` formatting made both ``1.23457e+06``)."""
    return str(int(t)) if float(t).is_integer() else repr(float(t))


@dataclass(frozen=True)
class Boundaries:
    """Administrative areas of every level, in the working CRS.

    Column contracts (one row per area):
    - ``gemeinde``: ags, ars, name, bez, vwg_ars, krs_ags, land, geometry
    - ``amt``: vwg_ars, name, bez, krs_ags, land, geometry
    - ``kreis``: krs_ags, name, bez, land, geometry
    - ``land``: land, name, geometry (land area only)
    - ``coastal_water``: land, geometry (GF 8 rows of the LAN layer; may be empty)
    ``valid_date`` is the bundle's reference date when it says one.
    """

    gemeinde: gpd.GeoDataFrame
    amt: gpd.GeoDataFrame
    kreis: gpd.GeoDataFrame
    land: gpd.GeoDataFrame
    coastal_water: gpd.GeoDataFrame
    valid_date: str | None = None

    def level(self, name: str) -> gpd.GeoDataFrame:
        return getattr(self, name)

    def subset(self, ars_prefixes: tuple[str, ...]) -> Boundaries:
        """Only the Gemeinden whose ARS starts with one of the prefixes, and the areas above them.

        ARS prefixes name every level: Land (2 digits), Kreis (5), Amt/VWG (9), Gemeinde (12).
        """
        if not ars_prefixes:
            return self
        gem = self.gemeinde[self.gemeinde["ars"].str.startswith(tuple(ars_prefixes))]
        if gem.empty:
            raise InputDataError(f"boundaries.areas {list(ars_prefixes)} match no Gemeinde (ARS prefixes expected)")
        keep = {level: self.level(level)[self.level(level)[key].isin(set(gem[key]))]
                for level, key in LEVEL_KEYS.items() if level != "gemeinde"}
        water = self.coastal_water[self.coastal_water["land"].isin(set(gem["land"]))]
        return Boundaries(gemeinde=gem.reset_index(drop=True), amt=keep["amt"].reset_index(drop=True),
                          kreis=keep["kreis"].reset_index(drop=True), land=keep["land"].reset_index(drop=True),
                          coastal_water=water, valid_date=self.valid_date)

    def hierarchy(self) -> pd.DataFrame:
        """Gemeinde → Amt → Kreis → Land keys and display names (:meth:`display_names`), without geometry."""
        g = self.gemeinde[["ags", "vwg_ars", "krs_ags", "land"]].copy()
        for level, key in (("gemeinde", "ags"), ("amt", "vwg_ars"), ("kreis", "krs_ags")):
            g[f"{level}_name"] = g[key].map(self.display_names(level))
        return pd.DataFrame(g[["ags", "gemeinde_name", "vwg_ars", "krs_ags", "land", "amt_name", "kreis_name"]])

    def display_names(self, level: str) -> pd.Series:
        """Names that tell the areas of one level apart (index: the level's key), for every table, map,
        page and list a person reads. The one rule:

        - a Kreis is always named with its BKG ``bez``: "Landkreis Rostock", "Kreisfreie Stadt Rostock"
          (a Kreis's name alone is often its seat's: read alone, "Rostock" means the city);
        - an Amt or Gemeinde by its name; where another area of the level in the run has the same
          name, ``f"{bez} {name}"`` if that tells them apart ("Amt X" vs "Amtsfreie Gemeinde X");
        - still the same: the area above in parentheses, "Neuenkirchen (Amt Anklam-Land)" (a Gemeinde
          named like its own Amt: its Kreis); then the key, which is unique.

        Areas without a ``bez`` (boundaries from a plain vector file) keep their name.
        """
        key = LEVEL_KEYS[level]
        frame = self.level(level)
        keys = frame[key].astype(str).reset_index(drop=True)
        name = frame["name"].astype(str).reset_index(drop=True)
        if level == "land":
            return pd.Series(name.to_numpy(), index=pd.Index(keys, name=key), name="display_name")
        bez = (frame["bez"].astype(str).fillna("").str.strip() if "bez" in frame.columns
               else pd.Series("", index=frame.index)).reset_index(drop=True)
        with_bez = (bez + " " + name).where(bez != "", name)
        label = with_bez if level == "kreis" else name

        def clashing() -> pd.Series:
            return label.duplicated(keep=False)

        if level != "kreis":  # the bez where it tells the clashing names apart (not "Gemeinde X" twice)
            clash = clashing()
            tried = label.where(~clash, with_bez)
            label = tried.where(~clash | ~tried.duplicated(keep=False), label)
        parent: pd.Series | None = None
        if level == "amt" and "krs_ags" in frame.columns:
            parent = frame["krs_ags"].astype(str).reset_index(drop=True).map(self.display_names("kreis"))
        elif level == "gemeinde":
            amt = frame["vwg_ars"].astype(str).reset_index(drop=True)
            amts = self.amt.set_index(self.amt["vwg_ars"].astype(str))
            amt_name = amts["name"].astype(str)
            amt_full = amt_name
            if "bez" in amts.columns:
                amt_bez = amts["bez"].astype(str).fillna("").str.strip()
                amt_full = (amt_bez + " " + amt_name).where(amt_bez != "", amt_name)
            own = amt.map(amt_name) == name  # an amtsfreie Gemeinde is its own Amt: name its Kreis instead
            parent = amt.map(amt_full)
            kreis = frame["krs_ags"].astype(str).reset_index(drop=True).map(self.display_names("kreis"))
            parent = parent.where(~own & parent.notna(), kreis)
        if parent is not None:
            label = label.where(~clashing() | parent.isna(), label + " (" + parent.fillna("") + ")")
        label = label.where(~clashing(), label + " (" + keys + ")")
        return pd.Series(label.to_numpy(), index=pd.Index(keys, name=key), name="display_name")


#: Reads the cells of a window of one band: ``read(row, col, height, width)`` gives the
#: ``height × width`` array whose top-left cell is (``row``, ``col``), 0-based as GDAL counts.
WindowReader = Callable[[int, int, int, int], np.ndarray]


class BandCells(Protocol):
    """Where a raster's cells come from: ``open()`` gives a :data:`WindowReader` for as long as the
    ``with`` block lasts (a file is opened once per sampling, not once per window)."""

    def open(self) -> AbstractContextManager[WindowReader]: ...


@dataclass(frozen=True)
class ArrayCells:
    """Cells held in memory (tests, synthetic rasters): a window is a slice of ``values``."""

    values: np.ndarray

    def open(self) -> AbstractContextManager[WindowReader]:
        return nullcontext(self.read)

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        return self.values[row:row + height, col:col + width]


@dataclass(frozen=True)
class RasterDelivery:
    """A raster of download speed (Mbit/s); nodata or 0 means no service.

    It holds no cells: ``cells`` reads windows of the ``band``, and the sampler
    (:func:`coverage.match.sample_raster`) reads only the blocks (``block_shape``: rows, columns of
    one stored block, the unit GDAL decodes) that hold addresses, one at a time. ``shape`` is
    (rows, columns) of the whole raster.
    """

    cells: BandCells
    shape: tuple[int, int]
    block_shape: tuple[int, int]
    band: int
    transform: Affine
    crs: object
    nodata: float | None
    provider: str
    technology: Technology
    up_mbps: float
    status: OfferStatus
    planned_date: str
    source: str


#: The match method of the offers the objections layer adds.
OBJECTION_METHOD = "objection"
#: The columns of objections.csv (one row per objection that reached an address).
OBJECTION_COLUMNS = ("source", "row", "address_id", "claim", "provider", "technology", "down_mbps", "up_mbps",
                     "status", "planned_date", "submitted_by", "evidence", "decision", "decided_by", "decided_on",
                     "matched_by", "applied")

#: ``best_source_{g}`` values of offers an accepted objection added: this prefix and the objections file's name
#: (deliveries' offers carry the delivery's name, which never starts with it: names are file names).
OBJECTION_SOURCE_PREFIX = "objection:"
#: Per-address boolean columns of the service stage's results about objections (column contract):
#: ``contested`` an objection (any decision) names the address; ``objection_withdrew`` an accepted
#: withdrawal removed at least one delivery offer there; ``objection_changed`` accepted objections changed
#: its best download/upload/technology (any group, current or planned) or a funding verdict, compared with
#: the deliveries alone.
OBJECTION_RESULT_COLUMNS = ("contested", "objection_withdrew", "objection_changed")


def source_columns(groups: Iterable[str]) -> list[str]:
    """``{p}best_source_{g}``: per group and scope, the source of the winning offer (categorical text): the
    delivery's name, ``objection:<objections file>``, or "" where the group has no offer."""
    return [f"{p}best_source_{g}" for p in ("", "plan_") for g in groups]
