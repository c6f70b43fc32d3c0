"""`bbcov publish` and `bbcov serve`: disclosure rules on a hand-made case, the package of the tiny world,
its INSPIRE metadata, and OWSLib reading the OGC API – Features service.

Every expected figure below is worked out by hand in the comments.
"""

import json
import re
import urllib.request

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from lxml import etree

from coverage.disclosure import (
    COMPLEMENTARY,
    DOMINANCE,
    MIN_ADDRESSES,
    best_offer_providers,
    grid_cell_counts,
    grid_units,
    protect_all,
    published,
    round_counts,
)
from coverage.sections import DisclosureRules
from pipelines.cli import main
from tests.ogcapi_server import serving
from tests.world import write_world

# --- the hand-made case ------------------------------------------------------------------------------
# Amt A: G1 3 addresses (1 hh each), G2 20 addresses (1 hh), G3 12 addresses (2 hh); Amt B: G4 30 addresses.
# Fibre 1000 Mbit/s everywhere: G1 from P1; G2 and G3 half P1, half P2; G4 all P1 (dominated, 100 %).
SPEC = [("G1", "A", 3, 1, ["P1"] * 3), ("G2", "A", 20, 1, ["P1", "P2"] * 10),
        ("G3", "A", 12, 2, ["P1", "P2"] * 6), ("G4", "B", 30, 1, ["P1"] * 30)]


def hand_made():
    rows, offers = [], []
    for ags, amt, n, hh, providers in SPEC:
        for i in range(n):
            aid = f"{ags}-{i}"
            rows.append({"address_id": aid, "households": float(hh), "businesses": 0.0, "ags": ags, "vwg_ars": amt,
                         "krs_ags": "K", "land": "L", "best_down_fibre": 1000.0, "best_provider_fibre": providers[i]})
            offers.append({"address_id": aid, "provider": providers[i], "technology": "FTTH", "down_mbps": 1000.0,
                           "status": "current"})
    addresses = pd.DataFrame(rows)

    def table(key, extra):
        g = addresses.groupby(key)
        t = pd.DataFrame({"addresses": g.size().astype(float), "households": g["households"].sum(),
                          "businesses": g["businesses"].sum(), "hh_ge_100_fibre": g["households"].sum()})
        t = t.reset_index()
        for col in extra:
            t[col] = t[key].map(addresses.drop_duplicates(key).set_index(key)[col])
        t["display_name"] = t[key]
        return t

    tables = {"gemeinde": table("ags", ["vwg_ars", "krs_ags", "land"]), "amt": table("vwg_ars", ["krs_ags", "land"]),
              "kreis": table("krs_ags", ["land"]), "land": table("land", [])}
    return tables, addresses, pd.DataFrame(offers)


@pytest.fixture(scope="module")
def case():
    tables, addresses, offers = hand_made()
    pairs = best_offer_providers(addresses, offers, {"fibre": ("FTTH",)})
    return tables, protect_all(tables, addresses, pairs, DisclosureRules(5, 10, 0.85))


def test_an_area_with_three_addresses_is_suppressed(case):
    _, s = case
    assert (s.reason["gemeinde"].loc["G1"] == MIN_ADDRESSES).all()


def test_a_dominated_figure_is_suppressed_but_not_the_totals(case):
    _, s = case
    g4 = s.reason["gemeinde"].loc["G4"]
    assert g4["hh_ge_100_fibre"] == DOMINANCE  # P1 serves all 30 households of G4
    assert g4["households"] == "" and g4["addresses"] == ""
    # Amt A: P1 serves 3 + 10 + 12 = 25 of 47 households (53 %): not dominated
    assert s.reason["amt"].loc["A", "hh_ge_100_fibre"] != DOMINANCE


def test_a_suppressed_gemeinde_cannot_be_recovered_from_its_amt(case):
    tables, s = case
    r = s.reason["gemeinde"]
    # the second Gemeinde of Amt A: the smallest positive count of each figure
    assert r.loc["G3", "addresses"] == COMPLEMENTARY  # 12 < 20 addresses
    assert r.loc["G2", "households"] == COMPLEMENTARY  # 20 < 24 households
    assert r.loc["G2", "hh_ge_100_fibre"] == COMPLEMENTARY
    # Amt B has one Gemeinde: its dominated figure is the Amt's too; then Amt A is the Kreis's second term
    assert s.reason["amt"].loc["B", "hh_ge_100_fibre"] in (DOMINANCE, COMPLEMENTARY)
    assert s.reason["amt"].loc["A", "hh_ge_100_fibre"] == COMPLEMENTARY
    # every published sum has no suppressed term or at least two
    gem = tables["gemeinde"].set_index("ags")
    for col in r.columns:
        for amt, members in gem.groupby("vwg_ars").groups.items():
            hidden = int((r.loc[members, col] != "").sum()) + int(s.reason["amt"].loc[amt, col] != "")
            assert hidden != 1, (amt, col)


def test_a_grid_cell_dominated_by_one_provider_is_suppressed():
    # G4's 30 addresses in one 100 m cell (all fibre from P1: dominated); G2's 20 in another (P1 and P2
    # half each: published); G1's 3 and G3's 12 together in a third (P1 serves 3 + 6 of 3 + 24 households).
    tables, addresses, offers = hand_made()
    cell = {"G1": (4_500_150, 3_500_150), "G2": (4_500_350, 3_500_150), "G3": (4_500_150, 3_500_150),
            "G4": (4_500_550, 3_500_150)}
    east = addresses["ags"].map(lambda a: cell[a][0]).to_numpy(float)
    north = addresses["ags"].map(lambda a: cell[a][1]).to_numpy(float)
    rules = DisclosureRules(5, 10, 0.85)
    unit, resolution = grid_units(east, north, rules.min_addresses)
    assert (resolution == 100).all()  # every cell has 5 or more addresses
    cells = grid_cell_counts(unit, addresses, [100.0], ["fibre"])
    pairs = best_offer_providers(addresses, offers, {"fibre": ("FTTH",)})
    s = protect_all(tables, addresses, pairs, rules, {"grid_100m": (cells, unit), "grid_1km": (cells.iloc[:0], unit)})
    r = s.reason["grid_100m"]
    g4, g2, g13 = (unit[addresses["ags"] == a].iloc[0] for a in ("G4", "G2", "G1"))
    assert r.loc[g4, "hh_ge_100_fibre"] == DOMINANCE and r.loc[g4, "households"] == ""
    assert r.loc[g2, "hh_ge_100_fibre"] != DOMINANCE and r.loc[g13, "hh_ge_100_fibre"] != DOMINANCE
    out = published(s.counts["grid_100m"], r, rules)
    assert pd.isna(out.loc[g4, "hh_ge_100_fibre"]) and out.loc[g4, "households"] == 30


def test_rounding_and_shares_from_rounded_counts(case):
    _, s = case
    assert round_counts(np.array([4, 5, 15, 24, 25, 47]), 10).tolist() == [0, 10, 20, 20, 30, 50]
    g = published(s.counts["gemeinde"], s.reason["gemeinde"], DisclosureRules(5, 10, 0.85))
    assert g.loc["G3", "households"] == 20 and pd.isna(g.loc["G3", "addresses"])  # 24 -> 20; 12 complementary
    assert g.loc["G3", "share_ge_100_fibre"] == 100.0  # 20 of 20 (rounded), not 24 of 24
    assert g.loc["G4", "households"] == 30 and pd.isna(g.loc["G4", "share_ge_100_fibre"])
    a = published(s.counts["amt"], s.reason["amt"], DisclosureRules(5, 10, 0.85))
    assert a.loc["A", "households"] == 50  # 47


# --- the tiny world through the CLI --------------------------------------------------------------------

PUBLISH = """
[publish]
url = "https://daten.example.org/breitband"
min_addresses = 1
round_to = 1
[publish.contact]
organisation = "Landesamt Beispiel"
email = "geodaten@example.org"
"""
PROVIDERS = ("Küstennetz (fiktiv)", "Glasfaser eG (fiktiv)", "Boddenkabel (fiktiv)", "Hansefunk (fiktiv)")


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    root = tmp_path_factory.mktemp("pub")
    config = write_world(root)
    assert main(["run", "--config", str(config), "--no-report"]) == 0
    with_publish = root / "publish.toml"
    with_publish.write_text(config.read_text(encoding="utf-8") + PUBLISH, encoding="utf-8")
    assert main(["publish", "--config", str(with_publish), "--out", str(root / "pkg")]) == 0
    return root / "pkg"


def test_missing_contact_is_a_one_line_error(package, capsys):
    config = package.parent / "run.toml"  # the run's config has no [publish]
    assert main(["publish", "--config", str(config), "--out", str(package.parent / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "[publish] url" in err and "[publish.contact] organisation" in err and "email" in err
    assert not (package.parent / "nope").exists()


def test_package_figures(package):
    g = pd.read_csv(package / "csv" / "gemeinde.csv", dtype={"ags": str}).set_index("ags")
    # G1: 2 addresses, 5 households; fibre only from Glasfaser eG at A1: dominated
    assert g.loc["13000001", "households"] == 5 and pd.isna(g.loc["13000001", "hh_ge_1000_fibre"])
    # G2: one address served by one provider per group: its coverage figures are dominated, so G1's
    # equal figure (Amt 1 = G1 + G2) is suppressed as the second term
    assert pd.isna(g.loc["13000002", "hh_ge_100_all"]) and pd.isna(g.loc["13000001", "hh_ge_100_all"])
    assert g.loc["13000002", "households"] == 5
    de = (package / "csv" / "gemeinde_de.csv").read_bytes()
    assert de.startswith(b"\xef\xbb\xbf") and b";" in de.splitlines()[0]
    report = pd.read_csv(package / "disclosure_report.csv", dtype=str)
    assert {"dominance", "complementary"} <= set(report["reason"])
    layers = set(gpd.list_layers(package / "gebiete.gpkg")["name"])
    assert layers == {"gemeinde", "amt", "kreis", "land"}
    grid = gpd.read_file(package / "grid.gpkg", layer="grid_100m")
    assert grid.crs.to_epsg() == 3035 and grid["cell_id"].str.match(r"CRS3035RES100mN\d+E\d+$").all()


def test_no_provider_name_address_id_or_absolute_path_is_published(package):
    ids = re.compile(rb"(?<![A-Za-z0-9])A[1-6](?![A-Za-z0-9])")
    for path in package.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for name in PROVIDERS:
            assert name.encode() not in data, (path.name, name)
        if path.suffix != ".gpkg":
            assert not ids.search(data), path.name
            assert str(package.parent).encode() not in data, path.name
    for layer in gpd.list_layers(package / "gebiete.gpkg")["name"]:
        assert "address_id" not in gpd.read_file(package / "gebiete.gpkg", layer=layer).columns


@pytest.fixture(scope="module")
def atlases(tmp_path_factory):
    """(public, internal) atlas of the tiny world: one run each, the public one with ``profile = "public"``."""
    root = tmp_path_factory.mktemp("atlas")
    config = write_world(root)
    text = config.read_text(encoding="utf-8") + PUBLISH
    config.write_text(text, encoding="utf-8")
    assert main(["run", "--config", str(config)]) == 0
    internal = next((root / "reports").glob("run-*"))
    public_config = root / "public.toml"
    public_config.write_text(text.replace('reports_dir = "reports"', 'reports_dir = "public"')
                             + '\n[report]\nprofile = "public"\n', encoding="utf-8")
    assert main(["run", "--config", str(public_config)]) == 0
    return next((root / "public").glob("run-*")), internal


def test_public_atlas_shows_only_published_figures(atlases):
    public, _ = atlases
    root = public.parents[1]
    ids = re.compile(r"(?<![A-Za-z0-9])A[1-6](?![A-Za-z0-9])")
    files = [p for p in public.rglob("*") if p.is_file()]
    assert any(p.name == "coverage_gemeinde.csv" for p in files) and not any(p.suffix == ".xlsx" for p in files)
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace").replace("(Druck, A4)", "")  # paper size
        for name in PROVIDERS:  # the tiny world's Land is its only level with more than one provider
            assert name not in text, (path.name, name)
        if path.suffix != ".png":  # binary: two bytes can spell "A2"
            assert not ids.search(text), path.name
        assert str(root) not in text and "/tmp/" not in text, path.name
    changes = (public / "changes.html").read_text(encoding="utf-8")  # says why it compares nothing
    assert "Noch nichts zu vergleichen" in changes and "öffentliche Fassung" in changes
    # the page maps: the layer file of the published figures, no address layer, no grid
    assert (public / "maps" / "layers.js").is_file() and not (public / "addr").exists()
    assert not (public / "maps" / "grid.js").exists()
    assert all("data-map-addr=" not in p.read_text(encoding="utf-8") for p in public.rglob("*.html"))
    prov = (public / "provenance.html").read_text(encoding="utf-8")
    assert "tabelle-quarantaene" not in prov and "SHA-256" not in prov and "dsl.csv" not in prov
    assert "Geheimhaltung" in prov and "dominiert" in prov
    # G1: ≥ 100 Mbit/s is suppressed (complementary to G2's dominated figure), as in the package
    g1 = (public / "gemeinde" / "13000001.html").read_text(encoding="utf-8")
    card = g1.split("Anteil ≥ 100 Mbit/s</div>")[1].split("</div>")[0]
    assert card.endswith(">–")
    assert "aus Geheimhaltungsgründen unterdrückt" in g1 and "Standorte (Verwaltungen" not in g1
    gem = pd.read_csv(public / "downloads" / "coverage_gemeinde.csv", dtype={"ags": str}).set_index("ags")
    assert pd.isna(gem.loc["13000001", "hh_ge_100_all"]) and gem.loc["13000001", "households"] == 5


def test_only_the_internal_search_index_holds_addresses(atlases):
    public, internal = atlases
    index = (public / "search" / "index.js").read_text(encoding="utf-8")
    assert '"addresses":null' in index and '"gemeinde/13000001.html"' in index
    assert sorted(p.name for p in (public / "search").iterdir()) == ["index.js"]
    texts = "".join(p.read_text(encoding="utf-8") for p in (internal / "search").glob("*.js"))
    # the id parts hold every located address id (JSON writes the tab after each as \t)
    assert all(f"A{i}\\t" in texts for i in range(1, 5)) and '"addresses":{' in texts


def test_internal_provenance_shows_paths_relative_to_the_config(atlases):
    _, internal = atlases
    page = (internal / "provenance.html").read_text(encoding="utf-8")
    root = internal.parents[1]
    assert ">addresses.csv<" in page and ">dsl.csv<" in page
    assert str(root) not in page.split('id="konfiguration"')[0]
    assert "Boddenkabel (fiktiv)" in page  # the internal atlas keeps its configuration
    # the internal atlas has the address layer: one file per Gemeinde with addresses, and the grid
    assert (internal / "addr" / "13000001.js").is_file() and (internal / "maps" / "grid.js").is_file()
    assert 'data-map-addr="[&#34;13000001&#34;]"' in (internal / "gemeinde" / "13000001.html").read_text(
        encoding="utf-8")


NS = {"gmd": "http://www.isotc211.org/2005/gmd", "gco": "http://www.isotc211.org/2005/gco",
      "gmx": "http://www.isotc211.org/2005/gmx", "gml": "http://www.opengis.net/gml"}


@pytest.mark.parametrize("dataset", ["gebiete", "grid"])
def test_iso_metadata_holds_every_mandatory_element(package, dataset):
    root = etree.parse(str(package / "metadata" / f"{dataset}.iso19139.xml")).getroot()
    ident = "gmd:identificationInfo/gmd:MD_DataIdentification/"

    def text(path):
        found = root.xpath(path, namespaces=NS)
        assert found, path
        return found[0] if isinstance(found[0], str) else found[0].text

    assert "INSPIRE-Gitter" in text(ident + "gmd:citation/gmd:CI_Citation/gmd:title/gco:CharacterString") \
        or dataset == "gebiete"
    assert text(ident + "gmd:abstract/gco:CharacterString")
    assert text("gmd:distributionInfo//gmd:linkage/gmd:URL").startswith("https://daten.example.org/breitband/")
    assert text(ident + "gmd:citation//gmd:identifier/gmd:MD_Identifier/gmd:code/gco:CharacterString") == \
        f"https://daten.example.org/breitband#{dataset}"
    assert text("gmd:language/gmd:LanguageCode/@codeListValue") == "ger"
    assert text(ident + "gmd:topicCategory/gmd:MD_TopicCategoryCode") == "utilitiesCommunication"
    assert text(ident + "gmd:descriptiveKeywords//gmd:keyword/gmx:Anchor/@xlink:href".replace(
        "@xlink:href", "@*[local-name()='href']")) == "http://inspire.ec.europa.eu/theme/us"
    assert text(ident + "gmd:extent//gml:TimePeriod/gml:beginPosition")
    assert text("gmd:dataQualityInfo//gmd:lineage//gmd:statement/gco:CharacterString").startswith("Berechnet")
    assert root.xpath("gmd:dataQualityInfo//gmd:DQ_ConformanceResult/gmd:specification", namespaces=NS)
    assert "Datenlizenz Deutschland" in etree.tostring(root.find(
        ident.rstrip("/") + "/gmd:resourceConstraints", NS)).decode()
    assert text(ident + "gmd:pointOfContact//gmd:organisationName/gco:CharacterString") == "Landesamt Beispiel"
    assert text("gmd:contact//gmd:organisationName/gco:CharacterString") == "Landesamt Beispiel"
    assert text("gmd:contact//gmd:CI_RoleCode/@codeListValue") == "pointOfContact"
    assert text("gmd:dateStamp/gco:Date")
    if dataset == "grid":
        assert text(ident + "gmd:spatialResolution//gco:Distance") == "100"
    dcat = json.loads((package / "metadata" / f"{dataset}.dcat.jsonld").read_text(encoding="utf-8"))
    assert dcat["dct:license"]["@id"] == "http://dcat-ap.de/def/licenses/dl-by-de/2.0"
    assert dcat["dct:publisher"]["foaf:name"] == "Landesamt Beispiel"


# --- the OGC API – Features service ---------------------------------------------------------------------

@pytest.fixture
def server(package):
    with serving(package) as url:
        yield url


def test_owslib_reads_the_service(server):
    from owslib.ogcapi.features import Features

    api = Features(server)
    ids = {c["id"] for c in api.collections()["collections"]}
    # min_addresses = 1: every 100 m cell is published; an empty grid_1km layer is not served
    assert ids == {"gemeinde", "amt", "kreis", "land", "grid_100m"}
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in api.conformance()["conformsTo"]
    gem = api.collection_items("gemeinde", limit=10)
    assert {f["properties"]["ags"] for f in gem["features"]} == {"13000001", "13000002", "13000003"}
    first = next(f for f in gem["features"] if f["properties"]["ags"] == "13000001")
    assert first["properties"]["households"] == 5
    links = api.collection("gemeinde")["links"]
    assert any(link["href"].endswith("/metadata/gebiete.iso19139.xml") for link in links)
    one = api.collection_items("gemeinde", ags="13000002")
    assert [f["properties"]["ags"] for f in one["features"]] == ["13000002"]
    page = api.collection_items("gemeinde", limit=1, offset=1)
    assert len(page["features"]) == 1
    # the tiny world: G1 is the lower-left square km; a bbox inside it returns G1 only
    box = _bbox_inside_g1(server)
    inside = api.collection_items("gemeinde", bbox=box)
    assert [f["properties"]["ags"] for f in inside["features"]] == ["13000001"]


def _bbox_inside_g1(server):
    with urllib.request.urlopen(f"{server}/collections/gemeinde/items/13000001?f=json", timeout=5) as r:
        feature = json.load(r)
    xs = [p[0] for ring in feature["geometry"]["coordinates"] for p in ring]
    ys = [p[1] for ring in feature["geometry"]["coordinates"] for p in ring]
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    dx, dy = (max(xs) - min(xs)) / 10, (max(ys) - min(ys)) / 10
    return [cx - dx, cy - dy, cx + dx, cy + dy]
