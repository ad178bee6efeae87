"""Resolution measurement: slanted-edge MTF (ISO 12233 e-SFR) and line-pair
(bar) targets with Coltman's correction. Frequencies in cycles/px, lp/mm with
a pixel size; resolution in nm as half the period."""

from __future__ import annotations

from .bars import BarMTF, bar_mtf
from .edge import EdgeProfile, edge_mtf, edge_profile
from .result import MTF

__all__ = ["MTF", "BarMTF", "EdgeProfile", "bar_mtf", "edge_mtf", "edge_profile"]
