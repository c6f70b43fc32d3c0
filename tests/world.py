"""The hand-built three-Gemeinden world written as real files, for CLI and bad-input tests.

Files: gemeinden.gpkg (vector boundaries), addresses.csv (cp1252, ';', decimal comma, with one bad row
of each kind), dsl.csv (cp1252, by address_id), fibre.csv (UTF-8 BOM, by x/y), cable.gpkg (EPSG:3035
polygon), mobile.tif (GeoTIFF), run.toml.
"""

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from tests.conftest import CRS, X0, Y0, tiny_boundaries


def write_world(root: Path, *, report: bool = False) -> Path:
    gem = tiny_boundaries().gemeinde[["ags", "ars", "name", "geometry"]]
    gem.to_file(root / "gemeinden.gpkg", layer="gemeinden")
    # Addresses as a German CSV export: cp1252, ';', decimal commas, one bad row of each kind.
    (root / "addresses.csv").write_bytes((
        "address_id;x;y;households;site_kind;site_name;locality\n"
        f"A1;{X0 + 100:.0f},5;{Y0 + 100:.0f};3;;;Eins\n"
        f"A2;{X0 + 500:.0f};{Y0 + 500:.0f};2;;;Eins\n"
        f"A3;{X0 + 1500:.0f};{Y0 + 500:.0f};5;;;Zwei\n"
        f"A4;{X0 + 1000:.0f};{Y0 + 1500:.0f};0;school;Grundschule Drei;Drei\n"
        f"A5;{X0 + 1500:.0f};{Y0 + 1500:.0f};drei;;;Drei\n"             # bad number -> quarantine
        f"A6;{X0 - 5000:.0f};{Y0 + 500:.0f};1;;;Weit draußen\n"         # 5 km outside -> quarantine
        f"A2;{X0 + 510:.0f};{Y0 + 510:.0f};2;;;Eins\n"                  # duplicate id -> quarantine
    ).encode("cp1252"))
    (root / "dsl.csv").write_bytes((
        "address_id;provider;technology;down_mbps;up_mbps\n"
        "A1;Küstennetz (fiktiv);VDSL2-Vectoring;50,0;10,0\n"
        "A2;Küstennetz (fiktiv);SVDSL;100 Mbit/s;40\n"
        "A3;Küstennetz (fiktiv);ADSL2+;16.000 kbit/s;1\n"
        "A9;Küstennetz (fiktiv);VDSL;50;10\n"                           # unknown address -> quarantine
        "A4;Küstennetz (fiktiv);Brieftaube;50;10\n"                     # unknown technology -> quarantine
    ).encode("cp1252"))
    (root / "fibre.csv").write_bytes(("\ufeffprovider;technology;down_mbps;up_mbps;x;y;status;planned_date\n"
                                      f"Glasfaser eG (fiktiv);FTTH;1000;500;{X0 + 100.5:.1f};{Y0 + 100:.1f};current;\n"
                                      f"Glasfaser eG (fiktiv);FTTH;1000;500;{X0 + 1500:.1f};{Y0 + 500:.1f};"
                                      "planned;2023-05-01\n"
                                      ).replace(".", ",").encode("utf-8"))
    gpd.GeoDataFrame({"down_mbps": [250.0], "up_mbps": [25.0]},
                     geometry=[box(X0 + 1000, Y0, X0 + 2000, Y0 + 1000)], crs=CRS).to_crs("EPSG:3035").to_file(
        root / "cable.gpkg", layer="coverage")
    values = np.zeros((20, 20), dtype="uint16")
    values[10:20, 0:10] = 40  # lower-left quarter: G1 at 40 Mbit/s; elsewhere no service
    with rasterio.open(root / "mobile.tif", "w", driver="GTiff", height=20, width=20, count=1, dtype="uint16",
                       crs=CRS, transform=from_origin(X0, Y0 + 2000, 100, 100), nodata=0) as dst:
        dst.write(values, 1)
    config = root / "run.toml"
    config.write_text(f"""
[boundaries]
path = "gemeinden.gpkg"
format = "vector"
[addresses]
path = "addresses.csv"
crs = "{CRS}"
[[providers]]
path = "dsl.csv"
format = "address-csv"
[[providers]]
path = "fibre.csv"
format = "address-csv"
crs = "{CRS}"
[[providers]]
path = "cable.gpkg"
format = "polygons"
provider = "Boddenkabel (fiktiv)"
technology = "DOCSIS 3.1"
[[providers]]
path = "mobile.tif"
format = "raster"
provider = "Hansefunk (fiktiv)"
technology = "LTE"
[analysis]
thresholds_mbps = [2, 16, 30, 100, 1000]
reference_date = "2022-01-01"
[output]
dir = "out"
reports_dir = "reports"
""", encoding="utf-8")
    return config
