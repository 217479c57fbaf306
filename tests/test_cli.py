"""The command line: exit statuses, JSON fields (a contract), errors without tracebacks."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from pgverify.cli import main

from .conftest import CASES

JSON_FIELDS = {"case", "parameters", "at", "objective", "gradient", "methods", "not_run", "agree", "proof",
               "verified"}


def run(*args):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_check_json_fields():
    code, out, _ = run("check", str(CASES / "short_corridor.yaml"), "--json")
    assert code == 0
    data = json.loads(out)
    assert JSON_FIELDS <= set(data)
    assert data["case"] == "short-corridor" and data["parameters"] == ["p"] and data["at"] == {"p": "1/2"}
    assert data["objective"] == {"expression": "-2*(p - 2)/(p*(p - 1))", "value": "-12", "float": -12.0}
    assert data["gradient"]["p"]["value"] == "8" and data["gradient"]["p"]["float"] == 8.0
    assert set(data["methods"]) == {"bellman", "trajectory", "occupancy"}
    assert data["methods"]["bellman"] == {"p": 8.0} and data["methods"]["occupancy"] == {"p": 8.0}
    assert data["agree"] is True and data["verified"] is True and data["proof"] == "symbolic"
    assert data["not_run"] == {}


def test_several_cases_give_a_list():
    code, out, _ = run("check", str(CASES / "short_corridor.yaml"), str(CASES / "entropy_bonus.yaml"), "--json")
    assert code == 0
    data = json.loads(out)
    assert [d["case"] for d in data] == ["short-corridor", "entropy-bonus"]


def test_at_point_and_at_values():
    code, out, _ = run("check", str(CASES / "short_corridor.yaml"), "--json", "--at", "p=1/3", "--at-point")
    data = json.loads(out)
    assert code == 0 and data["proof"] == "exact-at-point" and data["objective"]["expression"] is None
    assert data["objective"]["value"] == "-15"  # 2 (5/3) / ((1/3)(-2/3))
    assert data["at"] == {"p": "1/3"}


def test_frozenlake_at_point_by_default():
    code, out, _ = run("check", str(CASES / "frozenlake_4x4.yaml"), "--json")
    data = json.loads(out)
    assert code == 0 and data["proof"] == "exact-at-point" and len(data["parameters"]) == 44
    assert data["methods"]["trajectory"] is None and "trajectory" in data["not_run"]


def test_terminal_summary():
    code, out, _ = run("check", str(CASES / "short_corridor.yaml"))
    assert code == 0
    assert "VERIFIED" in out and "J = -12" in out and "symbolic" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--at", "q=1"], "unknown parameter 'q'"),
        (["--at", "p"], "--at expects NAME=VALUE, got 'p'"),
        (["--at", "p=2"], "probability 2 outside [0, 1] at the parameter point"),
        (["--at", "p=__import__('os')"], "call not allowed"),
        (["--symbolic", "--at-point"], "--symbolic and --at-point exclude each other"),
    ],
)
def test_bad_usage_exits_2(args, message):
    code, out, err = run("check", str(CASES / "short_corridor.yaml"), *args)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


def test_invalid_file_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nstates: [S, G]\nterminal: [G]\nactions: [x]\nstart: S\n"
                   "policy:\n  S: {x: 1}\ntransitions:\n  S: {x: H}\n")
    # a real process, so that we see exactly what a user sees
    proc = subprocess.run([sys.executable, "-m", "pgverify.cli", "check", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{bad}:9: transitions.S.x: leads to undeclared state 'H'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_one_invalid_file_stops_the_run(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\n")
    code, out, err = run("check", str(CASES / "short_corridor.yaml"), str(bad), "--json")
    assert code == 2 and out == ""
    assert "the field 'states' is required" in err


def test_missing_file_exits_2():
    code, out, err = run("check", "no/such/case.yaml")
    assert code == 2 and "file not found" in err


def test_disagreement_exits_1(monkeypatch):
    import sympy

    from pgverify.engines import ENGINES, occupancy

    def wrong(case, alg, **kw):
        res = occupancy(case, alg, **kw)
        res.J = res.J + alg.of(sympy.Integer(1))
        return res

    monkeypatch.setitem(ENGINES, "occupancy", wrong)
    code, out, _ = run("check", str(CASES / "short_corridor.yaml"))
    assert code == 1 and "DISAGREE" in out and "bellman vs occupancy on J" in out


def test_monte_carlo_json_fields():
    code, out, _ = run("check", str(CASES / "finite_horizon_chain.yaml"), "--json", "--episodes", "4000",
                       "--seed", "3", "--estimators", "reinforce,group_mean")
    assert code == 0
    mc = json.loads(out)["monte_carlo"]
    assert {"episodes", "seed", "estimators", "consistent"} <= set(mc)
    assert mc["episodes"] == 4000 and mc["seed"] == 3 and set(mc["estimators"]) == {"reinforce", "group_mean"}
    e = mc["estimators"]["group_mean"]
    assert {"unbiased", "exact_mean", "exact_variance", "sample_mean", "stderr", "z", "consistent"} <= set(e)
    assert e["unbiased"] is False and e["exact_mean"]["q"] == pytest.approx(25 / 48)  # see test_estimators
    assert mc["estimators"]["reinforce"]["exact_mean"]["q"] == pytest.approx(50 / 81)
    code, out, _ = run("check", str(CASES / "finite_horizon_chain.yaml"), "--json", "--no-mc")
    assert "monte_carlo" not in json.loads(out)


def test_unknown_estimator_exits_2():
    code, out, err = run("check", str(CASES / "short_corridor.yaml"), "--estimators", "reinforce,magic")
    assert code == 2 and "unknown estimator(s) magic" in err


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_plot_is_written(tmp_path, suffix):
    pytest.importorskip("matplotlib")
    out = tmp_path / f"conv.{suffix}"
    code, _, err = run("check", str(CASES / "entropy_bonus.yaml"), "--episodes", "2000", "--plot", str(out))
    assert code == 0, err
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG") if suffix == "png" else b"<svg" in data[:2000]


def test_plot_needs_a_known_suffix_and_sampling(tmp_path):
    code, _, err = run("check", str(CASES / "entropy_bonus.yaml"), "--plot", str(tmp_path / "x.pdf"))
    assert code == 2 and "--plot expects a .png or .svg file name" in err
    code, _, err = run("check", str(CASES / "entropy_bonus.yaml"), "--no-mc", "--plot", str(tmp_path / "x.png"))
    assert code == 2 and "--plot needs the Monte Carlo checks" in err


def test_cross_check_with_storm():
    pytest.importorskip("stormpy")
    code, out, _ = run("check", str(CASES / "short_corridor.yaml"), "--no-mc", "--cross-check", "storm", "--json")
    assert code == 0, out
    cc = json.loads(out)["cross_check"]["storm"]
    assert cc["agrees_symbolically"] and cc["agrees_at_point"]
    assert cc["storm_value"] == "-12"  # J(1/2) = 2(2 - p)/(p(p - 1)) = -12 (Sutton & Barto, Example 13.1)
    code, out, _ = run("check", str(CASES / "short_corridor.yaml"), "--no-mc", "--cross-check", "storm")
    assert code == 0 and "agrees with pgverify as a rational function and at the point" in " ".join(out.split())


def test_cross_check_refuses_a_softmax_with_the_places():
    pytest.importorskip("stormpy")
    code, out, err = run("check", str(CASES / "two_state_softmax.yaml"), "--no-mc", "--cross-check", "storm")
    assert code == 2 and "Traceback" not in err and out == ""
    assert "two_state_softmax.yaml:17: policy.A.stay: not a rational function" in err


def test_export_and_show_are_commands():
    code, out, _ = run("export", str(CASES / "short_corridor.yaml"), "--format", "prism")
    assert code == 0 and "dtmc" in out, out
    code, out, _ = run("show", str(CASES / "short_corridor.yaml"), "--format", "dot")
    assert code == 0 and "digraph" in out
