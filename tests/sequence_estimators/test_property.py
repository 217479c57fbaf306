"""Hypothesis: random small sequence cases (tabular rational policies, integer rewards)."""
from __future__ import annotations

import flint
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgverify.sequence import numbers as nb
from pgverify.sequence.estimators import analyse, moments

from .brute import brute_moments
from .helpers import make_case
from .test_enumeration import same


@st.composite
def cases(draw):
    max_length = draw(st.integers(1, 2))
    n_prompts = draw(st.integers(1, 2))
    prompts = ("x", "y")[:n_prompts]
    values = {}

    def point(s):
        if s.name not in values:
            # pi(a), pi(b) in (0, 1) with pi(a) + pi(b) < 1: a/d, b/d with a + b < d
            d = draw(st.integers(3, 9))
            a = draw(st.integers(1, d - 2))
            b = draw(st.integers(1, d - 1 - a))
            stem = s.name[:-2]
            values[stem + "_a"] = sympy.Rational(a, d)
            values[stem + "_b"] = sympy.Rational(b, d)
        return values[s.name]

    rewards = {}

    def reward(x, o):
        if (x, o) not in rewards:
            rewards[(x, o)] = draw(st.integers(-2, 2))
        return rewards[(x, o)]

    w = draw(st.integers(1, 4))
    rho = {"x": sympy.Rational(w, 5), "y": sympy.Rational(5 - w, 5)} if n_prompts == 2 else None
    return make_case(prompts=prompts, prompt_probs=rho, max_length=max_length, form="direct", point=point,
                     reward=reward)


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(cases(), st.integers(2, 4))
def test_rloo_baseline_unbiased_and_dr_grpo_scaled(seq, G):
    # Kool et al. 2019 (RLOO), Williams 1992 (baseline), Liu et al. 2025 (Dr. GRPO: (G-1)/G RLOO)
    res = analyse(seq, ["rloo", "reinforce_baseline", "dr_grpo"], group=G, jacobian=False)
    grad = res.objective.gradient
    assert all(b == 0 for b in res.estimators["rloo"].bias)
    assert all(b == 0 for b in res.estimators["reinforce_baseline"].bias)
    assert list(res.estimators["dr_grpo"].mean) == [flint.fmpq(G - 1, G) * g for g in grad]
    for er in res.estimators.values():
        assert all(v >= 0 for v in er.variance)


@SETTINGS
@given(cases(), st.integers(2, 3), st.sampled_from(["rloo+seq_mean", "dr_grpo+max_len", "reinforce_baseline+seq_mean"]))
def test_closed_forms_equal_multisets(seq, G, name):
    a = moments(seq, name, group=G, method="closed_form")
    b = moments(seq, name, group=G, method="multisets")
    assert list(a["mean"]) == list(b["mean"]) and list(a["second"]) == list(b["second"])


@SETTINGS
@given(cases(), st.sampled_from(["grpo", "grpo_sample_std", "dr_grpo", "rloo"]),
       st.sampled_from(["sum", "seq_mean", "token_mean", "max_len"]))
def test_multisets_equal_brute_force(seq, advantage, aggregation):
    name = advantage if aggregation == "sum" else f"{advantage}+{aggregation}"
    got = moments(seq, name, group=2, method="multisets")
    mean, second = brute_moments(seq, advantage, aggregation, 2)
    assert same(got["mean"], mean) and same(got["second"], second)
    with nb.working_precision():
        var = got["second"] - got["mean"] * got["mean"]
        assert not any(isinstance(v, flint.arb) and v < 0 for v in var)
        assert not any(isinstance(v, flint.fmpq) and v < 0 for v in var)
