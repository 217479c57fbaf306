"""The command line of the importers: ``pgverify import gymnasium ENV_ID``.

``import_group`` is a click group; ``pgverify.cli`` registers it as ``pgverify import``.
Exit status 0 when the case was written, 2 for bad input (a missing extra, an env that
cannot be imported, an existing output without ``--force``), with the message and no
traceback.  Warnings (rationalised floats, merged rewards) go to standard error as
``pgverify: warning: ...``.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import click
import yaml

from ..casefile import case_from_yaml
from ..cliutil import check_output
from ..cliutil import fail as _fail
from ..errors import PgVerifyError
from .common import DEFAULT_LIMIT, MergedRewardWarning, RationalisationWarning
from .gymnasium import gymnasium_to_dict
from .writer import render_case, write_case

__all__ = ["import_group"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _env_options(items) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            _fail(f"--env-option expects KEY=VALUE, got {item!r} (e.g. --env-option is_rainy=true)")
        key, value = (x.strip() for x in item.split("=", 1))
        if not key.isidentifier():
            _fail(f"--env-option: {key!r} is not a keyword argument name")
        try:  # a YAML scalar: true, 0.8, 4x4 (data, never code)
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        out[key] = parsed if isinstance(parsed, (bool, int, float, str)) or parsed is None else value
    return out


def _horizon(text: str):
    t = text.strip().lower()
    if t == "env":
        return "env"
    if t == "none":
        return None
    if t.isdigit() and int(t) > 0:
        return int(t)
    _fail(f"--horizon expects a positive integer, 'none' or 'env', got {text!r}")


@click.group("import", context_settings={"help_option_names": ["-h", "--help"]})
def import_group():
    """Import an MDP from another library as a case file."""


@import_group.command("gymnasium")
@click.argument("env_id", metavar="ENV_ID")
@click.option("--map", "map_name", default=None, metavar="NAME", help="FrozenLake's map_name: 4x4 or 8x8.")
@click.option("--desc", default=None, metavar="ROWS",
              help="A custom FrozenLake map, rows separated by commas: SFFF,FHFH,FFFH,HFFG.")
@click.option("--slippery/--not-slippery", default=None,
              help="is_slippery (FrozenLake, CliffWalking).  [default: the env's]")
@click.option("--env-option", "env_options", multiple=True, metavar="KEY=VALUE",
              help="Another keyword argument of gymnasium.make (e.g. is_rainy=true); repeatable.")
@click.option("--gamma", default="1", show_default=True, metavar="NUMBER", help="The discount (exact: 1, 99/100, 0.99).")
@click.option("--horizon", default="env", show_default=True, metavar="N|none|env",
              help="At most this many steps: an integer, 'none', or 'env' (the env's max_episode_steps).")
@click.option("--policy", type=click.Choice(["tabular", "uniform"]), default="tabular", show_default=True,
              help="tabular: {softmax: tabular}, one parameter per state and action; uniform: explicit, none.")
@click.option("--limit-denominator", "limit", type=click.IntRange(min=1), default=DEFAULT_LIMIT, metavar="N",
              show_default=True, help="The largest denominator of a float made exact.")
@click.option("--reward-conflict", type=click.Choice(["mean", "error"]), default="mean", show_default=True,
              help="Duplicate entries of one step with different rewards: use their mean, or refuse.")
@click.option("--prune-unreachable", is_flag=True, help="Leave out the states no episode reaches.")
@click.option("--name", default=None, help="The case's name.  [default: from the id and the map]")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the case file here (default: print it).")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def gymnasium_command(env_id, map_name, desc, slippery, env_options, gamma, horizon, policy, limit,
                      reward_conflict, prune_unreachable, name, output, force):
    """Import a Gymnasium env with a transition table (FrozenLake, CliffWalking, Taxi).

    The case gets Gymnasium's states s0.., its actions by name, its start distribution,
    exact probabilities and rewards, and its terminal states (those entered with
    terminated=True).  Example: pgverify import gymnasium FrozenLake-v1 --map 8x8 -o cases/fl8.yaml
    """
    options = _env_options(env_options)
    if output is not None and not (force or not Path(output).exists()):
        _fail(f"{output} exists already; pass --force (force=True) to overwrite it, or choose another path")
    check_output(output)  # before the import: no folder is created, nothing is left behind
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            data = gymnasium_to_dict(env_id, map=map_name, desc=desc, slippery=slippery, env_kwargs=options,
                                     gamma=gamma, horizon=_horizon(horizon), policy=policy, limit=limit,
                                     name=name, prune_unreachable=prune_unreachable,
                                     reward_conflict=reward_conflict)
            if output is None:
                text = render_case(data)
                case_from_yaml(text, source=f"Gymnasium {env_id}")  # print only what loads back
            else:
                case = write_case(data, output, force=force)
        except PgVerifyError as exc:
            _show(caught)
            _fail(str(exc))
    _show(caught)
    if output is None:
        click.echo(text, nl=False)
        return
    n_terminal = len(case.terminal)
    click.echo(f"wrote {output}: {len(case.states)} states ({n_terminal} terminal), "
               f"{len(data['actions'])} actions, {len(case.parameters)} parameters; "
               f"discount {case.gamma}, horizon {case.horizon if case.horizon is not None else 'none'}")


def _show(caught) -> None:
    for w in caught:
        text = _ANSI.sub("", str(w.message)).strip()
        if not issubclass(w.category, (RationalisationWarning, MergedRewardWarning)):
            text = f"{w.category.__name__}: {text}"
        click.echo(f"pgverify: warning: {text}", err=True)
