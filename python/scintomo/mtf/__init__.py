"""Resolution measurement: slanted-edge MTF (ISO 12233 e-SFR) and line-pair
(bar) targets with Coltman's correction. Frequencies in cycles/px, lp/mm with
a pixel size; resolution in nm as half the period."""

from __future__ import annotations

from .bars import BarGroup, BarMTF, bar_mtf, detect_bar_groups
from .chart import ChartEdge, chart_mtf, find_edges
from .edge import EdgeProfile, edge_mtf, edge_profile
from .fieldmap import MTFMap, mtf_map
from .radial import RadialMTF, radial_edge_mtf
from .result import MTF

__all__ = [
    "MTF",
    "MTFMap",
    "BarGroup",
    "BarMTF",
    "ChartEdge",
    "EdgeProfile",
    "RadialMTF",
    "bar_mtf",
    "chart_mtf",
    "detect_bar_groups",
    "edge_mtf",
    "edge_profile",
    "find_edges",
    "mtf_map",
    "radial_edge_mtf",
]
