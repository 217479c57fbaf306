r"""A sequence case as the finite MDP it is: states are prefixes, actions are tokens.

:func:`sequence_to_case` turns a :class:`~pgverify.sequence.model.SequenceCase` into a
:class:`~pgverify.model.Case` that every engine reads unchanged:

- one state per (prompt, prefix), named ``x`` for the prompt ``x`` with nothing written yet and
  ``x:A.B`` once the tokens ``A`` and ``B`` are written; one terminal state :data:`TERMINAL`;
- the actions of every state are the tokens of the vocabulary, ``eos`` included;
- the transitions are deterministic: token ``t`` leads from ``x:p`` to ``x:p.t``, or to the
  terminal state when ``t`` is ``eos`` or the completion ``p.t`` has ``max_length`` tokens;
- the start distribution is the prompts' distribution rho(x), the discount is 1, no horizon;
- the step that completes o gets the reward R(x, o); with ``beta`` != 0 every step also gets
  -beta log(pi_theta(t|x, p) / pi_ref(t|x, p)), written with the case format's symbol ``pi``
  (``Case.r_written``), so that the reward family is the one of an entropy bonus.

Then J of the MDP is the objective of the sequence case,

.. math::

    J(\theta) = \sum_x \rho(x) \sum_o p_\theta(o|x) \Big[R(x, o)
                - \beta \sum_{t=1}^{|o|} \log\frac{\pi_\theta(o_t|x,o_{<t})}{\pi_\mathrm{ref}(o_t|x,o_{<t})}\Big]
              = \mathbb{E}[R] - \beta \sum_x \rho(x)\, \mathrm{KL}(p_\theta(\cdot|x) \,\|\, p_\mathrm{ref}(\cdot|x)),

because the log-ratio of the sequence probabilities is the sum of the per-token log-ratios (the
chain rule of the KL divergence; Cover & Thomas 2006, Theorem 2.5.3).  The KL-regularised RLHF
objective in this per-token form is the one of Ouyang et al. (2022, eq. 2) and of Tang & Munos
(2025, section 2).
"""
from __future__ import annotations

import sympy

from ..model import Case

__all__ = ["TERMINAL", "state_name", "sequence_to_case"]

#: The terminal state of a compiled sequence case (no prompt may have this name).
TERMINAL = "end"
ZERO = sympy.Integer(0)


def state_name(prompt: str, prefix: tuple) -> str:
    """The MDP state of ``prompt`` after ``prefix``: ``easy``, ``easy:A``, ``easy:A.B``.

    Examples
    --------
    >>> state_name("easy", ()), state_name("easy", ("A", "B"))
    ('easy', 'easy:A.B')
    """
    return prompt if not prefix else f"{prompt}:{'.'.join(prefix)}"


def sequence_to_case(seq) -> Case:
    """The finite MDP of a sequence case (see the module docstring); ``case.sequence`` is ``seq``.

    Parameters
    ----------
    seq : SequenceCase
        A validated sequence case.

    Returns
    -------
    Case
        States ``x`` and ``x:A.B`` for every prompt and prefix, and :data:`TERMINAL`; J of this
        case is E[R] - beta KL(p_theta || p_ref), exactly.

    Examples
    --------
    >>> from pgverify.sequence.casefile import sequence_case_from_dict
    >>> seq = sequence_case_from_dict({"name": "one", "kind": "sequence", "prompts": "q",
    ...     "vocabulary": ["A"], "max_length": 2, "logits": {"A": "w"}, "parameters": {"w": 0},
    ...     "reward": {"A.A": 1}})
    >>> case = sequence_to_case(seq)
    >>> case.states
    ('q', 'q:A', 'end')
    >>> case.P["q:A"]["A"], case.r["q:A"]["A"]
    ({'end': 1}, {'end': 1})
    """
    pi_sym = sympy.Symbol("pi", positive=True)  # as pgverify.casefile makes it
    kl = seq.beta != 0 and seq.reference is not None
    states, actions, pi, P, r, r_written, reward_keys = [], {}, {}, {}, {}, {}, {}
    reward_place = ("reward", seq.lines.get("reward"))
    kl_place = ("beta", seq.lines.get("beta"))
    for x in seq.prompts:
        for prefix in seq.prefixes(x):
            s = state_name(x, prefix)
            states.append(s)
            actions[s] = tuple(seq.vocabulary)
            pi[s] = {t: e for t, e in seq.policy[(x, prefix)].items() if e != 0}
            P[s], r[s], r_written[s] = {}, {}, {}
            for t in seq.vocabulary:
                o = prefix + (t,)
                done = t == seq.eos or len(o) == seq.max_length
                s2 = TERMINAL if done else state_name(x, o)
                P[s][t] = {s2: sympy.Integer(1)}
                written = seq.reward[(x, o)] if done else ZERO
                if kl:
                    ref = seq.reference[(x, prefix)][t]
                    written = written - seq.beta * (sympy.log(pi_sym) - sympy.log(ref))
                    reward_keys[(s, t, s2)] = kl_place
                elif done:
                    reward_keys[(s, t, s2)] = reward_place
                value = written.subs(pi_sym, seq.policy[(x, prefix)][t]) if kl else written
                r_written[s][t] = {s2: written}
                r[s][t] = {s2: value} if value != 0 else {}
    states.append(TERMINAL)
    form = {"tabular": "tabular", "logits": "softmax"}.get(seq.policy_form, "explicit")
    return Case(
        name=seq.name, description=seq.description, states=tuple(states), terminal=frozenset({TERMINAL}),
        actions=actions, rho0={x: p for x, p in seq.prompt_probs.items() if p != 0}, pi=pi, P=P, r=r,
        gamma=sympy.Integer(1), horizon=None, parameters=tuple(seq.parameters), point=dict(seq.point),
        policy_form=form, constants=dict(seq.constants), r_written=r_written, pi_symbol=pi_sym,
        warnings=tuple(seq.warnings), source=seq.source, lines=dict(seq.lines), reward_keys=reward_keys,
        sequence=seq,
    )
