"""Case files: every invalid input of the contract is a located error; several at once."""
import textwrap

import pytest
import sympy

import pgverify
from pgverify.errors import CaseFileError

GOOD = """\
name: tiny
parameters:
  p: 1/2
states: [S, T, G]
terminal: [G]
actions: [x, y]
start: S
policy:
  S: {x: p, y: 1 - p}
  T: {x: 1/4, y: 3/4}
transitions:
  S: {x: T, y: G}
  T: {x: {S: 1/2, G: 1/2}, y: G}
rewards:
  default: -1
  T: {y: 2}
"""


def load(text, tmp_path, name="case.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return pgverify.load_case(path)


def errors(text, tmp_path):
    with pytest.raises(CaseFileError) as info:
        load(text, tmp_path)
    return info.value


def test_good_case_loads(tmp_path):
    case = load(GOOD, tmp_path)
    p = case.symbol("p")
    assert case.pi["S"] == {"x": p, "y": 1 - p}
    assert case.r["T"]["y"]["G"] == 2 and case.r["S"]["x"]["T"] == -1
    assert case.P["T"]["x"] == {"S": sympy.Rational(1, 2), "G": sympy.Rational(1, 2)}
    assert case.warnings == ()


@pytest.mark.parametrize(
    "old, new, line, key, message",
    [
        ("states: [S, T, G]", "states: [S, T, G, T]", 4, "states", "duplicate name 'T'"),
        ("actions: [x, y]", "actions: [x, y, x]", 6, "actions", "duplicate name 'x'"),
        ("  S: {x: T, y: G}", "  S: {x: U, y: G}", 12, "transitions.S.x", "leads to undeclared state 'U'"),
        ("  T: {x: 1/4, y: 3/4}", "  T: {x: 1/4, y: 1/2}", 10, "policy.T",
         "probabilities sum to 3/4, not 1, at the parameter point"),
        ("  T: {x: 1/4, y: 3/4}", "  T: {x: -1/4, y: 5/4}", 10, "policy.T.x",
         "probability -1/4 outside [0, 1] at the parameter point"),
        ("  S: {x: p, y: 1 - p}", "  S: {x: p, z: 1 - p}", 9, "policy.S.z", "unknown action 'z' in state 'S'"),
        ("  S: {x: p, y: 1 - p}", "  S: {x: p, y: 1 - q}", 9, "policy.S.y", "unknown name 'q'"),
        ("start: S", "start: Z", 7, "start", "unknown state 'Z'"),
        ("start: S", "start: {S: 1/2, T: 1/3}", 7, "start", "probabilities sum to 5/6, not 1"),
        ("start: S", "start: S\ndiscount: 0", 8, "discount", "the discount must be in (0, 1]; it is 0"),
        ("start: S", "start: S\nhorizon: 2.5", 8, "horizon", "the horizon must be a positive integer"),
        ("start: S", "start: S\nhorizon: 0", 8, "horizon", "the horizon must be a positive integer"),
        ("  default: -1", "  default: os.system('x')", 15, "rewards.default", "call not allowed"),
        ("  default: -1", "  default: os.sep", 15, "rewards.default", "Attribute is not allowed"),
        ("name: tiny", "name: tiny\ncolour: red", 2, "colour", "unknown field 'colour'"),
        ("terminal: [G]", "terminal: [G, H]", 5, "terminal", "unknown state 'H'"),
        ("  T: {x: {S: 1/2, G: 1/2}, y: G}", "  T: {x: {S: 1/2, G: 1/2}}", 13, "transitions.T",
         "no transition for action 'y'"),
    ],
)
def test_invalid_file_is_located(tmp_path, old, new, line, key, message):
    assert old in GOOD
    exc = errors(GOOD.replace(old, new), tmp_path)
    found = [p for p in exc.problems if p.key == key and message in p.message]
    assert found, exc.problems
    assert found[0].line == line
    assert str(tmp_path / "case.yaml") + f":{line}: {key}: " in str(exc)


def test_improper_case_is_invalid(tmp_path):
    # T loops on itself forever: no terminal state reachable, discount 1, no horizon
    text = GOOD.replace("  T: {x: {S: 1/2, G: 1/2}, y: G}", "  T: {x: T, y: T}")
    exc = errors(text, tmp_path)
    assert "no terminal state can be reached from T" in str(exc)
    # with a horizon or a discount below 1 it is fine
    load(text.replace("start: S", "start: S\nhorizon: 4"), tmp_path)
    load(text.replace("start: S", "start: S\ndiscount: 0.9"), tmp_path)


def test_sum_must_hold_for_every_theta(tmp_path):
    exc = errors(GOOD.replace("{x: p, y: 1 - p}", "{x: p, y: p}"), tmp_path)
    assert "sum to 1 at the parameter point but not for every theta" in str(exc)


def test_several_problems_reported_together(tmp_path):
    text = GOOD.replace("states: [S, T, G]", "states: [S, T, G, S]").replace(
        "  S: {x: T, y: G}", "  S: {x: U, y: G}").replace("start: S", "start: S\ndiscount: 2")
    exc = errors(text, tmp_path)
    assert len(exc.problems) >= 3
    assert [p.line for p in exc.problems] == sorted(p.line for p in exc.problems)


def test_yaml_syntax_error_has_a_line(tmp_path):
    exc = errors("name: x\nstates: [A\n", tmp_path)
    assert exc.problems[0].line == 3 and "not valid YAML" in str(exc)


def test_duplicate_yaml_key(tmp_path):
    exc = errors(GOOD.replace("  T: {x: 1/4, y: 3/4}", "  T: {x: 1/4, y: 3/4}\n  S: {x: 1, y: 0}"), tmp_path)
    assert any("duplicate key 'S'" in p.message and p.line == 11 for p in exc.problems)


def test_unused_parameter_is_a_warning(tmp_path):
    case = load(GOOD.replace("  p: 1/2", "  p: 1/2\n  spare: 3"), tmp_path)
    assert [w.key for w in case.warnings] == ["parameters.spare"]


def test_malicious_file_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = GOOD.replace("{x: p, y: 1 - p}", "{x: \"__import__('os').system('touch %s')\", y: p}" % marker)
    exc = errors(evil, tmp_path)
    assert not marker.exists()
    assert exc.problems[0].line == 9 and exc.problems[0].key == "policy.S.x"
    assert "__import__('os')" in exc.problems[0].given
    # YAML tags that would construct Python objects are not honoured either
    exc = errors(GOOD.replace("name: tiny", "name: !!python/object/apply:os.system ['touch %s']" % marker),
                 tmp_path)
    assert not marker.exists()


def test_from_dict_matches_yaml(tmp_path):
    import yaml

    data = yaml.safe_load(GOOD)
    data["parameters"]["p"] = 0.5  # a float is read as the exact decimal it prints as
    a, b = load(GOOD, tmp_path), pgverify.Case.from_dict(data)
    assert pgverify.check(a).objective.sympy_expression == pgverify.check(b).objective.sympy_expression
    assert b.point[b.symbol("p")] == sympy.Rational(1, 2)


def test_from_dict_accepts_sympy_expressions():
    p = sympy.Symbol("p", real=True)
    case = pgverify.Case.from_dict({
        "name": "sym", "parameters": {"p": sympy.Rational(1, 3)}, "states": ["S", "G"], "terminal": ["G"],
        "actions": ["a", "b"], "start": "S", "policy": {"S": {"a": p, "b": 1 - p}},
        "transitions": {"S": {"a": "G", "b": "G"}}, "rewards": {"S": {"a": 3 * p}},
    })
    res = pgverify.check(case)
    assert res.objective.sympy_expression == 3 * p**2  # J = p * 3p
    assert res.gradient["p"].value == "2"


@pytest.mark.parametrize("form", ["softmax", "tabular"])
def test_softmax_forms(tmp_path, form):
    policy = "policy: {softmax: tabular}" if form == "tabular" else "policy:\n  softmax:\n    S: {x: p}\n    T: {}"
    text = GOOD.split("policy:")[0] + policy + "\ntransitions:" + GOOD.split("transitions:")[1]
    if form == "tabular":
        text = text.replace("  p: 1/2", "  theta_S_x: 1/2")
    case = load(text, tmp_path)
    s = sum(case.pi["S"].values())
    assert sympy.simplify(s) == 1
    if form == "tabular":
        assert case.parameter_names == ["theta_S_x", "theta_S_y", "theta_T_x", "theta_T_y"]
    res = pgverify.check(case)
    assert res.verified


def test_at_changes_the_point_and_revalidates():
    case = pgverify.load_case(__import__("pathlib").Path(__file__).parent.parent / "cases/short_corridor.yaml")
    assert pgverify.check(case, at={"p": "1/3"}).objective.value == str(sympy.Rational(-15, 1) * 1)  # noqa
    with pytest.raises(CaseFileError, match="outside"):
        case.at({"p": 2})
    with pytest.raises(CaseFileError, match="unknown parameter 'q'"):
        case.at({"q": 1})


ONE_STEP = """\
name: one-step
parameters:
  p: {p}
states: [S, G]
terminal: [G]
actions: [stop, go]
start: S
policy:
  S: {{stop: 1 - p, go: p}}
transitions:
  S: {{stop: G, go: G}}
rewards:
  S: {{stop: {stop}, go: {go}}}
"""


@pytest.mark.parametrize(
    "p, stop, go, key, given",
    [
        ("0", "log(p)", "0", "rewards.S.stop", "log(p)"),  # log(0)
        ("1", "0", "1/(p - 1)", "rewards.S.go", "1/(p - 1)"),  # division by zero at the point
        ("1", "-log(pi)", "1 - log(pi)", "rewards.S.stop", "-log(pi)"),  # entropy bonus where pi = 0
    ],
)
def test_reward_undefined_at_the_point(tmp_path, p, stop, go, key, given):
    shown = "complex infinity: a division by zero or log(0)"
    exc = errors(ONE_STEP.format(p=p, stop=stop, go=go), tmp_path)
    prob = exc.problems[0]
    assert (prob.key, prob.line, prob.given) == (key, 13, given)
    assert f"is not a finite real number at the parameter point (it is {shown})" in prob.message


def test_log_of_one_minus_p_is_symbolic(tmp_path):
    case = load(ONE_STEP.format(p="1/3", stop="-log(1 - p)", go="-log(p)"), tmp_path)
    res = pgverify.check(case, mode="symbolic")
    p = case.symbol("p")
    ref = -(1 - p) * sympy.log(1 - p) - p * sympy.log(p)  # the entropy of the policy
    assert res.verified and res.proof == "symbolic"
    assert abs(sympy.N((res.objective.sympy_expression - ref).subs(p, sympy.Rational(2, 7)), 40)) < 1e-35


def test_tabular_names_must_not_collide(tmp_path):
    text = ("name: clash\nstates: [s, s_x, G]\nterminal: [G]\nactions: {s: [x_y, z], s_x: [y, z]}\n"
            "start: s\npolicy: {softmax: tabular}\ntransitions:\n  s: {x_y: G, z: G}\n  s_x: {y: G, z: G}\n")
    exc = errors(text, tmp_path)
    assert "tabular parameter name 'theta_s_x_y' stands for both ('s', 'x_y') and ('s_x', 'y')" in str(exc)


def test_from_dict_matches_plain_symbols_by_name():
    q = sympy.Symbol("q")  # not declared real: matched by its name
    case = pgverify.Case.from_dict({
        "name": "plain", "parameters": {"q": "1/2"}, "states": ["S", "G"], "terminal": ["G"],
        "actions": ["a", "b"], "start": "S", "policy": {"S": {"a": q, "b": 1 - q}},
        "transitions": {"S": {"a": "G", "b": "G"}}, "rewards": {"S": {"a": 1}},
    })
    assert pgverify.check(case).gradient["q"].value == "1"


def test_pi_in_a_deterministic_reward_is_one(tmp_path):
    text = ("name: det\nparameters: {k: 1/2}\nstates: [S, G]\nterminal: [G]\nstart: S\n"
            "policy: {deterministic: {S: k}}\ntransitions: {S: G}\nrewards: {S: 2*pi - a**2}\n")
    res = pgverify.check(load(text, tmp_path))
    assert res.objective.value == "7/4" and res.gradient["k"].value == "-1"  # J = 2 - k^2
