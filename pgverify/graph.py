"""networkx views of a case: the support graph, reachability, properness, path counts."""
from __future__ import annotations

import networkx as nx
import sympy

from .model import Case

__all__ = ["support_graph", "reachable_states", "improper_states", "count_trajectories", "is_acyclic"]


def _positive_at_point(case: Case, e: sympy.Expr) -> bool:
    # xreplace of the symbols that occur: subs with the whole point is slow when there are many
    # parameters (CliffWalking's 188 tabular logits: 4.5 s)
    v = e.xreplace({s: case.point[s] for s in e.free_symbols if s in case.point}) if e.free_symbols else e
    if v.is_zero:
        return False
    return bool(sympy.N(v, 50) > 0)


def support_graph(case: Case, at_point: bool = False) -> nx.MultiDiGraph:
    """The directed graph of steps s -(a)-> s_next whose pi and P are not zero.

    With ``at_point`` an edge needs pi > 0 and P > 0 at the parameter point;
    otherwise it needs pi and P to be not identically zero (the support for some theta).
    Nodes are states; ``start`` holds the support of rho0.
    """
    g = nx.MultiDiGraph()
    g.add_nodes_from(case.states)
    for s in case.nonterminal:
        for a in case.actions[s]:
            p_a = case.pi[s].get(a)
            if p_a is None or (at_point and not _positive_at_point(case, p_a)):
                continue
            for s2, prob in case.P[s].get(a, {}).items():
                if at_point and not _positive_at_point(case, prob):
                    continue
                g.add_edge(s, s2, key=a)
    g.graph["start"] = [s for s, e in case.rho0.items() if not at_point or _positive_at_point(case, e)]
    return g


def reachable_states(case: Case, at_point: bool = False) -> set:
    """States reachable from the start's support (including the start states)."""
    g = support_graph(case, at_point)
    out = set(g.graph["start"])
    for s in g.graph["start"]:
        out |= nx.descendants(g, s)
    return out


def improper_states(case: Case) -> list:
    """Reachable non-terminal states from which no terminal state can be reached (at the point)."""
    g = support_graph(case, at_point=True)
    reach = set(g.graph["start"])
    for s in g.graph["start"]:
        reach |= nx.descendants(g, s)
    can_end = set(case.terminal)
    rg = g.reverse(copy=False)
    for t in case.terminal:
        can_end |= nx.descendants(rg, t)
    return [s for s in case.states if s in reach and s not in case.terminal and s not in can_end]


def is_acyclic(case: Case) -> bool:
    """True when the reachable part of the (symbolic) support graph has no cycle."""
    g = support_graph(case)
    reach = reachable_states(case)
    return nx.is_directed_acyclic_graph(nx.DiGraph(g.subgraph(reach)))


def count_trajectories(case: Case, max_length: int | None) -> int | None:
    """Exact number of (state, action, next state) paths the trajectory engine would enumerate.

    Counts paths that start in the start's support and stop at a terminal state or
    after ``max_length`` steps.  Returns None when the count is infinite (a cycle
    and no length limit).
    """
    g = support_graph(case)
    branches = {s: [] for s in case.states}
    for s, s2, _a in g.edges(keys=True):
        branches[s].append(s2)
    if max_length is None:
        if not is_acyclic(case):
            return None
        order = list(nx.topological_sort(nx.DiGraph(g)))
        ways = {}
        for s in reversed(order):
            ways[s] = 1 if not branches[s] else sum(ways[s2] for s2 in branches[s])
        return sum(ways[s] for s in g.graph["start"])
    ways = {s: 1 for s in case.states}  # paths of length 0 from s
    for _ in range(max_length):
        ways = {s: (1 if not branches[s] else sum(ways[s2] for s2 in branches[s])) for s in case.states}
    return sum(ways[s] for s in g.graph["start"])
