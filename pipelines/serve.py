"""``bbcov serve``: a published package as OGC API – Features, through pygeoapi.

``bbcov publish`` generates ``ogcapi/pygeoapi-config.yml`` (one collection per level and grid layer, each
on the package's GeoJSON file, with links to its ISO 19139 and DCAT records); ``serve`` sets the server
address in it, generates the OpenAPI document next to it, and runs pygeoapi's Flask application with the
package folder as working directory (the config's data paths are relative: the package holds no absolute
path). The metadata records are served under ``/metadata/``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coverage.errors import CoverageError
from coverage.model import LEVEL_KEYS
from pipelines import io

if TYPE_CHECKING:
    from pipelines.publish import Package

log = logging.getLogger(__name__)

CONFIG = Path("ogcapi/pygeoapi-config.yml")
OPENAPI = Path("ogcapi/pygeoapi-openapi.yml")
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
DEFAULT_URL = "http://127.0.0.1:5000"


def _yaml() -> Any:
    import yaml  # a dependency of pygeoapi

    return yaml


def pygeoapi_config(pkg: Package, title: str, url: str = DEFAULT_URL, host: str = "127.0.0.1",
                    port: int = 5000) -> dict[str, Any]:
    from coverage.disclosure import LICENCE_NAME, LICENCE_URL
    from pipelines.metadata import _wgs84_bounds
    from pipelines.publish import DATASETS, TITLES

    contact = pkg.publish.metadata_contact()
    resources: dict[str, Any] = {}
    for dataset, (layers, _) in DATASETS.items():
        for layer in layers:
            if not len(pkg.layers[layer]):
                continue  # pygeoapi's GeoJSON provider cannot describe an empty file (no cell of the layer)
            id_field = LEVEL_KEYS.get(layer, "cell_id")
            resources[layer] = {
                "type": "collection", "title": TITLES[layer],
                "description": f"{title}: {TITLES[layer]}. " + "; ".join(pkg.attributions),
                "keywords": ["Breitband", layer],
                "links": [{"type": "application/xml", "rel": "describedby", "title": "ISO 19139 (INSPIRE)",
                           "href": f"{url}/metadata/{dataset}.iso19139.xml"},
                          {"type": "application/ld+json", "rel": "describedby", "title": "DCAT-AP.de",
                           "href": f"{url}/metadata/{dataset}.dcat.jsonld"},
                          {"type": "text/html", "rel": "license", "title": LICENCE_NAME, "href": LICENCE_URL}],
                "extents": {"spatial": {"bbox": [float(v) for v in _wgs84_bounds(pkg, (layer,))], "crs": CRS84}},
                "providers": [{"type": "feature", "name": "GeoJSON", "data": f"ogcapi/{layer}.geojson",
                               "id_field": id_field}],
            }
    return {
        "server": {"bind": {"host": host, "port": port}, "url": url,
                   "mimetype": "application/json; charset=UTF-8", "encoding": "utf-8", "languages": ["de-DE"],
                   "pretty_print": False, "limits": {"default_items": 10, "max_items": 1000},
                   "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                           "attribution": "© OpenStreetMap contributors"}},
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {"title": title, "description": f"{title} (OGC API – Features)",
                               "keywords": ["Breitband", "INSPIRE"], "keywords_type": "theme",
                               "terms_of_service": LICENCE_URL, "url": pkg.publish.url},
            "license": {"name": LICENCE_NAME, "url": LICENCE_URL},
            "provider": {"name": contact.organisation, "url": contact.url or pkg.publish.url},
            "contact": {"name": contact.name or contact.organisation, "position": contact.position or "",
                        "address": contact.address or "", "city": contact.city or "",
                        "postalcode": contact.postalcode or "", "country": contact.country or "",
                        "phone": contact.phone or "", "email": contact.email, "url": contact.url or "",
                        "role": "pointOfContact"},
        },
        "resources": resources,
    }


def write_pygeoapi_config(pkg: Package, root: Path, title: str) -> list[str]:
    io.write_text(root / CONFIG, _yaml().safe_dump(pygeoapi_config(pkg, title), allow_unicode=True,
                                                   sort_keys=False))
    return [CONFIG.as_posix()]


def prepare(package: Path, host: str, port: int, url: str | None) -> tuple[Path, Path]:
    """Set the server address in the package's config and generate its OpenAPI document."""
    config = package / CONFIG
    if not config.is_file() or not (package / "package.json").is_file():
        raise CoverageError(f"{package}: not a published bbcov package (no {CONFIG}); make one with bbcov publish")
    try:
        from pygeoapi.openapi import generate_openapi_document
    except ImportError as exc:
        raise CoverageError("serve needs pygeoapi: pip install 'bbcov[publish]'") from exc
    yaml = _yaml()
    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    base = (url or f"http://{host}:{port}").rstrip("/")
    old = str(cfg["server"]["url"]).rstrip("/")
    cfg["server"]["bind"] = {"host": host, "port": port}
    cfg["server"]["url"] = base
    for res in cfg["resources"].values():
        for link in res.get("links", []):
            if link["href"].startswith(old + "/"):
                link["href"] = base + link["href"][len(old):]
    io.write_text(config, yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False))
    cwd = Path.cwd()
    os.chdir(package)  # the config's data paths are relative to the package
    try:
        io.write_text(OPENAPI, generate_openapi_document(CONFIG, "yaml"))
    finally:
        os.chdir(cwd)
    return package / CONFIG, package / OPENAPI


def serve(package: Path, host: str = "127.0.0.1", port: int = 5000, url: str | None = None) -> None:
    """Run pygeoapi on the package until interrupted (Flask's server; see README for production)."""
    package = package.resolve()
    config, openapi = prepare(package, host, port, url)
    os.environ["PYGEOAPI_CONFIG"] = str(config)
    os.environ["PYGEOAPI_OPENAPI"] = str(openapi)
    os.chdir(package)
    from flask import send_from_directory
    from pygeoapi.flask_app import APP

    def metadata(name: str) -> Any:
        return send_from_directory(package / "metadata", name)

    APP.add_url_rule("/metadata/<path:name>", "bbcov_metadata", metadata)
    log.info("serving %s as OGC API – Features on http://%s:%d", package.name, host, port)
    APP.run(host=host, port=port, debug=False, use_reloader=False, threaded=True)
