"""Closed forms = multisets of types = a brute force over every ordered group of completions."""
from __future__ import annotations

import flint
import pytest
import sympy

from pgverify.sequence import numbers as nb
from pgverify.sequence.estimators import ADVANTAGES, AGGREGATIONS, moments

from .brute import brute_moments, completion_table
from .helpers import make_case

R = sympy.Rational


def same(a, b):
    """Exact equality of rationals; for balls, the difference contains 0 and is tiny."""
    with nb.working_precision():
        for x, y in zip(a, b):
            if isinstance(x, flint.fmpq) and isinstance(y, flint.fmpq):
                if x != y:
                    return False
            else:
                d = x - y
                if not (d.contains(0) and float(d.rad()) < 1e-30):
                    return False
    return True


def two_prompt_case(**kw):
    # rewards: prompt x rewards an early "a"; prompt y rewards length (three values), so GRPO's
    # std and the token_mean types are not trivial
    pt = {"th_x_0_a": R(1, 2), "th_x_0_b": R(1, 5), "th_x_a_a": R(1, 3), "th_x_b_a": R(1, 4), "th_x_a_b": R(1, 6),
          "th_x_b_b": R(1, 2), "th_y_0_a": R(1, 4), "th_y_0_b": R(1, 4)}
    return make_case(prompts=("x", "y"), prompt_probs={"x": R(1, 3), "y": R(2, 3)}, max_length=2, form="direct",
                     point=lambda s: pt.get(s.name, R(1, 3)),
                     reward=lambda x, o: (1 if o[0] == "a" else 0) if x == "x" else len(o) + (o[-1] == "b"), **kw)


@pytest.fixture(scope="module")
def case():
    return two_prompt_case()


@pytest.fixture(scope="module")
def table(case):
    return completion_table(case)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
@pytest.mark.parametrize("advantage", ADVANTAGES)
def test_multisets_equal_brute_force(case, table, advantage, aggregation):
    G = 3
    name = advantage if aggregation == "sum" else f"{advantage}+{aggregation}"
    got = moments(case, name, group=G, method="multisets")
    mean, second = brute_moments(case, advantage, aggregation, G, table=table)
    assert same(got["mean"], mean)
    assert same(got["second"], second)


@pytest.mark.parametrize("name", ["reinforce", "reinforce_baseline", "rloo", "dr_grpo", "rloo+seq_mean",
                                  "dr_grpo+max_len", "reinforce_baseline+seq_mean", "rloo+max_len"])
@pytest.mark.parametrize("G", [2, 3, 5])
def test_closed_forms_equal_multisets(case, name, G):
    a = moments(case, name, group=G, method="closed_form")
    b = moments(case, name, group=G, method="multisets")
    assert nb.is_exact(a["mean"]) and nb.is_exact(a["second"])
    assert list(a["mean"]) == list(b["mean"])
    assert list(a["second"]) == list(b["second"])


def kl_case():
    ref = {"a": R(1, 2), "b": R(1, 3), "<eos>": R(1, 6)}
    return two_prompt_case(reference=lambda x, p: ref, beta=R(1, 7), old_point=lambda s: R(1, 4),
                           clip_epsilon=R(1, 10))


@pytest.mark.parametrize("advantage,aggregation,kl", [("rloo", "sum", "k3_loss"), ("grpo", "seq_mean", "k3_loss"),
                                                      ("dr_grpo", "token_mean", "k1_loss"), ("rloo", "seq_mean", "k1_loss")])
def test_kl_loss_terms_equal_brute_force(advantage, aggregation, kl):
    seq = kl_case()
    name = "+".join([advantage] + ([aggregation] if aggregation != "sum" else []) + [kl])
    got = moments(seq, name, group=2)
    mean, second = brute_moments(seq, advantage, aggregation, 2, kl=kl)
    assert same(got["mean"], mean) and same(got["second"], second)


@pytest.mark.parametrize("advantage,aggregation,kl", [("rloo", "sum", None), ("grpo", "seq_mean", None),
                                                      ("dr_grpo", "token_mean", None), ("grpo", "seq_mean", "k3_loss"),
                                                      ("reinforce_baseline", "max_len", None)])
def test_clip_equals_brute_force(advantage, aggregation, kl):
    seq = kl_case()
    name = "+".join([advantage] + ([aggregation] if aggregation != "sum" else []) + ([kl] if kl else []) + ["clip"])
    got = moments(seq, name, group=3)
    mean, second = brute_moments(seq, advantage, aggregation, 3, kl=kl, clip=True)
    assert same(got["mean"], mean) and same(got["second"], second)
    # the clip is active at some token and inactive at another (else the test would not test it)
    rows = completion_table(seq)
    ratios = {tk["pi"] / tk["old"] for x in seq.prompts for rw in rows[x] for tk in rw["toks"]}
    e = flint.fmpq(1, 10)
    assert any(not (1 - e <= q <= 1 + e) for q in ratios) and any(1 - e <= q <= 1 + e for q in ratios)


def test_kl_reward_closed_form_equals_multisets():
    """Penalised rewards (balls: log-ratios) by the closed form and by per-completion types."""
    seq = kl_case()
    for name in ["rloo+k2_reward", "dr_grpo+seq_mean+k1_reward", "reinforce_baseline+k3_reward"]:
        a = moments(seq, name, group=2, method="closed_form")
        b = moments(seq, name, group=2, method="multisets")
        assert same(a["mean"], b["mean"]) and same(a["second"], b["second"])
