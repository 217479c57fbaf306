"""Property-based tests of the matrix engine pair (pgverify.engines.matrix) against the symbolic
engines on random small MDPs: in exact rationals every quantity is equal; in certified float64
every exact value lies inside the stated bound; along random directions the tangent agrees with
the adjoint's gradient exactly."""
import sympy
from hypothesis import HealthCheck, given, settings

import pgverify
from pgverify.chain import compile_chain
from pgverify.engines import matrix
from pgverify.engines.base import FAMILIES
from pgverify.pointroute import run_matrix

from .test_random_mdps import random_case


def _symbolic_at_point(res):
    """The symbolic engines' J, gradient and families at the point, as exact sympy rationals."""
    alg, ref = res.algebra, res.engines["bellman"]
    J = alg.at_point(ref.J)[0]
    grad = [alg.at_point(x)[0] for x in ref.grad]
    fam = {f: [alg.at_point(x)[0] for x in ref.families[f]] for f in FAMILIES}
    return J, grad, fam


def _rat(x):
    return sympy.Rational(int(x.p), int(x.q))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
def test_exact_pair_equals_symbolic_engines(data):
    case = pgverify.Case.from_dict(data)
    J, grad, fam = _symbolic_at_point(pgverify.check(case, mode="symbolic"))
    chain = compile_chain(case, "exact")
    solution = matrix.solve_values(chain) if chain.horizon is None else None
    for res in (matrix.tangent(chain, solution=solution), matrix.adjoint(chain, solution=solution)):
        assert _rat(res.J) == J, (data, res.engine)
        assert [_rat(x) for x in res.grad] == grad, (data, res.engine)
        for f in FAMILIES:
            assert [_rat(x) for x in res.families[f]] == fam[f], (data, res.engine, f)
    # along random directions the tangent gives exactly grad . v
    tan = matrix.tangent(chain, solution=solution, directions=matrix.random_directions(chain.n, seed=3))
    for v, dv in zip(tan.info["directions"], tan.info["directional"]):
        assert _rat(dv) == sum((g * c for g, c in zip(grad, v)), sympy.Integer(0)), data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
def test_certified_pair_encloses_the_exact_values(data):
    case = pgverify.Case.from_dict(data)
    J, grad, fam = _symbolic_at_point(pgverify.check(case, mode="symbolic"))
    chain = compile_chain(case, "float")
    results = run_matrix(chain)
    for res in results.values():
        pairs = [(res.J, J)]
        if res.grad is not None:
            pairs += list(zip(res.grad, grad))
            pairs += [(x, y) for f in FAMILIES for x, y in zip(res.families[f], fam[f])]
        for got, exact in pairs:
            err = float(abs(sympy.Float(float(got.v), 40) - exact))
            assert err <= float(got.e), (data, res.engine, float(got.v), float(got.e), exact)


def test_certified_check_reports_bounds_and_agrees():
    """check(mode='certified') on every case of cases/ (FrozenLake 4x4: exact J from the docs'
    exact route): verified, proof 'certified', and the exact J inside the bound."""
    import glob

    for path in sorted(glob.glob("cases/*.yaml")):
        res = pgverify.check(path, mode="certified")
        assert res.verified and res.proof == "certified", path
        exact = pgverify.check(path, mode="at-point").objective
        assert abs(res.objective.float - exact.float) <= res.objective.bound * (1 + 1e-9) + 1e-300, path
        for p, q in res.gradient.items():
            assert q.bound is not None and q.bound < 1e-9 * max(1.0, abs(q.float)), (path, p)
