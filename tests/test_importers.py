"""Importers: Gymnasium toy-text envs and transition arrays -> validated cases.

Expected values come from the envs' own source (gymnasium/envs/toy_text/*.py, Gymnasium
1.4.0): FrozenLake's slippery moves (1/3 each, into a wall = stay), CliffWalking's cliff
(-100 and back to the start s36), Taxi's 500 states and its drop-off; and from
``cases/frozenlake_4x4.yaml``, generated independently by ``benchmarks/make_frozenlake_case.py``.
"""
from __future__ import annotations

import sys
import warnings
from fractions import Fraction as F

import numpy as np
import pytest
import sympy
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import pgverify
from pgverify.importers import (
    DEFAULT_LIMIT,
    ImporterError,
    MergedRewardWarning,
    MissingExtraError,
    RationalisationWarning,
    arrays_to_dict,
    from_arrays,
    from_gymnasium,
    gymnasium_to_dict,
    render_case,
    write_case,
)
from pgverify.importers.cli import import_group

TABLES = ("states", "terminal", "actions", "rho0", "P", "r", "gamma", "horizon", "parameters", "point", "pi")


def same_tables(a, b):
    return {f: getattr(a, f) == getattr(b, f) for f in TABLES}


def bellman(case):
    """J and the gradient at the point, by the reference engine only (fast)."""
    res = pgverify.check(case, mode="at-point", engines=("bellman",), monte_carlo=None)
    return res.objective.value, {k: q.value for k, q in res.gradient.items()}


# ---------------------------------------------------------------------------------
# Gymnasium
# ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gym():
    return pytest.importorskip("gymnasium")


def test_frozenlake_4x4_equals_the_existing_case(gym):
    old = pgverify.load_case("cases/frozenlake_4x4.yaml")
    new = from_gymnasium("FrozenLake-v1", map="4x4", slippery=True)
    assert all(same_tables(old, new).values()), same_tables(old, new)


def test_frozenlake_slippery_duplicates_are_merged(gym):
    # frozen_lake.py: from s0 (top-left corner), 'left' slides up, left or down; up and left hit walls
    raw = gym.make("FrozenLake-v1").unwrapped.P[0][0]
    assert [n for _, n, _, _ in raw] == [0, 0, 4]
    data = gymnasium_to_dict("FrozenLake-v1")
    assert data["transitions"]["s0"]["left"] == {"s0": "2/3", "s4": "1/3"}
    assert data["transitions"]["s0"]["down"] == {"s0": "1/3", "s1": "1/3", "s4": "1/3"}


def test_frozenlake_8x8_and_not_slippery_validate(gym):
    big = from_gymnasium("FrozenLake-v1", map="8x8")
    assert len(big.states) == 64 and len(big.terminal) == 11  # MAPS["8x8"]: 10 holes and the goal
    assert big.horizon == 100  # FrozenLake-v1's TimeLimit, whatever the map
    assert from_gymnasium("FrozenLake8x8-v1").horizon == 200
    assert len(big.parameters) == 4 * (64 - 11)
    flat = from_gymnasium("FrozenLake-v1", slippery=False)
    assert flat.name == "frozenlake-v1-not-slippery"
    assert all(list(row.values()) == [1] for s in flat.nonterminal for row in flat.P[s].values())
    assert flat.P["s14"]["right"] == {"s15": 1} and flat.r["s14"]["right"] == {"s15": 1}


def test_frozenlake_custom_map(gym):
    # A 1x3 map H S G, not slippery: from S, left falls in the hole, right reaches the goal, up and
    # down stay.  Under the uniform policy (theta = 0) J = P(goal before hole) = 1/2 by symmetry.
    case = from_gymnasium("FrozenLake-v1", desc=["HSG"], slippery=False, horizon=None)
    assert case.states == ("s0", "s1", "s2")
    assert case.terminal == {"s0", "s2"} and case.rho0 == {"s1": 1} and case.horizon is None
    assert case.name == "frozenlake-v1-custom-map-not-slippery"
    J, grad = bellman(case)
    assert J == "1/2"
    # d/dtheta_right of e^r / (e^l + e^r) at 0 = 1/4; stay actions: 0 (they only repeat the choice)
    assert grad["theta_s1_right"] == "1/4" and grad["theta_s1_left"] == "-1/4" and grad["theta_s1_up"] == "0"


def test_cliffwalking(gym):
    data = gymnasium_to_dict("CliffWalking-v1")
    assert "horizon" not in data and data["terminal"] == ["s47"] and data["start"] == "s36"
    assert data["actions"] == ["up", "right", "down", "left"]
    # cliffwalking.py: stepping into the cliff (row 3, columns 1..10) costs -100 and goes back to s36
    assert data["rewards"]["default"] == -1
    assert data["rewards"]["s36"] == {"right": -100} and data["transitions"]["s36"]["right"] == "s36"
    # (validated with a horizon: without one, Case.from_dict's properness check takes ~4 s on 48
    # states and 188 parameters, see the report; the table is the same)
    case = from_gymnasium("CliffWalking-v1", horizon=60)
    assert len(case.states) == 48 and case.terminal == {"s47"} and case.horizon == 60


def test_cliffwalking_slippery_rewards_merged_to_their_mean(gym):
    # From s36 (row 3, col 0), 'up' slides left (wall: stays, -1), up (s24) or right (cliff: -100, back
    # to s36): two entries lead to s36 with rewards -1 and -100, each with probability 1/3.
    with pytest.warns(MergedRewardWarning) as record:
        data = gymnasium_to_dict("CliffWalking-v1", slippery=True, horizon=60)
    places = record[0].message.places
    assert (36, 0, 36, [(F(1, 3), F(-1)), (F(1, 3), F(-100))], F(-101, 2)) in places
    assert data["transitions"]["s36"]["up"] == {"s24": "1/3", "s36": "2/3"}
    assert data["rewards"]["s36"]["up"] == {"s36": "-101/2"}
    with pytest.raises(ImporterError) as exc:
        gymnasium_to_dict("CliffWalking-v1", slippery=True, reward_conflict="error")
    assert "env.unwrapped.P[36][0]: the entries leading to state 36 have different rewards (given: " \
           "'-1 w.p. 1/3, -100 w.p. 1/3')" in str(exc.value)


def test_taxi(gym):
    case = from_gymnasium("Taxi-v4")
    assert len(case.states) == 500 and case.horizon == 200
    # taxi.py: a drop-off at the destination ends the episode; the passenger is then at the
    # destination (pass_idx == dest_idx), with the taxi on it: 4 states, one per destination.
    assert sorted(case.terminal) == ["s0", "s410", "s475", "s85"]
    assert case.actions["s16"] == ("south", "north", "east", "west", "pickup", "dropoff")
    assert case.r["s16"]["dropoff"] == {"s0": 20}
    assert len(case.rho0) == 300 and set(case.rho0.values()) == {sympy.Rational(1, 300)}
    pruned = from_gymnasium("Taxi-v4", prune_unreachable=True)
    assert len(pruned.states) == 404  # 300 starts + 100 with the passenger aboard + 4 terminal


def test_env_object_and_errors(gym):
    env = gym.make("FrozenLake-v1", is_slippery=False)
    case = from_gymnasium(env, horizon=7, gamma="9/10", name="fl")
    assert case.horizon == 7 and case.gamma == sympy.Rational(9, 10) and case.name == "fl"
    with pytest.raises(ImporterError, match="apply only when an env id is given"):
        from_gymnasium(env, map="8x8")
    with pytest.raises(ImporterError) as exc:
        from_gymnasium("NoSuchEnv-v0")
    assert str(exc.value).startswith("cannot import Gymnasium NoSuchEnv-v0: 1 problem\n  env: gymnasium.make failed")
    with pytest.raises(ImporterError, match="no transition table"):
        from_gymnasium("CartPole-v1")


# Envs written by hand (no gymnasium needed): anything with .P, spaces with .n and a start distribution.
class _Space:
    def __init__(self, n):
        self.n = n


class FakeEnv:
    def __init__(self, P, isd, n_actions=2):
        self.P = P
        self.initial_state_distrib = isd
        self.observation_space = _Space(len(P))
        self.action_space = _Space(n_actions)
        self.unwrapped = self


def test_fake_env_terminal_states_and_names():
    # s0 -a0-> s1 (terminated), s0 -a1-> s0 or s2 (terminated); s1 and s2 list self-loops, as FrozenLake does
    P = {0: {0: [(1.0, 1, 1.0, True)], 1: [(0.5, 0, 0, False), (0.5, 2, -1, True)]},
         1: {0: [(1.0, 1, 0, True)], 1: [(1.0, 1, 0, True)]},
         2: {0: [(1.0, 2, 0, True)], 1: [(1.0, 2, 0, True)]}}
    case = from_gymnasium(FakeEnv(P, [1.0, 0.0, 0.0]), horizon=None)
    assert case.terminal == {"s1", "s2"} and case.actions["s0"] == ("a0", "a1") and case.name == "fakeenv"
    assert case.r["s0"] == {"a0": {"s1": 1}, "a1": {"s2": -1}}
    # theta = 0, by hand: J = 1/2 * 1 + 1/2 * (1/2 * J + 1/2 * (-1)), so J = 1/3
    assert bellman(case)[0] == "1/3"


def test_fake_env_termination_that_depends_on_the_step_is_refused():
    # s1 is entered with terminated=True from s0 and with terminated=False from s2 (reachable)
    P = {0: {0: [(1.0, 1, 0, True)], 1: [(1.0, 2, 0, False)]},
         1: {0: [(1.0, 1, 0, True)], 1: [(1.0, 1, 0, True)]},
         2: {0: [(1.0, 1, 0, False)], 1: [(1.0, 0, 0, False)]}}
    with pytest.raises(ImporterError) as exc:
        gymnasium_to_dict(FakeEnv(P, [1, 0, 0]))
    assert str(exc.value) == (
        "cannot import Gymnasium FakeEnv: 1 problem\n"
        "  env.unwrapped.P[0][0][0]: state 1 is entered here with terminated=True and with terminated=False by "
        "env.unwrapped.P[2][0][0]; in a case file an episode ends on entering a terminal state, whichever step "
        "enters it. This env's termination depends on the step, not the state, and cannot be imported exactly; "
        "build the case by hand with a copy of the state that is terminal")


def test_fake_env_bad_table():
    P = {0: {0: [(0.5, 0, 0, False), (0.4, 1, 0, True)], 1: [(1.0, 5, 0, False)]},
         1: {0: [(-1.0, 1, 0, True)], 1: [(1.0, 1, float("nan"), True)]}}
    with pytest.raises(ImporterError) as exc:
        gymnasium_to_dict(FakeEnv(P, [1, 0]))
    assert str(exc.value) == (
        "cannot import Gymnasium FakeEnv: 4 problems\n"
        "  env.unwrapped.P[0][1][0]: the next state must be an integer in 0..1 (given: '5')\n"
        "  env.unwrapped.P[0][0]: the probabilities add up to 0.9, not 1 (given: '{0: 0.5, 1: 0.4}'). "
        "Normalise the row\n"
        "  env.unwrapped.P[1][0][0]: a probability must lie in [0, 1] (given: '-1.0'). Fix the entry\n"
        "  env.unwrapped.P[1][1][0]: the reward is not a finite real number (given: 'nan'). "
        "Give finite numbers (int, float, fractions.Fraction)")


# ---------------------------------------------------------------------------------
# Rationalisation
# ---------------------------------------------------------------------------------
def test_rationalisation_warns_only_when_a_value_moves():
    # 0.1 + 0.2 = 0.30000000000000004; its nearest fraction with denominator <= 10**6 is 3/10,
    # ~4e-17 away: no warning.
    x = 0.1 + 0.2
    assert abs(F(x) - F(3, 10)) < 1e-16
    P = np.array([[[x, 1 - x], [0, 1]]])  # mdptoolbox: one action
    with warnings.catch_warnings():
        warnings.simplefilter("error", RationalisationWarning)
        data = arrays_to_dict(P, np.zeros(2), terminal=[1], mu=0)
    assert data["transitions"]["s0"]["a0"] == {"s0": "3/10", "s1": "7/10"}
    # sqrt(2) - 1 has no fraction of denominator <= 10**6 within 1e-12 (its convergents are
    # 195025/470832, then 1136689 > 10**6): it moves by ~1.6e-12 and warns, naming the entry.
    y = 2 ** 0.5 - 1
    assert abs(F(y) - F(y).limit_denominator(DEFAULT_LIMIT)) > 1e-12
    with pytest.warns(RationalisationWarning) as record:
        data = arrays_to_dict(np.array([[[y, 1 - y], [0, 1]]]), np.zeros(2), terminal=[1], mu=0)
    message = str(record[0].message)
    assert message.startswith("arrays (mdptoolbox layout): 2 values changed by more than 1e-12 when made exact "
                              "with limit_denominator(1000000)")
    assert "P[0, 0, 0]: 0.41421356237309515 -> 195025/470832" in message
    assert data["transitions"]["s0"]["a0"] == {"s0": "195025/470832", "s1": "275807/470832"}
    # limit=None keeps the binary values; the row's last bit goes to its largest entry, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error", RationalisationWarning)
        data = arrays_to_dict(np.array([[[y, 1 - y], [0, 1]]]), np.zeros(2), terminal=[1], mu=0, limit=None)
    row = data["transitions"]["s0"]["a0"]
    assert sum(F(v) for v in row.values()) == 1 and F(row["s0"]) == F(y)


def test_a_row_of_floats_near_one_is_completed_on_its_largest_entry():
    # rows normalised in floating point rarely add up to exactly 1 once exact
    rng = np.random.default_rng(0)
    P = rng.random((2, 3, 3))
    P /= P.sum(axis=2, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RationalisationWarning)
        case = from_arrays(P, np.ones((3, 2)), gamma=F(1, 2))
    for s in case.nonterminal:
        for row in case.P[s].values():
            assert sum(row.values()) == 1


# ---------------------------------------------------------------------------------
# Arrays
# ---------------------------------------------------------------------------------
# One MDP three ways: s0 --a0--> s0 (1/2) or s1 (1/2), reward 1 on every a0 step;
# s0 --a1--> s2 (terminal), reward 3; s1 --a0/a1--> s2, rewards 2 and 0.  Start 2/3 s0, 1/3 s1; gamma 9/10.
AS_DICT = {
    "name": "arrays", "states": ["s0", "s1", "s2"], "terminal": ["s2"], "actions": ["a0", "a1"],
    "start": {"s0": "2/3", "s1": "1/3"}, "discount": "9/10", "policy": {"softmax": "tabular"},
    "transitions": {"s0": {"a0": {"s0": "1/2", "s1": "1/2"}, "a1": "s2"}, "s1": {"a0": "s2", "a1": "s2"}},
    "rewards": {"s0": {"a0": 1, "a1": 3}, "s1": {"a0": 2}},
}
P_TOOLBOX = np.array([[[F(1, 2), F(1, 2), 0], [0, 0, 1], [0, 0, 1]],    # P[a0]
                      [[0, 0, 1], [0, 0, 1], [0, 0, 1]]], dtype=object)  # P[a1]
R_SA = np.array([[1, 3], [2, 0], [0, 0]])                                # R[s, a]
MU = np.array([F(2, 3), F(1, 3), 0], dtype=object)


def test_from_arrays_agrees_with_the_dict_case():
    expected = pgverify.Case.from_dict(AS_DICT)
    R_ass = np.array([[[R_SA[s, a]] * 3 for s in range(3)] for a in range(2)])  # R[a, s, s_next]
    p = np.transpose(P_TOOLBOX, (1, 0, 2))                                      # p[s, a, s_next]
    r = np.transpose(R_ass, (1, 0, 2))
    cases = [
        from_arrays(P_TOOLBOX, R_SA, mu=MU, gamma=0.9, terminal=[2]),
        from_arrays(P_TOOLBOX, R_ass, mu=MU, gamma="9/10", terminal=["s2"]),
        pgverify.Case.from_arrays(p, r, layout="mushroom", mu=MU, gamma=F(9, 10), terminal=[2]),
    ]
    want = bellman(expected)
    for case in cases:
        assert all(same_tables(case, expected).values())
        assert bellman(case) == want
    # the mushroom-rl convention: a state whose rows are all zero is absorbing (terminal)
    p0 = p.copy()
    p0[2] = 0
    assert from_arrays(p0, r, layout="mushroom", mu=MU, gamma=0.9).terminal == {"s2"}


def test_from_arrays_reward_per_state_names_and_absorbing():
    # R[s]: every step out of s pays R[s] (pymdptoolbox's vector form).  The default reward is the
    # most common one: three steps leave 'start' (reward 5), two leave '0' (reward 0).
    data = arrays_to_dict(P_TOOLBOX, np.array([5, 0, 0]), terminal=[2], mu=0,
                          states=["start", "0", "end"], actions=["stay", "go"])
    assert data["rewards"] == {"default": 5, "0": {"stay": 0, "go": 0}}
    text = render_case(data)
    assert 'terminal: [end]' in text and '"0": {stay: end, go: end}' in text
    assert pgverify.case_from_yaml(text).states == ("start", "0", "end")
    # s2 is absorbing (every action: back to s2, reward 0): terminal only when asked
    assert "terminal" not in arrays_to_dict(P_TOOLBOX, R_SA, mu=0)
    assert arrays_to_dict(P_TOOLBOX, R_SA, mu=0, absorbing_as_terminal=True)["terminal"] == ["s2"]
    assert arrays_to_dict(P_TOOLBOX, R_SA, mu=0, policy="uniform")["policy"]["s0"] == {"a0": "1/2", "a1": "1/2"}


@pytest.mark.parametrize("P, R, options, message", [
    (np.ones((2, 3, 4)), np.zeros(3), {},
     "  P: P must have the shape (A, S, S): P[a, s, s_next] (given: 'shape (2, 3, 4)'). For p[s, a, s_next] "
     "(mushroom-rl), pass layout='mushroom'"),
    (P_TOOLBOX, np.zeros((2, 3)), {},
     "  R: R must have the shape (3,) (R[s]), (3, 2) (R[s, a]) or (2, 3, 3) (R[a, s, s_next]) for P of shape "
     "(2, 3, 3) (given: 'shape (2, 3)')"),
    (np.array([[[0.5, 0.4], [0, 1]]]), np.zeros(2), {},
     "  P[0, 0, :]: the probabilities add up to 0.9, not 1 (given: '{0: 0.5, 1: 0.4}'). Normalise the row"),
    (np.array([[[1.1, -0.1], [0, 1]]]), np.zeros(2), {},
     "  P[0, 0, 1]: a probability must be a finite number >= 0 (given: '-0.1')"),
    (np.array([[[1, 0], [0, 1]]]), np.array([[0.0], [np.nan]]), {},
     "  R[1, 0]: the reward is not a finite real number (given: 'nan'). Give finite numbers (int, float, "
     "fractions.Fraction)"),
    (np.array([[[F(1, 3), F(1, 3)], [0, 1]]], dtype=object), np.zeros(2), {},
     "  P[0, 0, :]: the probabilities add up to 2/3, not 1 (given: '{0: 1/3, 1: 1/3}'). Make the row add up "
     "to exactly 1"),
    (np.ones((2, 1, 2)) / 2, np.zeros((2, 1, 2)), {"layout": "mushroom", "mu": [0.5, 0.6]},
     "  mu: the probabilities add up to 1.1, not 1 (given: '{0: 0.5, 1: 0.6}'). Normalise the row"),
    (P_TOOLBOX, R_SA, {"terminal": ["goal"]},
     "  terminal[0]: unknown state (given: \"'goal'\"). Give an index 0..2 or a name (s0, s1, s2)"),
    ([[[1, 0], [0]]], np.zeros(2), {},
     "  P: not a rectangular array (rows of different lengths). Give a numpy array, or nested lists of equal "
     "lengths"),
])
def test_bad_arrays_name_the_place(P, R, options, message):
    with pytest.raises(ImporterError) as exc:
        from_arrays(P, R, **options)
    assert message in str(exc.value).split("\n")


def test_mushroom_partly_zero_rows_and_horizon():
    p = np.zeros((2, 2, 2))
    p[0, 0] = [0, 1]
    with pytest.raises(ImporterError, match=r"P\[0, 1, :\]: the probabilities add up to 0, not 1"):
        from_arrays(p, np.zeros((2, 2, 2)), layout="mushroom")
    p[0, 1] = [1, 0]
    case = from_arrays(p, np.ones((2, 2, 2)), layout="mushroom", gamma=1, horizon=np.inf, mu=[1, 0])
    assert case.horizon is None and case.terminal == {"s1"}
    assert from_arrays(p, np.ones((2, 2, 2)), layout="mushroom", horizon=5.0, mu=[1, 0]).horizon == 5
    with pytest.raises(ImporterError, match="the horizon must be a positive integer"):
        from_arrays(p, np.ones((2, 2, 2)), layout="mushroom", horizon=2.5)


@st.composite
def random_mdps(draw):
    """pymdptoolbox arrays of random rationals: P[A,S,S] (rows of random weights), R[S,A], mu, gamma < 1."""
    S = draw(st.integers(1, 4))
    A = draw(st.integers(1, 3))
    weights = st.integers(0, 5)
    P = np.empty((A, S, S), dtype=object)
    for a in range(A):
        for s in range(S):
            w = draw(st.lists(weights, min_size=S, max_size=S).filter(any))
            P[a, s] = [F(x, sum(w)) for x in w]
    R = np.array(draw(st.lists(st.lists(st.fractions(-5, 5, max_denominator=7), min_size=A, max_size=A),
                               min_size=S, max_size=S)), dtype=object)
    m = draw(st.lists(weights, min_size=S, max_size=S).filter(any))
    mu = np.array([F(x, sum(m)) for x in m], dtype=object)
    gamma = F(draw(st.integers(1, 9)), 10)
    return P, R, mu, gamma


@settings(max_examples=25, deadline=None)
@given(random_mdps())
def test_from_arrays_J_matches_numpy(mdp):
    # J at theta = 0 (the uniform policy) solves (I - gamma P_pi) V = r_pi; J = mu . V
    # (Sutton & Barto 2018, eq. 4.4, in matrix form), computed here with numpy in floats.
    P, R, mu, gamma = mdp
    A, S, _ = P.shape
    case = from_arrays(P, R, mu=mu, gamma=gamma)
    P_pi = np.array(P.mean(axis=0), dtype=float)
    r_pi = np.array(R.mean(axis=1), dtype=float)
    V = np.linalg.solve(np.eye(S) - float(gamma) * P_pi, r_pi)
    J, _ = bellman(case)
    assert float(sympy.Rational(J)) == pytest.approx(float(np.dot(np.array(mu, dtype=float), V)), rel=1e-9,
                                                      abs=1e-12)


# ---------------------------------------------------------------------------------
# Writing case files
# ---------------------------------------------------------------------------------
def test_write_case_round_trips_and_is_deterministic(tmp_path):
    data = arrays_to_dict(P_TOOLBOX, R_SA, mu=MU, gamma=0.9, terminal=[2], states=["a b", "yes", "G"],
                          description="Two lines\\nof text: with a colon")
    assert render_case(data) == render_case(data)
    out = tmp_path / "sub" / "c.yaml"
    out.parent.mkdir()  # write_case creates no folder (tests/test_hardening.py)
    written = write_case(data, out)
    loaded = pgverify.load_case(out)
    assert all(same_tables(loaded, written).values())
    assert all(same_tables(loaded, pgverify.Case.from_dict(data)).values())
    assert loaded.states == ("a b", "yes", "G") and loaded.description == data["description"]
    with pytest.raises(pgverify.UsageError, match="exists already; pass --force"):
        write_case(data, out)
    bad = dict(data, discount=2)
    with pytest.raises(pgverify.CaseFileError):
        write_case(bad, out, force=True)
    assert pgverify.load_case(out).gamma == sympy.Rational(9, 10)  # untouched
    assert [p.name for p in out.parent.iterdir()] == ["c.yaml"]  # no temporary file left


# ---------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------
def run(*args):
    return CliRunner().invoke(import_group, list(args))


def test_cli_writes_a_case_file(gym, tmp_path):
    out = tmp_path / "fl.yaml"
    res = run("gymnasium", "FrozenLake-v1", "--map", "4x4", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert res.stdout == (f"wrote {out}: 16 states (5 terminal), 4 actions, 44 parameters; discount 1, "
                          "horizon 100\n")
    assert all(same_tables(pgverify.load_case(out), pgverify.load_case("cases/frozenlake_4x4.yaml")).values())
    # refuses to overwrite without --force, and leaves the file as it was
    before = out.read_text()
    res = run("gymnasium", "FrozenLake-v1", "--not-slippery", "-o", str(out))
    assert res.exit_code == 2 and res.exception.__class__ is SystemExit
    assert res.stderr == (f"pgverify: error: {out} exists already; pass --force (force=True) to overwrite it, "
                          "or choose another path\n")
    assert out.read_text() == before
    res = run("gymnasium", "FrozenLake-v1", "--not-slippery", "--horizon", "none", "--gamma", "0.99",
              "--policy", "uniform", "-o", str(out), "--force")
    assert res.exit_code == 0, res.output
    case = pgverify.load_case(out)
    assert case.horizon is None and case.gamma == sympy.Rational(99, 100) and case.parameters == ()


def test_cli_prints_and_warns(gym):
    # pruned: the cliff cells (s37..s46), which no episode enters, and their 3 merged steps are left out
    res = run("gymnasium", "CliffWalking-v1", "--slippery", "--horizon", "30", "--prune-unreachable")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("name: cliffwalking-v1-slippery\n")
    assert pgverify.case_from_yaml(res.stdout).horizon == 30
    assert res.stderr.startswith("pgverify: warning: Gymnasium CliffWalking-v1: 3 steps (s, a, s_next) had entries "
                                 "with different rewards, replaced by their probability-weighted mean")


def test_cli_bad_input_exits_2_without_traceback(gym, tmp_path):
    out = tmp_path / "x.yaml"
    for args, start in [
        (["NoSuchEnv-v0"], "pgverify: error: cannot import Gymnasium NoSuchEnv-v0: 1 problem\n  env: gymnasium.make"),
        (["FrozenLake-v1", "--horizon", "-3"], "pgverify: error: --horizon expects a positive integer"),
        (["FrozenLake-v1", "--gamma", "2", "-o", str(out)], "pgverify: error: invalid case"),
        (["CliffWalking-v1", "--slippery", "--reward-conflict", "error"],
         "pgverify: error: cannot import Gymnasium CliffWalking-v1: 6 problems"),
    ]:
        res = run("gymnasium", *args)
        assert res.exit_code == 2 and isinstance(res.exception, SystemExit), (args, res.output)
        assert res.stderr.startswith(start), res.stderr
        assert "Traceback" not in res.output
    assert not out.exists()


def test_missing_gymnasium_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # import gymnasium now raises ImportError
    hint = ("Importing from Gymnasium needs gymnasium, which is not installed. Install the extra: "
            "pip install 'pgverify[gymnasium]'")
    with pytest.raises(MissingExtraError) as exc:
        from_gymnasium("FrozenLake-v1")
    assert str(exc.value) == hint
    res = run("gymnasium", "FrozenLake-v1")
    assert res.exit_code == 2 and res.stderr == f"pgverify: error: {hint}\n"


@pytest.fixture(scope="module")
def frozenlake_8x8_file(gym, tmp_path_factory):
    from pgverify.cli import main

    target = tmp_path_factory.mktemp("fl8") / "frozenlake_8x8.yaml"
    r = CliRunner().invoke(main, ["import", "gymnasium", "FrozenLake-v1", "--map", "8x8", "-o", str(target)])
    assert r.exit_code == 0, r.output
    return target


@pytest.mark.slow
def test_frozenlake_8x8_imported_verifies_with_pgverify_check(frozenlake_8x8_file):
    """Issue 4, end to end through the CLI: FrozenLake 8x8 (212 parameters, horizon 100) imported,
    then the exact engines agree (the trajectory sum is refused: about 2e105 trajectories)."""
    import json

    from pgverify.cli import main

    r = CliRunner().invoke(main, ["check", str(frozenlake_8x8_file), "--json", "--no-mc"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["verified"] and data["agree"] and data["proof"] == "exact-at-point"
    assert len(data["parameters"]) == 4 * (64 - 11)
    assert data["methods"]["bellman"] is not None and data["methods"]["occupancy"] is not None


@pytest.mark.slow
def test_frozenlake_8x8_sampling_is_consistent(frozenlake_8x8_file):
    """With 4,000 episodes the goal (J = 0.0017) is reached a few times: most tests are carried by one
    or two episodes and must come out inconclusive, not as false alarms (the sample's standard error,
    used before, called the unbiased baselines biased with |z| up to 12).  FrozenLake 8x8 is over the
    dense moment recursions' budget (their certified float64 route took about 30 s here); the same
    recursions over the sparse tables give every estimator's variance, certified (about 1.5 s), so the
    standard error is the exact one; the certified means of the unbiased estimators must agree with the
    exact gradient within their bounds."""
    import json

    from pgverify.cli import main
    from pgverify.montecarlo.estimators import UNBIASED

    r = CliRunner().invoke(main, ["check", str(frozenlake_8x8_file), "--json", "--episodes", "4000"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    mc = data["monte_carlo"]
    assert data["verified"] and mc["consistent"]
    assert mc["inconclusive"] > 0 and "inconclusive" in mc["test"]
    assert "over the sparse tables" in mc["moments"]
    for name, e in mc["estimators"].items():
        assert e["stderr_from"] == "exact variance", name
        assert e["variance_from"].startswith("float64 backward induction over the sparse tables"), name
        assert "(certified: each variance within a relative" in e["variance_from"], name
        assert e["consistent"] is not False
        if name in UNBIASED:
            assert "agrees within its certified bound" in e["exact_mean_from"], name
