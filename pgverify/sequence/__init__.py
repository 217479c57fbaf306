"""Sequence cases (autoregressive generation) and the estimators of LLM policy-gradient training.

- :class:`SequenceCase` (:mod:`~pgverify.sequence.model`): prompts, vocabulary, end token, policy,
  reward, reference policy, KL coefficient; ``to_case()`` compiles it to the finite MDP of prefixes;
- :func:`analyse` (:mod:`~pgverify.sequence.estimators`): every named estimator's exact expected
  update, bias against the gradient of the objective, variance and gradient verdict;
- :func:`objective`: J = E[R] - beta KL(p_theta || p_ref) and its exact gradient by enumeration.

The command line is ``pgverify estimators CASE``; see docs/llm-estimators.md.
"""
from .estimators import ADVANTAGES, AGGREGATIONS, KL_TERMS, EstimatorsResult, analyse, default_estimators, \
    parse_estimator
from .model import SequenceCase
from .objective import Objective, objective

__all__ = ["ADVANTAGES", "AGGREGATIONS", "KL_TERMS", "EstimatorsResult", "Objective", "SequenceCase", "analyse",
           "default_estimators", "objective", "parse_estimator"]
