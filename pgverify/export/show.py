"""Pictures of a case for people: Graphviz DOT text, and PNG.

The drawing shows the MDP as written, not the induced chain: one node per state
(terminal states as double circles, grey; start states with a bold outline and an
arrow from a small ``start`` dot, labelled rho0(s) when it is not 1), one small
point per (state, action) reached by an edge labelled with the action and
pi(a|s), and one edge per next state labelled with P(s'|s,a) (left out when it is
1) and the reward r(s,a,s') (left out when it is 0).  Expressions longer than
``max_label`` characters are shortened with ``...``.

The DOT text is written here, with its own quoting (:func:`dot_quote`); no
Graphviz is needed for it.  A PNG is drawn by Graphviz's ``dot`` when it is on
the PATH, and otherwise with matplotlib and networkx (extra ``plot``).

Examples
--------
>>> import pgverify
>>> case = pgverify.load_case("docs/examples/bandit.yaml")
>>> print(to_dot(case), end="")  # doctest: +ELLIPSIS
digraph "bandit" {
...
  start -> s0;
  s0 -> a0_0 [label="stop\\n1 - p", arrowhead=none];
  a0_0 -> s1;
  s0 -> a0_1 [label="go\\np", arrowhead=none];
  a0_1 -> s1 [label="r=1"];
}
"""
from __future__ import annotations

import shutil
import subprocess

import networkx as nx
import sympy

from ..model import DETERMINISTIC_ACTION, Case
from .errors import ExportError, MissingExtraError

__all__ = ["to_dot", "to_graph", "to_png", "dot_quote", "short", "PNG_MAGIC"]

#: The first eight bytes of every PNG file (PNG specification, sec. 5.2).
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: Labels longer than this are shortened.
MAX_LABEL = 24


def dot_quote(text: str) -> str:
    """``text`` as a DOT double-quoted string: backslashes, quotes and line breaks escaped.

    Examples
    --------
    >>> print(dot_quote('say "hi"\\\\now'))
    "say \\"hi\\"\\\\now"
    """
    out = str(text).replace("\\", "\\\\").replace('"', '\\"')
    out = out.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    return f'"{out}"'


def short(expr, limit: int = MAX_LABEL) -> str:
    """The expression's text, cut to ``limit`` characters with ``...`` when longer.

    >>> short("1 - p")
    '1 - p'
    >>> short("x" * 30, 10)
    'xxxxxxx...'
    """
    text = str(expr)
    return text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."


def to_graph(case: Case, max_label: int = MAX_LABEL) -> nx.MultiDiGraph:
    """The drawing as a networkx graph: nodes ``s<i>`` (states), ``a<i>_<k>`` (actions), ``start``.

    Node attributes: ``kind`` ("state", "action", "start"), ``label``, and for states
    ``terminal`` and ``start`` (bool).  Edge attributes: ``label``, ``kind``
    ("policy", "transition", "start"), ``order`` (the order of :func:`to_dot`).
    """
    g = nx.MultiDiGraph(name=case.name)
    order = iter(range(10**9))  # edges keep the order in which they are drawn here
    index = {s: i for i, s in enumerate(case.states)}
    for s, i in index.items():
        g.add_node(f"s{i}", kind="state", label=str(s), terminal=s in case.terminal, start=s in case.rho0)
    if case.rho0:
        g.add_node("start", order=next(order), kind="start", label="")
        for s, prob in case.rho0.items():
            g.add_edge("start", f"s{index[s]}", order=next(order), kind="start", label="" if prob == 1 else short(prob, max_label))
    deterministic = case.policy_form == "deterministic"
    for s in case.nonterminal:
        i = index[s]
        for k, a in enumerate(case.actions[s]):
            prob = case.pi[s].get(a, sympy.Integer(0))
            node = f"a{i}_{k}"
            g.add_node(node, kind="action", label=str(a))
            if deterministic and a == DETERMINISTIC_ACTION and case.mu is not None:
                policy_label = f"a = {short(case.mu[s], max_label)}"
            else:
                policy_label = f"{a}\n{short(prob, max_label)}"
            g.add_edge(f"s{i}", node, order=next(order), kind="policy", label=policy_label)
            for s2, p in case.P[s][a].items():
                parts = []
                if p != 1:
                    parts.append(short(p, max_label))
                r = case.r[s][a].get(s2, 0)
                if r != 0:
                    parts.append(f"r={short(r, max_label)}")
                g.add_edge(node, f"s{index[s2]}", order=next(order), kind="transition", label="\n".join(parts))
    return g


def to_dot(case: Case, max_label: int = MAX_LABEL) -> str:
    """The case as a Graphviz ``digraph`` (see the module docstring for what is drawn)."""
    g = to_graph(case, max_label)
    out = [f"digraph {dot_quote(case.name)} {{", "  rankdir=LR;",
           '  node [fontname="Helvetica"]; edge [fontname="Helvetica", fontsize=10];']
    for node, data in g.nodes(data=True):
        if data["kind"] == "state":
            attrs = [f"label={dot_quote(data['label'])}"]
            if data["terminal"]:
                attrs += ["shape=doublecircle", "style=filled", 'fillcolor="#dddddd"']
            else:
                attrs.append("shape=circle")
            if data["start"]:
                attrs.append("penwidth=2.5")
        elif data["kind"] == "action":
            attrs = ["shape=point", "width=0.08", f"tooltip={dot_quote(data['label'])}"]
        else:
            attrs = ["shape=point", "width=0.15", 'xlabel="start"']
        out.append(f"  {node} [{', '.join(attrs)}];")
    for u, v, data in sorted(g.edges(data=True), key=lambda e: e[2]["order"]):
        attrs = [f"label={dot_quote(data['label'])}"] if data["label"] else []
        if data["kind"] == "policy":
            attrs.append("arrowhead=none")
        out.append(f"  {u} -> {v}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    out.append("}")
    return "\n".join(out) + "\n"


def to_png(case: Case, path: str, *, engine: str = "auto", max_label: int = MAX_LABEL) -> str:
    """Draw ``case`` into the PNG file ``path`` (written whole or not at all); return the engine used.

    Parameters
    ----------
    engine : {"auto", "dot", "matplotlib"}
        "auto" uses Graphviz's ``dot`` when it is on the PATH, else matplotlib.
    """
    if engine not in ("auto", "dot", "matplotlib"):
        raise ValueError(f"unknown engine {engine!r}")
    if engine == "auto":
        engine = "dot" if shutil.which("dot") else "matplotlib"
    from ..files import atomic_target

    with atomic_target(path, suffix=".png") as tmp:
        if engine == "dot":
            _png_by_dot(to_dot(case, max_label), tmp)
        else:
            _png_by_matplotlib(case, tmp, max_label)
    return engine


def _png_by_dot(text: str, target: str) -> None:
    exe = shutil.which("dot")
    if exe is None:
        raise ExportError("Graphviz's dot is not on the PATH, so it cannot draw the PNG. "
                          "Install Graphviz (Debian: apt-get install graphviz), or use the matplotlib engine")
    proc = subprocess.run([exe, "-Tpng", "-o", target], input=text.encode("utf-8"),
                          capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise ExportError(f"Graphviz's dot failed (exit status {proc.returncode}): "
                          f"{proc.stderr.decode('utf-8', 'replace').strip()}")


def _png_by_matplotlib(case: Case, target: str, max_label: int) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("Drawing a PNG without Graphviz", "matplotlib", "plot") from None
    g = to_graph(case, max_label)
    simple = nx.DiGraph(g)
    # spring layout, seeded: numpy only (Kamada-Kawai would need scipy, which is not a dependency)
    pos = nx.spring_layout(simple.to_undirected(), seed=0, iterations=200)
    states = [n for n, d in g.nodes(data=True) if d["kind"] == "state"]
    colours = ["#dddddd" if g.nodes[n]["terminal"] else "#ffffff" for n in states]
    widths = [2.5 if g.nodes[n]["start"] else 1.0 for n in states]
    points = [n for n, d in g.nodes(data=True) if d["kind"] != "state"]
    size = max(6.0, min(30.0, 1.2 * len(states) ** 0.5 * 3))
    fig, ax = plt.subplots(figsize=(size, size * 0.75))
    try:
        nx.draw_networkx_nodes(simple, pos, nodelist=states, node_color=colours, edgecolors="black",
                               linewidths=widths, node_size=900, ax=ax)
        nx.draw_networkx_nodes(simple, pos, nodelist=points, node_color="black", node_size=20, ax=ax)
        nx.draw_networkx_labels(simple, pos, labels={n: g.nodes[n]["label"] for n in states}, font_size=9, ax=ax)
        nx.draw_networkx_edges(simple, pos, ax=ax, node_size=[900 if n in states else 20 for n in simple],
                               arrowsize=12, connectionstyle="arc3,rad=0.08")
        labels = {}
        for u, v, d in g.edges(data=True):
            if d["label"]:
                labels[(u, v)] = (labels[(u, v)] + "; " if (u, v) in labels else "") + d["label"].replace("\n", " ")
        nx.draw_networkx_edge_labels(simple, pos, edge_labels=labels, font_size=7, ax=ax)
        ax.set_title(case.name)
        ax.set_axis_off()
        fig.savefig(target, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
