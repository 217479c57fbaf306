"""Published or hand-derived reference values, each with its source, against pgverify."""
from fractions import Fraction
from pathlib import Path

import mpmath
import sympy
import yaml

import pgverify

CASES = Path(__file__).resolve().parents[2] / "cases"


def _same_function(expr, ref, symbols, points=3):
    """expr == ref as functions: at random rational points to 40 digits."""
    rng = __import__("random").Random(7)
    for _ in range(points):
        pt = {s: sympy.Rational(rng.randint(5, 95), 100) for s in symbols}
        assert abs(sympy.N((expr - ref).subs(pt), 40)) < 1e-35


# --- Short corridor: Sutton & Barto (2018), Example 13.1 ------------------------------------
# J(p) = 2(2 - p)/(p(p - 1)) for the probability p of "right"; the book (p. 323) gives the
# optimum p ~ 0.59 with value ~ -11.6; exactly p* = 2 - sqrt(2), J(p*) = -6 - 4 sqrt(2).
def test_short_corridor_closed_form():
    res = pgverify.check(CASES / "short_corridor.yaml")
    p = sympy.Symbol("p", real=True)
    ref = 2 * (2 - p) / (p * (p - 1))
    assert sympy.cancel(res.objective.sympy_expression - ref) == 0
    assert sympy.cancel(res.gradient["p"].sympy_expression - sympy.diff(ref, p)) == 0
    assert res.objective.value == "-12"  # 2 * 3/2 / (1/2 * -1/2)
    assert res.gradient["p"].value == "8"
    assert res.verified and res.proof == "symbolic"


def test_short_corridor_optimum():
    res = pgverify.check(CASES / "short_corridor.yaml", at={"p": "2 - sqrt(2)"})
    assert sympy.simplify(res.objective.sympy_value - (-6 - 4 * sympy.sqrt(2))) == 0
    assert sympy.simplify(res.gradient["p"].sympy_value) == 0
    assert res.gradient["p"].float == 0.0


# --- Finite-horizon chain (cases/finite_horizon_chain.yaml), derived by hand -------------------
# With horizon 3 the only reachable reward is the step (s2, forward, s3), which needs three
# successful forward steps, each with probability q (1 - q/4):  J = (q (1 - q/4))^3.
def test_finite_horizon_chain_by_hand():
    res = pgverify.check(CASES / "finite_horizon_chain.yaml")
    q = sympy.Symbol("q", real=True)
    ref = (q * (1 - q / 4)) ** 3
    assert sympy.cancel(res.objective.sympy_expression - ref) == 0
    assert sympy.cancel(res.gradient["q"].sympy_expression - sympy.diff(ref, q)) == 0
    assert res.objective.value == str(sympy.Rational(5, 9) ** 3)
    assert res.methods["trajectory"] is not None and not res.truncation  # exact with a horizon


# --- Two-state softmax (cases/two_state_softmax.yaml), solved by hand -------------------------
# At theta = phi = 0 the policy is uniform; r_pi(A) = 1/2 * 1 = 1/2 and
# r_pi(B) = 1/2 * 2 + 1/2 * (-1) = 1/2 are equal, so V = (1/2) / (1 - 9/10) = 5 in both states.
def test_two_state_softmax_by_hand():
    res = pgverify.check(CASES / "two_state_softmax.yaml")
    assert res.objective.value == "5"


def _two_state_J(theta, phi):
    """J of cases/two_state_softmax.yaml by a direct 2x2 solve in mpmath (Cramer's rule)."""
    pa = mpmath.e**theta / (mpmath.e**theta + 1)  # Pr(stay | A)
    pb = mpmath.e**phi / (mpmath.e**phi + 1)  # Pr(stay | B)
    g = mpmath.mpf(9) / 10
    rA = pa * 1
    rB = pb * 2 + (1 - pb) * (-1)
    PAA, PAB = pa * mpmath.mpf(9) / 10, pa / 10 + (1 - pa)
    PBA, PBB = (1 - pb) / 2, pb + (1 - pb) / 2
    a11, a12, a21, a22 = 1 - g * PAA, -g * PAB, -g * PBA, 1 - g * PBB
    det = a11 * a22 - a12 * a21
    VA = (rA * a22 - a12 * rB) / det
    VB = (a11 * rB - a21 * rA) / det
    return (VA + VB) / 2


def test_two_state_softmax_gradient_by_finite_differences():
    res = pgverify.check(CASES / "two_state_softmax.yaml")
    with mpmath.workdps(100):  # h = 1e-25 cancels 25 digits; 100 leaves 75
        h = mpmath.mpf(10) ** -25
        d_theta = (_two_state_J(h, 0) - _two_state_J(-h, 0)) / (2 * h)
        d_phi = (_two_state_J(0, h) - _two_state_J(0, -h)) / (2 * h)
        d_theta, d_phi = mpmath.nstr(d_theta, 55), mpmath.nstr(d_phi, 55)
    # central differences with h = 1e-25 are accurate to about h^2 = 1e-50
    assert abs(sympy.N(res.gradient["theta"].sympy_value, 50) - sympy.Float(d_theta, 50)) < 1e-40
    assert abs(sympy.N(res.gradient["phi"].sympy_value, 50) - sympy.Float(d_phi, 50)) < 1e-40


# --- Entropy bonus: J = sum_a pi(a) r(a) + alpha H(pi) (Williams & Peng 1991) ---------------
def test_entropy_bonus_closed_form():
    res = pgverify.check(CASES / "entropy_bonus.yaml")
    t1, t2 = sympy.symbols("t1 t2", real=True)
    z = sympy.exp(t1) + sympy.exp(t2) + 1
    pi = [sympy.exp(t1) / z, sympy.exp(t2) / z, 1 / z]
    alpha = sympy.Rational(1, 10)
    ref = sum(p * r for p, r in zip(pi, (1, 0, 2))) - alpha * sum(p * sympy.log(p) for p in pi)
    _same_function(res.objective.sympy_expression, ref, (t1, t2))
    for name, t in (("t1", t1), ("t2", t2)):
        _same_function(res.gradient[name].sympy_expression, sympy.diff(ref, t), (t1, t2))
    at = {t1: sympy.Rational(1, 2), t2: -1}
    assert abs(sympy.N(res.objective.sympy_value - ref.subs(at), 50)) < 1e-45


# --- Deterministic policy (cases/deterministic_policy.yaml), by hand -------------------------
# Step 0 from S0 with a = k costs k^2/2; with probability sigmoid(k) the episode goes on from
# S1 with a = c k: cost (c k)^2/2 and reward 3 with probability sigmoid(2 c k).  gamma = 9/10.
def test_deterministic_policy_closed_form():
    res = pgverify.check(CASES / "deterministic_policy.yaml")
    k, c = sympy.symbols("k c", real=True)
    sig = lambda x: 1 / (1 + sympy.exp(-x))  # noqa: E731
    ref = -k**2 / 2 + sympy.Rational(9, 10) * sig(k) * (-(c * k) ** 2 / 2 + 3 * sig(2 * c * k))
    _same_function(res.objective.sympy_expression, ref, (k, c))
    for name, s in (("k", k), ("c", c)):
        _same_function(res.gradient[name].sympy_expression, sympy.diff(ref, s), (k, c))
    assert res.methods["trajectory"] is not None  # acyclic: exact enumeration


# --- FrozenLake 4x4 (Gymnasium FrozenLake-v1, slippery), uniform policy -----------------------
# Probability of reaching the goal within 100 steps from s0 under the uniform random policy
# (theta = 0).  Reference computed independently by exact Fraction dynamic programming on
# Gymnasium 1.4.0's env.unwrapped.P (value 0.013939795959171435...; 400,000 simulated
# episodes of the real environment gave 0.013908 +- 0.000185).  Recomputed here from the YAML.
FROZENLAKE_J = Fraction(
    700012139250010050149443607275333445793063125491190300891,
    50216813883093446110686315385661331328818843555712276103168,
)


def test_frozenlake_reference_by_direct_dp():
    data = yaml.safe_load((CASES / "frozenlake_4x4.yaml").read_text())
    terminal = set(data["terminal"])
    trans = data["transitions"]
    V = {s: Fraction(0) for s in data["states"]}
    for _ in range(100):
        new = {}
        for s in data["states"]:
            if s in terminal:
                new[s] = Fraction(0)
                continue
            total = Fraction(0)
            for a, row in trans[s].items():
                row = {row: 1} if isinstance(row, str) else row
                for s2, p in row.items():
                    r = 1 if s2 == "s15" else 0
                    total += Fraction(1, 4) * Fraction(str(p)) * (r + V[s2])
            new[s] = total
        V = new
    assert V["s0"] == FROZENLAKE_J


def test_frozenlake_check():
    res = pgverify.check(CASES / "frozenlake_4x4.yaml")
    assert len(res.parameters) == 44
    assert res.mode == "exact-at-point"
    assert Fraction(res.objective.value) == FROZENLAKE_J
    assert res.verified and res.proof == "exact-at-point"
    assert "trajectory" in res.not_run and "3.84e+96" in res.not_run["trajectory"]
