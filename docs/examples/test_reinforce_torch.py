"""A REINFORCE in PyTorch, pinned to the exact policy gradient with pgverify.testing.

Run with ``python -m pytest docs/examples/test_reinforce_torch.py`` (skipped without torch:
``pip install torch``), or as a script to print what pgverify says about each variant:
``python docs/examples/test_reinforce_torch.py``.  See docs/testing.md.

The estimator is the usual loss-based one: build ``loss = -mean_e sum_t log pi(a_t|s_t) weight_t``,
call ``loss.backward()``, and return ``-grad`` as the estimate of grad J.  With the right weight,
gamma^t G_t (G_t the return from step t, discounted from t), it is REINFORCE with reward-to-go
(Williams 1992; Sutton & Barto 2018, section 13.3, whose update carries the gamma^t).  The bugs:

- ``whole_return``: G_0 for every step instead of gamma^t G_t: not a bug, also unbiased;
- ``drop_gamma``: G_t without the gamma^t in front, as many implementations do: biased when
  gamma < 1 (Nota & Thomas 2020, "Is the policy gradient a gradient?");
- ``sign``: the gradient of the loss returned as the gradient of J;
- ``wrong_action``: log pi of the other action (actions encoded the other way round).
"""
from fractions import Fraction
from functools import partial

import numpy as np
import pytest

from pgverify.testing import BiasDetected, assert_unbiased

torch = pytest.importorskip("torch")

# A corridor S0 - S1 - S2 - Goal: -1 per step, +10 for the step into Goal, discount 9/10, at most 6 steps.
# Tabular softmax (one logit per state and action); pi(right | S0) = 2/3 and pi(right | S1) = 3/4 at
# this point, so every exact number is a fraction.
CORRIDOR = {
    "name": "corridor-to-goal",
    "parameters": {"theta_S0_right": "log(2)", "theta_S1_right": "log(3)"},
    "states": ["S0", "S1", "S2", "Goal"], "terminal": ["Goal"], "actions": ["left", "right"],
    "start": "S0", "discount": "9/10", "horizon": 6,
    "policy": {"softmax": "tabular"},
    "transitions": {"S0": {"left": "S0", "right": "S1"},
                    "S1": {"left": "S0", "right": "S2"},
                    "S2": {"left": "S1", "right": "Goal"}},
    "rewards": {"default": -1, "S2": {"right": 10}},
}


def reinforce(ep, bug=None):
    """grad J estimated from a batch of episodes (a pgverify.testing.EpisodeBatch), by autograd."""
    # the policy: a table of logits, one per (state, action), filled from the parameters at the point
    where = {f"theta_{s}_{a}": (i, k) for i, s in enumerate(ep.state_names) for k, a in enumerate(ep.action_names[i])}
    table = torch.zeros(len(ep.state_names), 2, dtype=torch.float64)
    for name, value in ep.theta.items():
        table[where[name]] = value
    logits = table.requires_grad_()

    mask = torch.from_numpy(ep.mask)
    states = torch.from_numpy(ep.states).clamp(min=0)  # padding is -1: clamp, then mask
    actions = torch.from_numpy(ep.actions).clamp(min=0)
    if bug == "wrong_action":
        actions = 1 - actions
    logp = torch.log_softmax(logits[states], dim=-1).gather(-1, actions[..., None]).squeeze(-1)

    rewards = torch.from_numpy(ep.rewards)
    G = torch.zeros_like(rewards)  # G_t = r_t + gamma G_{t+1}: the return from t, discounted from t
    running = torch.zeros(len(rewards), dtype=torch.float64)
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + ep.gamma * running
        G[:, t] = running
    discount = ep.gamma ** torch.arange(rewards.shape[1], dtype=torch.float64)
    if bug == "whole_return":
        weight = G[:, :1].expand_as(G)  # G_0 at every step
    elif bug == "drop_gamma":
        weight = G  # missing the gamma^t
    else:
        weight = discount * G

    loss = -(logp * weight * mask).sum(1).mean()
    loss.backward()
    grad = logits.grad if bug == "sign" else -logits.grad
    return {name: grad[where[name]] for name in ep.parameter_names}


# The gradient is (parameters in this order; declared ones first, then the generated logits, see
# docs/case-format.md):
#   theta_S0_right, theta_S1_right, theta_S0_left, theta_S1_left, theta_S2_left, theta_S2_right
#   1161351/1600000, 1851579/1600000, -1161351/1600000, -1851579/1600000, -684207/320000, 684207/320000
# The estimator returns a mean, so pgverify calls it on 20 batches of 500 episodes and tests the batch means
# (Student t, 19 degrees of freedom; Holm over the 6 parameters at alpha = 0.01).


def test_reward_to_go_is_unbiased():
    report = assert_unbiased(reinforce, CORRIDOR, seed=0)  # |t| <= 1.65
    assert report.match.name == "reward_to_go" and report.exact_bias.tolist() == [0.0] * 6


def test_whole_return_is_unbiased_too():
    report = assert_unbiased(partial(reinforce, bug="whole_return"), CORRIDOR, seed=0)  # |t| <= 1.67
    assert report.match.name == "reinforce" and report.exact_bias.tolist() == [0.0] * 6


def test_dropping_gamma_is_caught():
    with pytest.raises(BiasDetected) as failure:  # t = +4.55, +18.34, -4.55, -18.34, -58.35, +58.35
        assert_unbiased(partial(reinforce, bug="drop_gamma"), CORRIDOR, seed=0)
    report = failure.value.report
    assert report.match.name == "no_discount_weighting"
    # exact: pgverify's own estimator of that name, on every trajectory, in fractions
    F = Fraction
    assert report.match.bias == [F(216409, 3200000), F(5359637, 19200000), F(-216409, 3200000),
                                 F(-5359637, 19200000), F(-3571993, 4320000), F(3571993, 4320000)]


def test_wrong_sign_is_caught():
    with pytest.raises(BiasDetected) as failure:  # t = -64.46, -190.34, +64.46, +190.34, +349.75, -349.75
        assert_unbiased(partial(reinforce, bug="sign"), CORRIDOR, seed=0)
    report = failure.value.report
    assert report.match.label == "minus reward_to_go"
    assert report.match.bias == [-2 * g for g in report.gradient_exact]  # -2 grad J, exactly


def test_score_of_the_wrong_action_is_caught():
    with pytest.raises(BiasDetected) as failure:  # t = -62.78, -104.83, +62.78, +104.83, +349.75, -349.75
        assert_unbiased(partial(reinforce, bug="wrong_action"), CORRIDOR, seed=0)
    report = failure.value.report
    # no estimator of pgverify's matches: the exact mean is the estimator run on each of the 51 trajectories,
    # weighted by p(tau), in float64 (summation rounding below 5e-14)
    assert report.match is None and report.trajectories == 51
    np.testing.assert_allclose(report.exact_bias, [-1.53533135416667, -3.47970328125, 1.53533135416667,
                                                   3.47970328125, 4.27629375, -4.27629375], rtol=1e-12)
    # in S2 the policy is uniform, so the other action's score is minus the right one: bias -2 grad J there
    np.testing.assert_allclose(report.exact_bias[4:], -2 * report.gradient[4:], rtol=1e-12)


if __name__ == "__main__":
    for bug in (None, "whole_return", "drop_gamma", "sign", "wrong_action"):
        try:
            report = assert_unbiased(partial(reinforce, bug=bug), CORRIDOR, seed=0)
            print(f"bug={bug}: passes; equals pgverify's {report.match.label}; "
                  f"t from {min(report.z):+.2f} to {max(report.z):+.2f}\n")
        except BiasDetected as failure:
            print(f"bug={bug}: {failure}\n")
