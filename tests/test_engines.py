"""Every engine on every case: they must agree, and their families must add up."""
import pytest
import sympy

import pgverify
from pgverify.algebra import Algebra
from pgverify.compare import compare
from pgverify.engines import ENGINES, FAMILIES, bellman, occupancy, trajectory

from .conftest import CASE_FILES


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_every_case_verifies(path):
    res = pgverify.check(path)
    assert res.verified, res.comparisons
    assert res.agree and not [c for c in res.comparisons if not c.ok]
    assert res.methods["bellman"] is not None and res.methods["occupancy"] is not None
    for name, m in res.methods.items():
        if m is None:
            assert name in res.not_run and res.not_run[name]


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_symbolic_and_point_modes_agree(path):
    case = pgverify.load_case(path)
    a = pgverify.check(case, mode="at-point")
    assert a.mode in ("exact-at-point", "numeric") and a.objective.expression is None
    if len(case.parameters) <= 6:
        s = pgverify.check(case, mode="symbolic")
        assert s.objective.expression is not None
        assert abs(s.objective.float - a.objective.float) <= 1e-12 * max(1, abs(a.objective.float))
        for p in case.parameter_names:
            assert abs(s.gradient[p].float - a.gradient[p].float) <= 1e-12 * max(1, abs(a.gradient[p].float))


@pytest.mark.parametrize("path", [p for p in CASE_FILES if "frozenlake" not in p.stem], ids=lambda p: p.stem)
def test_families_add_up_and_match_between_engines(path):
    case = pgverify.load_case(path)
    alg = Algebra(case, "symbolic")
    results = {"bellman": bellman(case, alg), "occupancy": occupancy(case, alg)}
    t = trajectory(case, alg)
    if t.exact:
        results["trajectory"] = t
    for res in results.values():
        for j in range(len(case.parameters)):
            total = sum((res.families[f][j] for f in FAMILIES), alg.zero)
            assert total == res.grad[j]
    comparisons, agree, proof = compare(alg, results, case.parameter_names, families=True)
    assert agree and proof == "symbolic"


def test_short_corridor_has_only_the_policy_family():
    case = pgverify.load_case(CASE_FILES[0].parent / "short_corridor.yaml")
    alg = Algebra(case, "symbolic")
    fam = bellman(case, alg).families
    assert fam["policy"][0] != alg.zero
    assert all(fam[f][0] == alg.zero for f in ("start", "dynamics", "reward", "discount"))


def test_a_wrong_engine_is_caught(monkeypatch):
    """The comparison can fail: an engine off by a tiny amount makes agree and verified false."""
    def off_by_a_little(case, alg, **kw):
        res = occupancy(case, alg, **kw)
        res.grad = [g + alg.of(sympy.Rational(1, 10**30)) for g in res.grad]
        return res

    monkeypatch.setitem(ENGINES, "occupancy", off_by_a_little)
    res = pgverify.check(CASE_FILES[0].parent / "finite_horizon_chain.yaml")
    assert not res.agree and not res.verified
    bad = [c for c in res.comparisons if not c.ok]
    assert [(c.engines, c.quantity) for c in bad] == [(("bellman", "occupancy"), "d/dq")]
    assert bad[0].difference == pytest.approx(1e-30)


def test_trajectory_refuses_with_a_count():
    case = pgverify.load_case(CASE_FILES[0].parent / "finite_horizon_chain.yaml")
    res = pgverify.check(case, trajectory_limit=10)
    # three branches a step (forward: 2 next states, stay: 1) for 3 steps: 3**3 = 27
    assert "about 27 trajectories (limit 10)" in res.not_run["trajectory"]
    assert res.verified  # bellman and occupancy still ran and agree
    assert pgverify.check(case, trajectory_limit=10, force=True).methods["trajectory"] is not None


def test_truncated_trajectory_sum_is_within_its_bound():
    res = pgverify.check(CASE_FILES[0].parent / "short_corridor.yaml")
    t = res.truncation["trajectory"]
    assert t["length"] >= 10 and t["bound"]["J"] < 12
    diff = abs(res.engines["trajectory"].algebra.at_point(res.engines["trajectory"].J)[1] + 12)
    assert 0 < diff <= t["bound"]["J"]
