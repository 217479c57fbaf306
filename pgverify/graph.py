"""Views of a case as a graph: the support graph, reachability, properness, path counts.

The functions work on a compact edge list (state indices in numpy arrays, searched
breadth-first a whole frontier at a time), built once per case and kind of support and kept with the
case (cases are immutable), so that they take seconds at 10**5 states and 10**6
transitions and a repeated call is a lookup.  :func:`support_graph` still gives the
networkx multigraph for callers that want one.
"""
from __future__ import annotations

import weakref

import networkx as nx
import numpy as np
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


class _Edges:
    """The support as arrays: ``src[k] -(act[k])-> dst[k]``, states by index, and the start indices."""

    def __init__(self, case: Case, at_point: bool):
        self.states = list(case.states)
        index = {s: i for i, s in enumerate(self.states)}
        positive: dict = {}  # distinct expression -> positive at the point (each evaluated once)

        def ok(e):
            if not at_point:
                return True
            if e.is_Rational:
                return e.p > 0
            hit = positive.get(e)
            if hit is None:
                hit = positive[e] = _positive_at_point(case, e)
            return hit

        # a softmax is positive wherever it is defined: its logits are real at a valid point
        policy_positive = at_point and case.policy_form == "tabular"
        src, dst, act = [], [], []
        for s in case.nonterminal:
            i = index[s]
            pi_s, P_s = case.pi[s], case.P[s]
            for a in case.actions[s]:
                p_a = pi_s.get(a)
                if p_a is None or not (policy_positive or ok(p_a)):
                    continue
                for s2, prob in P_s.get(a, {}).items():
                    if ok(prob):
                        src.append(i)
                        dst.append(index[s2])
                        act.append(a)
        self.src = np.asarray(src, dtype=np.int64)
        self.dst = np.asarray(dst, dtype=np.int64)
        self.act = act
        self.start = [s for s, e in case.rho0.items() if ok(e)]
        self.start_index = np.asarray([index[s] for s in self.start], dtype=np.int64)
        self.n = len(self.states)
        self._reach = None

    def closure(self, seeds, reverse: bool = False) -> np.ndarray:
        """A boolean mask of the states reachable from ``seeds`` (the seeds included).

        A breadth-first search in numpy, one whole frontier per step, on the edges sorted by
        their origin (compressed rows).
        """
        src, dst = (self.dst, self.src) if reverse else (self.src, self.dst)
        order = np.argsort(src, kind="stable")
        targets = dst[order]
        starts = np.searchsorted(src[order], np.arange(self.n + 1))
        mask = np.zeros(self.n, dtype=bool)
        frontier = np.unique(np.asarray(seeds, dtype=np.int64))
        mask[frontier] = True
        while frontier.size:
            lo, hi = starts[frontier], starts[frontier + 1]
            counts = hi - lo
            total = int(counts.sum())
            if not total:
                break
            # the positions lo[k] .. hi[k] - 1 of every frontier state, in one array
            offsets = np.repeat(lo - (np.cumsum(counts) - counts), counts)
            nxt = targets[offsets + np.arange(total)]
            nxt = np.unique(nxt[~mask[nxt]])
            mask[nxt] = True
            frontier = nxt
        return mask

    def reachable(self) -> np.ndarray:
        if self._reach is None:
            self._reach = self.closure(self.start_index)
        return self._reach


_CACHE: "weakref.WeakKeyDictionary[Case, dict]" = weakref.WeakKeyDictionary()


def _edges(case: Case, at_point: bool) -> _Edges:
    try:
        per_case = _CACHE.setdefault(case, {})
    except TypeError:  # not weak-referenceable: no cache
        return _Edges(case, at_point)
    if at_point not in per_case:
        per_case[at_point] = _Edges(case, at_point)
    return per_case[at_point]


def support_graph(case: Case, at_point: bool = False) -> nx.MultiDiGraph:
    """The directed graph of steps s -(a)-> s_next whose pi and P are not zero.

    With ``at_point`` an edge needs pi > 0 and P > 0 at the parameter point;
    otherwise it needs pi and P to be not identically zero (the support for some theta).
    Nodes are states; ``start`` holds the support of rho0.
    """
    e = _edges(case, at_point)
    g = nx.MultiDiGraph()
    g.add_nodes_from(case.states)
    names = e.states
    g.add_edges_from((names[i], names[j], a) for i, j, a in zip(e.src.tolist(), e.dst.tolist(), e.act))
    g.graph["start"] = list(e.start)
    return g


def reachable_states(case: Case, at_point: bool = False) -> frozenset:
    """States reachable from the start's support (including the start states).

    Computed once per case (and ``at_point``); the result is a frozenset, shared by the calls.
    """
    e = _edges(case, at_point)
    per_case = _CACHE.get(case) if _weakable(case) else None
    key = ("reachable", at_point)
    if per_case is not None and key in per_case:
        return per_case[key]
    names = e.states
    out = frozenset(names[i] for i in np.flatnonzero(e.reachable()).tolist())
    if per_case is not None:
        per_case[key] = out
    return out


def _weakable(case) -> bool:
    try:
        weakref.ref(case)
    except TypeError:
        return False
    return True


def improper_states(case: Case) -> list:
    """Reachable non-terminal states from which no terminal state can be reached (at the point)."""
    e = _edges(case, at_point=True)
    reach = e.reachable()
    index = {s: i for i, s in enumerate(e.states)}
    can_end = e.closure([index[t] for t in case.terminal], reverse=True)
    terminal = np.zeros(e.n, dtype=bool)
    terminal[[index[t] for t in case.terminal]] = True
    bad = reach & ~terminal & ~can_end
    return [e.states[i] for i in np.flatnonzero(bad).tolist()]


def _reachable_order(case: Case):
    """(branches by state index restricted to the reachable part, a topological order of it or None if cyclic)."""
    e = _edges(case, at_point=False)
    reach = e.reachable()
    keep = reach[e.src]  # an edge from a reachable state leads to one
    src, dst = e.src[keep], e.dst[keep]
    indegree = np.bincount(dst, minlength=e.n)
    order_src = np.argsort(src, kind="stable")
    src_sorted, dst_sorted = src[order_src], dst[order_src]
    starts = np.searchsorted(src_sorted, np.arange(e.n + 1))
    # Kahn's algorithm on the reachable part
    indegree = indegree.tolist()
    dst_list = dst_sorted.tolist()
    starts = starts.tolist()
    queue = [i for i in np.flatnonzero(reach).tolist() if indegree[i] == 0]
    order = []
    while queue:
        i = queue.pop()
        order.append(i)
        for j in dst_list[starts[i]:starts[i + 1]]:
            indegree[j] -= 1
            if indegree[j] == 0:
                queue.append(j)
    acyclic = len(order) == int(reach.sum())
    return e, src_sorted, dst_list, starts, (order if acyclic else None)


def is_acyclic(case: Case) -> bool:
    """True when the reachable part of the (symbolic) support graph has no cycle."""
    return _reachable_order(case)[4] is not None


def count_trajectories(case: Case, max_length: int | None) -> int | None:
    """Exact number of (state, action, next state) paths the trajectory engine would enumerate.

    Counts paths that start in the start's support and stop at a terminal state or
    after ``max_length`` steps.  Returns None when the count is infinite (a cycle
    and no length limit).  Only the part reachable from the start counts: a cycle among
    unreachable states changes nothing.
    """
    e, _src, dst_list, starts, order = _reachable_order(case)
    if max_length is None:
        if order is None:
            return None
        ways = [0] * e.n
        for i in reversed(order):
            lo, hi = starts[i], starts[i + 1]
            ways[i] = 1 if lo == hi else sum(ways[j] for j in dst_list[lo:hi])
        return sum(ways[i] for i in e.start_index.tolist())
    # paths of length <= max_length, by steps: ways[i] = 1 at a state without branches
    reach = np.flatnonzero(e.reachable()).tolist()
    ways = [1] * e.n
    for _ in range(max_length):
        new = list(ways)
        for i in reach:
            lo, hi = starts[i], starts[i + 1]
            if lo != hi:
                new[i] = sum(ways[j] for j in dst_list[lo:hi])
        ways = new
    return sum(ways[i] for i in e.start_index.tolist())
