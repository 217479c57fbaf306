"""The Monte Carlo check: sampled updates (numpy, float64) against the exact means."""
from __future__ import annotations

import json

import flint
import pytest

from pgverify.sequence.estimators import analyse, default_estimators
from pgverify.sequence.objective import SequenceTables
from pgverify.sequence.report import render_json, render_text
from pgverify.sequence.sampling import check

from .test_enumeration import kl_case


@pytest.fixture(scope="module")
def seq():
    return kl_case()


@pytest.mark.parametrize("seed", [0, 1])
def test_every_default_estimator_is_consistent_with_its_exact_mean(seq, seed):
    names = default_estimators(seq) + ["dr_grpo+token_mean+k3_loss", "reinforce_baseline+seq_mean+k2_loss"]
    res = analyse(seq, names, group=3, mc={"batches": 4000, "seed": seed}, jacobian=False)
    assert res.monte_carlo["consistent"], {k: v.monte_carlo for k, v in res.estimators.items()}
    for name, er in res.estimators.items():
        assert er.monte_carlo["verdict"] == "consistent", name
    assert res.monte_carlo["tests"] > 100


def test_a_wrong_exact_mean_is_found(seq):
    # shift one coordinate of an exact mean by 1/2 (many standard errors at 20000 batches): the
    # sampling must call it DIFFERS, and leave the others consistent
    res = analyse(seq, ["rloo", "grpo+seq_mean"], group=3, jacobian=False)
    er = res.estimators["grpo+seq_mean"]
    j = max(range(len(er.variance)), key=lambda i: float(flint.arb(er.variance[i]).mid()))
    er.mean = er.mean.copy()
    er.mean[j] = er.mean[j] + flint.fmpq(1, 2)
    summary = check(seq, res, tables=SequenceTables(seq), batches=20000, seed=3)
    assert not summary["consistent"]
    assert er.monte_carlo["verdict"] == "DIFFERS"
    assert seq.parameter_names[j] in er.monte_carlo["reason"]
    assert res.estimators["rloo"].monte_carlo["verdict"] == "consistent"


def test_reports_render_what_the_result_holds(seq):
    res = analyse(seq, ["rloo", "grpo+seq_mean", "rloo+k3_loss", "grpo+k1_reward"], group=3,
                  mc={"batches": 2000}, multiset_limit=10)
    text = render_text(res)
    d = json.loads(render_json(res))
    assert set(d["estimators"]) == {"rloo", "grpo+seq_mean", "rloo+k3_loss", "grpo+k1_reward"}
    assert d["estimators"]["grpo+k1_reward"]["status"] == "not_run"
    assert "grpo+k1_reward: not run: " in text
    e = d["estimators"]["rloo+k3_loss"]
    for key in ("mean", "bias", "relative_bias", "variance", "variance_trace", "is_gradient", "objective", "proof",
                "bound", "monte_carlo", "kl_part"):
        assert key in e
    assert len(e["mean"]) == len(seq.parameters)
    line = next(ln for ln in text.splitlines() if ln.startswith("rloo+k3_loss "))
    assert f"{e['relative_bias_float']:.6g}" in line and e["is_gradient"] in line
