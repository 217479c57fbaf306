"""pgverify: exact, three-way verification of the policy gradient theorem on finite MDPs.

The public API:

- :func:`load_case`, :class:`Case` (``Case.from_dict``): read and validate a case;
- :func:`check`: J(theta) and its gradient by three independent exact engines
  (Bellman recursion, trajectory sum, occupancy form), and the proof that they agree;
- :class:`Result`: what ``check`` returns (``to_dict()`` is the CLI's JSON);
- :func:`load_sequence_case`, :class:`SequenceCase` (``SequenceCase.from_dict``,
  :func:`sequence_case_from_dict`): a sequence case (autoregressive generation); ``load_case``
  on a ``kind: sequence`` file returns its compiled MDP, with the SequenceCase as ``case.sequence``;
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
from .sequence.casefile import load_sequence_case, sequence_case_from_dict
from .sequence.model import SequenceCase

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
    "SequenceCase",
    "TooManyTrajectoriesError",
    "UsageError",
    "case_from_dict",
    "case_from_yaml",
    "check",
    "load_case",
    "load_sequence_case",
    "parse_expression",
    "sequence_case_from_dict",
]
