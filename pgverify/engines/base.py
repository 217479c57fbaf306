"""The one result type of every engine."""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EngineResult", "FAMILIES"]

#: The contributions the gradient splits into: the derivative of J when only that
#: ingredient depends on theta (the others frozen at their values).  "discount"
#: appears only when gamma depends on theta.
FAMILIES = ("start", "policy", "dynamics", "reward", "discount")


@dataclass
class EngineResult:
    """What an engine computed, as elements of the algebra's domain.

    Attributes
    ----------
    engine : str
    J : domain element
        The objective.
    grad : list
        dJ/dtheta_j for each parameter, in order.
    families : dict or None
        family -> list over parameters; they add up to ``grad``.
    exact : bool
        False when the engine truncated an infinite sum (then ``bound`` holds).
    bound : dict or None
        Rigorous bounds on |error| of the truncated sum: {"J": float, "grad": [float]}.
    info : dict
        Engine-specific facts (trajectory count, truncation length, ...).
    algebra : Algebra or None
        The algebra the numbers are in, when the engine used its own (a truncated
        trajectory sum is computed at the point even in symbolic mode).
    """

    engine: str
    J: object
    grad: list
    families: dict | None = None
    exact: bool = True
    bound: dict | None = None
    info: dict = field(default_factory=dict)
    algebra: object = None
