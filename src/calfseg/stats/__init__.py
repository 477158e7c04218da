"""Statistics of foreground areas: per-mask areas and their streaming, mergeable moments."""

from calfseg.stats.areas import AREA_METHODS, foreground_areas
from calfseg.stats.moments import AreaMoments

__all__ = ["AREA_METHODS", "AreaMoments", "foreground_areas"]
