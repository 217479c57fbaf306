"""assert_unbiased on sequence cases: users' GRPO-style losses, written here from their papers'
formulas with numpy (and torch where installed), against pgverify's exact targets."""
from __future__ import annotations

import numpy as np
import pytest

import pgverify
from pgverify.testing import BiasDetected, HelperInputError, assert_unbiased
from pgverify.testing.groups import GroupBatch

LENGTH = "cases/seq_length_bias.yaml"  # logits {A: x, eos: stop}, reward 1 for 'A eos', max_length 3


def _token_scores(batch: GroupBatch) -> np.ndarray:
    """d log pi(o_t) / d(x, stop) per token for the softmax over logits (x, 0, stop) of (A, B, eos):
    the one-hot of the token minus pi (the softmax's score)."""
    th = batch.theta
    logits = np.zeros(len(batch.vocabulary))
    idx = {t: i for i, t in enumerate(batch.vocabulary)}
    logits[idx["A"]], logits[idx["eos"]] = th["x"], th["stop"]
    pi = np.exp(logits - logits.max())
    pi /= pi.sum()
    tok = np.where(batch.mask, batch.tokens, 0)
    s = np.zeros(batch.tokens.shape + (2,))
    for k, t in enumerate(("A", "eos")):
        s[..., k] = (tok == idx[t]) - pi[idx[t]]
    return s * batch.mask[..., None]


def rloo(batch: GroupBatch) -> np.ndarray:
    """Kool et al. (2019): (R_i - mean of the others) times the sequence score, averaged over the group."""
    r = batch.rewards
    G = r.shape[1]
    adv = r - (r.sum(1, keepdims=True) - r) / (G - 1)
    return np.einsum("bg,bgn->bn", adv, _token_scores(batch).sum(2)) / G


def grpo_seq_mean(batch: GroupBatch) -> np.ndarray:
    """Shao et al. (2024): (R - mean) / (std + eps), population std, then the per-sequence token mean."""
    r = batch.rewards
    adv = (r - r.mean(1, keepdims=True)) / (r.std(1, keepdims=True) + 1e-6)
    per_seq = _token_scores(batch).sum(2) / batch.lengths[..., None]
    return np.einsum("bg,bgn->bn", adv, per_seq) / r.shape[1]


def test_rloo_passes_and_is_named():
    rep = assert_unbiased(rloo, LENGTH, episodes=4000, group=4)
    assert rep.passed and not rep.rejected
    assert rep.matches[0][0] == "rloo+sum" and rep.matches[0][1] == 1
    # rloo is unbiased (Kool et al. 2019): its exact bias is 0
    assert rep.matches[0][3] == ["0", "0"]


def test_grpo_seq_mean_fails_with_its_exact_bias():
    with pytest.raises(BiasDetected) as info:
        assert_unbiased(grpo_seq_mean, LENGTH, episodes=20000, group=8)
    rep = info.value.report
    assert rep.rejected
    assert rep.matches and rep.matches[0][0] == "grpo+seq_mean"
    analysed = pgverify.load_case(LENGTH).sequence
    from pgverify.sequence.estimators import analyse

    exact = analyse(analysed, ["grpo+seq_mean"], variance=False, jacobian=False).estimators["grpo+seq_mean"]
    assert rep.matches[0][4] == pytest.approx([float(b) for b in (exact.mean - analyse(
        analysed, ["rloo"], variance=False, jacobian=False).objective.gradient)])
    assert "your estimator equals pgverify's grpo+seq_mean" in str(info.value)


def test_expected_pins_a_biased_estimator():
    rep = assert_unbiased(grpo_seq_mean, LENGTH, episodes=4000, group=8, expected="grpo+seq_mean")
    assert rep.passed and rep.target_name == "the expected update of grpo+seq_mean"


def test_bad_output_shape_is_said():
    with pytest.raises(HelperInputError, match="one update per group"):
        assert_unbiased(lambda b: np.zeros(3), LENGTH, episodes=200, group=4)


def test_stale_needs_a_stale_point():
    with pytest.raises(pgverify.UsageError, match="stale=True needs the case's 'stale' point"):
        assert_unbiased(rloo, LENGTH, episodes=200, stale=True)


# A PyTorch GRPO loss tested the same way: docs/examples/grpo_torch.py, run by tests/test_docs.py (torch extra).


def _run(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "pgverify.cli", *args], capture_output=True, text=True)


def test_check_runs_named_llm_estimators_on_a_sequence_case():
    import json

    out = _run("check", LENGTH, "--estimators", "rloo,grpo+seq_mean", "--json", "--episodes", "2000")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["verified"] is True
    assert set(data["estimators"]) == {"rloo", "grpo+seq_mean"}
    assert data["estimators"]["rloo"]["bias"] == ["0", "0"]  # Kool et al. (2019): RLOO is unbiased
    assert data["estimators"]["grpo+seq_mean"]["is_gradient"] == "no"
    assert data["estimators"]["grpo+seq_mean"]["monte_carlo"]["verdict"] == "consistent"


def test_check_refuses_llm_estimators_on_an_mdp_case():
    out = _run("check", "cases/short_corridor.yaml", "--estimators", "rloo")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr == ("pgverify: error: the estimator(s) rloo apply to sequence cases only (kind: sequence); "
                          "cases/short_corridor.yaml is an MDP case\n")


def test_check_unknown_estimator_names_both_families():
    out = _run("check", LENGTH, "--estimators", "grpo+median")
    assert out.returncode == 2
    assert "unknown estimator(s) grpo+median" in out.stderr and "advantage[+aggregation]" in out.stderr


def test_estimators_command_exit_status_and_json():
    import json

    out = _run("estimators", LENGTH, "--json", "--batches", "2000", "--estimators", "rloo,dr_grpo")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    # Dr. GRPO's mean-centred advantage with the group's own reward included: (G - 1)/G grad J (G = 8)
    assert d["estimators"]["dr_grpo"]["objective"] == "(7/8) * J"
    out = _run("estimators", "cases/short_corridor.yaml")
    assert out.returncode == 2 and "is an MDP case, not a sequence case" in out.stderr


def test_one_parameter_updates_are_gradients():
    """With one parameter every smooth expected update is the derivative of its integral; the
    Jacobian test of Nota & Thomas (2020) needs two parameters, so the verdict comes from that."""
    from pgverify.sequence import analyse

    seq = pgverify.load_case("cases/seq_difficulty_bias.yaml").sequence
    assert len(seq.parameters) == 1
    res = analyse(seq, ["grpo+seq_mean", "grpo+token_mean"], variance=False).estimators
    for name in ("grpo+seq_mean", "grpo+token_mean"):
        assert res[name].is_gradient == "yes"
        assert res[name].gradient_reason.startswith("one parameter: without clip the expected update is a smooth")


@pytest.mark.parametrize("width", [80, 120])
def test_the_estimators_report_fits_the_terminal(width):
    """Issue 10's rule for every table: at 80 columns nothing is wider than the terminal, columns are
    left out in a stated order (proof, variance trace, cosine) and a line says which."""
    import os

    env = dict(os.environ, COLUMNS=str(width))
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pgverify.cli", "estimators", "cases/seq_kl_reference.yaml",
                          "--batches", "500"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert max(len(line) for line in lines) <= width
    if width == 80:
        assert "(left out at 80 columns: proof, variance trace; --json has them)" in lines
        header = next(line for line in lines if line.startswith("estimator"))
        assert header.split() == ["estimator", "relative", "bias", "cosine", "gradient?", "Monte", "Carlo"]
    else:
        assert not any(line.startswith("(left out") for line in lines)


def test_prompt_weights_of_a_two_valued_reward():
    """The prompt weights phi_x (expected update given x = phi_x grad q_x): for Dr. GRPO's mean-centred
    advantage with 0/1 rewards, phi_x = (G - 1)/G for every prompt (Liu et al. 2025: E[(R - mean) score]
    = (G - 1)/G grad E[R]); GRPO's are named in its verdict."""
    import flint

    from pgverify.sequence import analyse
    from pgverify.sequence.estimators import _prompt_weights, parse_estimator
    from pgverify.sequence.objective import SequenceTables

    seq = pgverify.load_case("cases/seq_difficulty_bias.yaml").sequence
    w = _prompt_weights(seq, parse_estimator("dr_grpo"), 8, flint.fmpq(1, 10**6), SequenceTables(seq), 10**5)
    assert w == {"easy": flint.fmpq(7, 8), "hard": flint.fmpq(7, 8)}
    reason = analyse(seq, ["grpo"], variance=False).estimators["grpo"].gradient_reason
    assert "at this point phi_x = easy: 1.92924, hard: 2.29876" in reason
