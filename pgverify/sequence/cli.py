"""``pgverify estimators CASE``: the exact mean, bias, variance and gradient verdict of each
LLM policy-gradient estimator on a sequence case (:func:`pgverify.sequence.analyse`).

Exit status: 0 when every estimator was analysed and its Monte Carlo check (if run) is consistent
with its exact mean; 1 when a sample mean differs from its exact mean (a bug in pgverify, or a case
beyond its assumptions) or an estimator could not be analysed; 2 for invalid input or usage.  A
biased estimator is a finding, not a failure: the report says by how much.
"""
from __future__ import annotations

import sys

import click

from ..casefile import load_case
from ..cliutil import emit, fail
from ..errors import PgVerifyError
from .estimators import analyse
from .report import render_json, render_text
from .sampling import DEFAULT_BATCHES

__all__ = ["estimators_command"]


@click.command("estimators")
@click.argument("case", metavar="CASE")
@click.option("--estimators", "names", default=None, metavar="NAME,...",
              help="Comma-separated estimators, each advantage[+aggregation][+kl_term][+clip], e.g. "
                   "grpo+seq_mean,rloo+k3_loss (default: the usual ones for the case; see docs/llm-estimators.md).")
@click.option("--group", "-G", type=click.IntRange(min=1, max=64), default=8, show_default=True,
              help="Completions per prompt in one batch (G).")
@click.option("--eps", default="1/1000000", show_default=True,
              help="GRPO's eps in (R - mean) / (std + eps), an exact rational (1/1000000, 1e-4, 0).")
@click.option("--at", "at", multiple=True, metavar="NAME=VALUE", help="Analyse at this parameter value.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write the report to this file (whole or not at all) instead of printing it.")
@click.option("--no-mc", is_flag=True, help="Skip the Monte Carlo check of each estimator against its exact mean.")
@click.option("--batches", type=click.IntRange(min=100, max=10_000_000), default=DEFAULT_BATCHES, show_default=True,
              help="Batches (one prompt and its group) sampled per estimator for the Monte Carlo check.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the sampler.")
@click.option("--no-jacobian", is_flag=True,
              help="Skip the Jacobians (the 'is it a gradient?' verdicts that need one stay undecided).")
def estimators_command(case, names, group, eps, at, as_json, output, no_mc, batches, seed, no_jacobian):
    """Exact mean, bias, variance and 'is it a gradient?' of LLM policy-gradient estimators."""
    from ..cli import _parse_at

    at_values = _parse_at(at)
    chosen = None if names is None else [n.strip() for n in names.split(",") if n.strip()]
    if chosen is not None and not chosen:
        fail("--estimators names no estimator")
    try:
        loaded = load_case(case)
        if at_values:
            loaded = loaded.at(at_values)
        if loaded.sequence is None:
            fail(f"{case} is an MDP case, not a sequence case: `pgverify estimators` reads sequence cases "
                 "(kind: sequence, see docs/case-format.md); use `pgverify check` for the MDP estimators")
        mc = None if no_mc else {"batches": batches, "seed": seed}
        result = analyse(loaded.sequence, chosen, group=group, eps=eps, mc=mc, jacobian=not no_jacobian)
    except PgVerifyError as exc:
        fail(str(exc))
    from ..cli import _terminal_width

    width = None if output is not None else _terminal_width()
    emit(render_json(result) + "\n" if as_json else render_text(result, width), output)
    failed = [n for n, e in result.estimators.items()
              if e.status != "ok" or (e.monte_carlo or {}).get("verdict") == "DIFFERS"]
    sys.exit(1 if failed else 0)
