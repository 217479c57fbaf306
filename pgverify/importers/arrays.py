"""Transition and reward arrays -> case, in the layouts of pymdptoolbox and mushroom-rl.

Two layouts (``layout=``):

``"mdptoolbox"`` (pymdptoolbox, ``mdptoolbox.mdp``)
    ``P[a, s, s_next]``, shape (A, S, S) (a list of A matrices, dense or scipy sparse, is
    accepted too); ``R`` is ``R[s]`` (S,), a reward for every step out of ``s``,
    ``R[s, a]`` (S, A), or ``R[a, s, s_next]`` (A, S, S).  Every row ``P[a, s, :]`` of a
    state that is not terminal must add up to 1.
``"mushroom"`` (mushroom-rl, ``FiniteMDP(p, r, mu, gamma, horizon)``)
    ``p[s, a, s_next]``, shape (S, A, S), and ``r[s, a, s_next]`` of the same shape.  A
    state whose rows are all zero is absorbing in mushroom-rl (its ``step`` ends the
    episode on entering it): it becomes a terminal state.

Both give r(s, a, s_next) and P(s_next | s, a) of a case file; expected rewards are what
J(theta) depends on, so ``R[s, a]`` and ``R[a, s, s_next]`` with the same means give
the same J and gradient.  ``mu`` is the start distribution (default: uniform over all
states, as mushroom-rl's ``reset`` draws when ``mu`` is None; pymdptoolbox has none).
Floats are made exact as :mod:`pgverify.importers.common` says.  ``terminal`` names
terminal states by index or name; their rows are not read.  A state that every action
leaves for itself with probability 1 and reward 0 (an absorbing state) stays an ordinary
state unless ``absorbing_as_terminal=True`` (its value is 0 either way; as a terminal
state it has no parameters, and with discount 1 and no horizon it makes the return
defined).
"""
from __future__ import annotations

from collections import Counter
from fractions import Fraction
from numbers import Integral
from typing import Mapping, Sequence

import numpy as np

from ..errors import Problem
from ..model import Case
from .common import (
    DEFAULT_LIMIT,
    ImporterError,
    Rationaliser,
    exact_setting,
    fraction_text,
    policy_field,
    rewards_field,
    transitions_field,
)

__all__ = ["LAYOUTS", "arrays_to_dict", "from_arrays"]

LAYOUTS = ("mdptoolbox", "mushroom")


def _as_array(x, name: str, problems: list) -> np.ndarray | None:
    """A numpy array (object dtype kept, so Fractions stay exact); None with a problem if it is not one."""
    if hasattr(x, "toarray"):
        x = x.toarray()
    if isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.dtype == object and x.ndim == 1):
        if any(hasattr(e, "toarray") for e in x):
            x = [e.toarray() if hasattr(e, "toarray") else e for e in x]
    try:
        arr = np.asarray(x)
    except ValueError:
        arr = None
    # (the types of an object array's entries, each looked at once: an array of 10**7 Fractions has one)
    if arr is None or (arr.dtype == object
                       and any(issubclass(t, (list, tuple, np.ndarray)) for t in set(map(type, arr.flat)))):
        problems.append(Problem("not a rectangular array (rows of different lengths)", key=name,
                                hint="Give a numpy array, or nested lists of equal lengths"))
        return None
    if arr.dtype.kind not in "biufO":
        problems.append(Problem(f"the entries must be real numbers (dtype {arr.dtype})", key=name,
                                given=_short(arr)))
        return None
    return arr


def _short(arr) -> str:
    text = np.array2string(np.asarray(arr), threshold=8, max_line_width=80)
    return " ".join(text.split())


def _names(given, n, prefix, what, problems) -> list[str]:
    if given is None:
        return [f"{prefix}{k}" for k in range(n)]
    names = [str(x) for x in given]
    if len(names) != n:
        problems.append(Problem(f"{len(names)} {what} names for {n} {what}s", key=f"{what}s",
                                given=", ".join(names[:8]) + (", ..." if len(names) > 8 else "")))
        return [f"{prefix}{k}" for k in range(n)]
    dup = sorted(x for x, k in Counter(names).items() if k > 1)
    if dup:
        problems.append(Problem(f"duplicate {what} name(s) {', '.join(map(repr, dup))}", key=f"{what}s",
                                hint=f"Give every {what} its own name"))
    return names


def _index(x, names, what, problems, key) -> int | None:
    if isinstance(x, Integral) and not isinstance(x, bool) and 0 <= int(x) < len(names):
        return int(x)
    if isinstance(x, str) and x in names:
        return names.index(x)
    problems.append(Problem(f"unknown {what}", key=key, given=repr(x),
                            hint=f"Give an index 0..{len(names) - 1} or a name ({', '.join(names[:6])}"
                                 + (", ...)" if len(names) > 6 else ")")))
    return None


def arrays_to_dict(P, R, *, layout: str = "mdptoolbox", mu=None, gamma=1, horizon=None,
                   terminal: Sequence | None = None, states: Sequence | None = None,
                   actions: Sequence | None = None, policy="tabular", parameters: Mapping | None = None,
                   limit: int | None = DEFAULT_LIMIT, absorbing_as_terminal: bool = False,
                   name: str = "arrays", description: str | None = None) -> dict:
    """The fields of a case file for an MDP given as arrays (see the module docstring).

    Parameters
    ----------
    P, R : array-like
        Transitions and rewards in ``layout``: ``"mdptoolbox"`` (``P[A,S,S]``; ``R[S]``,
        ``R[S,A]`` or ``R[A,S,S]``) or ``"mushroom"`` (``p[S,A,S]``, ``r[S,A,S]``).
        Entries may be ints, floats, ``fractions.Fraction`` (use ``dtype=object``) or sympy
        rationals.
    mu : array-like, int or str, optional
        The start distribution over states, or one start state (index or name).
        Default: uniform over all states.
    gamma : number or str
        The discount (default 1; a float is rationalised: 0.9 -> 9/10).
    horizon : int or None
        At most this many steps (``numpy.inf`` or None: no horizon).
    terminal : sequence of int or str, optional
        Terminal states (indices or names).
    states, actions : sequence of str, optional
        Names (default ``s0, s1, ...`` and ``a0, a1, ...``).
    policy : "tabular", "uniform" or mapping
        As for :func:`pgverify.importers.gymnasium_to_dict` (default ``{softmax: tabular}``).
    parameters : mapping, optional
        The ``parameters`` field.
    limit : int or None
        The largest denominator of a rationalised float (None: the exact binary value).
    absorbing_as_terminal : bool
        Make absorbing states (every action: back to itself with probability 1, reward 0) terminal.
    name, description : str
        The case's name and description.

    Returns
    -------
    dict
        The fields of a case file.

    Raises
    ------
    ImporterError
        Wrong shapes, entries that are not finite reals, negative probabilities, rows that do
        not add up to 1, unknown names: every problem, each with the array and index.

    Examples
    --------
    A two-state chain in pymdptoolbox's layout: ``go`` moves to ``T`` with probability 1/2.

    >>> import numpy as np
    >>> P = np.array([[[1, 0], [0, 1]],           # action 0 (stay)
    ...               [[0.5, 0.5], [0, 1]]])      # action 1 (go)
    >>> R = np.array([[0, 1], [0, 0]])            # R[s, a]
    >>> data = arrays_to_dict(P, R, terminal=[1], actions=["stay", "go"], mu=0, gamma=0.9)
    >>> data["transitions"], data["discount"]
    ({'s0': {'stay': 's0', 'go': {'s0': '1/2', 's1': '1/2'}}}, '9/10')

    The most common step reward becomes the default (two of the three steps pay 1):

    >>> data["rewards"]
    {'default': 1, 's0': {'stay': 0}}
    """
    problems: list[Problem] = []
    if layout not in LAYOUTS:
        raise ImporterError([Problem(f"unknown layout {layout!r}", key="layout", given=repr(layout),
                                     hint="Use 'mdptoolbox' (P[A,S,S]) or 'mushroom' (p[S,A,S])")], "arrays")
    source = f"arrays ({layout} layout)"
    Pa = _as_array(P, "P", problems)
    Ra = _as_array(R, "R", problems)
    if problems:
        raise ImporterError(problems, source)

    # 1. Shapes -> prob(s, a), reward(s, a) as arrays over s_next, and the places for messages.
    if layout == "mdptoolbox":
        if Pa.ndim != 3 or Pa.shape[1] != Pa.shape[2] or 0 in Pa.shape:
            raise ImporterError([Problem("P must have the shape (A, S, S): P[a, s, s_next]", key="P",
                                         given=f"shape {Pa.shape}",
                                         hint="For p[s, a, s_next] (mushroom-rl), pass layout='mushroom'")], source)
        n_actions, n_states = Pa.shape[0], Pa.shape[1]
        S, A = n_states, n_actions
        if Ra.shape == (S,):
            def reward(s, a):
                return [Ra[s]] * S, lambda n: f"R[{s}]"
        elif Ra.shape == (S, A):
            def reward(s, a):
                return [Ra[s, a]] * S, lambda n: f"R[{s}, {a}]"
        elif Ra.shape == (A, S, S):
            def reward(s, a):
                return Ra[a, s], lambda n: f"R[{a}, {s}, {n}]"
        else:
            raise ImporterError([Problem(f"R must have the shape ({S},) (R[s]), ({S}, {A}) (R[s, a]) or "
                                         f"({A}, {S}, {S}) (R[a, s, s_next]) for P of shape {Pa.shape}",
                                         key="R", given=f"shape {Ra.shape}")], source)

        def prob(s, a):
            return Pa[a, s], lambda n: f"P[{a}, {s}, {n}]", f"P[{a}, {s}, :]"
    else:
        if Pa.ndim != 3 or Pa.shape[0] != Pa.shape[2] or 0 in Pa.shape:
            raise ImporterError([Problem("p must have the shape (S, A, S): p[s, a, s_next]", key="P",
                                         given=f"shape {Pa.shape}",
                                         hint="For P[a, s, s_next] (pymdptoolbox), pass layout='mdptoolbox'")],
                                source)
        n_states, n_actions = Pa.shape[0], Pa.shape[1]
        S, A = n_states, n_actions
        if Ra.shape != Pa.shape:
            raise ImporterError([Problem(f"r must have the shape of p, ({S}, {A}, {S}): r[s, a, s_next]", key="R",
                                         given=f"shape {Ra.shape}")], source)

        def reward(s, a):
            return Ra[s, a], lambda n: f"R[{s}, {a}, {n}]"

        def prob(s, a):
            return Pa[s, a], lambda n: f"P[{s}, {a}, {n}]", f"P[{s}, {a}, :]"

    names = _names(states, S, "s", "state", problems)
    action_names = _names(actions, A, "a", "action", problems)
    term: set[int] = set()
    for k, x in enumerate(terminal or ()):
        i = _index(x, names, "state", problems, f"terminal[{k}]")
        if i is not None:
            term.add(i)
    Rz = Rationaliser(limit, source)
    if layout == "mushroom":  # mushroom-rl: a state whose rows are all zero is absorbing
        for s in range(S):
            if not np.any(Pa[s] != 0):
                term.add(s)

    # 2. Every entry: finite, non-negative (rows with a bad entry are not read further).
    bad_rows = set()
    if Pa.dtype.kind in "biuf":  # numbers: only the bad entries are looked at one by one
        candidates = np.argwhere(~np.isfinite(Pa) | (Pa < 0)) if Pa.dtype.kind == "f" else np.argwhere(Pa < 0)
    else:  # objects (Fractions, ...): a zero is a valid probability; the rest one by one
        try:
            candidates = np.argwhere(np.asarray(Pa != 0, dtype=bool))
        except (TypeError, ValueError):  # an entry that does not compare with 0
            candidates = np.argwhere(np.ones(Pa.shape, dtype=bool))
    for i in map(tuple, candidates.tolist()):
        x = Pa[i]
        exact, _ = Rationaliser._exact(x)
        if exact is None or exact < 0:
            where = ", ".join(map(str, i))
            problems.append(Problem("a probability must be a finite number >= 0" if exact is not None else
                                    "the probability is not a finite real number", key=f"P[{where}]",
                                    given=_shown(x)))
            bad_rows.add((i[1], i[0]) if layout == "mdptoolbox" else (i[0], i[1]))

    # 3. Absorbing states.
    if absorbing_as_terminal:
        for s in range(S):
            if s in term or any((s, a) in bad_rows for a in range(A)):
                continue
            if all(_is_one(prob(s, a)[0][s]) and _is_zero(reward(s, a)[0][s]) for a in range(A)):
                term.add(s)

    # 4. Rows and rewards, exact.
    transitions, step_rewards = {}, {}
    for s in range(S):
        if s in term:
            continue
        transitions[s], step_rewards[s] = {}, {}
        for a in range(A):
            if (s, a) in bad_rows:
                continue
            row, place_of, place = prob(s, a)
            values = {int(n): row[n] for n in np.flatnonzero(row != 0)} if len(row) else {}
            exact = Rz.row(values, place, place_of=place_of)
            if exact is None:
                continue
            rew, rplace = reward(s, a)
            transitions[s][a] = exact
            step_rewards[s][a] = {}
            for n in exact:
                r = Rz.number(rew[n], rplace(n), what="reward")
                if r is not None:
                    step_rewards[s][a][n] = r
    start = _start(mu, names, Rz, problems)
    problems.extend(Rz.problems)
    if problems:
        raise ImporterError(problems, source)
    Rz.warn(stacklevel=3)

    data: dict = {"name": name}
    data["description"] = description if description is not None else (
        f"Imported by pgverify from arrays in the {layout} layout (P {tuple(Pa.shape)}, R {tuple(Ra.shape)}); "
        + ("probabilities and rewards made exact with "
           + (f"limit_denominator({limit})." if limit is not None else "their exact binary values.")))
    if parameters:
        data["parameters"] = dict(parameters)
    data["states"] = names
    if term:
        data["terminal"] = [names[s] for s in sorted(term)]
    data["actions"] = action_names
    if len(start) == 1 and next(iter(start.values())) == 1:
        data["start"] = names[next(iter(start))]
    else:
        data["start"] = {names[s]: fraction_text(p) for s, p in sorted(start.items())}
    data["discount"] = exact_setting(gamma, "gamma", source, limit)
    h = _horizon(horizon, source)
    if h is not None:
        data["horizon"] = h
    data["policy"] = policy_field(policy, [names[s] for s in range(S) if s not in term], action_names, source)
    data["transitions"] = transitions_field(transitions, names, action_names)
    data["rewards"] = rewards_field(step_rewards, names, action_names)
    return data


def from_arrays(P, R, **options) -> Case:
    """The validated :class:`~pgverify.model.Case` of an MDP given as arrays (options of :func:`arrays_to_dict`).

    Also available as ``Case.from_arrays``.

    Examples
    --------
    >>> import pgverify
    >>> from fractions import Fraction as F
    >>> import numpy as np
    >>> p = np.array([[[F(1, 2), F(1, 2)], [0, 1]], [[0, 0], [0, 0]]], dtype=object)  # p[s, a, s_next]
    >>> r = np.array([[[0, 1], [0, 0]], [[0, 0], [0, 0]]])                              # r[s, a, s_next]
    >>> case = from_arrays(p, r, layout="mushroom", mu=[1, 0])     # s1's rows are zero: terminal
    >>> sorted(case.terminal), pgverify.check(case, mode="at-point").objective.value
    (['s1'], '1/3')

    (uniform policy: J = 1/2 (J/2 + 1/2) + 1/2 * 0, so J = 1/3.)
    """
    data = arrays_to_dict(P, R, **options)
    return Case.from_dict(data, source=f"arrays {data['name']}")


def _shown(x) -> str:
    try:
        return repr(float(x)) if not isinstance(x, (Integral, Fraction)) else str(x)
    except (TypeError, ValueError):
        return repr(x)


def _is_one(x) -> bool:
    exact, _ = Rationaliser._exact(x)
    return exact == 1


def _is_zero(x) -> bool:
    exact, _ = Rationaliser._exact(x)
    return exact == 0


def _start(mu, names, R, problems) -> dict[int, Fraction]:
    S = len(names)
    if mu is None:
        return {s: Fraction(1, S) for s in range(S)}
    if isinstance(mu, (str, Integral)) and not isinstance(mu, bool):
        i = _index(mu, names, "start state", problems, "mu")
        return {} if i is None else {i: Fraction(1)}
    arr = _as_array(mu, "mu", problems)
    if arr is None:
        return {}
    if arr.shape != (S,):
        problems.append(Problem(f"mu must have the shape ({S},): mu[s]", key="mu", given=f"shape {arr.shape}"))
        return {}
    return R.row({s: arr[s] for s in range(S) if arr[s] != 0}, "mu") or {}


def _horizon(horizon, source):
    if horizon is None:
        return None
    try:
        h = float(horizon)
    except (TypeError, ValueError):
        h = None
    if h == float("inf"):
        return None
    if h is None or h != int(h) or h < 1 or isinstance(horizon, bool):
        raise ImporterError([Problem("the horizon must be a positive integer, or None (numpy.inf) for none",
                                     key="horizon", given=repr(horizon))], source)
    return int(h)
