"""Planner-facing report: simplified map geometry, choropleth maps (SVG/PNG) and the HTML overview.

Everything here is pure: functions return strings/bytes; the pipeline writes the files.
"""

from coverage.report.geometry import MapGeometry, prepare_map_geometry
from coverage.report.html import render_overview
from coverage.report.maps import (
    SHARE_BREAKS,
    Classes,
    choropleth_png,
    choropleth_svg,
    classify,
    column_label,
    share_classes,
)

__all__ = [
    "SHARE_BREAKS",
    "Classes",
    "MapGeometry",
    "choropleth_png",
    "choropleth_svg",
    "classify",
    "column_label",
    "prepare_map_geometry",
    "render_overview",
    "share_classes",
]
