"""Renderers of :class:`pgverify.sequence.estimators.EstimatorsResult` (they never compute).

:func:`render_text` gives one table per case (estimator, relative bias, direction as the cosine
with grad J, variance trace, whether the expected update is a gradient, the Monte Carlo verdict)
and the reasons underneath; :func:`render_json` the ``to_dict`` form.  A relative bias (or a KL
term's missing part) reads ``0`` when it is exactly 0, ``0 (identity)`` when an identity proves it
0 where the numbers are balls, and ``0 (within B)`` when its certified ball contains 0 and reaches
at most B (its midpoint, e.g. 1e-47, is rounding, not a bias); the JSON keeps the number and adds
``relative_bias_bound`` and ``relative_bias_zero``.  A Monte Carlo "consistent" for an update
that is the same in every batch (exact variance 0) reads ``consistent (constant update)``.
"""
from __future__ import annotations

import json

__all__ = ["render_text", "render_json"]


def _num(d: dict, key: str) -> str:
    v = d.get(key + "_float")
    if v is None:
        return "-"
    return f"{v:.6g}"


def _zero_or(zero, bound, otherwise: str) -> str:
    """A relative norm: 0 where it is 0 exactly, by an identity, or within a certified bound of 0
    (the ball's midpoint, e.g. 1e-47, is rounding, not a bias), else ``otherwise``."""
    if zero == "exact":
        return "0"
    if zero == "identity":
        return "0 (identity)"
    if zero == "within_bound":
        return f"0 (within {bound:.2g})"
    return otherwise


def _relative_bias(d: dict) -> str:
    return _zero_or(d.get("relative_bias_zero"), d.get("relative_bias_bound"), _num(d, "relative_bias"))


def render_json(result) -> str:
    """The JSON form: ``{"case", "objective", "estimators": {name: {...}}, ...}``."""
    return json.dumps(result.to_dict(), indent=2)


#: the table's columns left out, in this order, while it is wider than ``width`` (the reasons under the
#: table say each estimator's proof; --json has every column)
DROP = ("proof", "variance trace", "cosine")


def render_text(result, width: int | None = None) -> str:
    """A plain-text report: the objective, then a table of the estimators and their reasons.

    With ``width`` (a terminal's), table columns are left out in the order of :data:`DROP` while the
    table is wider (a line says which), and the prose is wrapped at spaces
    (:func:`pgverify.termlayout.wrap_document`); without it, the lines are as rendered."""
    d = result.to_dict()
    obj = d["objective"]
    lines = [f"case {d['case']}: {len(d['parameters'])} parameters, group G = {d['group']}, GRPO eps = {d['eps']}",
             f"objective J = {obj['value']} ({obj['proof']}"
             + (f", bound {obj['bound']:.3g}" if obj["proof"] != "exact" else "") + ")",
             ""]
    head = ("estimator", "relative bias", "cosine", "variance trace", "gradient?", "proof", "Monte Carlo")
    rows = []
    for name, e in d["estimators"].items():
        m = e.get("monte_carlo") or {}
        mc = m.get("verdict", "-")
        if mc == "consistent" and m.get("zero_variance") == len(d["parameters"]):
            mc = "consistent (constant update)"
        if e["status"] != "ok":
            rows.append((name, "not run", "-", "-", "-", "-", mc))
            continue
        rows.append((name, _relative_bias(e), _num(e, "cosine"), _num(e, "variance_trace"),
                     e["is_gradient"], e["proof"], mc))
    keep = list(range(len(head)))

    def table_width():
        return sum(max(len(str(r[i])) for r in rows + [head]) for i in keep) + 2 * (len(keep) - 1)

    dropped = []
    for name in DROP:
        if width is None or table_width() <= width:
            break
        keep.remove(head.index(name))
        dropped.append(name)
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in keep]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    lines.append(fmt.format(*(head[i] for i in keep)).rstrip())
    lines.append(fmt.format(*("-" * w for w in widths)))
    lines.extend(fmt.format(*(r[i] for i in keep)).rstrip() for r in rows)
    if dropped:
        lines.append(f"(left out at {width} columns: {', '.join(dropped)}; --json has them)")
    lines.append("")
    for name, e in d["estimators"].items():
        if e["status"] != "ok":
            lines.append(f"{name}: not run: {e['reason']}")
            continue
        why = e["gradient_reason"]
        obj_txt = f" (ascends {e['objective']})" if e.get("objective") else ""
        lines.append(f"{name}: gradient? {e['is_gradient']}{obj_txt}: {why}")
        if e.get("kl_part") and e["kl_part"].get("missing_relative") is not None:
            k = e["kl_part"]
            lines.append("  KL term: the missing part (target - expected) has relative norm "
                         + _zero_or(k.get("missing_relative_zero"), k.get("missing_relative_bound"),
                                    k["missing_relative"]))
        if e["proof"] != "exact":
            lines.append(f"  certified: every number within {e['bound']:.3g} of its exact value")
        mc = e.get("monte_carlo") or {}
        if mc.get("reason"):
            lines.append(f"  Monte Carlo: {mc['verdict']}: {mc['reason']}")
    if d.get("monte_carlo"):
        m = d["monte_carlo"]
        lines.append("")
        lines.append(f"Monte Carlo: {m['batches']} batches per estimator, seed {m['seed']}, {m['tests']} tests, "
                     f"{m['test']} at alpha {m['alpha']}: "
                     + ("every estimator consistent with its exact mean" if m["consistent"] else "SOME DIFFER"))
    text = "\n".join(lines) + "\n"
    if width is not None:
        from ..termlayout import wrap_document

        text = wrap_document(text, width)
    return text
