"""Helpers for unit tests of policy-gradient code: pin an estimator to the exact gradient.

- :func:`exact_gradient`, :func:`exact_objective`: grad J and J at a point, as floats;
- :func:`assert_gradient_close`: a gradient equals the exact one, or an ``AssertionError`` that
  lists every parameter's exact and given value;
- :func:`assert_unbiased`: a user's estimator, run on episodes that pgverify samples
  (:class:`EpisodeBatch`), has the exact gradient as its mean (the z-test of ``pgverify check``),
  or an ``AssertionError`` with the z-scores and, where pgverify recognises the estimator or can
  enumerate the trajectories, its exact bias;
- on a sequence case (``kind: sequence``), :func:`assert_unbiased` hands groups of completions
  (:class:`GroupBatch`) to an LLM-style loss and names the matching GRPO/RLOO/KL estimator
  (:func:`assert_unbiased_groups`);
- :mod:`pgverify.testing.plugin`: pytest fixtures (``pgverify_case``, ``pgverify``).

See ``docs/testing.md``.
"""
from .episodes import EpisodeBatch
from .gradient import (
    GradientMismatch,
    HelperInputError,
    assert_gradient_close,
    exact_gradient,
    exact_objective,
)
from .groups import GroupBatch, GroupReport, assert_unbiased_groups
from .unbiased import BiasDetected, Match, SampleInconclusive, UnbiasedReport, assert_unbiased

__all__ = [
    "BiasDetected",
    "SampleInconclusive",
    "EpisodeBatch",
    "GradientMismatch",
    "GroupBatch",
    "GroupReport",
    "HelperInputError",
    "Match",
    "UnbiasedReport",
    "assert_gradient_close",
    "assert_unbiased",
    "assert_unbiased_groups",
    "exact_gradient",
    "exact_objective",
]
