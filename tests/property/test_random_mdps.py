"""Property-based tests: on random small MDPs with rational probabilities, every engine agrees
exactly (as rational functions of theta), and the gradient matches exact finite differences."""
from fractions import Fraction

import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgverify

RATIONALS = st.sampled_from(["1/5", "1/4", "1/3", "2/5", "1/2", "3/5", "2/3", "3/4"])


@st.composite
def random_case(draw):
    n = draw(st.integers(1, 3))
    states = [f"s{i}" for i in range(n)]
    targets = states + ["T"]
    policy, transitions, rewards = {}, {}, {"default": draw(st.integers(-2, 2))}
    for s in states:
        kind = draw(st.sampled_from(["p", "1 - p", "const", "p**2"]))
        pa = draw(RATIONALS) if kind == "const" else kind
        policy[s] = {"a": pa, "b": f"1 - ({pa})"}
        transitions[s] = {}
        rewards[s] = {}
        for a in ("a", "b"):
            nxt = draw(st.lists(st.sampled_from(targets), min_size=1, max_size=3, unique=True))
            if len(nxt) == 1:
                row = nxt[0]
            else:
                weights = [draw(st.integers(1, 4)) for _ in nxt]
                total = sum(weights)
                row = {t: str(Fraction(w, total)) for t, w in zip(nxt, weights)}
                if draw(st.booleans()):  # the dynamics depend on q
                    x, y = nxt[0], nxt[1]
                    m = Fraction(weights[0] + weights[1], total)
                    row[x], row[y] = f"q*{m}", f"(1 - q)*{m}"
            transitions[s][a] = row
            rewards[s][a] = draw(st.sampled_from(["-1", "2", "w", "3*p - 1", "0", "1 - w**2"]))
    case = {
        "name": "random", "states": states + ["T"], "terminal": ["T"], "actions": ["a", "b"],
        "parameters": {"p": draw(RATIONALS), "q": draw(RATIONALS), "w": draw(RATIONALS)},
        "policy": policy, "transitions": transitions, "rewards": rewards,
    }
    if n > 1 and draw(st.booleans()):
        case["start"] = {"s0": "w", "s1": "1 - w"}
    else:
        case["start"] = "s0"
    horizon = draw(st.sampled_from([None, 1, 2, 3]))
    if horizon is None:
        case["discount"] = draw(st.sampled_from(["1/2", "9/10", "(1 + w)/3"]))
    else:
        case["horizon"] = horizon
        case["discount"] = draw(st.sampled_from(["1", "1/2", "(1 + w)/3"]))
    return case


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
def test_engines_agree_exactly(data):
    case = pgverify.Case.from_dict(data)
    res = pgverify.check(case, mode="symbolic")
    assert res.agree and res.verified, (data, res.comparisons)
    assert res.proof == "symbolic"
    if case.horizon is not None:
        assert res.methods["trajectory"] is not None and not res.truncation  # exact with a horizon
        assert all(c.proof == "symbolic" for c in res.comparisons)


def _objective_at(case, point):
    return pgverify.check(case, at=point, mode="at-point", engines=("bellman",)).objective.sympy_value


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
def test_gradient_matches_exact_finite_differences(data):
    """Central differences of J computed exactly in rationals at theta +- h, h = 1e-30: the
    error is O(h^2) (J is a rational function of the parameters), so 1e-40 is a strict test."""
    case = pgverify.Case.from_dict(data)
    res = pgverify.check(case, mode="at-point", engines=("bellman",))
    h = sympy.Rational(1, 10**30)
    for p in case.parameters:
        base = {q.name: case.point[q] for q in case.parameters}
        up = dict(base, **{p.name: case.point[p] + h})
        down = dict(base, **{p.name: case.point[p] - h})
        fd = (_objective_at(case, up) - _objective_at(case, down)) / (2 * h)
        assert abs(fd - res.gradient[p.name].sympy_value) < sympy.Rational(1, 10**40), (data, p)
