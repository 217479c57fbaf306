"""Gymnasium toy-text environments (a transition table ``env.unwrapped.P``) -> case.

Gymnasium's toy-text environments (FrozenLake, CliffWalking, Taxi) keep their dynamics
in a table ``P[s][a] = [(probability, next_state, reward, terminated), ...]``.  This
module reads that table into the fields of a case file (version 1 of the contract),
exactly:

- **states** are Gymnasium's observations ``0 .. n-1``, named ``s0 .. s<n-1>`` (for the
  grid worlds, observation ``k`` is the cell ``row * ncol + col``);
- **actions** get the names Gymnasium's documentation gives them (FrozenLake
  ``left down right up``, CliffWalking ``up right down left``, Taxi ``south north east
  west pickup dropoff``), else ``a0 .. a<m-1``;
- **probabilities and rewards** are made exact as :mod:`pgverify.importers.common`
  says (``limit_denominator``, with a warning when a value moves by more than 1e-12);
- **duplicate entries** for the same next state (FrozenLake's slippery moves into a wall)
  are merged: their probabilities are added.  If their rewards differ (slippery
  CliffWalking: stepping into the cliff and sliding along the edge both lead to the
  start, with -100 and -1), the step gets the probability-weighted mean reward
  (``reward_conflict="mean"``, with a :class:`MergedRewardWarning`), which leaves
  J(theta) and its gradient unchanged, because the return's expectation depends on a
  step's reward only through its mean given (s, a, s_next); only the spread of sampled
  returns changes.  ``reward_conflict="error"`` refuses instead;
- **terminal states**: Gymnasium ends an episode on a *transition* whose ``terminated``
  is true; the case file ends it on entering a terminal *state*.  A state that some
  entry enters with ``terminated=True`` is terminal (so FrozenLake's holes and goal,
  whose own rows are self-loops with ``terminated=True``, are terminal, and Taxi's
  states after a successful drop-off).  If a state is entered both ways from states the
  episode can reach, the two do not match and the import is refused.  Termination is
  judged on the part of the table reachable from the start distribution (Taxi also lists
  states that no episode reaches, from which it moves into its final states without
  ``terminated``);
- the **start distribution** is the env's ``initial_state_distrib`` (or ``isd``), else
  uniform over the cells marked ``S`` in ``desc``;
- **discount** and **horizon** are chosen by the user: the discount defaults to 1 and the
  horizon to the ``max_episode_steps`` of the env's ``TimeLimit`` (``horizon="env"``:
  100 for FrozenLake-v1, 200 for FrozenLake8x8-v1 and Taxi-v3/v4, none for CliffWalking);
- the **policy** defaults to ``{softmax: tabular}``, one parameter ``theta_<s>_<a>`` per
  non-terminal state and action, all 0 (the uniform policy); ``"uniform"`` writes the
  uniform policy explicitly (no parameters), and a mapping is used as the ``policy``
  field as it is.
"""
from __future__ import annotations

import importlib
import warnings
from fractions import Fraction
from numbers import Integral
from typing import Mapping, Sequence

from ..errors import Problem
from ..model import Case
from .common import (
    DEFAULT_LIMIT,
    ImporterError,
    MergedRewardWarning,
    MissingExtraError,
    Rationaliser,
    exact_setting,
    fraction_text,
    policy_field,
    rewards_field,
    transitions_field,
)

__all__ = ["ACTION_NAMES", "gymnasium_to_dict", "from_gymnasium"]

#: Action names by the class of the unwrapped env, in Gymnasium's action order.
ACTION_NAMES = {
    "FrozenLakeEnv": ("left", "down", "right", "up"),
    "CliffWalkingEnv": ("up", "right", "down", "left"),
    "TaxiEnv": ("south", "north", "east", "west", "pickup", "dropoff"),
}


def _import_gymnasium():
    try:
        return importlib.import_module("gymnasium")
    except ImportError:
        raise MissingExtraError("Importing from Gymnasium", "gymnasium", "gymnasium") from None


def _make(env_or_id, map, desc, slippery, env_kwargs):
    """(env, id, kwargs given to make, gymnasium version, whether we made it)."""
    options = {k: v for k, v in (("map", map), ("desc", desc), ("slippery", slippery)) if v is not None}
    if not isinstance(env_or_id, str):
        if options or env_kwargs:
            raise ImporterError([Problem("map, desc, slippery and env_kwargs apply only when an env id is given",
                                         key=", ".join(list(options) + (["env_kwargs"] if env_kwargs else [])),
                                         hint="Make the env with those options yourself, or pass its id")],
                                f"Gymnasium env {type(env_or_id).__name__}")
        spec = getattr(env_or_id, "spec", None)
        try:
            version = importlib.import_module("gymnasium").__version__
        except ImportError:
            version = None
        return env_or_id, getattr(spec, "id", None), dict(getattr(spec, "kwargs", None) or {}), version, False
    gym = _import_gymnasium()
    kwargs = dict(env_kwargs or {})
    if map is not None and desc is not None:
        raise ImporterError([Problem("give either a map name or a custom desc, not both", key="map, desc",
                                     given=f"{map!r}, {desc!r}")], f"Gymnasium {env_or_id}")
    if map is not None:
        kwargs["map_name"] = str(map)
    if desc is not None:
        kwargs["desc"] = _desc_rows(desc)
    if slippery is not None:
        kwargs["is_slippery"] = bool(slippery)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            env = gym.make(env_or_id, **kwargs)
    except (gym.error.Error, TypeError, ValueError, KeyError, IndexError) as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ImporterError([Problem(f"gymnasium.make failed: {exc}", key="env",
                                     given=f"{env_or_id}" + (f" ({shown})" if shown else ""),
                                     hint="Check the env id and its options (gymnasium.pprint_registry() lists "
                                          "the ids; map and desc are FrozenLake's, slippery is FrozenLake's "
                                          "and CliffWalking's)")],
                            f"Gymnasium {env_or_id}") from None
    return env, env_or_id, kwargs, gym.__version__, True


#: FrozenLake's tiles: start, frozen, hole, goal
TILES = "SFHG"


def _desc_rows(desc) -> list[str]:
    """The rows of a custom FrozenLake map, checked: every row non-empty and of the same length,
    tiles from S F H G, at least one S and one G (an invalid tile or an empty row was dropped)."""
    if isinstance(desc, str):
        rows = [row.strip() for row in desc.replace("/", ",").split(",")]
    else:
        rows = [str(row) for row in desc]
    problems = []
    for i, row in enumerate(rows):
        if not row:
            problems.append(Problem(f"row {i + 1} of the map is empty", key="desc", given=str(desc)[:80],
                                    hint="Separate rows by ',' or '/', e.g. 'SFFF,FHFH,FFFH,HFFG'"))
            continue
        for j, tile in enumerate(row):
            if tile not in TILES:
                problems.append(Problem(f"invalid tile {tile!r} at row {i + 1}, column {j + 1}", key="desc",
                                        given=row, hint="Tiles are S (start), F (frozen), H (hole), G (goal)"))
    lengths = {len(r) for r in rows if r}
    if len(lengths) > 1:
        problems.append(Problem(f"the rows have different lengths ({', '.join(map(str, sorted(lengths)))})",
                                key="desc", given=str(desc)[:80], hint="Every row needs the same number of tiles"))
    text = "".join(rows)
    if not problems and ("S" not in text or "G" not in text):
        problems.append(Problem("the map needs a start tile S and a goal tile G", key="desc", given=str(desc)[:80]))
    if problems:
        raise ImporterError(problems, "Gymnasium FrozenLake-v1 (desc)")
    return rows


def _desc_of(raw) -> list[str] | None:
    desc = getattr(raw, "desc", None)
    if desc is None:
        return None
    rows = []
    for row in desc:
        rows.append("".join(c.decode() if isinstance(c, bytes) else str(c) for c in row))
    return rows


def gymnasium_to_dict(env_or_id, *, map: str | None = None, desc: Sequence[str] | str | None = None,
                      slippery: bool | None = None, env_kwargs: Mapping | None = None,
                      gamma=1, horizon="env", policy="tabular", parameters: Mapping | None = None,
                      limit: int | None = DEFAULT_LIMIT, name: str | None = None,
                      prune_unreachable: bool = False, reward_conflict: str = "mean") -> dict:
    """The fields of a case file for a Gymnasium env with a transition table.

    Parameters
    ----------
    env_or_id : str or gymnasium.Env
        An env id (``"FrozenLake-v1"``), made with ``gymnasium.make``, or an env.
    map : str, optional
        FrozenLake's ``map_name`` (``"4x4"``, ``"8x8"``).
    desc : list of str or str, optional
        A custom FrozenLake map, as rows (``["SFFF", "FHFH", "FFFH", "HFFG"]`` or
        ``"SFFF,FHFH,FFFH,HFFG"``).
    slippery : bool, optional
        ``is_slippery`` (FrozenLake, CliffWalking); default: the env's own default.
    env_kwargs : mapping, optional
        Other keyword arguments of ``gymnasium.make`` (``{"is_rainy": True}`` for Taxi-v4).
    gamma : number or str
        The discount (exact: ``1``, ``"99/100"``; a float is rationalised).  Default 1.
    horizon : int, None or "env"
        At most this many steps; None for no horizon; ``"env"`` (default) for the
        ``max_episode_steps`` of the env's ``TimeLimit`` (none if it has none).
    policy : "tabular", "uniform" or mapping
        ``{softmax: tabular}`` (default), the uniform policy written out, or a ``policy``
        field to use as it is.
    parameters : mapping, optional
        The ``parameters`` field (e.g. values for some ``theta_<s>_<a>``).
    limit : int or None
        The largest denominator of a rationalised float (default :data:`DEFAULT_LIMIT`);
        None keeps the floats' exact binary values.
    name : str, optional
        The case's name (default: from the id and the map).
    prune_unreachable : bool
        Leave out the states that no episode reaches from the start distribution.
    reward_conflict : "mean" or "error"
        What to do when duplicate entries of one (s, a, s_next) have different rewards.

    Returns
    -------
    dict
        The fields of a case file; :func:`pgverify.importers.write_case` writes it and
        ``Case.from_dict`` validates it.

    Raises
    ------
    MissingExtraError
        When gymnasium is not installed (``pip install 'pgverify[gymnasium]'``).
    ImporterError
        When the env has no usable transition table, with every problem found.
    """
    if reward_conflict not in ("mean", "error"):
        raise ImporterError([Problem("reward_conflict must be 'mean' or 'error'", key="reward_conflict",
                                     given=repr(reward_conflict))], "Gymnasium env")
    env, env_id, kwargs, version, owned = _make(env_or_id, map, desc, slippery, env_kwargs)
    try:
        return _build(env, env_id, kwargs, version, gamma=gamma, horizon=horizon, policy=policy,
                      parameters=parameters, limit=limit, name=name, prune_unreachable=prune_unreachable,
                      reward_conflict=reward_conflict)
    finally:
        if owned:
            env.close()


def from_gymnasium(env_or_id, **options) -> Case:
    """The validated :class:`~pgverify.model.Case` of a Gymnasium env (options of :func:`gymnasium_to_dict`)."""
    data = gymnasium_to_dict(env_or_id, **options)
    return Case.from_dict(data, source=f"Gymnasium {data['name']}")


# ---------------------------------------------------------------------------------
def _build(env, env_id, kwargs, version, *, gamma, horizon, policy, parameters, limit, name,
           prune_unreachable, reward_conflict) -> dict:
    raw = getattr(env, "unwrapped", env)
    cls = type(raw).__name__
    source = f"Gymnasium {env_id or cls}"
    table = getattr(raw, "P", None)
    if not isinstance(table, Mapping) and not isinstance(table, (list, tuple)):
        raise ImporterError([Problem("the env has no transition table env.unwrapped.P", key="env.unwrapped.P",
                                     given=cls, hint="Only envs that list P[s][a] = [(probability, next_state, "
                                     "reward, terminated), ...] can be imported (FrozenLake, CliffWalking, Taxi); "
                                     "for others, build the arrays and use from_arrays")], source)
    n_states = _space_size(getattr(raw, "observation_space", None)) or len(table)
    n_actions = _space_size(getattr(raw, "action_space", None))
    problems: list[Problem] = []
    R = Rationaliser(limit, source)
    names = [f"s{k}" for k in range(n_states)]
    action_names = list(ACTION_NAMES.get(cls, ()))
    if n_actions is None:
        n_actions = len(table[0]) if 0 in table or isinstance(table, (list, tuple)) else 0
    if len(action_names) != n_actions:
        action_names = [f"a{k}" for k in range(n_actions)]

    # 1. The table, entry by entry, made exact.
    rows: dict[int, dict[int, list]] = {}
    for s in range(n_states):
        by_action = _get(table, s)
        if by_action is None:
            problems.append(Problem(f"no row for state {s} (the observation space has {n_states} states)",
                                    key=f"env.unwrapped.P[{s}]"))
            continue
        rows[s] = {}
        for a in range(n_actions):
            entries = _get(by_action, a)
            place = f"env.unwrapped.P[{s}][{a}]"
            if entries is None or not isinstance(entries, (list, tuple)) or not entries:
                problems.append(Problem(f"no entries for action {a} (the action space has {n_actions} actions)",
                                        key=place, given=repr(entries) if entries is not None else None))
                continue
            good, bad = {}, False
            for i, e in enumerate(entries):
                if not isinstance(e, (list, tuple)) or len(e) != 4:
                    problems.append(Problem("an entry must be (probability, next_state, reward, terminated)",
                                            key=f"{place}[{i}]", given=repr(e)))
                    bad = True
                    continue
                nxt = e[1]
                if not isinstance(nxt, Integral) or not 0 <= int(nxt) < n_states:
                    problems.append(Problem(f"the next state must be an integer in 0..{n_states - 1}",
                                            key=f"{place}[{i}]", given=repr(nxt)))
                    bad = True
                    continue
                good[i] = e
            if bad:
                continue
            probs = R.row({i: e[0] for i, e in good.items()}, place, place_of=lambda i, p=place: f"{p}[{i}]")
            if probs is None:
                continue
            out = []
            for i, p in probs.items():
                reward = R.number(good[i][2], f"{place}[{i}]", what="reward")
                if reward is not None:
                    out.append((p, int(good[i][1]), reward, bool(good[i][3]), i))
            rows[s][a] = out
    start = _start(raw, n_states, R, problems)
    problems.extend(R.problems)
    if problems:
        raise ImporterError(problems, source)

    # 2. Terminal states: entered with terminated=True (see the module docstring).
    continuing = list(dict.fromkeys(start))
    seen = set(continuing)
    ended: dict[int, tuple] = {}
    entered: dict[int, tuple] = {}
    queue = list(continuing)
    while queue:
        s = queue.pop()
        for a, out in rows[s].items():
            for p, n, _, done, i in out:
                if done:
                    ended.setdefault(n, (s, a, i))
                else:
                    entered.setdefault(n, (s, a, i))
                    if n not in seen:
                        seen.add(n)
                        queue.append(n)
    for n in sorted(set(ended) & seen):
        s, a, i = ended[n]
        if n in start and n not in entered:
            how = "but the start distribution starts episodes there"
        else:
            s2, a2, i2 = entered[n]
            how = f"and with terminated=False by env.unwrapped.P[{s2}][{a2}][{i2}]"
        problems.append(Problem(
            f"state {n} is entered here with terminated=True {how}; in a case file "
            "an episode ends on entering a terminal state, whichever step enters it",
            key=f"env.unwrapped.P[{s}][{a}][{i}]", hint="This env's termination depends on the step, not the "
            "state, and cannot be imported exactly; build the case by hand with a copy of the state that is terminal"))
    if problems:
        raise ImporterError(problems, source)
    terminal = set(ended)
    for s in range(n_states):
        if s in seen or s in terminal:
            continue
        for out in rows[s].values():
            terminal.update(n for _, n, _, done, _ in out if done and n not in seen)
    keep = [s for s in range(n_states) if not prune_unreachable or s in seen or s in ended]

    # 3. Merge duplicate entries; rewards per (s, a, s_next).
    transitions, step_rewards, merged = {}, {}, []
    for s in keep:
        if s in terminal:
            continue
        transitions[s], step_rewards[s] = {}, {}
        for a, out in rows[s].items():
            probs: dict[int, Fraction] = {}
            rewards: dict[int, list] = {}
            for p, n, rew, _, _ in out:
                probs[n] = probs.get(n, Fraction(0)) + p
                rewards.setdefault(n, []).append((p, rew))
            transitions[s][a] = probs
            step_rewards[s][a] = {}
            for n, pairs in rewards.items():
                values = {rew for _, rew in pairs}
                if len(values) == 1:
                    step_rewards[s][a][n] = pairs[0][1]
                    continue
                mean = sum(p * rew for p, rew in pairs) / probs[n]
                merged.append((s, a, n, pairs, mean))
                step_rewards[s][a][n] = mean
    if merged and reward_conflict == "error":
        raise ImporterError([Problem(f"the entries leading to state {n} have different rewards",
                                     key=f"env.unwrapped.P[{s}][{a}]", given=_pairs_text(pairs),
                                     hint="Pass reward_conflict='mean' (--reward-conflict mean) to use their "
                                          "probability-weighted mean, which leaves J and its gradient unchanged")
                             for s, a, n, pairs, _ in merged], source)
    R.warn(stacklevel=4)
    if merged:
        shown = "; ".join(f"env.unwrapped.P[{s}][{a}] -> {n}: {_pairs_text(pairs)} -> mean {fraction_text(mean)}"
                          for s, a, n, pairs, mean in merged[:3])
        more = f"; and {len(merged) - 3} more" if len(merged) > 3 else ""
        warnings.warn(MergedRewardWarning(
            f"{source}: {len(merged)} step{'s' if len(merged) != 1 else ''} (s, a, s_next) had entries with "
            f"different rewards, replaced by their probability-weighted mean (J and its gradient are unchanged; "
            f"the spread of sampled returns is not): {shown}{more}", merged), stacklevel=3)

    # 4. The case dict.
    nonterminal = [s for s in keep if s not in terminal]
    data: dict = {"name": name or _default_name(env_id, cls, kwargs)}
    data["description"] = _description(env_id, cls, kwargs, version, raw, n_states, len(keep), terminal, keep,
                                       limit, horizon, merged)
    if parameters:
        data["parameters"] = dict(parameters)
    data["states"] = [names[s] for s in keep]
    term_kept = [names[s] for s in keep if s in terminal]
    if term_kept:
        data["terminal"] = term_kept
    data["actions"] = list(action_names)
    if len(start) == 1 and next(iter(start.values())) == 1:
        data["start"] = names[next(iter(start))]
    else:
        data["start"] = {names[s]: fraction_text(p) for s, p in sorted(start.items())}
    data["discount"] = exact_setting(gamma, "gamma", source, limit)
    h = _horizon(env, horizon, source)
    if h is not None:
        data["horizon"] = h
    data["policy"] = policy_field(policy, [names[s] for s in nonterminal], action_names, source)
    data["transitions"] = transitions_field({s: transitions[s] for s in nonterminal}, names, action_names)
    data["rewards"] = rewards_field(step_rewards, names, action_names)
    return data


def _pairs_text(pairs) -> str:
    """``[(1/3, -100), (1/3, -1), (1/3, -1)]`` -> ``-100 w.p. 1/3, -1 w.p. 2/3`` (rewards in order of appearance)."""
    by_reward: dict[Fraction, Fraction] = {}
    for p, r in pairs:
        by_reward[r] = by_reward.get(r, Fraction(0)) + p
    return ", ".join(f"{fraction_text(r)} w.p. {fraction_text(p)}" for r, p in by_reward.items())


def _space_size(space):
    n = getattr(space, "n", None)
    return int(n) if isinstance(n, Integral) else None


def _get(container, key):
    try:
        return container[key]
    except (KeyError, IndexError, TypeError):
        return None


def _start(raw, n_states, R, problems) -> dict[int, Fraction]:
    isd = getattr(raw, "initial_state_distrib", None)
    if isd is None:
        isd = getattr(raw, "isd", None)
    if isd is not None:
        values = list(isd)
        if len(values) != n_states:
            problems.append(Problem(f"the start distribution has {len(values)} entries, not {n_states}",
                                    key="env.unwrapped.initial_state_distrib"))
            return {}
        row = R.row({s: x for s, x in enumerate(values) if x != 0}, "env.unwrapped.initial_state_distrib")
        return row or {}
    desc = _desc_of(raw)
    if desc:
        cells = [s for s, c in enumerate("".join(desc)) if c == "S"]
        if cells:
            return {s: Fraction(1, len(cells)) for s in cells}
    problems.append(Problem("the env has no start distribution (initial_state_distrib, isd, or 'S' in desc)",
                            key="env.unwrapped.initial_state_distrib",
                            hint="Build the arrays yourself and use from_arrays(..., mu=...)"))
    return {}


def _horizon(env, horizon, source):
    if horizon == "env":
        spec = getattr(env, "spec", None)
        return getattr(spec, "max_episode_steps", None)
    if horizon is None or (isinstance(horizon, Integral) and not isinstance(horizon, bool)):
        return None if horizon is None else int(horizon)
    raise ImporterError([Problem("the horizon must be a positive integer, None, or 'env'", key="horizon",
                                 given=repr(horizon), hint="'env' uses the max_episode_steps of the env's TimeLimit")],
                        source)


def _default_name(env_id, cls, kwargs) -> str:
    base = (env_id or cls).lower()
    if kwargs.get("desc") is not None:  # FrozenLake uses desc over map_name
        base += "-custom-map"
    elif kwargs.get("map_name") is not None:
        base += f"-{kwargs['map_name']}"
    if kwargs.get("is_slippery") is False:
        base += "-not-slippery"
    elif kwargs.get("is_slippery") is True and not base.startswith("frozenlake"):
        base += "-slippery"
    return base


def _description(env_id, cls, kwargs, version, raw, n_states, n_kept, terminal, keep, limit, horizon, merged):
    made = f"gymnasium.make({env_id!r}" + "".join(f", {k}={v!r}" for k, v in kwargs.items()) + ")"
    parts = [f"Imported by pgverify from Gymnasium{f' {version}' if version else ''} {made}"
             if env_id else f"Imported by pgverify from a Gymnasium env ({cls})", "."]
    desc = _desc_of(raw)
    if desc:
        parts.append(f" Map {' / '.join(desc)}, row by row; state s<k> is the cell row*{len(desc[0])}+col.")
    else:
        parts.append(" State s<k> is the env's observation k.")
    kept_terminal = sum(1 for s in keep if s in terminal)
    parts.append(f" {n_kept} states" + (f" (of {n_states}; the others are unreachable)" if n_kept != n_states else "")
                 + f", {kept_terminal} terminal: those entered with terminated=True.")
    how = f"limit_denominator({limit})" if limit is not None else "their exact binary values"
    parts.append(f" Probabilities and rewards made exact with {how}; duplicate entries merged")
    parts.append(" (differing rewards replaced by their mean)." if merged else ".")
    if horizon == "env":
        parts.append(" Horizon: the env's TimeLimit (max_episode_steps).")
    return "".join(parts)
