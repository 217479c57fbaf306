"""Seeded random tabular MDPs, for benchmarks and tests at scale.

:func:`random_tabular_case` returns the fields of a case file (a dict for
:meth:`pgverify.Case.from_dict`, or YAML text with :func:`to_yaml`): ``S`` states ``s0 ..``
plus one terminal state ``goal``; in every state 2 to 4 actions, each leading to 2 to 5
successors with probabilities that are multiples of 1/8 (one successor may be ``goal``, with
probability ``goal_probability``); rewards -1 per step and 1 on entering ``goal``; a tabular
softmax policy (one parameter per state and action, 0 at the point); discount ``gamma``;
optionally a horizon.
"""
from __future__ import annotations

import random
from fractions import Fraction

__all__ = ["random_tabular_case", "to_yaml"]


def _split(rng: random.Random, k: int) -> list[Fraction]:
    """k probabilities, multiples of 1/8, each at least 1/8, summing to 1 (k <= 8)."""
    cuts = sorted(rng.sample(range(1, 8), k - 1))
    parts = [b - a for a, b in zip([0] + cuts, cuts + [8])]
    return [Fraction(p, 8) for p in parts]


def random_tabular_case(S: int, *, seed: int = 0, gamma: str = "19/20", horizon: int | None = None,
                        goal_every: int = 10) -> dict:
    """The fields of a random tabular-softmax case (see the module docstring).

    Every ``goal_every``-th state has ``goal`` among the successors of its first action, so that
    episodes end (needed with discount 1).
    """
    rng = random.Random(seed)
    states = [f"s{i}" for i in range(S)]
    actions = {}
    transitions = {}
    for i, s in enumerate(states):
        acts = [f"a{k}" for k in range(rng.randint(2, 4))]
        actions[s] = acts
        row = {}
        for k, a in enumerate(acts):
            m = rng.randint(2, 5)
            succ = rng.sample(range(S), m)
            targets = [states[j] for j in succ]
            if k == 0 and i % goal_every == 0:
                targets[0] = "goal"
            row[a] = {t: str(p) for t, p in zip(targets, _split(rng, m))}
        transitions[s] = row
    data = {
        "name": f"random-{S}-{seed}",
        "description": f"random tabular softmax MDP, {S} states, seed {seed} (pgverify.testing.random_cases)",
        "states": states + ["goal"], "terminal": ["goal"], "actions": actions, "start": "s0",
        "discount": gamma, "policy": {"softmax": "tabular"}, "transitions": transitions,
        "rewards": {"default": -1, **{s: {a: {"goal": 1} for a in actions[s]
                                          if "goal" in transitions[s][a]} for s in states
                                      if any("goal" in transitions[s][a] for a in actions[s])}},
    }
    if horizon is not None:
        data["horizon"] = horizon
    return data


def to_yaml(data: dict) -> str:
    """The case as YAML text (flow style per state: one line per state)."""
    import yaml

    lines = []
    for key in ("name", "description", "discount", "horizon", "start"):
        if key in data:
            lines.append(f"{key}: {yaml.safe_dump(data[key], default_flow_style=True).strip()}")
    lines.append(f"states: [{', '.join(data['states'])}]")
    lines.append(f"terminal: [{', '.join(data['terminal'])}]")
    lines.append("policy: {softmax: tabular}")
    for key in ("actions", "transitions", "rewards"):
        lines.append(f"{key}:")
        for s, v in data[key].items():
            lines.append(f"  {s}: {yaml.safe_dump(v, default_flow_style=True, width=10**9).strip()}")
    return "\n".join(lines).replace("...", "") + "\n"
