"""INSPIRE / ISO 19139 and DCAT-AP.de metadata of a published package, written with pygeometa.

One record per dataset (``gebiete``: the area layers; ``grid``: the INSPIRE grid). The MCF is built
from the run and ``[publish]`` (contact, url, title): nothing is invented; a missing contact stops
``bbcov publish`` before anything is written (:meth:`coverage.sections.PublishConfig.metadata_contact`).

pygeometa's ISO 19139 template writes no resource identifier, spatial resolution or conformity
statement, which INSPIRE requires; they are added to its output here (``_inspire_elements``), and the
metadata contact's role is set to ``pointOfContact`` as the INSPIRE implementing rules ask.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coverage.disclosure import LICENCE_ID, LICENCE_NAME, LICENCE_URL
from coverage.errors import CoverageError
from pipelines import io

if TYPE_CHECKING:
    from pipelines.publish import Package

GMD, GCO, GMX, XLINK = ("http://www.isotc211.org/2005/gmd", "http://www.isotc211.org/2005/gco",
                        "http://www.isotc211.org/2005/gmx", "http://www.w3.org/1999/xlink")
NS = {"gmd": GMD, "gco": GCO, "gmx": GMX, "xlink": XLINK}
INSPIRE_THEME = ("Versorgungswirtschaft und staatliche Dienste", "Utility and governmental services",
                 "http://inspire.ec.europa.eu/theme/us")
CONFORMITY_SPEC = ("VERORDNUNG (EG) Nr. 1089/2010 DER KOMMISSION vom 23. November 2010 zur Durchführung der "
                   "Richtlinie 2007/2/EG des Europäischen Parlaments und des Rates hinsichtlich der "
                   "Interoperabilität von Geodatensätzen und -diensten", "2010-12-08")
ABSTRACTS = {
    "gebiete": "Breitbandversorgung der Haushalte und Unternehmen je Gemeinde, Amt, Kreis und Land: Anzahlen mit "
               "mindestens der jeweiligen Bandbreite je Technologiegruppe, Anteile und Förderkategorien.",
    "grid": "Breitbandversorgung der Haushalte und Unternehmen im INSPIRE-Gitter (ETRS89-LAEA, EPSG:3035): 100-m-"
            "Zellen; Zellen mit zu wenigen Adressen zusammengefasst zu 1-km-Zellen.",
}


def _schemas() -> tuple[Any, Any]:
    try:
        from pygeometa.schemas.dcat import DCATOutputSchema
        from pygeometa.schemas.iso19139 import ISO19139OutputSchema
    except ImportError as exc:
        raise CoverageError("publish needs pygeometa for the metadata: pip install 'bbcov[publish]'") from exc
    return ISO19139OutputSchema(), DCATOutputSchema()


def write_metadata(pkg: Package, root: Path) -> list[str]:
    iso, dcat = _schemas()
    files = []
    for dataset in ("gebiete", "grid"):
        mcf = build_mcf(pkg, dataset)
        xml = _inspire_elements(iso.write(_copy(mcf)), mcf, pkg, dataset)
        io.write_text(root / "metadata" / f"{dataset}.iso19139.xml", xml)
        record = json.loads(dcat.write(_copy(mcf)))
        io.write_json(root / "metadata" / f"{dataset}.dcat.jsonld", _dcat_ap_de(record, pkg, dataset))
        files += [f"metadata/{dataset}.iso19139.xml", f"metadata/{dataset}.dcat.jsonld"]
    return files


def _copy(mcf: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(mcf))  # pygeometa's writers change the dict they are given


def dataset_url(pkg: Package, dataset: str) -> str:
    base = str(pkg.publish.url).rstrip("/")
    from pipelines.publish import DATASETS

    return f"{base}/{DATASETS[dataset][1]}"


def resource_identifier(pkg: Package, dataset: str) -> str:
    """The dataset's unique resource identifier: namespace (the publication url) and code (the dataset)."""
    return f"{str(pkg.publish.url).rstrip('/')}#{dataset}"


def build_mcf(pkg: Package, dataset: str) -> dict[str, Any]:
    from pipelines.publish import DATASETS, TITLES

    contact = pkg.publish.metadata_contact()
    layers, gpkg = DATASETS[dataset]
    bounds = [float(v) for v in _wgs84_bounds(pkg, layers)]
    data_date = pkg.manifest.get("data_date") or pkg.manifest["reference_date"]
    title = f"{pkg.publish.title or pkg.cfg.report.title}: " + ("Gebiete" if dataset == "gebiete" else "INSPIRE-Gitter")
    party = {"organization": contact.organisation, "email": contact.email, "individualname": contact.name or "",
             "positionname": contact.position or "", "phone": contact.phone or "", "fax": "",
             "url": contact.url or "", "address": contact.address or "", "city": contact.city or "",
             "administrativearea": "", "postalcode": contact.postalcode or "", "country": contact.country or "",
             "hoursofservice": "", "contactinstructions": ""}
    lineage = (f"Berechnet mit bbcov {pkg.manifest.get('code_version', '')} im Lauf {pkg.run_id} aus: "
               + ", ".join(sorted({str(i.get('name')) for i in pkg.manifest.get("inputs", [])}))
               + f". Stichtag {pkg.manifest['reference_date']}. Geheimhaltung vor der Veröffentlichung: "
               f"weniger als {pkg.publish.rules.min_addresses} Adressen unterdrückt (100-m-Zellen zu 1 km "
               f"zusammengefasst), Dominanzregel {pkg.publish.rules.dominance_share:g}, ergänzende Unterdrückung, "
               f"Rundung auf {pkg.publish.rules.round_to}. Siehe disclosure_report.csv.")
    return {
        "mcf": {"version": 1.0},
        "metadata": {"identifier": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{resource_identifier(pkg, dataset)}/"
                                                                      f"{pkg.run_id}")),
                     "language": "ger", "charset": "utf8", "hierarchylevel": "dataset",
                     "datestamp": date.today().isoformat(), "dataseturi": resource_identifier(pkg, dataset)},
        "spatial": {"datatype": "vector", "geomtype": "surface"},
        "identification": {
            "language": "ger", "charset": "utf8", "title": title,
            "abstract": pkg.publish.abstract or ABSTRACTS[dataset] + " Ebenen: "
            + ", ".join(TITLES[x] for x in layers) + ".",
            "dates": {"creation": pkg.manifest["created"][:10], "publication": date.today().isoformat()},
            "keywords": {
                "default": {"keywords_type": "theme", "keywords": ["Breitband", "Breitbandversorgung",
                                                                   "Gigabit", "Telekommunikation"]},
                "inspire": {"keywords_type": "theme", "keywords": [INSPIRE_THEME[0]],
                            "vocabulary": {"name": "GEMET - INSPIRE themes, version 1.0",
                                           "url": "http://www.eionet.europa.eu/gemet/inspire_themes"}},
            },
            "topiccategory": ["utilitiesCommunication"],
            "extents": {"spatial": [{"bbox": bounds, "crs": 4326}],
                        "temporal": [{"begin": data_date, "end": data_date}]},
            "fees": "keine",
            "accessconstraints": "otherRestrictions",
            "rights": f"{LICENCE_NAME}; Namensnennung: " + "; ".join(pkg.attributions),
            "license": {"name": LICENCE_NAME, "url": LICENCE_URL},
            "url": dataset_url(pkg, dataset),
            "status": "completed", "maintenancefrequency": "asNeeded",
        },
        "contact": {"pointOfContact": party, "publisher": party},
        "distribution": {"download": {"url": dataset_url(pkg, dataset), "type": "WWW:DOWNLOAD-1.0-http--download",
                                      "rel": "download", "name": gpkg, "description": f"GeoPackage {gpkg}",
                                      "function": "download"}},
        "dataquality": {"scope": {"level": "dataset"}, "lineage": {"statement": lineage}},
    }


def _wgs84_bounds(pkg: Package, layers: tuple[str, ...]) -> list[float]:
    boxes = [pkg.layers[x].to_crs("EPSG:4326").total_bounds for x in layers if len(pkg.layers[x])]
    if not boxes:
        return [0.0, 0.0, 0.0, 0.0]
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def _inspire_elements(xml: str, mcf: dict[str, Any], pkg: Package, dataset: str) -> str:
    """Add what INSPIRE requires and pygeometa's ISO 19139 template lacks (see the module text)."""
    from lxml import etree

    root = etree.fromstring(xml.encode("utf-8"), parser=etree.XMLParser(remove_blank_text=True))

    def el(tag: str, text: str | None = None, **attrs: str) -> Any:
        prefix, name = tag.split(":")
        e = etree.Element(f"{{{NS[prefix]}}}{name}", **{_qn(k): v for k, v in attrs.items()})
        if text is not None:
            e.text = text
        return e

    def chain(*tags: str, text: str | None = None) -> tuple[Any, Any]:
        top = node = el(tags[0])
        for t in tags[1:]:
            child = el(t)
            node.append(child)
            node = child
        node.text = text
        return top, node

    # the metadata point of contact (gmd:contact) has the role pointOfContact
    for code in root.iterfind("gmd:contact//gmd:CI_RoleCode", NS):
        code.set("codeListValue", "pointOfContact")
        code.text = "pointOfContact"
    ident = root.find("gmd:identificationInfo/gmd:MD_DataIdentification", NS)
    citation = ident.find("gmd:citation/gmd:CI_Citation", NS)
    identifier, _ = chain("gmd:identifier", "gmd:MD_Identifier", "gmd:code", "gco:CharacterString",
                          text=resource_identifier(pkg, dataset))
    _insert_after(citation, identifier, ("gmd:title", "gmd:alternateTitle", "gmd:date", "gmd:edition",
                                         "gmd:editionDate"))
    # the INSPIRE theme keyword as a gmx:Anchor (the register's URI)
    for kw in ident.iterfind("gmd:descriptiveKeywords/gmd:MD_Keywords/gmd:keyword/gco:CharacterString", NS):
        if kw.text == INSPIRE_THEME[0]:
            anchor = el("gmx:Anchor", INSPIRE_THEME[0], **{"xlink:href": INSPIRE_THEME[2]})
            kw.getparent().replace(kw, anchor)
    resolution = _resolution(pkg, dataset)
    if resolution is not None:
        kind, value = resolution
        res = el("gmd:spatialResolution")
        md = el("gmd:MD_Resolution")
        res.append(md)
        if kind == "distance":
            dist = el("gmd:distance")
            dist.append(el("gco:Distance", str(value), uom="m"))
            md.append(dist)
        else:
            scale, _node = chain("gmd:equivalentScale", "gmd:MD_RepresentativeFraction", "gmd:denominator",
                                "gco:Integer", text=str(value))
            md.append(scale)
        _insert_after(ident, res, ("gmd:citation", "gmd:abstract", "gmd:purpose", "gmd:credit", "gmd:status",
                                   "gmd:pointOfContact", "gmd:resourceMaintenance", "gmd:graphicOverview",
                                   "gmd:resourceFormat", "gmd:descriptiveKeywords", "gmd:resourceSpecificUsage",
                                   "gmd:resourceConstraints", "gmd:aggregationInfo",
                                   "gmd:spatialRepresentationType"))
    # limitations on public access: INSPIRE code list value "noLimitations"
    constraints = ident.find("gmd:resourceConstraints/gmd:MD_LegalConstraints", NS)
    if constraints is not None:
        access = el("gmd:otherConstraints")
        access.append(el("gmx:Anchor", "Es gelten keine Zugriffsbeschränkungen", **{
            "xlink:href": "http://inspire.ec.europa.eu/metadata-codelist/LimitationsOnPublicAccess/noLimitations"}))
        constraints.append(access)
        use = el("gmd:otherConstraints")
        use.append(el("gco:CharacterString", json.dumps({"id": LICENCE_ID, "name": LICENCE_NAME, "url": LICENCE_URL,
                                                          "quelle": "; ".join(pkg.attributions)},
                                                         ensure_ascii=False)))
        constraints.append(use)
    dq = root.find("gmd:dataQualityInfo/gmd:DQ_DataQuality", NS)
    if dq is not None:
        report = el("gmd:report")
        consistency = el("gmd:DQ_DomainConsistency")
        report.append(consistency)
        result = el("gmd:result")
        consistency.append(result)
        conf = el("gmd:DQ_ConformanceResult")
        result.append(conf)
        spec = el("gmd:specification")
        conf.append(spec)
        cit = el("gmd:CI_Citation")
        spec.append(cit)
        t, _ = chain("gmd:title", "gco:CharacterString", text=CONFORMITY_SPEC[0])
        cit.append(t)
        d = el("gmd:date")
        cit.append(d)
        cid = el("gmd:CI_Date")
        d.append(cid)
        dd, _ = chain("gmd:date", "gco:Date", text=CONFORMITY_SPEC[1])
        cid.append(dd)
        dt = el("gmd:dateType")
        dt.append(el("gmd:CI_DateTypeCode", "publication", codeList="http://standards.iso.org/iso/19139/resources/"
                     "gmxCodelists.xml#CI_DateTypeCode", codeListValue="publication"))
        cid.append(dt)
        expl, _ = chain("gmd:explanation", "gco:CharacterString",
                        text="Nicht geprüft: die Daten folgen keinem INSPIRE-Datenmodell (Statistik je Gebiet/Zelle).")
        conf.append(expl)
        passed = el("gmd:pass")
        passed.set(f"{{{GCO}}}nilReason", "unknown")
        conf.append(passed)
        lineage = dq.find("gmd:lineage", NS)
        lineage.addprevious(report)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode("utf-8")


def _qn(name: str) -> str:
    if ":" in name:
        prefix, local = name.split(":")
        return f"{{{NS[prefix]}}}{local}"
    return name


def _insert_after(parent: Any, new: Any, before_tags: tuple[str, ...]) -> None:
    """Insert ``new`` into ``parent`` after its last child named one of ``before_tags`` (the schema order)."""
    names = {f"{{{NS[t.split(':')[0]]}}}{t.split(':')[1]}" for t in before_tags}
    last = None
    for child in parent:
        if child.tag in names:
            last = child
    if last is None:
        parent.insert(0, new)
    else:
        last.addnext(new)


def _resolution(pkg: Package, dataset: str) -> tuple[str, int] | None:
    """The grid's cell size; the areas' scale from a BKG bundle's name (VG250 -> 1:250 000), else unknown."""
    if dataset == "grid":
        return "distance", 100
    m = re.search(r"vg(\d+)", pkg.cfg.boundaries.path.name.lower())
    return ("scale", int(m.group(1)) * 1000) if m else None


def _dcat_ap_de(record: dict[str, Any], pkg: Package, dataset: str) -> dict[str, Any]:
    """pygeometa's DCAT record with what DCAT-AP.de adds: licence URI, attribution text, publisher, theme."""
    contact = pkg.publish.metadata_contact()
    ctx = record.setdefault("@context", {})
    ctx["dcatde"] = "http://dcat-ap.de/def/dcatde/"
    record["@id"] = resource_identifier(pkg, dataset)
    record["dct:identifier"] = resource_identifier(pkg, dataset)
    record["dct:license"] = {"@id": f"http://dcat-ap.de/def/licenses/{LICENCE_ID}"}
    record["dcatde:licenseAttributionByText"] = "; ".join(pkg.attributions)
    record["dct:publisher"] = {"@type": "foaf:Organization", "foaf:name": contact.organisation,
                               "foaf:mbox": f"mailto:{contact.email}"}
    record["dcat:theme"] = [{"@id": "http://publications.europa.eu/resource/authority/data-theme/TECH"},
                            {"@id": INSPIRE_THEME[2]}]
    record["dct:modified"] = datetime.now(UTC).date().isoformat()
    for dist in record.get("distribution", []) if isinstance(record.get("distribution"), list) else []:
        if isinstance(dist, dict):
            dist["dct:license"] = {"@id": f"http://dcat-ap.de/def/licenses/{LICENCE_ID}"}
    return record
