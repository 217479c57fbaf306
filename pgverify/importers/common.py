"""What the importers share: exact numbers from floats, their errors and warnings.

A probability or reward given as a float is *rationalised*: replaced by
``fractions.Fraction(x).limit_denominator(limit)``, the closest fraction whose
denominator is at most ``limit`` (:data:`DEFAULT_LIMIT` unless told).  Floats such as
``1/3`` or ``0.1 + 0.2`` come back as the fraction they were meant to be (``1/3``,
``3/10``), changed by less than 1e-16.  A float with no fraction of small denominator
nearby is changed by more; when some value changes by more than :data:`WARN_ABOVE`, one
:class:`RationalisationWarning` says how many, by how much at most, and where.
``limit=None`` keeps each float's exact binary value.  Integers, ``Fraction``,
``Decimal`` and sympy rationals are exact already and are kept as they are.

A distribution (a row of a transition table, a start distribution) must then add up
to exactly 1.  Rationalising each entry on its own can leave a tiny remainder (three
floats near 1/3 with a limit of 1000 are fine; arbitrary floats are not): when the floats
themselves add up to 1 within :data:`ROW_TOLERANCE`, the remainder is put on the
row's largest entry (the first one, if several are largest), and counted as a change
like any other.  A row whose floats are farther from 1, or a row of exact numbers that
does not add up to exactly 1, is an error.
"""
from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from numbers import Integral, Real
from typing import Mapping

from ..errors import PgVerifyError, Problem

__all__ = [
    "DEFAULT_LIMIT",
    "WARN_ABOVE",
    "ROW_TOLERANCE",
    "ImporterError",
    "MissingExtraError",
    "RationalisationWarning",
    "MergedRewardWarning",
    "Rationaliser",
    "fraction_text",
    "exact_setting",
    "policy_field",
    "transitions_field",
    "rewards_field",
    "POLICIES",
]

#: The default largest denominator of a rationalised float.  Every float that is a decimal with
#: at most six digits after the point (0.123456) and every fraction with a denominator up to
#: 10**6 comes back exactly.
DEFAULT_LIMIT = 10**6
#: A rationalised value that moved by more than this is reported in a warning.
WARN_ABOVE = 1e-12
#: How far from 1 a row of floats may add up to before it is an error.
ROW_TOLERANCE = 1e-9


class ImporterError(PgVerifyError):
    """An MDP could not be imported.  Holds every problem found, each with its place.

    ``source`` says what was being imported (``"Gymnasium FrozenLake-v1"``, ``"arrays
    (mdptoolbox layout)"``); each :class:`~pgverify.errors.Problem` has the place in its
    ``key`` (``P[0, 1, 2]``, ``env.unwrapped.P[3][1]``), the value in ``given`` and the
    fix in ``hint``.
    """

    def __init__(self, problems: list[Problem], source: str):
        self.problems = list(problems)
        self.source = source
        n = len(self.problems)
        head = f"cannot import {source}: {n} problem{'s' if n != 1 else ''}"
        super().__init__(head + "\n" + "\n".join("  " + p.format() for p in self.problems))


class MissingExtraError(PgVerifyError):
    """A feature needs an optional dependency that is not installed."""

    def __init__(self, feature: str, package: str, extra: str):
        self.feature = feature
        self.package = package
        self.extra = extra
        super().__init__(f"{feature} needs {package}, which is not installed. "
                         f"Install the extra: pip install 'pgverify[{extra}]'")


class RationalisationWarning(UserWarning):
    """Some floats changed by more than :data:`WARN_ABOVE` when made exact.

    ``changes`` lists ``(place, float, fraction, change)``, largest change first.
    """

    def __init__(self, message: str, changes=()):
        super().__init__(message)
        self.changes = list(changes)


class MergedRewardWarning(UserWarning):
    """Entries with the same (s, a, s_next) had different rewards; their mean was used.

    ``places`` lists ``(s, a, s_next, [(probability, reward), ...], mean)`` with Gymnasium's indices.
    """

    def __init__(self, message: str, places=()):
        super().__init__(message)
        self.places = list(places)


def fraction_text(f: Fraction) -> str | int:
    """An exact number as the case file writes it: an int, or the text ``"p/q"``."""
    f = Fraction(f)
    return f.numerator if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


@dataclass
class _Change:
    place: str
    given: float
    value: Fraction
    change: float


class Rationaliser:
    """Turns numbers into exact fractions, remembering what it changed.

    Parameters
    ----------
    limit : int or None
        The largest denominator of a rationalised float; None keeps the float's exact value.
    source : str
        What is imported, for the messages.

    Examples
    --------
    >>> r = Rationaliser(1000, "example")
    >>> r.number(0.1 + 0.2, "x"), r.number(1, "y")
    (Fraction(3, 10), Fraction(1, 1))
    >>> r.row({"a": 1/3, "b": 1/3, "c": 1/3}, "row")
    {'a': Fraction(1, 3), 'b': Fraction(1, 3), 'c': Fraction(1, 3)}
    >>> r.problems, max(c.change for c in r.changes) < 1e-16
    ([], True)
    """

    def __init__(self, limit: int | None = DEFAULT_LIMIT, source: str = "the input"):
        if limit is not None and (not isinstance(limit, Integral) or isinstance(limit, bool) or limit < 1):
            raise ImporterError([Problem("the denominator limit must be a positive integer or None",
                                         key="limit", given=repr(limit),
                                         hint=f"Use e.g. limit={DEFAULT_LIMIT}")], source)
        self.limit = None if limit is None else int(limit)
        self.source = source
        self.problems: list[Problem] = []
        self.changes: list[_Change] = []

    # -- single numbers ----------------------------------------------------------
    def number(self, x, place: str, *, what: str = "value") -> Fraction | None:
        """``x`` as an exact fraction, or None (with a problem recorded) if it is not a finite real."""
        exact, is_float = self._exact(x)
        if exact is None:
            self.problems.append(Problem(f"the {what} is not a finite real number", key=place, given=_shown(x),
                                         hint="Give finite numbers (int, float, fractions.Fraction)"))
            return None
        if not is_float or self.limit is None:
            return exact
        value = exact.limit_denominator(self.limit)
        change = abs(exact - value)
        if change:
            self.changes.append(_Change(place, float(x), value, float(change)))
        return value

    def probability(self, x, place: str) -> Fraction | None:
        """A number that must lie in [0, 1] (checked on the value as given)."""
        exact, _ = self._exact(x)
        if exact is not None and not 0 <= exact <= 1:
            self.problems.append(Problem("a probability must lie in [0, 1]", key=place, given=_shown(x),
                                         hint="Fix the entry" if exact < 0 else "Probabilities are at most 1"))
            return None
        return self.number(x, place, what="probability")

    # -- distributions -------------------------------------------------------------
    def row(self, entries: dict, place: str, place_of=None) -> dict | None:
        """An exact distribution from ``{key: probability}``; None (a problem recorded) if it cannot be one.

        ``place_of(key)`` names an entry (default: ``place`` with the key added as an index).
        Zero entries are dropped.  See the module docstring for how a remainder is handled.
        """
        place_of = place_of or (lambda key: _join(place, key))
        out, any_float, given_sum, ok = {}, False, Fraction(0), True
        for key, x in entries.items():
            exact, is_float = self._exact(x)
            any_float |= bool(is_float)
            value = self.probability(x, place_of(key))
            if value is None:
                ok = False
                continue
            given_sum += exact
            out[key] = value
        if not ok:
            return None
        total = sum(out.values(), Fraction(0))
        if total != 1:
            if not any_float or abs(given_sum - 1) > ROW_TOLERANCE or not out:
                shown = repr(float(given_sum)) if any_float else str(given_sum)
                self.problems.append(Problem(
                    f"the probabilities add up to {shown}, not 1", key=place,
                    given=_shown_row(entries),
                    hint=("Normalise the row" if any_float else "Make the row add up to exactly 1")))
                return None
            big = max(out, key=lambda k: (out[k], -list(out).index(k)))
            fixed = 1 - (total - out[big])
            before, _ = self._exact(entries[big])
            self.changes = [c for c in self.changes if c.place != place_of(big)]
            if fixed != before:
                self.changes.append(_Change(place_of(big), float(entries[big]), fixed,
                                            float(abs(fixed - before))))
            out[big] = fixed
        return {k: v for k, v in out.items() if v != 0}

    # -- reporting -------------------------------------------------------------------
    def warn(self, stacklevel: int = 3) -> None:
        """Issue one :class:`RationalisationWarning` if some value moved by more than :data:`WARN_ABOVE`."""
        big = sorted((c for c in self.changes if c.change > WARN_ABOVE), key=lambda c: -c.change)
        if not big:
            return
        first = big[0]
        how = (f"limit_denominator({self.limit})" if self.limit is not None else "their exact binary value")
        shown = ", ".join(f"{c.place}: {c.given!r} -> {fraction_text(c.value)} (by {c.change:.2g})"
                          for c in big[:3])
        more = f", and {len(big) - 3} more" if len(big) > 3 else ""
        message = (f"{self.source}: {len(big)} value{'s' if len(big) != 1 else ''} changed by more than "
                   f"{WARN_ABOVE:g} when made exact with {how} (at most {first.change:.2g}): {shown}{more}. "
                   "Pass exact fractions, or a larger denominator limit")
        warnings.warn(RationalisationWarning(message, [(c.place, c.given, c.value, c.change) for c in big]),
                      stacklevel=stacklevel)

    def raise_problems(self) -> None:
        if self.problems:
            raise ImporterError(self.problems, self.source)

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def _exact(x):
        """(exact Fraction or None, whether x was a float)."""
        if isinstance(x, bool):
            return Fraction(int(x)), False
        if isinstance(x, Fraction):
            return x, False
        if isinstance(x, Integral):
            return Fraction(int(x)), False
        if isinstance(x, Decimal):
            return (Fraction(x), False) if x.is_finite() else (None, False)
        try:
            import sympy
            if isinstance(x, sympy.Rational):
                return Fraction(int(x.p), int(x.q)), False
            if isinstance(x, sympy.Basic):
                return None, False
        except ImportError:  # pragma: no cover - sympy is a dependency
            pass
        if isinstance(x, Real) or hasattr(x, "__float__"):
            try:
                f = float(x)
            except (TypeError, ValueError):
                return None, False
            if not math.isfinite(f):
                return None, True
            return Fraction(f), True
        return None, False


def exact_setting(value, what, source, limit):
    """A discount or similar setting: text as given, a number rationalised (warning if it moves)."""
    if isinstance(value, str):
        return value
    R = Rationaliser(limit, source)
    f = R.number(value, what)
    R.raise_problems()
    R.warn(stacklevel=5)
    return fraction_text(f)


def _join(place: str, key) -> str:
    """``P[0, 1]`` + 2 -> ``P[0, 1, 2]``; ``start`` + s0 -> ``start[s0]``."""
    if place.endswith("]"):
        return f"{place[:-1]}, {key}]"
    return f"{place}[{key}]"


def _shown(x) -> str:
    if isinstance(x, Fraction):
        return str(x)
    try:
        return repr(float(x)) if not isinstance(x, Integral) else str(int(x))
    except (TypeError, ValueError):
        return repr(x)


def _shown_row(entries: dict) -> str:
    items = list(entries.items())
    text = ", ".join(f"{k}: {_shown(v)}" for k, v in items[:6])
    return "{" + text + (", ..." if len(items) > 6 else "") + "}"


# ---------------------------------------------------------------------------------------
# The fields of the case dict, shared by the importers.  States and actions are indices
# here; ``names`` and ``action_names`` name them.
# ---------------------------------------------------------------------------------------
#: The policy forms an importer writes by name.
POLICIES = ("tabular", "uniform")


def policy_field(policy, nonterminal_names, action_names, source):
    """The ``policy`` field: ``"tabular"`` -> ``{softmax: tabular}``, ``"uniform"``, or a mapping as it is."""
    if isinstance(policy, Mapping):
        return dict(policy)
    if policy == "tabular":
        return {"softmax": "tabular"}
    if policy == "uniform":
        p = fraction_text(Fraction(1, len(action_names)))
        return {s: {a: p for a in action_names} for s in nonterminal_names}
    raise ImporterError([Problem(f"unknown policy form {policy!r}", key="policy", given=repr(policy),
                                 hint="Use 'tabular' (softmax, one parameter per state and action), 'uniform', "
                                      "or a mapping with the policy field of a case file")], source)


def transitions_field(transitions, names, action_names) -> dict:
    """``{s: {a: {s_next: p}}}`` (indices, Fractions) -> the ``transitions`` field (``a: s_next`` when p = 1)."""
    return {
        names[s]: {action_names[a]: (names[next(iter(row))] if len(row) == 1 else
                                     {names[n]: fraction_text(p) for n, p in sorted(row.items())})
                   for a, row in by_a.items()}
        for s, by_a in transitions.items()
    }


def rewards_field(step_rewards, names, action_names) -> dict:
    """``{s: {a: {s_next: r}}}`` -> the ``rewards`` field.

    ``default`` is the most common step reward (0 on a tie, else the smallest tied value);
    then, per state, the actions whose steps differ from it: ``a: r`` when every step of
    ``(s, a)`` has the same reward, else ``a: {s_next: r}`` for the steps that differ.
    """
    counts = Counter(r for by_a in step_rewards.values() for by_n in by_a.values() for r in by_n.values())
    default = Fraction(0)
    if counts:
        top = max(counts.values())
        tied = sorted(r for r, c in counts.items() if c == top)
        default = Fraction(0) if 0 in tied else tied[0]
    out: dict = {"default": fraction_text(default)}
    for s, by_a in step_rewards.items():
        row = {}
        for a, by_n in by_a.items():
            differ = {n: r for n, r in by_n.items() if r != default}
            if not differ:
                continue
            values = set(differ.values())
            if len(differ) == len(by_n) and len(values) == 1:
                row[action_names[a]] = fraction_text(values.pop())
            else:
                row[action_names[a]] = {names[n]: fraction_text(r) for n, r in sorted(differ.items())}
        if row:
            out[names[s]] = row
    return out
