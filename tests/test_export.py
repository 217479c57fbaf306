"""Tests of the PRISM export, the Storm cross-check and the drawings (pgverify.export, pgverify.crosscheck).

The PRISM text is checked by an independent route: a small reader of the PRISM
subset that the exporter writes (below, written from the PRISM manual's grammar,
not from the exporter) rebuilds the DTMC from the text alone, solves the expected
total reward until "done" exactly with sympy, and the result must equal pgverify's
J(theta) as a rational function.  Storm does the same when stormpy is installed.
"""
from __future__ import annotations

import functools
import glob
import os
import random
import re
import shutil
import subprocess

import pytest
import sympy
from click.testing import CliRunner

import pgverify
from pgverify.errors import PgVerifyError
from pgverify.expr import parse_expression
from pgverify.export.cli import export_command, show_command
from pgverify.export.errors import ExportError
from pgverify.export.prism import induced_chain, prism_expression, to_prism
from pgverify.export.show import PNG_MAGIC, dot_quote, to_dot, to_png

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = sorted(glob.glob(os.path.join(ROOT, "cases", "*.yaml")))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "docs", "examples", "*.yaml")))


def _valid(paths):
    out = []
    for path in paths:
        try:
            out.append(pgverify.load_case(path))
        except PgVerifyError:
            pass
    return out


def _rational(case):
    try:
        induced_chain(case)
        return True
    except ExportError:
        return False


ALL_VALID = _valid(CASES + EXAMPLES)
RATIONAL = [c for c in ALL_VALID if _rational(c)]
IRRATIONAL = [c for c in ALL_VALID if not _rational(c)]


def _id(case):
    return os.path.basename(case.source or case.name)


_RESULTS: dict = {}


def _result(case):
    """pgverify's result on the case (Bellman engine, symbolic mode), computed once per case object."""
    if id(case) not in _RESULTS:
        _RESULTS[id(case)] = (case, pgverify.check(case, mode="symbolic", engines=("bellman",)))
    return _RESULTS[id(case)][1]


def _J(case):
    """pgverify's J(theta) as an expression."""
    return _result(case).objective.sympy_expression


# -- an independent reader of the PRISM subset -----------------------------------------------------------------
class PrismReader:
    """Rebuild a DTMC from PRISM text: constants, integer variables, ``[] guard -> updates;``, labels, rewards.

    Guards and labels are Boolean combinations (``& | !`` and parentheses) of comparisons of a variable with
    an integer; updates are ``prob:(v'=e)&(w'=e)`` joined by ``+`` (or ``true``), where ``e`` is an integer or
    ``v+1``.  Probabilities and rewards are read by pgverify's whitelisted expression parser, ``^`` as ``**``.
    """

    def __init__(self, text: str):
        lines = [ln.split("//", 1)[0].strip() for ln in text.splitlines()]
        body = [ln for ln in lines if ln]
        assert body[0] == "dtmc", body[0]
        self.params = {}
        self.vars = {}  # name -> (lo, hi, init)
        self.commands = []  # (guard, [(prob_expr, {var: update})])
        self.labels = {}
        self.rewards = []  # (guard, expr)
        section = None
        for ln in body[1:]:
            m = re.fullmatch(r"const double (\w+);", ln)
            if m:
                self.params[m.group(1)] = sympy.Symbol(m.group(1), real=True)
                continue
            if ln.startswith("module "):
                section = "module"
                continue
            if ln in ("endmodule", "endrewards"):
                section = None
                continue
            m = re.fullmatch(r'rewards "(\w+)"', ln)
            if m:
                section = "rewards"
                continue
            m = re.fullmatch(r'label "(\w+)" = (.+);', ln)
            if m:
                self.labels[m.group(1)] = m.group(2)
                continue
            if section == "module":
                m = re.fullmatch(r"(\w+) : \[(\d+)\.\.(\d+)\] init (\d+);", ln)
                if m:
                    self.vars[m.group(1)] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
                    continue
                m = re.fullmatch(r"\[\] (.+?) -> (.+);", ln)
                assert m, f"not a command: {ln!r}"
                self.commands.append((m.group(1), self._updates(m.group(2))))
                continue
            if section == "rewards":
                m = re.fullmatch(r"(.+?) : (.+);", ln)
                assert m, f"not a reward item: {ln!r}"
                self.rewards.append((m.group(1), self._expr(m.group(2))))
                continue
            raise AssertionError(f"unexpected line {ln!r}")

    def _expr(self, text):
        return parse_expression(text.replace("^", "**"), self.params)

    def _updates(self, text):
        if text == "true":
            return [(sympy.Integer(1), {})]
        parts, depth, cur = [], 0, ""
        for ch in text:
            depth += ch == "("
            depth -= ch == ")"
            if ch == "+" and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        out = []
        for part in parts:
            prob, _, assigns = part.strip().rpartition(":")
            upd = {}
            for a in assigns.split("&"):
                m = re.fullmatch(r"\((\w+)'=(\w+)(\+1)?\)", a.strip())
                assert m, f"not an assignment: {a!r}"
                upd[m.group(1)] = (m.group(2), bool(m.group(3)))
            out.append((self._expr(prob), upd))
        return out

    def holds(self, cond: str, state: dict) -> bool:
        tokens = re.findall(r"\w+|<=|>=|[=<>!&|()]", cond)
        pos = 0

        def peek():
            return tokens[pos] if pos < len(tokens) else None

        def take():
            nonlocal pos
            pos += 1
            return tokens[pos - 1]

        def disj():
            v = conj()
            while peek() == "|":
                take()
                v = conj() or v
            return v

        def conj():
            v = atom()
            while peek() == "&":
                take()
                v = atom() and v
            return v

        def atom():
            t = take()
            if t == "(":
                v = disj()
                assert take() == ")"
                return v
            if t == "!":
                return not atom()
            if t in ("true", "false"):
                return t == "true"
            op, k = take(), int(take())
            x = state[t]
            return {"=": x == k, "<": x < k, ">": x > k, "<=": x <= k, ">=": x >= k}[op]

        value = disj()
        assert pos == len(tokens), cond
        return value

    def expected_total_reward(self, label="done"):
        """E[total reward until the label], exactly, from the initial state (solving the linear system)."""
        names = list(self.vars)
        init = tuple(self.vars[v][2] for v in names)
        order, seen, todo, rows = [], {init}, [init], {}
        while todo:
            x = todo.pop()
            order.append(x)
            state = dict(zip(names, x))
            if self.holds(self.labels[label], state):
                continue
            enabled = [u for g, u in self.commands if self.holds(g, state)]
            assert len(enabled) == 1, f"{len(enabled)} commands enabled in {state}"
            row = {}
            for prob, upd in enabled[0]:
                y = dict(state)
                for v, (value, plus) in upd.items():
                    y[v] = (state[value] + 1) if plus else int(value)
                    lo, hi, _ = self.vars[v]
                    assert lo <= y[v] <= hi, f"{v}={y[v]} out of range"
                y = tuple(y[v] for v in names)
                row[y] = row.get(y, 0) + prob
                if y not in seen:
                    seen.add(y)
                    todo.append(y)
            assert sympy.cancel(sum(row.values()) - 1) == 0, f"row of {state} does not sum to 1"
            reward = sum((e for g, e in self.rewards if self.holds(g, state)), sympy.Integer(0))
            rows[x] = (row, reward)
        live = [x for x in order if x in rows]
        index = {x: i for i, x in enumerate(live)}
        A = sympy.zeros(len(live), len(live))
        b = sympy.zeros(len(live), 1)
        for x, (row, reward) in rows.items():
            i = index[x]
            A[i, i] += 1
            b[i] = reward
            for y, prob in row.items():
                if y in index:
                    A[i, index[y]] -= prob
        if init not in index:
            return sympy.Integer(0)
        v = A.LUsolve(b)
        return sympy.cancel(sympy.together(v[index[init]]))


def _same(a, b) -> bool:
    names = {s.name: s for s in b.free_symbols}
    a = a.xreplace({s: names.get(s.name, s) for s in a.free_symbols})
    return sympy.cancel(sympy.together(a - b)) == 0


# -- random rational cases ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def random_case(seed: int) -> pgverify.Case:
    """A small random case with rational probabilities in p, q: start distributions, discounts,
    horizons, negative and parameter-dependent rewards (all four of the exporter's encodings)."""
    rng = random.Random(seed)
    n = rng.randint(1, 3)
    states = [f"S{i}" for i in range(n)] + ["G"]
    pairs = [("p", "1 - p"), ("q", "1 - q"), ("p*q", "1 - p*q"), ("(1 + p)/2", "(1 - p)/2"), ("1/3", "2/3")]
    gamma = rng.choice(["1", "9/10", "1/2"])
    horizon = rng.choice([None, None, 1, 2, 3])
    policy, transitions, rewards = {}, {}, {}
    for s in states[:-1]:
        x, y = rng.choice(pairs)
        policy[s] = {"a": x, "b": y}
        transitions[s] = {}
        rewards[s] = {}
        for act in ("a", "b"):
            u, w = rng.choice(pairs)
            s1, s2 = rng.choice(states), rng.choice(states)
            if gamma == "1" and horizon is None:
                # every action reaches the terminal state with probability at least 1/2: the case is valid
                transitions[s][act] = {s1: f"({u})/2", "G": f"1/2 + ({w})/2"} if s1 != "G" else {"G": 1}
            else:
                transitions[s][act] = {s1: u, s2: w} if s1 != s2 else {s1: 1}
            rewards[s][act] = rng.choice([-2, -1, 0, 1, 3, "p - 1", "2*q", "-p*q"])
    starts = rng.sample(states[:-1], k=min(len(states) - 1, rng.randint(1, 2)))
    start = starts[0] if len(starts) == 1 else {starts[0]: "p", starts[1]: "1 - p"}
    data = {
        "name": f"random-{seed}", "parameters": {"p": "1/3", "q": "1/2"}, "states": states,
        "terminal": ["G"], "actions": ["a", "b"], "start": start, "discount": gamma,
        "policy": policy, "transitions": transitions, "rewards": rewards,
    }
    if horizon is not None:
        data["horizon"] = horizon
    return pgverify.Case.from_dict(data)


RANDOM_SEEDS = range(12)


# -- PRISM: the independent reader ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", RATIONAL, ids=_id)
def test_prism_text_gives_J_exactly(case):
    """The chain rebuilt from the PRISM text alone has expected total reward J(theta) (pgverify's)."""
    got = PrismReader(to_prism(case)).expected_total_reward()
    assert _same(got, _J(case))


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_prism_text_gives_J_exactly_on_random_cases(seed):
    case = random_case(seed)
    got = PrismReader(to_prism(case)).expected_total_reward()
    assert _same(got, _J(case)), f"seed {seed}"


def test_random_cases_cover_every_encoding():
    texts = [to_prism(random_case(s)) for s in RANDOM_SEEDS]
    assert any("init (start distribution)" in t for t in texts)
    assert any("stop (discount)" in t for t in texts)
    assert any("horizon reached" in t for t in texts)
    assert any(re.search(r": -", t) for t in texts)  # a negative reward


def test_cases_in_the_repository_are_exported():
    # The rational cases of cases/ (the others use exp, sigmoid or softmax).
    names = {os.path.basename(c.source) for c in RATIONAL if "/cases/" in c.source}
    assert names == {"short_corridor.yaml", "finite_horizon_chain.yaml"}


def test_short_corridor_text():
    """The whole export of Sutton & Barto's short corridor (Example 13.1)."""
    case = pgverify.load_case(os.path.join(ROOT, "cases", "short_corridor.yaml"))
    text = to_prism(case)
    body = text[text.index("dtmc"):]
    assert body == """dtmc

// parameters theta (the case's point: p = 1/2)
const double p;

module policy_chain
  // 0=S0, 1=S1, 2=S2, 3=G (terminal)
  s : [0..3] init 0;
  [] s=0 -> (1 - p):(s'=0) + p:(s'=1); // S0
  [] s=1 -> p:(s'=0) + (1 - p):(s'=2); // S1
  [] s=2 -> (1 - p):(s'=1) + p:(s'=3); // S2
  [] s=3 -> true; // G (terminal)
endmodule

label "done" = s=3;

rewards "r"
  s=0 : -1; // S0
  s=1 : -1; // S1
  s=2 : -1; // S2
endrewards
"""
    # J(p) = 2(2 - p)/(p(p - 1)): Sutton & Barto (2018), Example 13.1 (the case file's reference)
    p = case.symbol("p")
    assert _same(PrismReader(text).expected_total_reward(), 2 * (2 - p) / (p * (p - 1)))


def test_discount_and_start_distribution_encoding():
    """gamma = 1/2, start 1/2-1/2 over two states that each earn 1 forever: J = 2 (a geometric series)."""
    case = pgverify.Case.from_dict({
        "name": "loop", "states": ["A", "B"], "actions": ["x"], "start": {"A": "1/2", "B": "1/2"},
        "discount": "1/2", "policy": {"A": {"x": 1}, "B": {"x": 1}},
        "transitions": {"A": {"x": "B"}, "B": {"x": "A"}}, "rewards": {"default": 1}})
    text = to_prism(case)
    assert "[] s=0 -> (1/2):(s'=1) + (1/2):(s'=2); // A" in text
    assert "[] s=3 -> (1/2):(s'=0) + (1/2):(s'=1); // init (start distribution)" in text
    assert PrismReader(text).expected_total_reward() == 2


def test_prism_expression_syntax():
    p, q = sympy.symbols("p q")
    assert prism_expression(p**3 * (1 - q) ** 2) == "p^3*(q - 1)^2"
    assert prism_expression(1 - p) == "1 - p"
    # Storm 2.0's PRISM parser reads -p^2 as (-p)^2: a minus before a power gets parentheses
    assert prism_expression(-(p**2) * q) == "-(p^2*q)"
    assert prism_expression(1 - p**2) == "1 - p^2"
    assert prism_expression(-p / 2) == "-p/2"
    assert prism_expression(1 / (p * q)) == "1/(p*q)"
    assert prism_expression(sympy.Rational(-7, 3)) == "-7/3"
    # round trip through the reader's parser: the text means the expression
    for e in (p**3 * (1 - q) ** 2 - p / 7, (p - q) ** 2 / (1 + p * q), -p * q + sympy.Rational(5, 9)):
        text = prism_expression(e)
        back = parse_expression(text.replace("^", "**"), {"p": p, "q": q})
        assert sympy.cancel(back - e) == 0, text


def test_softmax_is_refused_with_every_place():
    case = pgverify.load_case(os.path.join(ROOT, "cases", "two_state_softmax.yaml"))
    with pytest.raises(ExportError) as info:
        to_prism(case)
    exc = info.value
    assert [(p.key, p.line) for p in exc.problems] == [
        ("policy.A.stay", 17), ("policy.A.switch", 17), ("policy.B.stay", 18), ("policy.B.switch", 18)]
    assert str(exc).splitlines()[0] == (
        "cannot export case 'two-state-softmax' to PRISM: 4 expressions are not rational functions of the "
        "parameters, and parametric PRISM models need rational functions")
    assert str(exc).splitlines()[1] == (
        f"  {case.source}:17: policy.A.stay: not a rational function: it uses exp "
        "(given: 'exp(theta)/(exp(theta) + 1)')")
    assert "How to fix: write the policy explicitly" in str(exc)


@pytest.mark.parametrize("case", IRRATIONAL, ids=_id)
def test_every_irrational_case_is_refused(case):
    with pytest.raises(ExportError, match="not (rational functions|a rational function) of the parameters"):
        to_prism(case)


def test_irrational_number_and_keyword_are_refused():
    base = {"name": "c", "parameters": {"p": "1/3"}, "states": ["S", "G"], "terminal": ["G"],
            "actions": ["x", "y"], "start": "S", "policy": {"S": {"x": "p", "y": "1 - p"}},
            "transitions": {"S": {"x": "G", "y": "G"}}, "rewards": {"S": {"x": "sqrt(2)"}}}
    with pytest.raises(ExportError) as info:
        to_prism(pgverify.Case.from_dict(base))
    assert info.value.problems[0].message == "not a rational function: the number sqrt(2) is not rational"
    assert str(info.value).splitlines()[0] == (
        "cannot export case 'c' to PRISM: 1 expression is not a rational function of the parameters, "
        "and parametric PRISM models need rational functions")
    base["rewards"] = {"S": {"x": 1}}
    base["parameters"] = {"rate": "1/3"}
    base["policy"] = {"S": {"x": "rate", "y": "1 - rate"}}
    with pytest.raises(ExportError, match="'rate' is a keyword of the PRISM language"):
        to_prism(pgverify.Case.from_dict(base))


def test_variable_names_avoid_parameters():
    case = pgverify.Case.from_dict({
        "name": "c", "parameters": {"s": "1/3", "t": "1/2"}, "states": ["S", "G"], "terminal": ["G"],
        "actions": ["x", "y"], "start": "S", "horizon": 2, "policy": {"S": {"x": "s", "y": "1 - s"}},
        "transitions": {"S": {"x": {"G": "t", "S": "1 - t"}, "y": "S"}}, "rewards": {"default": 1}})
    text = to_prism(case)
    assert "s_ : [0..1] init 0;" in text and "t_ : [0..2] init 0;" in text
    assert _same(PrismReader(text).expected_total_reward(), _J(case))


# -- the export command ---------------------------------------------------------------------------------------
def test_export_command_stdout_and_file(tmp_path):
    path = os.path.join(ROOT, "cases", "short_corridor.yaml")
    runner = CliRunner()
    res = runner.invoke(export_command, [path, "--format", "prism"])
    assert res.exit_code == 0
    assert res.output == to_prism(pgverify.load_case(path))
    target = tmp_path / "corridor.pm"
    res = runner.invoke(export_command, [path, "-o", str(target)])
    assert res.exit_code == 0 and res.output == ""
    assert target.read_text() == to_prism(pgverify.load_case(path))
    assert os.listdir(tmp_path) == ["corridor.pm"]  # no temporary file left


def test_export_command_refuses_softmax_and_leaves_no_file(tmp_path):
    target = tmp_path / "out.pm"
    target.write_text("old content\n")
    res = CliRunner().invoke(export_command, [os.path.join(ROOT, "cases", "two_state_softmax.yaml"), "-o",
                                              str(target)])
    assert res.exit_code == 2
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert res.output.startswith("pgverify: error: cannot export case 'two-state-softmax' to PRISM")
    assert "Traceback" not in res.output
    assert target.read_text() == "old content\n"
    assert os.listdir(tmp_path) == ["out.pm"]


@pytest.mark.parametrize("args,message", [
    (["missing.yaml"], "pgverify: error: invalid case missing.yaml: 1 problem\n  missing.yaml: file not found. "
                       "Check the path\n"),
    ([os.path.join(ROOT, "cases", "short_corridor.yaml"), "-o", "/nonexistent-dir/x.pm"],
     "pgverify: error: cannot write /nonexistent-dir/x.pm: the folder /nonexistent-dir does not exist; pgverify "
     "creates no folders (make it first: mkdir -p /nonexistent-dir)\n"),
])
def test_export_command_bad_input(args, message):
    res = CliRunner().invoke(export_command, args)
    assert res.exit_code == 2
    assert res.output == message


# -- Storm -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def storm():
    pytest.importorskip("stormpy")
    from pgverify.crosscheck import storm as module

    return module


@pytest.mark.parametrize("case", RATIONAL, ids=_id)
def test_storm_agrees(storm, case):
    out = storm.storm_cross_check(case, _result(case))
    assert out["agrees_symbolically"] and out["agrees_at_point"], out
    assert out["difference"] == "0"


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_storm_agrees_on_random_cases(storm, seed):
    case = random_case(seed)
    out = storm.storm_cross_check(case, _result(case))
    assert out["agrees_symbolically"] and out["agrees_at_point"], (seed, out)


def test_storm_short_corridor_result(storm):
    case = pgverify.load_case(os.path.join(ROOT, "cases", "short_corridor.yaml"))
    res = pgverify.check(case, monte_carlo=None)
    out = storm.storm_cross_check(case, res)
    assert out["storm_function"] == "(-2 * (p+(-2)))/((p) * (p+(-1)))"
    assert out["objective"] == "-2*(p - 2)/(p*(p - 1))"
    assert out["storm_value"] == out["pgverify_value"] == "-12"  # J(1/2) = -12 (Sutton & Barto 2018, Ex. 13.1)
    assert set(out) == {"tool", "version", "property", "engine", "storm_function", "objective",
                        "pgverify_objective", "agrees_symbolically", "difference", "at", "storm_value",
                        "pgverify_value", "agrees_at_point", "reward_shift", "seconds"}


def test_storm_detects_a_wrong_objective(storm):
    """A result whose J is off by one must not agree (the comparison is not vacuous)."""
    case = pgverify.load_case(os.path.join(ROOT, "cases", "short_corridor.yaml"))
    res = pgverify.check(case, monte_carlo=None)
    res.objective.sympy_expression += 1
    res.objective.sympy_value += 1
    out = storm.storm_cross_check(case, res)
    assert not out["agrees_symbolically"] and not out["agrees_at_point"]
    assert out["difference"] == "-1"


def test_storm_float_engine_mishandles_negative_rewards(storm, tmp_path):
    """Why the cross-check uses only the exact engine (the value stated in docs/export.md and storm.py).

    The short corridor at p = 1/2 has J = -12 (Sutton & Barto 2018, Example 13.1); Storm's default
    floating-point engine gives another value, its exact engine -12.
    """
    import stormpy

    case = pgverify.load_case(os.path.join(ROOT, "cases", "short_corridor.yaml"))
    path = tmp_path / "half.pm"
    path.write_text(to_prism(case).replace("const double p;", "const double p = 1/2;"))
    program = stormpy.parse_prism_program(str(path))
    props = stormpy.parse_properties('R{"r"}=? [ F "done" ]', program)
    exact = stormpy.build_model[stormpy.Rational](program, props)
    assert str(stormpy.model_checking(exact, props[0]).get_value(exact.initial_states[0])) == "-12"
    floating = stormpy.build_model(program, props)
    value = stormpy.model_checking(floating, props[0]).get_value(floating.initial_states[0])
    assert abs(value - (-6.874942671806507)) < 1e-9  # not -12: documented in docs/export.md


def test_storm_refuses_softmax(storm):
    case = pgverify.load_case(os.path.join(ROOT, "cases", "two_state_softmax.yaml"))
    with pytest.raises(ExportError, match="parametric PRISM models need rational functions"):
        storm.storm_cross_check(case)


def test_storm_parser_is_the_whitelist(storm):
    case = pgverify.load_case(os.path.join(ROOT, "cases", "short_corridor.yaml"))
    with pytest.raises(storm.CrossCheckError, match="cannot read Storm's result"):
        storm.parse_storm_function("__import__('os')", case)
    p = case.symbol("p")
    assert storm.parse_storm_function("(-1 * ((p)^3 * (p+(-4))^3))/(64)", case) == -(p**3) * (p - 4) ** 3 / 64


def test_missing_stormpy_says_which_extra(monkeypatch):
    import builtins

    from pgverify.crosscheck import storm as module
    from pgverify.export.errors import MissingExtraError

    real = builtins.__import__

    def no_stormpy(name, *args, **kwargs):
        if name == "stormpy" or name.startswith("stormpy."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_stormpy)
    case = pgverify.load_case(os.path.join(ROOT, "cases", "short_corridor.yaml"))
    with pytest.raises(MissingExtraError) as info:
        module.storm_cross_check(case)
    assert "pip install 'pgverify[storm]'" in str(info.value)


# -- show ------------------------------------------------------------------------------------------------------
_NODE = re.compile(r'^  (\w+) \[(.*)\];$')
_EDGE = re.compile(r'^  (\w+) -> (\w+)(?: \[(.*)\])?;$')
_LABEL = re.compile(r'label="((?:[^"\\]|\\.)*)"')


def _parse_dot(text):
    """Nodes (id -> label) and edges ((u, v, label)) of the DOT the exporter writes; every line must parse."""
    lines = text.splitlines()
    assert lines[0].startswith("digraph ") and lines[0].endswith("{") and lines[-1] == "}"
    nodes, edges = {}, []
    for ln in lines[1:-1]:
        if ln.startswith("  rankdir") or ln.startswith("  node ["):
            continue
        m = _EDGE.match(ln)
        if m:
            lab = _LABEL.search(m.group(3) or "")
            edges.append((m.group(1), m.group(2), lab.group(1) if lab else ""))
            continue
        m = _NODE.match(ln)
        assert m, f"not a DOT statement: {ln!r}"
        lab = _LABEL.search(m.group(2))
        nodes[m.group(1)] = lab.group(1) if lab else ""
    return nodes, edges


@pytest.mark.parametrize("case", _valid(CASES), ids=_id)
def test_dot_has_every_state_and_transition(case):
    text = to_dot(case)
    nodes, edges = _parse_dot(text)
    index = {s: i for i, s in enumerate(case.states)}
    for s, i in index.items():
        assert nodes[f"s{i}"] == s
    expected = set()
    for s in case.nonterminal:
        for k, a in enumerate(case.actions[s]):
            expected.add((f"s{index[s]}", f"a{index[s]}_{k}"))
            for s2 in case.P[s][a]:
                expected.add((f"a{index[s]}_{k}", f"s{index[s2]}"))
    for s in case.rho0:
        expected.add(("start", f"s{index[s]}"))
    assert {(u, v) for u, v, _ in edges} == expected
    assert len(edges) == len(expected)
    if shutil.which("dot"):  # Graphviz's own parser accepts the text
        proc = subprocess.run(["dot", "-Tcanon"], input=text.encode(), capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()


def test_dot_labels_of_the_short_corridor():
    case = pgverify.load_case(os.path.join(ROOT, "cases", "short_corridor.yaml"))
    nodes, edges = _parse_dot(to_dot(case))
    assert ("s0", "a0_1", "right\\np") in edges
    assert ("a1_1", "s0", "r=-1") in edges
    assert 'shape=doublecircle' in to_dot(case).splitlines()[6]


def test_dot_quoting_and_shortening():
    assert dot_quote('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'
    case = pgverify.Case.from_dict({
        "name": 'odd "name"', "parameters": {"p": "1/3"}, "states": ['S "1"', "G"], "terminal": ["G"],
        "actions": ["x", "y"], "start": 'S "1"',
        "policy": {'S "1"': {"x": "p", "y": "1 - p"}},
        "transitions": {'S "1"': {"x": "G", "y": "G"}},
        "rewards": {'S "1"': {"x": "p**2 + p**3 + p**4 + p**5 + p**6"}}})
    text = to_dot(case, max_label=12)
    assert text.splitlines()[0] == 'digraph "odd \\"name\\"" {'
    nodes, edges = _parse_dot(text)
    assert nodes["s0"] == 'S \\"1\\"'
    assert ("a0_0", "s1", "r=p**6 + p*...") in edges
    if shutil.which("dot"):
        proc = subprocess.run(["dot", "-Tcanon"], input=text.encode(), capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()


@pytest.mark.parametrize("path", CASES, ids=os.path.basename)
def test_png_of_every_case(path, tmp_path):
    target = tmp_path / "case.png"
    res = CliRunner().invoke(show_command, [path, "--format", "png", "-o", str(target)])
    assert res.exit_code == 0, res.output
    assert target.read_bytes()[:8] == PNG_MAGIC
    assert os.listdir(tmp_path) == ["case.png"]


def test_png_by_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    case = pgverify.load_case(os.path.join(ROOT, "cases", "short_corridor.yaml"))
    target = tmp_path / "corridor.png"
    assert to_png(case, str(target), engine="matplotlib") == "matplotlib"
    assert target.read_bytes()[:8] == PNG_MAGIC


def test_show_command_dot_and_errors(tmp_path):
    path = os.path.join(ROOT, "cases", "short_corridor.yaml")
    runner = CliRunner()
    res = runner.invoke(show_command, [path])
    assert res.exit_code == 0 and res.output == to_dot(pgverify.load_case(path))
    target = tmp_path / "c.dot"
    assert runner.invoke(show_command, [path, "-o", str(target)]).exit_code == 0
    assert target.read_text() == res.output
    res = runner.invoke(show_command, [path, "--format", "png"])
    assert res.exit_code == 2
    assert res.output == "pgverify: error: --format png needs an output file: add -o FILE.png\n"
    res = runner.invoke(show_command, [os.path.join(ROOT, "docs", "examples", "syntax.yaml")])
    assert res.exit_code == 2 and res.output.startswith("pgverify: error: invalid case")
