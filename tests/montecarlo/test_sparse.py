"""The sparse tables (pgverify.montecarlo.sparse) against the dense ones (tabular.py): the same
episodes for the same seed, and the same estimates on the same episodes, on every case in cases/."""
from pathlib import Path

import numpy as np
import pytest

import pgverify
from pgverify.montecarlo import sample, tabulate
from pgverify.montecarlo.estimators import ESTIMATORS, estimate
from pgverify.montecarlo.moments import state_values
from pgverify.montecarlo.sparse import sample_sparse, sparse_state_values, sparse_tabulate

CASES = Path(__file__).resolve().parents[2] / "cases"
FIELDS = ("starts", "lengths", "flat_states", "flat_actions", "flat_next_states", "flat_rewards")


@pytest.mark.parametrize("path", sorted(CASES.glob("*.yaml")), ids=lambda p: p.stem)
def test_sparse_path_matches_the_dense_one(path):
    case = pgverify.load_case(path)
    dense, sparse = tabulate(case), sparse_tabulate(case)
    # the sparse sampler draws the dense sampler's episodes: each row's entries in the dense order,
    # the same cumulative sums (zero entries add nothing), the same uniforms
    ep = sample(dense, 3000, seed=11)
    ep2 = sample_sparse(sparse, 3000, seed=11)
    for name in FIELDS:
        assert np.array_equal(getattr(ep, name), getattr(ep2, name)), name
    assert (ep.cut, ep.max_steps, ep.tail_bound) == (ep2.cut, ep2.max_steps, ep2.tail_bound)
    V = state_values(dense)
    np.testing.assert_allclose(sparse_state_values(sparse), np.asarray(V, dtype=float), rtol=1e-12, atol=1e-12)
    for name in ESTIMATORS:
        a = estimate(name, dense, ep, J=0.25, V=V)
        b = estimate(name, sparse, ep, J=0.25, V=V)
        # the same terms, summed in the same order but for the dense route's products with 0 and the
        # baselines' subtraction: equal to 1e-12 of each parameter's largest estimate (an entry can
        # cancel to near 0, where a relative comparison entry by entry means nothing)
        scale = np.maximum(np.abs(a).max(axis=0, initial=0.0), 1e-300)
        assert np.all(np.abs(a - b) <= 1e-12 * scale), name


def test_sparse_tables_hold_only_the_non_zeros():
    """FrozenLake 4x4: 16 states x 4 actions x 16 next states = 1024 dense entries per parameter
    (44 parameters); the sparse table keeps the (a, s') of positive probability and the softmax
    scores of each pair (4 parameters of its state)."""
    case = pgverify.load_case(CASES / "frozenlake_4x4.yaml")
    sp = sparse_tabulate(case)
    dense = tabulate(case)
    assert len(sp.tr_key) == int(np.count_nonzero(dense.pi[:, :, None] * dense.P))
    assert len(sp.x.par) == int(np.count_nonzero(dense.dlog_pi))
    assert not sp.extras_needed() and not sp.boundary


def test_check_runs_monte_carlo_on_a_case_the_dense_tables_could_not_hold():
    """A random tabular case of 300 states: the dense (S, A, S, n) table would hold about 1e8 entries
    (the old guard skipped sampling); the sparse path samples it, the moment recursions run over the
    sparse tables, and the unbiased estimators are tested against the exact gradient with the certified
    exact variance (the recursion's mean must agree with the gradient within its bound)."""
    from pgverify.testing.random_cases import random_tabular_case

    case = pgverify.Case.from_dict(random_tabular_case(300))
    res = pgverify.check(case, monte_carlo={"episodes": 2000, "seed": 1, "estimators": ("reward_to_go",)})
    mc = res.monte_carlo
    e = mc.estimators["reward_to_go"]
    assert e["exact_mean_from"] == ("theory (unbiased: the exact gradient); the float64 recursion's mean agrees "
                                    "within its certified bound")
    assert e["stderr_from"] == "exact variance"
    assert e["variance_from"].startswith("float64 linear algebra over the sparse tables (certified: ")
    assert "over the sparse tables" in mc.moments and "over their budget" in mc.moments
    assert mc.consistent and res.verified and not mc.disagreements


def test_check_falls_back_to_the_sample_beyond_the_sparse_budget(monkeypatch):
    """Over the sparse recursions' budget too: the exact mean is the gradient and the standard error the
    sample's, and ``moments`` gives both budgets."""
    from pgverify.montecarlo import sparsemoments
    from pgverify.testing.random_cases import random_tabular_case

    monkeypatch.setattr(sparsemoments, "SPARSE_WORK_LIMIT", 1e3)
    case = pgverify.Case.from_dict(random_tabular_case(300))
    res = pgverify.check(case, monte_carlo={"episodes": 2000, "seed": 1, "estimators": ("reward_to_go",)})
    mc = res.monte_carlo
    e = mc.estimators["reward_to_go"]
    assert e["exact_mean_from"] == "theory (unbiased: the exact gradient)" and e["stderr_from"] == "sample"
    assert "over the sparse tables: work" in mc.moments and "(limit 1e+03)" in mc.moments
    assert mc.consistent and res.verified
