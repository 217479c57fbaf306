"""The ragged layout of Episodes (flat per-transition arrays, episode-major): the flat arrays against
the padded views, the estimators against a plain per-episode loop (exact and float, with episodes
of 0 steps), batches against their parts, and no padded array on the Monte Carlo path."""
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgverify
from pgverify.montecarlo import Episodes, sample, tabulate
from pgverify.montecarlo import check as mc_check
from pgverify.montecarlo.estimators import ESTIMATORS, estimate, extra_terms_needed
from pgverify.montecarlo.moments import enumerate_episodes, state_values

from ..conftest import CASE_FILES, CASES
from ..property.test_random_mdps import random_case

#: a start state that is terminal half the time: episodes of 0 steps
HALF_TERMINAL_START = {
    "name": "half-terminal-start", "parameters": {"p": "1/3", "w": "2/5"}, "states": ["A", "B", "T"],
    "terminal": ["T"], "actions": ["x", "y"], "start": {"A": "w", "T": "1 - w"}, "discount": "1/2", "horizon": 3,
    "policy": {"A": {"x": "p", "y": "1 - p"}, "B": {"x": "p", "y": "1 - p"}},
    "transitions": {"A": {"x": "B", "y": {"A": "1/2", "T": "1/2"}}, "B": {"x": "T", "y": "A"}},
    "rewards": {"default": 0, "A": {"x": 1}, "B": {"x": 4, "y": -1}},
}


def _check_layout(ep, terminal=None):
    """The flat arrays, offsets, starts and the padded views say the same thing."""
    E, L = len(ep.lengths), ep.longest
    assert ep.offsets[0] == 0 and np.array_equal(np.diff(ep.offsets), ep.lengths)
    assert len(ep.flat_states) == ep.offsets[-1]
    assert ep.states.shape == ep.actions.shape == ep.next_states.shape == ep.rewards.shape == (E, L)
    for e in range(E):
        o, n = ep.offsets[e], ep.lengths[e]
        assert np.array_equal(ep.states[e, :n], ep.flat_states[o:o + n])
        assert np.array_equal(ep.actions[e, :n], ep.flat_actions[o:o + n])
        assert np.array_equal(ep.next_states[e, :n], ep.flat_next_states[o:o + n])
        assert np.array_equal(ep.rewards[e, :n], ep.flat_rewards[o:o + n])
        assert (ep.states[e, n:] == -1).all() and (ep.actions[e, n:] == -1).all()
        assert (ep.next_states[e, n:] == -1).all() and (ep.rewards[e, n:] == 0).all()
        assert np.array_equal(ep.flat_times[o:o + n], np.arange(n)) and (ep.flat_episodes[o:o + n] == e).all()
        # s_{t+1} follows s_t, and s_0 is the start
        if n:
            assert np.array_equal(ep.flat_states[o + 1:o + n], ep.flat_next_states[o:o + n - 1])
            assert ep.flat_states[o] == ep.starts[e]
        elif terminal is not None:
            assert terminal[ep.starts[e]]


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_flat_arrays_and_padded_views_agree(path):
    mdp = tabulate(pgverify.load_case(path))
    ep = sample(mdp, 300, seed=4)
    _check_layout(ep, mdp.terminal)
    again = Episodes.from_padded(ep.states, ep.actions, ep.next_states, ep.rewards, ep.lengths, ep.cut, ep.seed,
                                 ep.max_steps, ep.tail_bound, starts=ep.starts)
    for name in ("starts", "lengths", "flat_states", "flat_actions", "flat_next_states", "flat_rewards"):
        assert np.array_equal(getattr(again, name), getattr(ep, name)), name


def test_episodes_of_no_steps_keep_their_start():
    case = pgverify.Case.from_dict(HALF_TERMINAL_START)
    mdp = tabulate(case)
    ep = sample(mdp, 400, seed=1)
    T = mdp.states.index("T")
    assert ((ep.lengths == 0) == (ep.starts == T)).all() and 0 < (ep.lengths == 0).sum() < 400
    _check_layout(ep, mdp.terminal)
    enum, _ = enumerate_episodes(tabulate(case, exact=True))
    assert (enum.lengths == 0).sum() == 1 and enum.starts[enum.lengths == 0][0] == T
    _check_layout(enum, mdp.terminal)
    assert all(isinstance(x, Fraction) for x in enum.rewards.ravel())  # padding in the exact type too


def test_take_and_concatenate():
    mdp = tabulate(pgverify.load_case(CASES / "short_corridor.yaml"))
    a, b = sample(mdp, 50, seed=1), sample(mdp, 30, seed=2)
    both = Episodes.concatenate([a, b], seed=9)
    assert both.seed == 9 and both.cut == a.cut + b.cut and len(both.lengths) == 80
    _check_layout(both)
    assert np.array_equal(both.states[50:, :b.longest], b.states)
    idx = [79, 3, 3, 50]
    sub = both.take(idx)
    _check_layout(sub)
    assert np.array_equal(sub.lengths, both.lengths[idx])
    assert np.array_equal(sub.rewards, both.rewards[idx][:, :sub.longest])
    with pytest.raises(ValueError, match="from_padded"):
        Episodes(a.starts, a.lengths, a.states, a.actions, a.next_states, a.rewards)  # padded arrays, positionally


def reference(name, mdp, ep, J=None, V=None, group=8):
    """The estimators of pgverify.montecarlo.estimators, one episode and one step at a time in Python."""
    zero = mdp.pi.flat[0] * 0
    n = mdp.dlog_pi.shape[2]
    gamma = mdp.gamma
    extras = extra_terms_needed(mdp)
    out, Gs, score_sums = [], [], []
    for e in range(len(ep.lengths)):
        o, L = int(ep.offsets[e]), int(ep.lengths[e])
        steps = [(int(ep.flat_states[o + t]), int(ep.flat_actions[o + t]), int(ep.flat_next_states[o + t]),
                  ep.flat_rewards[o + t]) for t in range(L)]
        G_t = [zero] * (L + 1)
        for t in reversed(range(L)):
            G_t[t] = gamma**t * steps[t][3] + G_t[t + 1]
        G = G_t[0]

        def over_steps(table, weight):
            acc = [zero] * n
            for t, (s, a, s2, r) in enumerate(steps):
                row, w = table(s, a, s2), weight(t, s, r)
                acc = [x + row[j] * w for j, x in enumerate(acc)]
            return acc

        def score(s, a, s2):
            return mdp.dlog_pi[s, a]

        if name == "reinforce":
            g = [G * x for x in over_steps(score, lambda t, s, r: 1)]
        elif name == "reward_to_go":
            g = over_steps(score, lambda t, s, r: G_t[t])
        elif name == "constant_baseline":
            g = over_steps(score, lambda t, s, r: G_t[t] - gamma**t * J)
        elif name == "value_baseline":
            g = over_steps(score, lambda t, s, r: G_t[t] - gamma**t * (V[min(t, len(V) - 1)][s] if V.ndim == 2
                                                                       else V[s]))
        elif name == "no_discount_weighting":
            g = over_steps(score, lambda t, s, r: G_t[t] / gamma**t)
        else:  # the group estimators: the score sum now, the baseline below
            g = over_steps(score, lambda t, s, r: 1)
        if extras:
            start = [G * x for x in mdp.dlog_rho0[ep.starts[e]]]
            dyn = over_steps(lambda s, a, s2: mdp.dlog_P[s, a, s2], lambda t, s, r: G_t[t])
            path = over_steps(lambda s, a, s2: mdp.dr[s, a, s2], lambda t, s, r: gamma**t)
            disc = over_steps(lambda s, a, s2: mdp.dgamma, lambda t, s, r: r * t * gamma ** (t - 1) if t else zero)
            extra = [w + x + y + z for w, x, y, z in zip(start, dyn, path, disc)]
        else:
            extra = [zero] * n
        out.append((g, extra))
        Gs.append(G)
        score_sums.append(g)
    rows = []
    for e, (g, extra) in enumerate(out):
        if name.startswith("group"):
            k = e - e % group
            total = sum(Gs[k:k + group], zero)
            base = total / group if name == "group_mean" else (total - Gs[e]) / (group - 1)
            g = [x * (Gs[e] - base) for x in score_sums[e]]
        rows.append([x + y for x, y in zip(g, extra)])
    return np.array(rows, dtype=object).reshape(len(rows), n)


def _with_terminal_start(data, terminal_start):
    if terminal_start:
        first = data["start"] if isinstance(data["start"], str) else "s0"
        data = dict(data, start={first: "w", "T": "1 - w"})
    return data


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case(), st.booleans())
def test_estimators_equal_a_per_episode_loop_exactly_on_enumerated_episodes(data, terminal_start):
    """Every trajectory of a random MDP (horizon, so finitely many; some of 0 steps), in Fractions."""
    data = _with_terminal_start(dict(data, horizon=data.get("horizon") or 2), terminal_start)
    data.setdefault("discount", "1/2")
    mdp = tabulate(pgverify.Case.from_dict(data), exact=True)
    got = enumerate_episodes(mdp)
    if got is None:
        return
    ep, w = got
    V, J = state_values(mdp), Fraction(1, 3)
    group = 2 if len(w) % 2 == 0 else 1
    for name in ESTIMATORS:
        if name == "group_mean_loo" and group == 1:
            continue
        mine = estimate(name, mdp, ep, J=J, V=V, group=group)
        assert mine.shape == (len(w), len(mdp.parameters))
        assert np.array_equal(mine, reference(name, mdp, ep, J=J, V=V, group=group)), name


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case(), st.booleans(), st.integers(0, 2**16))
def test_estimators_equal_a_per_episode_loop_on_sampled_episodes(data, terminal_start, seed):
    """Sampled episodes of a random MDP, some cut (max_steps), some of 0 steps, in floats."""
    case = pgverify.Case.from_dict(_with_terminal_start(data, terminal_start))
    mdp = tabulate(case)
    ep = sample(mdp, 96, seed=seed, max_steps=None if mdp.horizon else 7)
    V = state_values(mdp)
    for name in ESTIMATORS:
        mine = estimate(name, mdp, ep, J=0.3, V=V, group=8)
        ref = reference(name, mdp, ep, J=0.3, V=V, group=8).astype(float)
        np.testing.assert_allclose(mine, ref, rtol=1e-12, atol=1e-12, err_msg=name)


def test_estimators_on_an_irrational_point_in_60_digits():
    """mpmath numbers (p = 2 - sqrt(2)) through the suffix and per-episode sums, episodes of 0 steps included."""
    case = pgverify.Case.from_dict(HALF_TERMINAL_START).at({"p": "2 - sqrt(2)"})
    with mpmath.workdps(60):
        mdp = tabulate(case, exact=True)
        ep, w = enumerate_episodes(mdp)
        V = state_values(mdp)
        assert any(isinstance(x, mpmath.mpf) for x in mdp.pi.ravel())
        for name in ESTIMATORS:
            mine = estimate(name, mdp, ep, J=mpmath.mpf(1) / 3, V=V, group=len(w))
            ref = reference(name, mdp, ep, J=mpmath.mpf(1) / 3, V=V, group=len(w))
            assert all(abs(x - y) <= mpmath.mpf(10) ** -50 for x, y in zip(mine.ravel(), ref.ravel())), name


def test_batches_are_their_parts_one_after_another(monkeypatch):
    """_sample_batches concatenates batches (seeds spawned from the seed); every estimator's per-episode
    estimates on the concatenation are those of the batches, bit for bit (groups stay within batches)."""
    monkeypatch.setattr(mc_check, "BATCH", 800)
    case = pgverify.load_case(CASES / "entropy_bonus.yaml")  # a case with the extra terms
    mdp = tabulate(case)
    assert extra_terms_needed(mdp)
    ep = mc_check._sample_batches(mdp, 2000, 7, None, None)
    seeds = np.random.SeedSequence(7).spawn(3)
    parts = [sample(mdp, n, seed=int(ss.generate_state(1)[0])) for n, ss in zip((800, 800, 400), seeds)]
    assert ep.seed == 7 and ep.cut == sum(p.cut for p in parts) and len(ep.lengths) == 2000
    for name in ("starts", "lengths", "flat_states", "flat_actions", "flat_next_states", "flat_rewards"):
        assert np.array_equal(getattr(ep, name), np.concatenate([getattr(p, name) for p in parts])), name
    V = state_values(mdp)
    for name in ESTIMATORS:
        whole = estimate(name, mdp, ep, J=0.5, V=V, group=8)
        assert np.array_equal(whole, np.concatenate([estimate(name, mdp, p, J=0.5, V=V, group=8) for p in parts]))


def test_the_monte_carlo_path_builds_no_padded_array(monkeypatch):
    """Sampling, batching, the estimators and the exact moments work on the flat arrays only."""
    def refuse(self, flat, fill):
        raise AssertionError("a padded (E, L) array was built")

    monkeypatch.setattr(mc_check, "BATCH", 1000)
    monkeypatch.setattr(Episodes, "_padded", refuse)
    for path in (CASES / "frozenlake_4x4.yaml", CASES / "entropy_bonus.yaml"):
        case = pgverify.load_case(path)
        res = pgverify.check(case, monte_carlo={"episodes": 2400, "seed": 3})
        assert res.monte_carlo.consistent


@pytest.mark.parametrize("stem", ["short_corridor", "entropy_bonus", "frozenlake_4x4"])
def test_score_sums_in_slices_are_the_sums_in_one_go(monkeypatch, stem):
    """Tiny slices (one episode each, or several short ones, or one longer than a slice) change nothing."""
    from pgverify.montecarlo import estimators

    mdp = tabulate(pgverify.load_case(CASES / f"{stem}.yaml"))
    ep = sample(mdp, 400, seed=5)
    V = state_values(mdp)
    whole = {name: estimate(name, mdp, ep, J=0.5, V=V) for name in ESTIMATORS}
    monkeypatch.setattr(estimators, "SLICE", 5)
    for name in ESTIMATORS:
        assert np.array_equal(estimate(name, mdp, ep, J=0.5, V=V), whole[name]), name
