"""Renderers of a :class:`~pgverify.derivation.Derivation`: plain text, Markdown, LaTeX.

One walk over the derivation (:func:`render`) drives a writer per format; writers
only format (headings, paragraphs, displayed equations, tables) and never compute.
"""
from __future__ import annotations

import sympy

from .derivation import Derivation
from .printing import short_exact
from .texlayout import LINE_CHARS, PREAMBLE, broken_lines, tex_escape, width
from .texlayout import latex as tex_latex

__all__ = ["render", "FORMATS"]

FAMILY_TEXT = {
    "start": "start: R(tau) grad log rho0(s_0)",
    "policy": "policy: R(tau) sum_t grad log pi(a_t|s_t)",
    "dynamics": "dynamics: R(tau) sum_t grad log P(s_{t+1}|s_t,a_t)",
    "reward": "reward: sum_t gamma^t grad r(s_t,a_t,s_{t+1})",
    "discount": "discount: sum_t t gamma^(t-1) grad gamma r_t",
}
FAMILY_LATEX = {
    "start": r"R(\tau)\,\nabla\log\rho_0(s_0)",
    "policy": r"R(\tau)\sum_t\nabla\log\pi_\theta(a_t\mid s_t)",
    "dynamics": r"R(\tau)\sum_t\nabla\log P(s_{t+1}\mid s_t,a_t)",
    "reward": r"\sum_t\gamma^t\,\nabla r(s_t,a_t,s_{t+1})",
    "discount": r"\sum_t t\,\gamma^{t-1}\,\nabla\gamma\; r_t",
}


class _Writer:
    level = 1  # heading level of the title; sections are one below

    def __init__(self):
        self.parts: list[str] = []

    def text(self) -> str:
        return "\n".join(self.parts).rstrip() + "\n"


def _lhs_text(lhs):
    return lhs[0] if isinstance(lhs, tuple) else sympy.sstr(lhs)


def _lhs_latex(lhs):
    return lhs[1] if isinstance(lhs, tuple) else tex_latex(lhs)


class TextWriter(_Writer):
    def heading(self, level, title):
        self.parts += ["", title, ("=" if level == 1 else "-") * len(title)]

    def para(self, text, latex=None):
        self.parts += ["", text]

    def equations(self, pairs):
        self.parts.append("")
        for lhs, rhs in pairs:
            self.parts.append(f"    {_lhs_text(lhs)} = {sympy.sstr(rhs)}")

    def formula(self, text, latex):
        self.parts += ["", "    " + text]

    def table(self, headers, rows):
        cells = [[str(c) for c in r] for r in rows]
        widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
        line = "  ".join(str(h).ljust(w) for h, w in zip(headers, widths))
        self.parts += ["", line, "  ".join("-" * w for w in widths)]
        self.parts += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]

    def value(self, x):
        return sympy.sstr(x) if isinstance(x, sympy.Basic) else str(x)

    def expr(self, q):
        """A quantity's expression in theta: its string (large ones are printed from the field,
        without building a sympy expression), or None outside symbolic mode."""
        return q.expression


class MarkdownWriter(TextWriter):
    def heading(self, level, title):
        self.parts += ["", "#" * level + " " + title]

    def equations(self, pairs):
        self.parts.append("")
        for lhs, rhs in pairs:
            self.parts.append(f"$$ {_lhs_latex(lhs)} = {sympy.latex(rhs)} $$")

    def formula(self, text, latex):
        self.parts += ["", f"$$ {latex} $$"]

    def table(self, headers, rows):
        self.parts += ["", "| " + " | ".join(map(str, headers)) + " |",
                       "|" + "---|" * len(headers)]
        self.parts += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]

    def value(self, x):
        return f"${sympy.latex(x)}$" if isinstance(x, sympy.Basic) else str(x)

    def expr(self, q):
        return q.sympy_expression if q.expression is not None else None


def _tex_escape(text: str, breaks: bool = True) -> str:
    return tex_escape(text, breaks)


class _Escaped(str):
    """Text that is LaTeX already (a table does not escape it again)."""


class _MathCell(_Escaped):
    """A table cell in math mode (``$...$``) that remembers its expression, so that a cell too wide
    for its column can be moved below the table as a displayed, broken equation."""

    expr = None


class LatexWriter(_Writer):
    """A LaTeX document (:mod:`pgverify.texlayout`: escaped names, T1 and utf8, long formulas broken)."""

    def __init__(self):
        super().__init__()
        self.parts += [*PREAMBLE, r"\begin{document}"]
        self._fractions = [0]  # numbers the N_k / D_k of long fractions
        self._moved = 0  # numbers the cells moved below their table

    def heading(self, level, title):
        cmd = {1: "section*", 2: "subsection*"}.get(level, "subsubsection*")
        self.parts += ["", f"\\{cmd}{{{_tex_escape(title)}}}"]

    def para(self, text, latex=None):
        self.parts += ["", latex if latex is not None else _tex_escape(text)]

    def equations(self, pairs):
        self.parts += ["", r"\begin{align*}"]
        lines = []
        for lhs, rhs in pairs:
            lines += broken_lines(_lhs_latex(lhs), rhs, self._fractions)
        self.parts.append(" \\\\\n".join(lines))
        self.parts.append(r"\end{align*}")

    def formula(self, text, latex):
        self.parts += ["", r"\begin{multline*}", latex.replace(r" + \text{", r" \\ + \text{"),
                       r"\end{multline*}"]

    def table(self, headers, rows):
        n = len(headers)
        budget = LINE_CHARS / n - 2  # characters of one column
        moved = []
        cells = []
        for r in rows:
            out = []
            for c in r:
                if isinstance(c, _MathCell) and c.expr is not None and width(c[1:-1]) > budget:
                    self._moved += 1
                    moved.append((f"({self._moved})", c.expr))
                    out.append(f"see ({self._moved}) below")
                else:
                    out.append(c if isinstance(c, _Escaped) or str(c).startswith("$") else _tex_escape(str(c)))
            cells.append(out)
        col = rf">{{\raggedright\arraybackslash}}p{{\dimexpr(\linewidth-{2 * n}\tabcolsep)/{n}\relax}}"
        self.parts += ["", r"\begin{longtable}{" + col * n + "}",
                       " & ".join(_tex_escape(str(h)) for h in headers) + r" \\ \hline", r"\endhead"]
        self.parts += [" & ".join(r) + r" \\" for r in cells]
        self.parts.append(r"\end{longtable}")
        if moved:
            self.equations([((label, r"\text{" + label + "}"), e) for label, e in moved])

    def value(self, x):
        if isinstance(x, sympy.Basic):
            cell = _MathCell(f"${tex_latex(x)}$")
            cell.expr = x
            return cell
        return _Escaped(_tex_escape(str(x)))

    def expr(self, q):
        return q.sympy_expression if q.expression is not None else None

    def text(self) -> str:
        return "\n".join(self.parts + ["", r"\end{document}"]) + "\n"


FORMATS = {"text": TextWriter, "markdown": MarkdownWriter, "latex": LatexWriter}


def _intro(w, d: Derivation) -> None:
    res, case = d.result, d.case
    w.heading(w.level, f"The policy gradient of {case.name}")
    if case.description:
        w.para(case.description)
    at = ", ".join(f"{k} = {short_exact(x, None)}" for k, x in res.at.items()) or "no parameters"
    w.para(f"Parameters theta = ({', '.join(res.parameters)}), checked at {at}. Policy form: {case.policy_form}; "
           f"discount gamma = {short_exact(str(case.gamma), None)}; " + (f"horizon {case.horizon}." if case.horizon else "no horizon."))


def _objective(w, d: Derivation) -> None:
    res, case = d.result, d.case
    w.heading(w.level + 1, "1. The objective through the Bellman recursion")
    if case.horizon:
        w.para("Backward induction from V_H = 0, with the case's own expressions (terminal states are worth 0):")
    else:
        w.para("The Bellman equations, with the case's own expressions (terminal states are worth 0):")
    w.equations([(e.lhs, e.rhs) for e in d.bellman] + [(d.objective.lhs, d.objective.rhs)])
    for note in d.notes:
        w.para(note)
    expr = w.expr(res.objective)
    if expr is not None:
        w.para("Solved exactly:")
        w.equations([(sympy.Symbol("J"), expr)])
    w.para(f"At the point: J = {short_exact(res.objective.value, res.objective.digits) if res.objective.value is not None else res.objective.digits}"
           f" (about {res.objective.float:.12g}).")


def _families(w, d: Derivation) -> None:
    res = d.result
    w.heading(w.level + 1, "2. The differentiated recursion, family by family")
    w.para("Differentiating the recursion term by term, each ingredient's derivative is its own term: "
           "the gradient is the sum of the families below; each is the derivative of J with only that "
           "ingredient depending on theta.")
    rows = []
    for f, fate in d.fates.items():
        contrib = res.terms[f].contribution
        shown = "; ".join(f"{p}: {_short(c)}" for p, c in list(contrib.items())[:6])
        rows.append([f, fate, shown])
    w.table(["family", "fate", "contribution at the point"], rows)
    for f, items in d.derivatives.items():
        rep = res.terms[f]
        if rep.pointwise_zero:
            w.para(f"{f}: every per-step derivative is identically zero, so this family vanishes pointwise.")
            continue
        w.para(f"{f} ({FAMILY_TEXT[f]}): per-step derivatives that are not zero"
               + (" (log-derivatives):" if f in ("start", "policy", "dynamics") else ":"))
        log = "log " if f in ("start", "policy", "dynamics") else ""
        w.equations([((f"d/d{p} {log}{place}",
                       rf"\frac{{\partial}}{{\partial \texttt{{{_tex_escape(p, False)}}}}} {log.strip() and chr(92) + 'log '}"
                       rf"\texttt{{{_tex_escape(place, False)}}}"), expr) for place, p, expr in items[:8]])
        if rep.identity:
            w.para(f"Yet its contribution to grad J is identically zero: {rep.identity}.")
    missed = {p: q for p, q in res.score_function_misses.items() if q.float != 0.0}
    if missed:
        w.para("The score-function formula (the policy family alone) misses exactly the sum of the other "
               "families: " + "; ".join(f"{p}: {_shortq(q)}" for p, q in missed.items()) + ".")
    else:
        w.para("The score-function formula (the policy family alone) is the whole gradient here.")


def _trajectories(w, d: Derivation) -> None:
    res, v = d.result, w.value
    w.heading(w.level + 1, "3. The trajectory view")
    w.formula("log p(tau) = log rho0(s_0) + sum_t log pi(a_t|s_t) + sum_t log P(s_{t+1}|s_t,a_t)",
              r"\log p_\theta(\tau) = \log\rho_0(s_0) + \sum_t \log\pi_\theta(a_t\mid s_t)"
              r" + \sum_t \log P(s_{t+1}\mid s_t,a_t)")
    w.formula("grad J = sum_tau p(tau) [R(tau) grad log p(tau) + grad R(tau)]",
              r"\nabla J = \sum_\tau p_\theta(\tau)\,\big[R(\tau)\,\nabla\log p_\theta(\tau) + \nabla R(\tau)\big]")
    if d.trajectories:
        w.para(f"All {d.trajectory_count} trajectories, exactly at the point:")
        w.table(["trajectory", "p(tau)", "R(tau)"] + [f"d log p / d {p}" for p in res.parameters[:4]],
                [[r.path, v(r.p), v(r.R)]
                 + [v(r.score[p]) for p in res.parameters[:4]] for r in d.trajectories])
    else:
        reason = res.not_run.get("trajectory")
        if reason:
            w.para(f"The trajectory engine did not run: {reason}.")
        elif res.truncation.get("trajectory"):
            t = res.truncation["trajectory"]
            w.para(f"The support graph has cycles and there is no horizon: trajectories were cut after "
                   f"{t['length']} steps ({t['trajectories']} summed), with a rigorous bound on the rest.")
        else:
            w.para(f"{res.engines['trajectory'].info.get('trajectories')} trajectories were summed "
                   "(too many to list).")


def _occupancy(w, d: Derivation) -> None:
    res, v = d.result, w.value
    w.heading(w.level + 1, "4. The occupancy form (policy gradient theorem)")
    w.formula("grad J = sum_t gamma^t sum_s Pr(s_t = s) sum_a grad pi(a|s) Q_t(s, a) + (start, dynamics, reward, "
              "discount terms where non-zero)",
              r"\nabla J = \sum_t \gamma^t \sum_s \Pr(s_t = s) \sum_a \nabla\pi_\theta(a\mid s)\, Q_t(s,a)"
              r" + \text{(start, dynamics, reward, discount terms where non-zero)}")
    if d.occupancy:
        w.para("The discounted occupancy d(s) = sum_t gamma^t Pr(s_t = s) at the point:")
        w.table(["state", "d(s)"], [[s, v(x)] for s, x in d.occupancy.items()])
    if res.dpg:
        w.para("The policy is deterministic: pi has no score function (the policy family vanishes), and the "
               "gradient flows through the dynamics and the reward. The deterministic policy gradient "
               "(Silver et al. 2014):")
        w.formula("grad J = sum_s d(s) grad mu(s) dQ(s, a)/da at a = mu(s)",
                  r"\nabla J = \sum_s d(s)\,\nabla_\theta\mu_\theta(s)\,"
                  r"\frac{\partial Q(s,a)}{\partial a}\Big|_{a=\mu_\theta(s)}")
        w.para("Its value: " + "; ".join(f"{p}: {_shortq(q)}" for p, q in res.dpg.items()) + ".")
        if res.dpg_check:
            c = res.dpg_check
            w.para(f"Equal to the {c['equals']}: {c['agree']} (proof: {c['proof']})."
                   + "".join(f" Disagrees on d/d{p}: |difference| = {c['differences'][p]:.6g}."
                             for p in c.get("failed", [])))


def _gradient(w, d: Derivation) -> None:
    res, v = d.result, w.value
    w.heading(w.level + 1, "5. The gradient, and the agreement of the three engines")
    rows = [[p, v(w.expr(q)) if q.expression is not None else "-", _shortq(q)]
            for p, q in res.gradient.items()]
    w.table(["parameter", "dJ/dtheta", "at the point"], rows)
    ran = [n for n, m in res.methods.items() if m is not None]
    w.para(f"Engines that ran: {', '.join(ran)}. "
           + (f"Not run: {'; '.join(f'{k}: {r}' for k, r in res.not_run.items())}. " if res.not_run else "")
           + f"Agree: {res.agree}; proof: {res.proof}; verified: {res.verified}.")


def _identities(w, d: Derivation) -> None:
    tb = d.identities
    if tb is None:
        return
    v = w.value
    w.heading(w.level + 1, "3b. The identities behind reward-to-go and baselines")
    w.para(f"Computed by enumerating the trajectory prefixes of the first {tb.steps} steps at the point"
           + ("" if tb.exact else " (60-digit arithmetic; zero means below 1e-50)")
           + ", without assuming the identities. Causality: E[d log pi(a_t|s_t) gamma^t' r_t'] for each step t "
           "of the score and t' of the reward; the entries with t' < t must vanish (this is why reward-to-go "
           "is unbiased):")
    first = tb.parameters[:3]
    rows = [[t, t2, "yes" if t2 < t else "no"] + [v(x) for x in vec[:3]]
            for (t, t2), vec in sorted(tb.causality.items())]
    w.table(["t (score)", "t' (reward)", "t' < t"] + [f"d/d{p}" for p in first], rows)
    w.para(f"All t' < t terms are zero: {tb.causal_terms_zero()}.")
    w.para("Baselines: E[d log pi(a_t|s_t) b(s_t)] for a constant baseline and for b = V:")
    rows = [[t, name] + [v(x) for x in vec[:3]] for (t, name), vec in sorted(tb.baselines.items())]
    w.table(["t", "baseline"] + [f"d/d{p}" for p in first], rows)
    w.para(f"All baseline terms are zero: {tb.baselines_zero()}."
           + (f" (Tables show the first 3 of {len(tb.parameters)} parameters.)" if len(tb.parameters) > 3 else ""))


SECTIONS = {"objective": _objective, "families": _families, "trajectories": _trajectories,
            "identities": _identities, "occupancy": _occupancy, "gradient": _gradient}


def render(d: Derivation, fmt: str = "text", sections=tuple(SECTIONS), level: int = 1, title: bool = True) -> str:
    """The derivation as text, Markdown (math in ``$...$``) or a LaTeX document.

    ``sections`` picks some of :data:`SECTIONS` (in order) and ``level`` the heading level of
    the title, for pages that show part of a derivation (docs/why-no-reward-gradient.md).
    """
    w = FORMATS[fmt]()
    w.level = level
    if title:
        _intro(w, d)
    for name in sections:
        SECTIONS[name](w, d)
    return w.text()


def _short(c: dict) -> str:
    return c["value"] if c["value"] is not None and len(c["value"]) <= 30 else f"{c['float']:.6g}"


def _shortq(q) -> str:
    return q.value if q.value is not None and len(q.value) <= 30 else f"{q.float:.6g}"
