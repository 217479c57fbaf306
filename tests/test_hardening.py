"""Regression tests for the hardening issue, one per class of failure: what is called exact is exact
(sums and signs of probabilities checked exactly), every size that can explode is refused before the
work with the limit in the message (exit status 2, no traceback), names that cannot be parameters
are refused once with the reason, and a softmax of a function of theta with log(pi) in the reward
is checked instead of crashing."""
import json

import pytest
from click.testing import CliRunner

import pgverify
from pgverify.cli import main

BASE = """name: t
parameters: PARAMS
states: [S, G]
terminal: [G]
actions: [x, y]
start: S
HORIZON
policy: {S: {x: "X", y: "Y"}}
transitions: {S: {x: G, y: G}}
rewards: {S: {x: "RX", y: "RY"}}
"""


def case_text(X="p", Y="1 - p", RX="1", RY="0", params="{p: 1/2}", horizon=""):
    return (BASE.replace("PARAMS", params).replace("HORIZON", horizon).replace('"X"', f'"{X}"')
            .replace('"Y"', f'"{Y}"').replace('"RX"', f'"{RX}"').replace('"RY"', f'"{RY}"'))


def run(tmp_path, text, *args):
    path = tmp_path / "case.yaml"
    path.write_text(text)
    r = CliRunner().invoke(main, ["check", str(path), "--no-mc", *args])
    assert "Traceback" not in r.output
    return r


# -- exact checks of distributions ------------------------------------------------------------
def test_a_sum_of_one_plus_1e_minus_46_is_refused_exactly(tmp_path):
    r = run(tmp_path, case_text(X="1/2 + 1/10**46", Y="1/2"))
    assert r.exit_code == 2
    assert "probabilities sum to 1" + "0" * 45 + "1/1" + "0" * 46 + ", not 1" in r.output


def test_a_probability_of_minus_1e_minus_60_is_refused_exactly(tmp_path):
    r = run(tmp_path, case_text(X="p - 1/10**60", Y="1 - p + 1/10**60", params="{p: 0}"))
    assert r.exit_code == 2
    assert "probability -1/1" + "0" * 60 + " outside [0, 1] at the parameter point" in r.output


# -- sizes that can explode: refused before the work, with the limit ---------------------------
@pytest.mark.parametrize("reward, message", [
    ("1e5000", "a number with a decimal exponent beyond 1000 in magnitude"),
    ("1e9999999999", "a number with a decimal exponent beyond 1000 in magnitude"),
    ("9" * 5000, "a number of more than 1000 digits"),
    ("(((1/3)**1000)**1000)**1000", "number too large"),
    ("exp(exp(exp(1000)))", "exp of a number beyond 2303 in magnitude"),
    ("2**exp(10)", "a power whose value has more than 1000 digits"),
])
def test_numbers_beyond_the_limits_are_refused_with_the_limit(tmp_path, reward, message):
    r = run(tmp_path, case_text(RX=reward))
    assert r.exit_code == 2, r.output
    assert message in r.output


def test_numbers_within_the_limits_are_computed(tmp_path):
    """exp(1000) (435 digits) as a reward: J = p exp(1000) + (1 - p) 0, dJ/dp = exp(1000)."""
    r = run(tmp_path, case_text(RX="exp(1000)"), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["gradient"]["p"]["value"] == "exp(1000)"


def test_a_horizon_of_a_billion_is_refused_before_the_work(tmp_path):
    r = run(tmp_path, case_text(horizon="horizon: 1000000000"))
    assert r.exit_code == 2
    assert "horizon x states = 1,000,000,000 x 2 is over the limit of 1e+08 state-steps" in r.output


# -- names that cannot be parameters ----------------------------------------------------------
@pytest.mark.parametrize("name, message", [
    ("a", "'a' is reserved for the action of a deterministic policy"),
    ("pi", "'pi' is reserved: in a reward it stands for the probability pi(a|s)"),
    ("exp", "'exp' is the name of a function of the expression language"),
    ("lambda", "'lambda' is a Python keyword, which an expression cannot use as a name"),
    ("_x", "'_x' is not a valid name"),
    ("\uff50", "'\uff50' is written with compatibility characters: expressions read it as 'p'"),
])
def test_a_refused_name_is_said_once_with_its_reason(tmp_path, name, message):
    r = run(tmp_path, case_text(X=name, Y=f"1 - {name}", params=f"{{{name}: 1/2}}"))
    assert r.exit_code == 2
    assert message in r.output
    assert "1 problem" in r.output  # its uses are not reported again as unknown names


def test_a_soft_keyword_is_a_valid_name(tmp_path):
    r = run(tmp_path, case_text(X="match", Y="1 - match", params="{match: 1/2}"))
    assert r.exit_code == 0, r.output


# -- crashes on valid files -----------------------------------------------------------------------
def test_softmax_of_sin_theta_with_an_entropy_bonus_is_checked(tmp_path):
    """pi(x) = sigmoid(sin t) and the reward -log(pi): J = H(pi) (the entropy), checked symbolically
    (the log of a softmax with sin(t) in its logit used to leave sin(t) outside the field)."""
    text = case_text(RX="-log(pi)", RY="-log(pi)").replace('policy: {S: {x: "p", y: "1 - p"}}',
                                                             "policy: {softmax: {S: {x: sin(t)}}}")
    r = run(tmp_path, text.replace("{p: 1/2}", "{t: 1/2}"), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["verified"] and data["proof"] == "symbolic"


def test_two_to_a_transcendental_power_is_evaluated_without_recursion():
    """2**t at t = 1/2 (sympy rewrites exp(t log 2) back to 2**t: the evaluators build the exp
    atom directly): J = 2**t / 4 with the reward 2**t on x and p = 1/4... here J = p 2**t."""
    case = pgverify.Case.from_dict({"name": "pow", "parameters": {"p": "1/4", "t": "1/2"}, "states": ["S", "G"],
                                    "terminal": ["G"], "actions": ["x", "y"], "start": "S",
                                    "policy": {"S": {"x": "p", "y": "1 - p"}}, "transitions": {"S": {"x": "G", "y": "G"}},
                                    "rewards": {"S": {"x": "2**t"}}})
    for mode in ("symbolic", "at-point", "certified"):
        res = pgverify.check(case, mode=mode)
        assert res.verified, mode
        assert abs(res.objective.float - 2 ** 0.5 / 4) < 1e-15, mode


# -- command line and API: wrong types and long texts -------------------------------------------
def test_wrong_types_get_a_case_file_error_saying_what_was_expected():
    for bad in (None, 123):
        with pytest.raises(pgverify.CaseFileError, match="expected the path of a case file"):
            pgverify.load_case(bad)
    with pytest.raises(pgverify.CaseFileError, match="expected the path of a case file"):
        pgverify.check(None)
    case = pgverify.load_case("cases/short_corridor.yaml")
    with pytest.raises(pgverify.CaseFileError, match="expected a mapping of parameter names to values, got list"):
        case.at([1])


def test_numpy_scalars_are_numbers():
    """A float64 is read as the decimal it prints (0.1 -> 1/10), an int64 as its integer."""
    np = pytest.importorskip("numpy")
    case = pgverify.Case.from_dict({
        "name": "np", "parameters": {"p": "1/3"}, "states": ["S", "G"], "terminal": ["G"], "actions": ["x", "y"],
        "start": "S", "policy": {"S": {"x": "p", "y": "1 - p"}}, "transitions": {"S": {"x": "G", "y": "G"}},
        "rewards": {"S": {"x": np.float64(0.1), "y": np.int64(2)}}})
    import sympy

    assert case.r["S"]["x"]["G"] == sympy.Rational(1, 10) and case.r["S"]["y"]["G"] == 2


def test_a_negative_seed_is_a_usage_error():
    r = CliRunner().invoke(main, ["check", "cases/short_corridor.yaml", "--seed", "-1"])
    assert r.exit_code == 2 and "-1 is not in the range x>=0" in r.output


def test_a_flat_sum_of_250_terms_is_breadth_not_depth():
    from pgverify.expr import parse_expression

    assert parse_expression(" + ".join(["1"] * 250)) == 250
    assert parse_expression("1 - 2 - 3") == -4 and parse_expression("8/2/2") == 2


def test_long_texts_are_cut_in_messages():
    """A state name of 10^6 characters made a 4 MB message; each quoted text is cut at 200, each
    characters of a message (with its length), each hint at 500."""
    d = {"name": "c", "states": ["S" * 10**6, "G"], "terminal": ["G"], "actions": ["x"], "start": "T",
         "policy": {"S": {"x": 1}}, "transitions": {"S": {"x": "G"}}}
    with pytest.raises(pgverify.CaseFileError) as err:
        pgverify.Case.from_dict(d)
    assert len(str(err.value)) < 20_000
    assert "characters)" in str(err.value)  # a cut text says how long it was


def test_a_root_of_huge_order_is_refused():
    """The mutation fuzzer's find: -a**1e-308 in a deterministic case divided by zero in the field."""
    from pgverify.errors import ExpressionError
    from pgverify.expr import parse_expression
    import sympy

    with pytest.raises(ExpressionError, match="a root of order above 1000"):
        parse_expression("a**1e-308", {"a": sympy.Symbol("a")})


# -- sampling never passes what it cannot compute --------------------------------------------------
def test_a_value_beyond_float64_skips_sampling_with_the_reason(tmp_path):
    """The reward exp(710) > 1.8e308: the exact results stand (J = p exp(710)), sampling is skipped."""
    path = tmp_path / "ovf.yaml"
    path.write_text(case_text(RX="exp(710)"))
    out = CliRunner().invoke(main, ["check", str(path), "--json", "--episodes", "1000"])
    assert out.exit_code == 0 and "Traceback" not in out.output, out.output
    data = json.loads(out.stdout)
    assert data["objective"]["value"] == "exp(710)/2" and "monte_carlo" not in data
    assert any("Monte Carlo skipped: sampling works in float64" in w for w in data["warnings"])


def test_an_overflowing_sample_is_inconclusive_not_a_pass(tmp_path):
    """Rewards of exp(700) (about 1e304) over 40 steps: returns near 1e306, whose squares overflow
    float64; every test is inconclusive with the reason, and nothing passes silently."""
    text = (BASE.replace("PARAMS", "{p: 1/2}").replace("HORIZON", "horizon: 40")
            .replace('transitions: {S: {x: G, y: G}}', 'transitions: {S: {x: S, y: S}}')
            .replace('"X"', '"p"').replace('"Y"', '"1 - p"').replace('"RX"', '"exp(700)"').replace('"RY"', '"exp(700)"'))
    path = tmp_path / "big.yaml"
    path.write_text(text)
    out = CliRunner().invoke(main, ["check", str(path), "--json", "--episodes", "1000", "--estimators", "reinforce"])
    assert "Traceback" not in out.output, out.output
    mc = json.loads(out.stdout)["monte_carlo"]
    entry = mc["estimators"]["reinforce"]
    assert entry["inconclusive"] == ["p"] and "not_finite" in entry["inconclusive_reasons"], entry


def test_the_gamma_dropped_mean_of_a_continuing_task_is_not_computed_from_a_singular_system(tmp_path):
    """The recycling robot (Sutton & Barto 2018, Example 3.3) as a continuing task at an irrational
    point: the undiscounted visits are infinite, I - P_pi is singular, and the 60-digit solve gave an
    exact mean of -4.8e+60 (NOT VERIFIED).  The support graph decides it now: no exact mean."""
    from pgverify.montecarlo.moments import gamma_dropped_mean

    path = tmp_path / "robot.yaml"
    path.write_text("""name: recycling-robot
parameters: {t: 1/2}
states: [high, low]
actions: {high: [search, wait], low: [search, wait, recharge]}
start: high
discount: 99/100
policy: {softmax: {high: {search: t}, low: {search: t, recharge: 1}}}
transitions:
  high: {search: {high: 7/10, low: 3/10}, wait: high}
  low: {search: {low: 6/10, high: 4/10}, wait: low, recharge: high}
rewards:
  high: {search: 2, wait: 1}
  low: {search: {low: 2, high: -3}, wait: 1, recharge: 0}
""")
    case = pgverify.load_case(path)
    assert gamma_dropped_mean(case) is None
    out = CliRunner().invoke(main, ["check", str(path), "--json", "--episodes", "2000"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    # the uncut estimator has no exact mean; the sampled one, cut at L steps, has that of horizon L (its
    # value is checked against an enumeration in tests/montecarlo/test_identical_and_power.py)
    nd = data["monte_carlo"]["estimators"]["no_discount_weighting"]
    L = data["monte_carlo"]["max_steps"]
    assert data["verified"] and nd["exact_moments_cut_at"] == L and f"over the {L} steps" in nd["exact_mean_from"]
    assert abs(nd["exact_mean"]["t"]) < 1e4 and nd["consistent"] is True


def test_hexadecimal_literals_are_refused():
    from pgverify.errors import ExpressionError
    from pgverify.expr import parse_expression

    for text in ("0x10", "0o17", "0b101", "1 + 0X1F"):
        with pytest.raises(ExpressionError, match="only decimal numbers are allowed"):
            parse_expression(text)


@pytest.mark.parametrize("desc, message", [
    ("SXQ,,", "invalid tile 'X' at row 1, column 2"),
    ("SXQ,,", "row 2 of the map is empty"),
    ("SFFF,FHF", "the rows have different lengths (3, 4)"),
    ("SF,FH", "the map needs a start tile S and a goal tile G"),
])
def test_a_custom_frozenlake_map_is_checked_tile_by_tile(desc, message):
    pytest.importorskip("gymnasium")
    from pgverify.importers.gymnasium import _desc_rows
    from pgverify.errors import PgVerifyError

    with pytest.raises(PgVerifyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _desc_rows(desc)


# -- terminal output at 80 columns and wider ---------------------------------------------------------
LONG = "a_parameter_with_a_name_much_longer_than_any_terminal_column_of_the_table_for_the_action_"
NAMES_CASE = f"""name: long-names
parameters: {{{LONG}left: 0, {LONG}right: 1/2, {LONG}up: 1/3}}
states: [S, G]
terminal: [G]
actions: [left, right, up]
start: S
policy: {{softmax: {{S: {{left: {LONG}left, right: {LONG}right, up: {LONG}up}}}}}}
transitions: {{S: {{left: G, right: G, up: G}}}}
rewards: {{S: {{left: 1, right: 2, up: 3}}}}
"""


def _rendered(res, width):
    import io

    from rich.console import Console

    from pgverify.cli import render_summary

    console = Console(width=width, file=io.StringIO(), color_system=None, record=True)
    render_summary(res, console)
    return console.export_text()


def _cases_for_layout(tmp_path):
    path = tmp_path / "names.yaml"
    path.write_text(NAMES_CASE)
    out = []
    for case in (pgverify.load_case("cases/short_corridor.yaml"), pgverify.load_case("cases/two_state_softmax.yaml"),
                 pgverify.load_case("cases/frozenlake_4x4.yaml"), pgverify.load_case(path)):
        out.append(pgverify.check(case, monte_carlo={"episodes": 2000, "seed": 0}))
    return out


@pytest.mark.parametrize("width", [80, 120])
def test_summaries_fit_the_terminal_and_never_split_a_number_or_a_name(tmp_path, width):
    """At 80 and 120 columns (rich's Console, as COLUMNS sets it): no line is wider than the terminal;
    every number of the tables is printed whole on its own row (the float of each gradient row, the z of
    each estimator's row, formatted as the table formats them); every parameter name in the gradient
    table is whole or cut with an explicit ellipsis, and no two rows show the same name."""
    for res in _cases_for_layout(tmp_path):
        text = _rendered(res, width)
        lines = text.splitlines()
        # (a line may be wider only to hold a name that is itself about as wide as the terminal: in an
        # expression a name is never cut)
        wide = [ln for ln in lines if len(ln) > width and max(map(len, ln.split())) <= width - 10]
        assert not wide, (res.case, wide)
        # the gradient table: the rows after its rule, one per parameter (up to 40)
        head = lines.index("gradient of J at the point")
        header = lines[head + 1]
        rows = lines[head + 3: head + 3 + min(len(res.parameters), 40)]
        shown = [row.split()[0] for row in rows]
        assert len(set(shown)) == len(shown), shown
        for (p, q), row, first in zip(res.gradient.items(), rows, shown):
            assert first == p or ("…" in first and first.split("…")[0] == p[:len(first.split("…")[0])]
                                  and p.endswith(first.split("…")[1])), (p, first)
            if "float" in header.split():
                assert f"{q.float:.12g}" in row.split(), (p, row)
        # the Monte Carlo table: each estimator's row holds its z whole
        mc = res.monte_carlo
        for name, e in mc.estimators.items():
            row = next((ln for ln in lines if ln.startswith(name + " ")), None)
            if row is None:  # stacked: the name alone on its line, the items below
                continue
            z = e["z"][e["shown_parameter"]]
            assert f"{z:+.2f}" in row.split(), (name, row)


def test_a_narrow_terminal_stacks_the_tables_and_keeps_names_whole(tmp_path):
    """At 40 columns the tables do not fit even with every droppable column left out: each row becomes a
    block of 'label value' items, wrapped between items; an estimator's name is whole."""
    res = _cases_for_layout(tmp_path)[1]
    text = _rendered(res, 40)
    assert all(len(line) <= 40 or max(map(len, line.split())) > 30 for line in text.splitlines())
    for name in res.monte_carlo.estimators:
        assert name in text.splitlines()


def test_long_parameter_names_are_cut_with_an_ellipsis_that_keeps_them_apart(tmp_path):
    """Three names of 94-96 characters that differ only at the end: at 80 columns the gradient table
    shows each with an ellipsis, all different; the 'at:' line names the parameters in full or says
    how many more there are."""
    res = _cases_for_layout(tmp_path)[3]
    text = _rendered(res, 80)
    lines = text.splitlines()
    head = lines.index("gradient of J at the point")
    shown = [row.split()[0] for row in lines[head + 3: head + 6]]
    assert all("…" in s for s in shown) and len(set(shown)) == 3
    assert {s.split("…")[1][-5:] for s in shown} == {"_left", "right", "up"[-5:]} or len({s[-4:] for s in shown}) == 3
    at = text.split("\nat:", 1)[1].split("\nJ", 1)[0]
    assert "more (all in --json)" in at or all(p in at for p in res.parameters)


def test_derive_text_wraps_to_the_terminal_without_breaking_words(tmp_path):
    """`derive --format text` with COLUMNS=80: every line fits except a table's rows and a single word
    longer than 80; the words are those of the unwrapped output, in order (nothing split or lost)."""
    runner = CliRunner()
    wide = runner.invoke(main, ["derive", "cases/two_state_softmax.yaml"], env={"COLUMNS": ""})
    narrow = runner.invoke(main, ["derive", "cases/two_state_softmax.yaml"], env={"COLUMNS": "80"})
    assert wide.exit_code == 0 and narrow.exit_code == 0
    assert any(len(line) > 80 for line in wide.output.splitlines())
    assert wide.output.split() == narrow.output.split()
    import re

    blocks = narrow.output.split("\n\n")
    for block in blocks:
        if any(re.match(r"^ *-+( {2,}-+)+ *$", ln) for ln in block.split("\n")):
            continue
        for line in block.split("\n"):
            assert len(line) <= 80 or " " not in line.strip(), line
# -- the deterministic policy gradient uses the engines' zero test -----------------------------------
DPG_SQRT = open("cases/deterministic_policy.yaml").read().replace("default: -a**2/2", "default: -sqrt(a)")


def test_the_dpg_check_uses_the_engines_zero_test(tmp_path):
    """Rewards -sqrt(a) under a = mu(s): the DPG (Silver et al. 2014, Theorem 1) carries sqrt(c*k) where the
    reward family carries c/sqrt(c*k); both are the same function, but the field treats sqrt(k) and
    sqrt(c*k) as independent generators, so its exact test fails.  The engines' comparisons then go to the
    60-digit test, and so must the DPG check (it said agree = false, exit 1, and no line said why)."""
    r = run(tmp_path, DPG_SQRT, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    dc = data["dpg_check"]
    assert dc["agree"] and dc["failed"] == [] and dc["proof"] == "numeric-50-digits"
    assert set(dc["differences"]) == {"k", "c"} and dc["max_difference"] < 1e-50
    # independent: the DPG equals the gradient of the engines to 12 digits (its own expression)
    for p in ("k", "c"):
        assert abs(data["deterministic_policy_gradient"][p]["float"] - data["gradient"][p]["float"]) < 1e-12
    r = run(tmp_path, DPG_SQRT)
    assert ("deterministic policy gradient = dynamics + reward families (proof: numeric-50-digits"
            in " ".join(r.output.split()))


def test_a_dpg_disagreement_says_what_and_by_how_much(tmp_path, monkeypatch):
    """A DPG shifted by 1/1000 on k: exit 1, and a line names the parameter and the difference."""
    import sys

    from pgverify.expr import parse_expression

    check_module = sys.modules["pgverify.check"]

    real = check_module.deterministic_policy_gradient

    def shifted(case, alg, occ):
        values = real(case, alg, occ)
        return [values[0] + alg.of(parse_expression("1/1000")), *values[1:]]

    monkeypatch.setattr(check_module, "deterministic_policy_gradient", shifted)
    r = run(tmp_path, open("cases/deterministic_policy.yaml").read())
    assert r.exit_code == 1
    assert ("disagreement: deterministic policy gradient vs dynamics + reward families on d/dk: "
            "|difference| = 0.001") in " ".join(r.output.split())
    assert "on d/dc" not in r.output


# -- huge and tiny exact numbers: computed and printed in scientific form, or refused up front ----------
def _case(name, old, new):
    text = open(f"cases/{name}.yaml").read()
    assert old in text
    return text.replace(old, new)


def test_a_discount_of_1e_minus_308_is_computed_and_printed_in_scientific_form(tmp_path):
    """The short corridor at gamma = 10^-308 (exact): dJ/dp = 2.5e-925 at p = 1/2, far below float64.
    The terminal shows it from its exact value in scientific form (the float column said 0, the policy
    family was called "zero at this point"), and never prints a number of hundreds of digits."""
    import re

    import sympy

    text = _case("short_corridor", "discount: 1\n", "discount: 1e-308\n")
    data = json.loads(run(tmp_path, text, "--json").output)
    assert data["gradient"]["p"]["float"] == 0.0 and data["gradient"]["p"]["value"] is None  # 1848 digits
    # independent: the corridor's Bellman system (Sutton & Barto 2018, Example 13.1; S1 switched) by sympy
    p, g = sympy.Symbol("p"), sympy.Rational(1, 10**308)
    A = sympy.Matrix([[1 - g * (1 - p), -g * p, 0], [-g * p, 1, -g * (1 - p)], [0, -g * (1 - p), 1]])
    V = A.LUsolve(sympy.Matrix([-1, -1, -1]))
    want = sympy.diff(V[0], p).subs(p, sympy.Rational(1, 2))
    assert sympy.N(want, 3) == sympy.Float("2.50e-925", 3)
    r = run(tmp_path, text)
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert not re.search(r"\d{61}", r.output)  # no number of more than 60 digits printed
    assert "with numbers of up to" in out and "--json prints it" in out
    assert "p - 2.5e-925 0 0 0" in out  # the float column, from the 50 digits (the engines' columns are float64)
    assert "p: 2.5e-925 │ remains" in out and "zero at this point" not in out


def test_a_tiny_discount_does_not_send_factor_into_prime_searches():
    """sympy.factor on polynomials with 300-digit coefficients spent 28 s in nextprime (the two-state
    softmax at discount 1e-308); factoring is cosmetic and skipped beyond 256-bit numbers."""
    import sympy

    from pgverify.printing import FACTOR_BITS, _small_numbers

    x = sympy.Symbol("x")
    assert _small_numbers(x**2 / 3 + 2 ** FACTOR_BITS - 1)
    assert not _small_numbers(x**2 + sympy.Rational(1, 10**308))


def test_the_two_state_softmax_at_a_discount_of_1e_minus_308_is_checked(tmp_path):
    text = _case("two_state_softmax", "discount: 9/10\n", "discount: 1e-308\n")
    data = json.loads(run(tmp_path, text, "--json").output)
    assert data["verified"] and data["proof"] == "symbolic"
    # gamma ~ 0: J is the expected first reward, (1/2)(1/2 * 1) + (1/2)(1/2 * 2 - 1/2 * 1) = 1/2 at theta = phi = 0
    assert abs(data["objective"]["float"] - 0.5) < 1e-15


@pytest.mark.parametrize("name, old, new, atom", [
    ("deterministic_policy", "  k: 1/2\n", "  k: 1e400\n", "exp(-k) is exp(-1.00E+400)"),
    ("deterministic_policy", "  c: 1\n", "  c: 1e400\n", "exp(-2*c*k) is exp(-1.00E+400)"),
    ("deterministic_policy", "  k: 1/2\n", "  k: exp(1000)\n", "exp(-k) is exp(-1.97E+434)"),
    ("two_state_softmax", "  theta: 0 ", "  theta: 1e400 ", "exp(theta) is exp(1.00E+400)"),
    ("two_state_softmax", "  theta: 0 ", "  theta: exp(1000) ", "exp(theta) is exp(1.97E+434)"),
])
def test_exp_of_a_huge_argument_at_the_point_is_refused_up_front(tmp_path, name, old, new, atom):
    """A parameter of 1e400 in sigmoid(a) took 44 s in sympy's evaluation of exp(-10^400); the literal
    exp(1e400) was already refused (2303 = 1000 ln 10): the same limit holds at the parameter point."""
    import time

    t0 = time.perf_counter()
    r = run(tmp_path, _case(name, old, new))
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())
    assert f"exp of a number beyond 2303 in magnitude at the parameter point: {atom}" in out
    assert time.perf_counter() - t0 < 10


def test_exp_at_the_limit_is_computed(tmp_path):
    """sigmoid(2300 k) at k = 1: exp(-2300) is within the limit; J = sigmoid(2300) to 50 digits."""
    import mpmath

    r = run(tmp_path, case_text(X="sigmoid(2300*k)", Y="1 - sigmoid(2300*k)", params="{k: 1}"), "--json")
    assert r.exit_code == 0, r.output
    res = pgverify.check(tmp_path / "case.yaml")
    with mpmath.workdps(60):
        want = 1 / (1 + mpmath.exp(-2300))
        assert abs(mpmath.mpf(res.objective.digits) - want) < mpmath.mpf(10) ** -45


def test_sigmoid_of_a_tiny_multiple_of_the_action_is_computed(tmp_path):
    """sigmoid(1e-60 a) overflowed in fmpz_pow_fmpz; the success probability is 1/2 + a 1e-60 / 4 + ..."""
    text = _case("deterministic_policy", "S0: {S1: sigmoid(a), fail: 1 - sigmoid(a)}",
                 "S0: {S1: sigmoid(1e-60*a), fail: 1 - sigmoid(1e-60*a)}")
    r = run(tmp_path, text, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["verified"]


def test_a_discount_just_below_one_is_not_taken_for_one(tmp_path):
    """gamma = 1 - 10^-60 on a cycle without a terminal state: the return is defined (J = 1/4 / (1 - gamma)
    ... here the discounted sum), and the properness test for gamma = 1 (which nsimplify applied) does not."""
    text = ("name: loop\nparameters: {p: 1/2}\nstates: [S, T]\nactions: [x, y]\nstart: S\n"
            "discount: 1 - 1/10**60\npolicy: {S: {x: p, y: 1 - p}, T: {x: p, y: 1 - p}}\n"
            "transitions: {S: {x: T, y: S}, T: {x: S, y: T}}\nrewards: {S: {x: 1}}\n")
    r = run(tmp_path, text, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["verified"]


# -- YAML: alias bombs, deep nesting and recursive aliases, with the C and the pure-Python parser -------
def _laughs(levels=9, width=9, name="lol"):
    """A 'billion laughs' block: each level an alias list of the level below; width**levels nodes."""
    out = f"x_{name}0: &{name}0 [{', '.join(['lol'] * width)}]\n"
    for i in range(1, levels + 1):
        out += f"x_{name}{i}: &{name}{i} [{', '.join([f'*{name}{i - 1}'] * width)}]\n"
    return out


YAML_BOMBS = {
    "laughs-in-unknown-fields": open("cases/short_corridor.yaml").read() + _laughs(),
    "laughs-as-the-states": open("cases/short_corridor.yaml").read().replace(
        "states: [S0, S1, S2, G]", _laughs(name="s") + "states: *s9"),
    "deep-flow-sequence": open("cases/short_corridor.yaml").read().replace(
        "states: [S0, S1, S2, G]", "states: " + "[" * 5000 + "]" * 5000),
    "deep-flow-mapping": open("cases/short_corridor.yaml").read() + "x: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "deep-block-mapping": open("cases/short_corridor.yaml").read() + "x:\n" + "".join(
        " " * (i + 1) + "a:\n" for i in range(2000)) + " " * 2001 + "1\n",
    "recursive-sequence": open("cases/short_corridor.yaml").read().replace(
        "states: [S0, S1, S2, G]", "states: &r [S0, S1, S2, G, *r]"),
    "recursive-mapping": open("cases/short_corridor.yaml").read().replace(
        "rewards:\n  default: -1", "rewards: &r\n  default: -1\n  S0: *r"),
}
YAML_MESSAGES = {
    "laughs": "YAML aliases expand to more than 1,000,000 nodes (the limit on what aliases may add",
    "deep": "YAML nested more than 100 levels deep (the limit; a case file needs about 6)",
    "recursive": "the YAML alias *r is inside the node it refers to (a recursive structure)",
}


@pytest.mark.parametrize("parser", ["C", "pure-Python"])
@pytest.mark.parametrize("kind", sorted(YAML_BOMBS))
def test_yaml_bombs_and_deep_nesting_are_refused_quickly_with_the_limit(tmp_path, monkeypatch, parser, kind):
    """The issue's alias bomb and a few thousand levels of nesting: exit 2 with the limit named, within
    seconds and without a traceback, with libyaml (CSafeLoader) and with PyYAML's pure-Python parser
    (whose composer recursed into a RecursionError and expanded aliases into 10^9 nodes)."""
    import time

    import yaml

    if parser == "pure-Python":
        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    elif not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML without libyaml")
    t0 = time.perf_counter()
    r = run(tmp_path, YAML_BOMBS[kind])
    assert time.perf_counter() - t0 < 10
    assert r.exit_code == 2, r.output
    assert YAML_MESSAGES[kind.split("-")[0]] in " ".join(r.output.split())


def test_aliases_within_the_limit_are_read_as_written(tmp_path, monkeypatch):
    """An anchored row used for three states: the same case as the file written out, with both parsers."""
    import yaml

    plain = pgverify.load_case("cases/short_corridor.yaml")
    text = open("cases/short_corridor.yaml").read().replace(
        "  S0: {left: 1 - p, right: p}\n  S1: {left: 1 - p, right: p}\n  S2: {left: 1 - p, right: p}\n",
        "  S0: &row {left: 1 - p, right: p}\n  S1: *row\n  S2: *row\n")
    path = tmp_path / "aliased.yaml"
    path.write_text(text)
    for drop_c in (False, True):
        if drop_c:
            monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
        case = pgverify.load_case(path)
        assert case.pi == plain.pi and case.P == plain.P


# -- output paths: one behaviour for every command that writes -------------------------------------
@pytest.mark.parametrize("command", [
    ["derive", "cases/short_corridor.yaml"],
    ["derive", "cases/short_corridor.yaml", "--format", "latex"],
    ["export", "cases/short_corridor.yaml"],
    ["show", "cases/short_corridor.yaml"],
    ["show", "cases/short_corridor.yaml", "--format", "png"],
    ["import", "gymnasium", "FrozenLake-v1", "--map", "4x4"],
])
def test_every_command_refuses_a_missing_output_folder_and_leaves_nothing(tmp_path, command):
    """import -o created missing folders while derive, export and show refused them after the work:
    now every command refuses before any work, with one message, and creates nothing."""
    target = tmp_path / "new" / "deeper" / "out.txt"
    r = CliRunner().invoke(main, [*command, "-o", str(target)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    folder = tmp_path / "new" / "deeper"
    assert r.stderr == (f"pgverify: error: cannot write {target}: the folder {folder} does not exist; pgverify "
                        f"creates no folders (make it first: mkdir -p {folder})\n")
    assert list(tmp_path.iterdir()) == []


def test_write_case_creates_no_folder(tmp_path):
    from pgverify.importers.writer import write_case

    data = {"name": "coin", "parameters": {"p": "1/3"}, "states": ["S", "G"], "terminal": ["G"],
            "actions": ["stop", "go"], "start": "S", "policy": {"S": {"stop": "1 - p", "go": "p"}},
            "transitions": {"S": {"stop": "G", "go": "G"}}, "rewards": {"S": {"go": 1}}}
    with pytest.raises(pgverify.UsageError, match="does not exist; pgverify creates no folders"):
        write_case(data, tmp_path / "missing" / "coin.yaml")
    assert list(tmp_path.iterdir()) == []
    write_case(data, tmp_path / "coin.yaml")
    assert pgverify.load_case(tmp_path / "coin.yaml").name == "coin"


def test_exp_of_a_huge_multiple_is_refused_not_an_overflow_in_the_sum_check(tmp_path):
    """The mutation fuzzer's find (seeds 552 and 953 of tests/fuzz/test_mutations.py): sigmoid(1e400*a)
    made sympy's cancel read exp(1e400*a) as a power of degree 10^400 (fmpz_pow_fmpz: exponent too
    large, a traceback).  The symbolic proof of the row sum gives up; the exact tests refuse the case."""
    text = _case("deterministic_policy", "S1: {goal: sigmoid(2*a), fail: 1 - sigmoid(2*a)}",
                 "S1: {goal: sigmoid(2*a), fail: 1 - sigmoid(1e400*a)}")
    r = run(tmp_path, text)
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())
    assert "exp of a number beyond 2303 in magnitude at the parameter point: exp(-1.000e+400*c*k)" in out


def test_a_trajectory_tail_bound_below_float64_is_rounded_up_not_to_zero():
    """At a discount of 1e-308 the cut trajectory sum's tail is about 1e-4928: the bound said '|J| <= 0'
    (float() rounds to nearest); a bound is rounded up, to the smallest subnormal 2^-1074."""
    import mpmath

    from pgverify.engines.trajectory import _float_up

    assert _float_up(mpmath.mpf("1e-4928")) == 2.0**-1074
    third = mpmath.mpf(1) / 3
    assert _float_up(third) >= third and _float_up(third) - third < 2.0**-53
    text = _case("short_corridor", "discount: 1\n", "discount: 1e-308\n")
    case = pgverify.Case.from_dict(__import__("yaml").safe_load(text))
    res = pgverify.check(case)
    assert res.verified and 0 < res.truncation["trajectory"]["bound"]["J"] <= 1e-320


def test_a_character_yaml_refuses_is_reported_by_line_and_column(tmp_path):
    """Issue 12: a NUL byte was reported by character position ("position 22"); it is now a line and column."""
    from pgverify import CaseFileError, load_case

    path = tmp_path / "nul.yaml"
    path.write_bytes(b"name: x\nstates: [S, G]\x00\nterminal: [G]\n")
    with pytest.raises(CaseFileError) as info:
        load_case(path)
    (problem,) = info.value.problems
    assert problem.line == 2
    assert problem.message == "not valid YAML: the character U+0000 at column 15 is not allowed in YAML"


def test_the_log_of_a_rational_with_a_huge_denominator_is_not_factored_completely(tmp_path):
    """Fuzz mutant 150 (a reference logit log(10**999) in a sequence case): the field split the log of
    pi_ref = 10^999 / (10^999 + 1) into logs of primes, and sympy.factorint(10**999 + 1) did not end.
    Integers over 64 bits are now split by trial division only (pgverify.algebra._factor_integer)."""
    from pgverify.algebra import _factor_integer

    assert _factor_integer(12) == {2: 2, 3: 1}
    assert _factor_integer(2**200 * 3) == {2: 200, 3: 1}
    big = _factor_integer(10**999 + 1)
    prod = 1
    for p, k in big.items():
        prod *= p**k
    assert prod == 10**999 + 1
    text = ("name: one-token\nparameters: {u: 0}\nvocabulary: [A]\nmax_length: 1\nlogits: {A: u}\nreward: 0\n"
            "reference: {A: log(10**999)}\nbeta: 1\n")
    r = run(tmp_path, text, "--no-mc")
    assert r.exit_code == 0, r.output
