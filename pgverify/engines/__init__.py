"""The three independent exact engines.  Each reads only the validated case (through
:class:`~pgverify.algebra.Algebra`) and returns an :class:`EngineResult`."""
from .base import FAMILIES, EngineResult
from .bellman import bellman
from .occupancy import occupancy
from .trajectory import trajectory

ENGINES = {"bellman": bellman, "trajectory": trajectory, "occupancy": occupancy}

__all__ = ["ENGINES", "EngineResult", "FAMILIES", "bellman", "trajectory", "occupancy"]
