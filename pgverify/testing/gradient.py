r"""The exact objective and gradient at a point, and an assertion that a gradient equals it.

The values come from :func:`pgverify.check` working at the point with the Bellman engine
alone (``mode="at-point"``, ``engines=("bellman",)``): J by the Bellman recursion and grad J
by differentiating it (Sutton & Barto 2018, eq. 3.14; Sutton et al. 2000), in exact
rationals where the point is rational and in 60-digit arithmetic otherwise, then rounded
to float64.  The other two engines, which ``pgverify check`` runs to prove the value, are
skipped: here speed matters, and the engines' agreement is what pgverify's own tests prove.
"""
from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..casefile import load_case
from ..check import Result, check
from ..errors import UsageError
from ..model import Case

__all__ = [
    "GradientMismatch",
    "HelperInputError",
    "assert_gradient_close",
    "exact_gradient",
    "exact_objective",
    "exact_result",
    "resolve_case",
]


class HelperInputError(UsageError):
    """A helper of :mod:`pgverify.testing` was given input it cannot use.

    The message is built from the fields, like :class:`pgverify.Problem`:
    ``where: what (given: ...). fix``.
    """

    def __init__(self, what: str, where: str, given: str, fix: str):
        self.what, self.where, self.given, self.fix = what, where, given, fix
        super().__init__(f"{where}: {what} (given: {given}). {fix}")


class GradientMismatch(AssertionError):
    """:func:`assert_gradient_close` failed; ``rows`` holds one dict per parameter."""

    def __init__(self, message: str, rows: list):
        self.rows = rows
        super().__init__(message)


def resolve_case(case, at: Mapping | None = None) -> Case:
    """A :class:`~pgverify.Case` from a Case, a path of a case file or a dict, at ``at``.

    Unknown names in ``at`` raise :class:`pgverify.CaseFileError` (key ``at``), and so does a
    value that puts a probability out of range.
    """
    if isinstance(case, Case):
        out = case
    elif isinstance(case, (str, Path)):
        out = load_case(case)
    elif isinstance(case, Mapping):
        out = Case.from_dict(case)
    else:
        raise HelperInputError(
            "a case must be a pgverify.Case, the path of a case file, or a dict with the fields of one",
            "case", f"{type(case).__name__} {case!r:.60}",
            "Pass e.g. 'cases/short_corridor.yaml' or pgverify.load_case(...)")
    if at:
        out = out.at(at)
    return out


def exact_result(case, at: Mapping | None = None) -> Result:
    """:func:`pgverify.check` at the point with the Bellman engine alone (see the module docstring).

    Results are cached for a Case object or a file (by path, size and modification time) and
    the same ``at``, so that many tests on one case compute it once.  Treat them as read-only.
    """
    key = _cache_key(case, at)
    if key is None:
        return _compute(case, at)
    hit = _CACHE.get(key)
    if hit is None:
        hit = _CACHE[key] = _compute(case, at)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
    return hit


CACHE_SIZE = 32
_CACHE: dict = {}


def _compute(case, at):
    return check(resolve_case(case, at), mode="at-point", engines=("bellman",))


def _cache_key(case, at):
    """A hashable key for (case, at), or None (a dict case, unhashable values): not cached."""
    try:
        point = tuple(sorted((str(k), str(v)) for k, v in (at or {}).items()))
    except TypeError:
        return None
    if isinstance(case, Case):
        return ("case", case, point)  # Case hashes by identity (eq=False); the cache keeps it alive
    if isinstance(case, (str, Path)):
        path = Path(case).resolve()
        try:
            st = path.stat()
        except OSError:
            return None  # load_case reports the missing file
        return ("file", str(path), st.st_size, st.st_mtime_ns, point)
    return None


def exact_gradient(case, at: Mapping | None = None) -> tuple[list[str], np.ndarray]:
    r"""The exact gradient :math:`\nabla_\theta J(\theta)` at the point, as floats.

    Parameters
    ----------
    case : Case, path or dict
        The case (a :class:`~pgverify.Case`, the path of a case file, or a dict with its fields).
    at : dict, optional
        Parameter values to use instead of the case's point (name -> ``"1/3"``, ``0.25``, ...).

    Returns
    -------
    names : list of str
        The parameters, in the case's order.
    gradient : numpy.ndarray
        float64, shape ``(len(names),)``: the exact value rounded once to float64.

    Examples
    --------
    A coin that pays 1 on "go": J(p) = p, so dJ/dp = 1.

    >>> coin = {"name": "coin", "parameters": {"p": "1/3"}, "states": ["S", "G"],
    ...         "terminal": ["G"], "actions": ["stop", "go"], "start": "S",
    ...         "policy": {"S": {"stop": "1 - p", "go": "p"}},
    ...         "transitions": {"S": {"stop": "G", "go": "G"}}, "rewards": {"S": {"go": 1}}}
    >>> exact_gradient(coin)
    (['p'], array([1.]))
    >>> exact_objective(coin, at={"p": "1/4"})
    0.25
    """
    res = exact_result(case, at)
    return list(res.parameters), np.array([res.gradient[p].float for p in res.parameters], dtype=float)


def exact_objective(case, at: Mapping | None = None) -> float:
    r"""The exact objective :math:`J(\theta)` at the point, as a float (see :func:`exact_gradient`)."""
    return exact_result(case, at).objective.float


def _as_vector(actual, names: list[str]) -> np.ndarray:
    """``actual`` (array-like in parameter order, or name -> value) as a float vector."""
    if hasattr(actual, "detach"):  # a torch tensor
        actual = actual.detach().cpu().numpy()
    if isinstance(actual, Mapping):
        keys = [str(k) for k in actual]
        unknown = [k for k in keys if k not in names]
        missing = [n for n in names if n not in keys]
        if unknown or missing:
            what = "; ".join(x for x in (f"unknown parameter(s) {', '.join(map(repr, unknown))}" if unknown else "",
                                         f"missing {', '.join(map(repr, missing))}" if missing else "") if x)
            raise HelperInputError(what, "actual", ", ".join(map(repr, keys)),
                                   f"Give one value for each parameter: {', '.join(names)}")
        actual = [actual[k] for k in names]
    try:
        vec = np.asarray(actual, dtype=float)
    except (TypeError, ValueError) as exc:
        raise HelperInputError(f"not an array of numbers ({exc})", "actual", f"{actual!r:.80}",
                               f"Give {len(names)} numbers in the order {', '.join(names)}, or a dict") from None
    if vec.shape != (len(names),):
        raise HelperInputError(f"shape {vec.shape}, expected ({len(names)},)", "actual", f"{actual!r:.80}",
                               f"Give one number per parameter, in the order {', '.join(names)}")
    return vec


def _exact_text(q) -> str:
    """The exact value of a Quantity as text, with its float when that is not the same."""
    if q.value is None:
        return f"{q.float:.12g}"
    if q.value.lstrip("-").isdigit():
        return q.value
    return f"{q.value} (~{q.float:.12g})" if len(q.value) <= 40 else f"{q.float:.12g}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows])


def _point_text(res: Result) -> str:
    return ", ".join(f"{p} = {v}" for p, v in res.at.items()) or "(no parameters)"


def assert_gradient_close(actual, case, at: Mapping | None = None, rtol: float = 1e-7, atol: float = 1e-9) -> None:
    r"""Assert that ``actual`` equals the exact gradient: :math:`|a_i - g_i| \le atol + rtol |g_i|` for every i.

    Parameters
    ----------
    actual : array-like or dict
        The gradient to check: numbers in the case's parameter order (a list, a numpy array, a
        torch tensor), or a dict parameter name -> number with every parameter.
    case, at
        As in :func:`exact_gradient`.
    rtol, atol : float
        Relative and absolute tolerance (the test of :func:`numpy.isclose`).

    Raises
    ------
    GradientMismatch
        (an ``AssertionError``) listing every parameter's exact and given value, the difference,
        and which are off.
    HelperInputError
        ``actual`` has the wrong length, or names a parameter the case does not have.

    Examples
    --------
    >>> coin = {"name": "coin", "parameters": {"p": "1/3"}, "states": ["S", "G"],
    ...         "terminal": ["G"], "actions": ["stop", "go"], "start": "S",
    ...         "policy": {"S": {"stop": "1 - p", "go": "p"}},
    ...         "transitions": {"S": {"stop": "G", "go": "G"}}, "rewards": {"S": {"go": 1}}}
    >>> assert_gradient_close([1.0], coin)
    >>> assert_gradient_close({"p": 0.9}, coin)
    Traceback (most recent call last):
    ...
    pgverify.testing.gradient.GradientMismatch: gradient of 'coin' at p = 1/3: 1 of 1 components off (rtol=1e-07, atol=1e-09)
      parameter  exact  given  difference  verdict
      p          1      0.9    -0.1        OFF
    """
    res = exact_result(case, at)
    names = list(res.parameters)
    vec = _as_vector(actual, names)
    rows, table = [], []
    for j, p in enumerate(names):
        q = res.gradient[p]
        ok = bool(np.isclose(vec[j], q.float, rtol=rtol, atol=atol))
        diff = vec[j] - q.float
        rows.append({"parameter": p, "exact": q.value, "exact_float": q.float, "given": float(vec[j]),
                     "difference": float(diff), "ok": ok})
        table.append([p, _exact_text(q), f"{vec[j]:.12g}", f"{diff:.3g}", "ok" if ok else "OFF"])
    off = [r for r in rows if not r["ok"]]
    if off:
        head = (f"gradient of {res.case!r} at {_point_text(res)}: {len(off)} of {len(rows)} components off "
                f"(rtol={rtol:g}, atol={atol:g})")
        raise GradientMismatch(head + "\n" + _table(["parameter", "exact", "given", "difference", "verdict"], table),
                               rows)


def exact_value(q):
    """The exact value of a :class:`~pgverify.Quantity` as a Fraction where it is rational, else its float."""
    return exact_or_float(q.value, q.float)


def exact_or_float(value: str | None, fallback: float):
    """``Fraction(value)`` where the exact text is a rational number, else ``fallback``."""
    if value is not None:
        try:
            return Fraction(value)
        except ValueError:
            pass
    return fallback
