"""pgverify: exact, three-way verification of the policy gradient theorem on finite MDPs.

The public API:

- :func:`load_case`, :class:`Case` (``Case.from_dict``): read and validate a case;
- :func:`check`: J(theta) and its gradient by three independent exact engines
  (Bellman recursion, trajectory sum, occupancy form), and the proof that they agree;
- :class:`Result`: what ``check`` returns (``to_dict()`` is the CLI's JSON);
- the errors, all subclasses of :class:`PgVerifyError`.
"""
from .casefile import case_from_dict, case_from_yaml, load_case
from .check import Quantity, Result, check
from .errors import (
    CaseFileError,
    EngineError,
    ExpressionError,
    PgVerifyError,
    Problem,
    TooManyTrajectoriesError,
    UsageError,
)
from .expr import parse_expression
from .model import Case

__version__ = "0.1.0"

__all__ = [
    "Case",
    "CaseFileError",
    "EngineError",
    "ExpressionError",
    "PgVerifyError",
    "Problem",
    "Quantity",
    "Result",
    "TooManyTrajectoriesError",
    "UsageError",
    "case_from_dict",
    "case_from_yaml",
    "check",
    "load_case",
    "parse_expression",
]
