r"""The validated sequence case: autoregressive generation as a finite MDP.

A :class:`SequenceCase` describes what a language model does on a small scale: a prompt x is
drawn from ``prompt_probs``; the policy then writes tokens o_1, o_2, ... from ``vocabulary``,
each with probability pi_theta(o_t | x, o_<t), until it writes ``eos`` or has written
``max_length`` tokens.  The completion o (the tokens written, ``eos`` included when written;
|o| is their number) gets the reward R(x, o).  An optional reference policy pi_ref (no theta)
and a coefficient ``beta`` give the KL-regularised objective

.. math::

    J(\theta) = \sum_x \rho(x) \sum_o p_\theta(o|x) R(x, o)
                - \beta \sum_x \rho(x) \mathrm{KL}(p_\theta(\cdot|x) \,\|\, p_\mathrm{ref}(\cdot|x)),

where p_theta(o|x) = prod_t pi_theta(o_t | x, o_<t).  Every expression is a sympy expression in
``parameters`` (already parsed and validated by :mod:`pgverify.sequence.casefile`).

Field shapes (a *prefix* is a tuple of tokens, without ``eos``, shorter than ``max_length``):

- ``policy[(x, prefix)][token]``: pi_theta(token | x, prefix); every token of the vocabulary,
  summing to 1 (softmax of ``logits`` when the case is written with logits);
- ``logits[(x, prefix)][token]`` or None: the logits as written;
- ``reference[(x, prefix)][token]`` or None: pi_ref, numbers without theta;
- ``reward[(x, completion)]``: R(x, o) for every completion, without theta.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import sympy

__all__ = ["SequenceCase"]


@dataclass(frozen=True, eq=False)
class SequenceCase:
    """A validated sequence case (see the module docstring)."""

    name: str
    parameters: tuple  # sympy Symbols, in order
    point: Mapping  # Symbol -> sympy number
    prompts: tuple  # prompt names, in order
    prompt_probs: Mapping  # prompt -> sympy number (no theta), summing to 1
    vocabulary: tuple  # token names, eos included
    eos: str
    max_length: int
    policy: Mapping  # (prompt, prefix) -> {token: expr}
    reward: Mapping  # (prompt, completion) -> expr
    logits: Mapping | None = None
    reference: Mapping | None = None
    beta: sympy.Expr = sympy.Integer(0)  # KL coefficient (0: objective E[R])
    #: theta_old for the clipped surrogate (PPO/GRPO with a stale policy); None: not given
    old_point: Mapping | None = None
    clip_epsilon: sympy.Expr | None = None
    description: str = ""
    source: str | None = None
    #: key path -> line in the case file
    lines: Mapping = field(default_factory=dict)
    #: how the policy was written: "tabular" (one parameter per prefix and token), "logits"
    #: (softmax of the logits as written) or "explicit" (probabilities)
    policy_form: str = "explicit"
    #: the case file's constants (name -> number)
    constants: Mapping = field(default_factory=dict)
    #: problems that do not stop the run (pgverify.Problem), e.g. a parameter used nowhere
    warnings: tuple = ()

    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def prefixes(self, prompt) -> list[tuple]:
        """Every prefix of ``prompt`` at which the policy acts, shortest first."""
        out, frontier = [()], [()]
        body = [t for t in self.vocabulary if t != self.eos]
        for _ in range(self.max_length - 1):
            frontier = [p + (t,) for p in frontier for t in body]
            out.extend(frontier)
        return out

    def completions(self, prompt) -> list[tuple]:
        """Every completion of ``prompt``: ends with ``eos``, or has ``max_length`` tokens."""
        out = []
        for p in self.prefixes(prompt):
            for t in self.vocabulary:
                o = p + (t,)
                if t == self.eos or len(o) == self.max_length:
                    out.append(o)
        return out

    @classmethod
    def from_dict(cls, data: Mapping, *, source: str | None = None) -> "SequenceCase":
        """Build and validate a sequence case from a dict with the fields of a sequence case file.

        The fields are those of ``docs/case-format.md`` (section *Sequence cases*); ``kind`` may be
        left out.  Raises :class:`~pgverify.errors.CaseFileError` with every problem found.

        Examples
        --------
        >>> seq = SequenceCase.from_dict({"name": "coin", "prompts": "q", "vocabulary": ["A"],
        ...                               "max_length": 1, "logits": "tabular", "reward": {"A": 1}})
        >>> seq.vocabulary, seq.completions("q"), seq.parameter_names
        (('A', 'eos'), [('A',), ('eos',)], ['theta_q_A', 'theta_q_eos'])
        """
        from .casefile import sequence_case_from_dict

        return sequence_case_from_dict(data, source=source)

    def to_case(self):
        """The equivalent finite MDP (:func:`pgverify.sequence.compile.sequence_to_case`)."""
        from .compile import sequence_to_case

        return sequence_to_case(self)

    def at(self, values: Mapping) -> "SequenceCase":
        """The same sequence case at another parameter point, validated again there."""
        return self.to_case().at(values).sequence

    def __repr__(self) -> str:
        return (f"SequenceCase({self.name!r}, prompts={len(self.prompts)}, vocabulary={len(self.vocabulary)}, "
                f"max_length={self.max_length}, parameters={len(self.parameters)})")
