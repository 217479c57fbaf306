"""--episodes auto (sampling until the tests are conclusive or the budget is spent) and --max-steps
(episodes cut by the cap make the tests inconclusive, never failed)."""
import json
from pathlib import Path

from click.testing import CliRunner

import pgverify
from pgverify.cli import main
from pgverify.montecarlo.check import AUTO_FIRST, monte_carlo

CASES = Path(__file__).resolve().parents[2] / "cases"


def test_episodes_cut_by_max_steps_make_every_test_inconclusive():
    """short_corridor has no horizon; at 2 steps most episodes are cut before they end, so their
    estimates leave out the rest of the episode: biased, hence inconclusive with the reason."""
    case = pgverify.load_case(CASES / "short_corridor.yaml")
    res = pgverify.check(case)
    mc = monte_carlo(case, res, episodes=2000, seed=0, max_steps=2)
    assert mc.cut > 0 and mc.max_steps == 2
    assert mc.consistent  # nothing failed
    for e in mc.estimators.values():
        if e["exact_mean"] is not None:
            assert set(e["inconclusive"]) == set(case.parameter_names)
            assert "cut at 2 steps" in e["inconclusive_reasons"]["cut"]
            assert e["consistent"] is None


def test_auto_stops_when_every_test_is_conclusive_and_first_batch_is_the_fixed_default():
    case = pgverify.load_case(CASES / "short_corridor.yaml")
    res = pgverify.check(case)
    auto = monte_carlo(case, res, episodes="auto", seed=3)
    assert auto.stopped == "every test is conclusive" and auto.episodes == AUTO_FIRST
    fixed = monte_carlo(case, res, episodes=AUTO_FIRST, seed=3)
    assert auto.estimators["reinforce"]["sample_mean"] == fixed.estimators["reinforce"]["sample_mean"]
    assert auto.to_dict()["episodes_requested"] == "auto"


def test_auto_with_no_budget_stops_after_the_first_batch():
    """FrozenLake 4x4 has rare-event tests left inconclusive at 10,000 episodes; with a budget of 0 s
    the first batch is the smallest (16 groups: the pilot says nothing fits) and sampling stops
    there, saying why."""
    case = pgverify.load_case(CASES / "frozenlake_4x4.yaml")
    res = pgverify.check(case)
    mc = monte_carlo(case, res, episodes="auto", seed=0, budget=0.0, estimators=("reward_to_go",))
    assert mc.episodes == 16 * 8
    assert mc.stopped.startswith("every test is conclusive") or "budget" in mc.stopped


def test_first_auto_batch_is_the_fixed_default_where_it_fits_and_smaller_where_episodes_are_long(tmp_path):
    """The pilot only shrinks the first batch: FrozenLake 4x4 (episodes of about 8 steps) with time
    to spare gets AUTO_FIRST, the same draws as --episodes 10000; a walk whose episodes take about
    3,200 steps gets fewer within 0.2 s (a simple walk on 0..40 reflected at 0 needs 40^2 = 1,600
    moves on average to reach 40 from 0, and this one moves every other step)."""
    from pgverify.montecarlo.check import _first_auto_batch
    from pgverify.montecarlo.sparse import sparse_tabulate

    fl = sparse_tabulate(pgverify.load_case(CASES / "frozenlake_4x4.yaml"))
    assert _first_auto_batch(fl, 0, None, 8, 60.0) == AUTO_FIRST
    n = 40
    walk = {"name": "long-walk", "parameters": {"p": "1/2"}, "states": [f"w{i}" for i in range(n)] + ["end"],
            "terminal": ["end"], "actions": ["stay", "move"], "start": "w0",
            "policy": {f"w{i}": {"stay": "1 - p", "move": "p"} for i in range(n)},
            "transitions": {f"w{i}": {"stay": f"w{i}",
                                      "move": {f"w{max(i - 1, 0)}": "1/2", (f"w{i + 1}" if i + 1 < n else "end"): "1/2"}}
                            for i in range(n)},
            "rewards": {"default": -1}}
    long_case = pgverify.Case.from_dict(walk)
    size = _first_auto_batch(sparse_tabulate(long_case), 0, None, 8, 0.2)
    assert 128 <= size < AUTO_FIRST and size % 8 == 0


def test_cli_episodes_auto_budget_and_max_steps():
    runner = CliRunner()
    out = runner.invoke(main, ["check", str(CASES / "short_corridor.yaml"), "--json", "--budget", "1",
                               "--max-steps", "500"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["monte_carlo"]["episodes_requested"] == "auto" and data["monte_carlo"]["budget"] == 1.0
    bad = runner.invoke(main, ["check", str(CASES / "short_corridor.yaml"), "--episodes", "many"])
    assert bad.exit_code != 0 and "neither a number nor 'auto'" in bad.output
