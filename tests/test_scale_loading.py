"""Large tabular cases: shared expressions, the C parser's tree, refused files, the graph at scale."""
import importlib.util
import os
import sys
from pathlib import Path

import networkx as nx
import pytest
import sympy
import yaml
from click.testing import CliRunner

import pgverify
from pgverify import casefile, graph
from pgverify.cli import main
from pgverify.errors import CaseFileError

from .conftest import CASES

ROOT = Path(__file__).resolve().parent.parent


def _benchmark():
    spec = importlib.util.spec_from_file_location("load_benchmark", ROOT / "benchmarks" / "load_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("load_benchmark", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    bench = _benchmark()
    mdp = bench.generate(2000, seed=3)
    path = tmp_path_factory.mktemp("scale") / "random_2000.yaml"
    path.write_text(bench.case_text(mdp, "random-2000"))
    return bench, mdp, pgverify.load_case(path)


def test_generated_case_loads_with_the_right_rows(generated):
    bench, mdp, case = generated
    assert len(case.states) == 2001 and case.terminal == frozenset({"T"}) and case.gamma == sympy.Rational(19, 20)
    assert case.policy_form == "tabular"
    assert len(case.parameters) == sum(len(a) for a in mdp["actions"].values())
    bench.spot_check(case, mdp, seed=3)
    for s in ("s0", "s1234", "s1999"):
        for a, row in mdp["P"][s].items():
            assert case.P[s][a] == {s2: sympy.Rational(p.numerator, p.denominator) for s2, p in row.items()}
        names = [f"theta_{s}_{a}" for a in mdp["actions"][s]]
        logits = [case.symbol(n) for n in names]
        total = sum(sympy.exp(x) for x in logits)
        for a, x in zip(mdp["actions"][s], logits):
            assert case.pi[s][a] == sympy.exp(x) / total
            assert case.pi[s][a].xreplace(case.point) == sympy.Rational(1, len(logits))


def test_equal_texts_give_the_same_object(generated):
    _, _, case = generated
    seen = {}
    for s, by_a in case.P.items():
        for a, row in by_a.items():
            for s2, e in row.items():
                first = seen.setdefault(e, e)
                assert first is e, (s, a, s2)
    assert len(seen) <= 8  # k/8 for k = 1..7 and 1
    rewards = {}
    for by_a in case.r.values():
        for row in by_a.values():
            for e in row.values():
                assert rewards.setdefault(e, e) is e


def test_same_text_same_object_in_a_small_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: c\nparameters: {p: 1/2}\nstates: [S, T, G]\nterminal: [G]\nactions: [x, y]\n"
                    "start: S\npolicy:\n  S: {x: p/2, y: 1 - p/2}\n  T: {x: p/2, y: 1 - p/2}\n"
                    "transitions:\n  S: {x: {T: 1/4, G: 3/4}, y: {T: 1/4, G: 3/4}}\n  T: {x: {S: 1/4, G: 3/4}, y: G}\n")
    case = pgverify.load_case(path)
    assert case.P["S"]["x"]["T"] is case.P["T"]["x"]["S"] is case.P["S"]["y"]["T"]
    assert case.pi["S"]["x"] is case.pi["T"]["x"]


def test_dict_numbers_are_shared_and_exact():
    case = pgverify.Case.from_dict({
        "name": "d", "states": ["S", "T", "G"], "terminal": ["G"], "actions": ["x"], "start": "S",
        "policy": {"S": {"x": 1}, "T": {"x": 1}},
        "transitions": {"S": {"x": {"T": 0.1, "G": 0.9}}, "T": {"x": {"S": 0.1, "G": 0.9}}}})
    assert case.P["S"]["x"]["T"] == sympy.Rational(1, 10)
    assert case.P["S"]["x"]["T"] is case.P["T"]["x"]["S"]


def test_tabular_softmax_is_sympys_own():
    names = ["theta_s1_a", "theta_s1_B", "theta_s1_a0", "theta_s1_10", "theta_s1_9", "théta"]
    logits = {n: sympy.Symbol(n, real=True) for n in names}
    fast, slow = casefile._tabular_softmax(logits, names), casefile._softmax(logits, names)
    assert casefile._fast_softmax_ok()
    for n in names:
        assert fast[n] == slow[n] and sympy.srepr(fast[n]) == sympy.srepr(slow[n]) and hash(fast[n]) == hash(slow[n])
        assert fast[n].diff(logits[n]) == slow[n].diff(logits[n])
    one = {"only": sympy.Symbol("t", real=True)}
    assert casefile._tabular_softmax(one, ["only"]) == {"only": 1}


def _tree(node):
    if node.kind == "map":
        return ("map", node.line, [(_tree(k), _tree(v)) for k, v in node.value])
    if node.kind == "seq":
        return ("seq", node.line, [_tree(v) for v in node.value])
    return ("scalar", node.line, node.value, node.text, node.tag)


@pytest.mark.parametrize("path", sorted(CASES.glob("*.yaml")) + sorted((ROOT / "docs" / "examples").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_c_parser_tree_is_the_python_parsers(path):
    text = path.read_text()
    try:
        slow = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        with pytest.raises(CaseFileError):
            casefile._compose(text, str(path))
        return
    fast = casefile._compose(text, str(path))
    assert _tree(fast) == _tree(casefile._from_yaml_node(slow))


def test_anchors_aliases_and_refusals(tmp_path):
    text = "name: a\nx: &r [1, 2]\ny: *r\n"
    tree = casefile._compose(text, None)
    assert tree.value[1][1] is tree.value[2][1]
    with pytest.raises(CaseFileError, match="alias"):
        casefile._compose("name: a\nx: &r [1, *r]\n", None)
    with pytest.raises(CaseFileError, match="found another document"):
        casefile._compose("name: a\n---\nname: b\n", None)


def run(*args):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused(tmp_path):
    fifo = tmp_path / "case.yaml"
    os.mkfifo(fifo)
    code, _, err = run("check", str(fifo))
    assert code == 2 and "not a regular file (a pipe): only regular files are read" in err
    assert "Traceback" not in err


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_device_is_refused():
    code, _, err = run("check", "/dev/zero")
    assert code == 2 and "not a regular file (a device)" in err


def test_directory_is_refused(tmp_path):
    code, _, err = run("check", str(tmp_path))
    assert code == 2 and "not a regular file (a directory)" in err


def test_oversized_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(casefile, "MAX_FILE_BYTES", 10**6)
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (2 * 10**6) + "\nname: big\n")
    code, _, err = run("check", str(path))
    assert code == 2 and "the file is 2.0 MB, larger than the limit of 1 MB for a case file" in err
    assert "200 MB" in (ROOT / "docs" / "case-format.md").read_text()
    assert casefile.MAX_FILE_BYTES == 10**6 and pgverify.casefile.MAX_FILE_BYTES == 10**6


def test_the_limit_is_200_mb():
    assert casefile.MAX_FILE_BYTES == 200 * 10**6


def test_crlf_file_loads(tmp_path):
    path = tmp_path / "crlf.yaml"
    path.write_bytes((CASES / "short_corridor.yaml").read_bytes().replace(b"\n", b"\r\n"))
    assert pgverify.load_case(path).name == "short-corridor"


# -- the graph ------------------------------------------------------------------------------
def _reference_reachable(case, at_point=False):
    g = nx.MultiDiGraph()
    g.add_nodes_from(case.states)
    for s in case.nonterminal:
        for a in case.actions[s]:
            p_a = case.pi[s].get(a)
            if p_a is None or (at_point and not graph._positive_at_point(case, p_a)):
                continue
            for s2, prob in case.P[s].get(a, {}).items():
                if not at_point or graph._positive_at_point(case, prob):
                    g.add_edge(s, s2, key=a)
    start = [s for s, e in case.rho0.items() if not at_point or graph._positive_at_point(case, e)]
    out = set(start)
    for s in start:
        out |= nx.descendants(g, s)
    return g, out


@pytest.mark.parametrize("path", sorted(CASES.glob("*.yaml")), ids=lambda p: p.name)
def test_graph_matches_networkx(path):
    case = pgverify.load_case(path)
    for at_point in (False, True):
        g, reach = _reference_reachable(case, at_point)
        assert graph.reachable_states(case, at_point) == reach
        mine = graph.support_graph(case, at_point)
        assert sorted(mine.edges(keys=True)) == sorted(g.edges(keys=True))
    g, _ = _reference_reachable(case, True)
    can_end = set(case.terminal)
    for t in case.terminal:
        can_end |= nx.ancestors(g, t)
    _, reach = _reference_reachable(case, True)
    assert graph.improper_states(case) == [s for s in case.states if s in reach and s not in can_end]


def _case_with_unreachable_cycle():
    return pgverify.Case.from_dict({
        "name": "island", "states": ["S", "A", "B", "G"], "terminal": ["G"], "actions": ["go"],
        "start": "S", "discount": "1/2", "policy": {s: {"go": 1} for s in "SAB"},
        "transitions": {"S": {"go": "G"}, "A": {"go": "B"}, "B": {"go": "A"}}})


def test_count_trajectories_with_an_unreachable_cycle():
    case = _case_with_unreachable_cycle()
    assert graph.reachable_states(case) == {"S", "G"}
    assert graph.is_acyclic(case)
    assert graph.count_trajectories(case, None) == 1
    assert graph.count_trajectories(case, 5) == 1
    res = pgverify.check(case)
    assert res.verified


def test_count_trajectories_counts():
    case = pgverify.load_case(CASES / "short_corridor.yaml")
    assert graph.count_trajectories(case, None) is None  # a cycle
    # against the original recursion over every state
    g = graph.support_graph(case)
    branches = {s: [s2 for _, s2 in g.out_edges(s)] for s in case.states}
    for length in (1, 2, 5, 9):
        ways = {s: 1 for s in case.states}
        for _ in range(length):
            ways = {s: (1 if not branches[s] else sum(ways[s2] for s2 in branches[s])) for s in case.states}
        assert graph.count_trajectories(case, length) == sum(ways[s] for s in g.graph["start"])


@pytest.mark.slow
def test_graph_at_ten_thousand_states_is_quick(tmp_path):
    import time

    bench = _benchmark()
    path = tmp_path / "r.yaml"
    path.write_text(bench.case_text(bench.generate(10_000, seed=1), "r"))
    t0 = time.perf_counter()
    case = pgverify.load_case(path)
    assert time.perf_counter() - t0 < 30
    t0 = time.perf_counter()
    reach = graph.reachable_states(case)
    states = [s for s in case.states if s in graph.reachable_states(case)]  # as the engines call it
    graph.improper_states(case)
    graph.is_acyclic(case)
    assert time.perf_counter() - t0 < 30 and set(states) == reach
