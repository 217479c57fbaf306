"""Importers: MDPs from other libraries into validated pgverify cases.

- :func:`from_gymnasium` / :func:`gymnasium_to_dict`: Gymnasium toy-text envs with a
  transition table (FrozenLake, CliffWalking, Taxi); needs the extra
  ``pip install 'pgverify[gymnasium]'``;
- :func:`from_arrays` / :func:`arrays_to_dict`: transition and reward arrays in the layouts of
  pymdptoolbox (``P[A,S,S]``; ``R[S]``, ``R[S,A]`` or ``R[A,S,S]``) and mushroom-rl
  (``p[S,A,S]``, ``r[S,A,S]``, ``mu``); also ``Case.from_arrays``;
- :func:`write_case` / :func:`render_case`: a case dict as a YAML case file.

Floats become exact fractions as :mod:`pgverify.importers.common` describes.  The
command line is ``pgverify import gymnasium ENV_ID`` (:mod:`pgverify.importers.cli`).
"""
from .arrays import arrays_to_dict, from_arrays
from .common import (
    DEFAULT_LIMIT,
    ImporterError,
    MergedRewardWarning,
    MissingExtraError,
    RationalisationWarning,
)
from .gymnasium import from_gymnasium, gymnasium_to_dict
from .writer import render_case, write_case

__all__ = [
    "DEFAULT_LIMIT",
    "ImporterError",
    "MergedRewardWarning",
    "MissingExtraError",
    "RationalisationWarning",
    "arrays_to_dict",
    "from_arrays",
    "from_gymnasium",
    "gymnasium_to_dict",
    "render_case",
    "write_case",
]
