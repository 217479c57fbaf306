"""The command line: ``pgverify check CASE...``.

Uses only the public API.  Exit status: 0 when every engine agrees on every case,
1 when something disagrees (or could not be verified), 2 for invalid input or usage.
Errors from bad input are printed without a traceback.
"""
from __future__ import annotations

import json
import re
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__, termlayout
from .casefile import load_case
from .check import EXPRESSION_LIMIT, Result, check
from .printing import LONG_NUMBER as _LONG_NUMBER
from .printing import float_text as _float_text
from .printing import short_exact as _exact_text
from .montecarlo.estimators import ESTIMATORS
from .cliutil import EXIT_INPUT, check_output, emit
from .cliutil import fail as _fail
from .errors import PgVerifyError

EXIT_OK, EXIT_DISAGREE = 0, 1


def _parse_at(items) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            _fail(f"--at expects NAME=VALUE, got {item!r} (e.g. --at p=1/3)")
        name, value = item.split("=", 1)
        name, value = name.strip(), value.strip()
        if not name or not value:
            _fail(f"--at expects NAME=VALUE, got {item!r} (e.g. --at p=1/3)")
        if name in out:
            _fail(f"--at gives {name!r} twice")
        out[name] = value
    return out


#: Beyond this many parameters in all, --json is printed compact (one line) and streamed.
COMPACT_JSON_PARAMETERS = 1000


class _EpisodesType(click.ParamType):
    """--episodes: "auto" or an integer of at least 16."""

    name = "N|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or str(value).strip().lower() != "auto":
            try:
                k = int(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is neither a number nor 'auto'", param, ctx)
            if k < 16:
                self.fail(f"{k} is below the minimum of 16 episodes", param, ctx)
            return k
        return "auto"


def _split_estimators(text: str) -> tuple[list, list]:
    """--estimators: pgverify's MDP estimators, and the LLM estimators of sequence cases
    (advantage[+aggregation][+kl_term][+clip], :func:`pgverify.sequence.parse_estimator`)."""
    from .sequence import parse_estimator

    chosen = [e.strip() for e in text.split(",") if e.strip()]
    if not chosen:
        _fail(f"--estimators names no estimator; choose from {', '.join(ESTIMATORS)} (or, for a sequence case, "
              "e.g. rloo, grpo+seq_mean)")
    mdp, llm, unknown = [], [], []
    for e in chosen:
        if e in ESTIMATORS:
            mdp.append(e)
            continue
        try:
            parse_estimator(e)
            llm.append(e)
        except PgVerifyError:
            unknown.append(e)
    if unknown:
        _fail(f"unknown estimator(s) {', '.join(unknown)}; choose from {', '.join(ESTIMATORS)}, or for a sequence "
              "case advantage[+aggregation][+kl_term][+clip] (see `pgverify estimators --help`)")
    return (mdp or list(ESTIMATORS)), llm


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pgverify")
def main():
    """Exact verification of the policy gradient theorem on finite MDPs."""


@main.command("check")
@click.argument("cases", nargs=-1, required=True, metavar="CASE...")
@click.option("--at", "at", multiple=True, metavar="NAME=VALUE",
              help="Check at this parameter value instead of the file's (exact: 1/3, 0.25, 2 - sqrt(2)).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per case (a list for several).")
@click.option("--symbolic", "force_symbolic", is_flag=True, help="Build full symbolic expressions in theta.")
@click.option("--at-point", "force_point", is_flag=True, help="Work at the parameter point only (no expressions).")
@click.option("--exact", "force_exact", is_flag=True,
              help="At the point, in exact rationals (refused, with the reason, where the point is irrational "
                   "or the case over the exact budget).")
@click.option("--certified", "force_certified", is_flag=True,
              help="At the point, in float64 with a rigorous bound on every result.")
@click.option("--no-mc", is_flag=True, help="Skip the Monte Carlo checks.")
@click.option("--episodes", type=_EpisodesType(), default="auto", show_default=True,
              help="Episodes sampled for the Monte Carlo checks: a number (at least 16), or auto: sample in "
                   "growing batches until no test is inconclusive for lack of effective episodes, or until "
                   "--budget seconds are spent.")
@click.option("--budget", type=click.FloatRange(min=0), default=5.0, show_default=True, envvar="PGVERIFY_BUDGET",
              show_envvar=True,
              help="Seconds a check may run before --episodes auto stops sampling (counted from the start of the check; the first 16 groups of episodes are always drawn).")
@click.option("--max-steps", "max_steps", type=click.IntRange(min=1), default=None,
              help="Cut an episode without a horizon after this many steps (default: where gamma^t < 1e-12, at "
                   "most 10,000).  Tests of estimates from cut episodes are inconclusive, never failed.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the sampler (numpy PCG64; a non-negative integer).")
@click.option("--estimators", default=",".join(ESTIMATORS), show_default=True,
              help="Comma-separated estimators to check.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Draw the estimators' running means against the exact values (PNG or SVG; needs matplotlib).")
@click.option("--force", is_flag=True, help="Enumerate trajectories even beyond the default limit.")
@click.option("--cross-check", "cross_check", type=click.Choice(["storm"]), default=None,
              help="Compare J(theta) with Storm's exact parametric model checker (extra 'storm').")
def check_command(cases, at, as_json, force_symbolic, force_point, force_exact, force_certified, no_mc, episodes,
                  budget, max_steps, seed, estimators, plot_path, force, cross_check):
    """Compute J(theta) and its gradient with three exact engines and prove that they agree."""
    given = [flag for flag, on in (("--symbolic", force_symbolic), ("--at-point", force_point),
                                   ("--exact", force_exact), ("--certified", force_certified)) if on]
    if len(given) > 1:
        _fail(f"{' and '.join(given)} exclude each other")
    mode = ("symbolic" if force_symbolic else "at-point" if force_point else "exact" if force_exact
            else "certified" if force_certified else "auto")
    at_values = _parse_at(at)
    chosen, llm = _split_estimators(estimators)
    # Validate every file first: nothing is computed or printed for a run with invalid input.
    loaded, errors = [], []
    for path in cases:
        try:
            loaded.append(load_case(path))
        except PgVerifyError as exc:
            errors.append(str(exc))
    if errors:
        for e in errors:
            click.echo(f"pgverify: {e}", err=True)
        sys.exit(EXIT_INPUT)
    if llm and any(c.sequence is None for c in loaded):
        _fail(f"the estimator(s) {', '.join(llm)} apply to sequence cases only (kind: sequence); "
              + ", ".join(str(p) for p, c in zip(cases, loaded) if c.sequence is None) + " is an MDP case")
    results: list[Result] = []
    for case in loaded:
        try:
            mc = None if no_mc else {"episodes": episodes, "seed": seed, "estimators": tuple(chosen),
                                     "max_steps": max_steps, "budget": budget}
            with _progress_bar(mc is not None and (episodes == "auto" or episodes > 100_000),
                               f"sampling {case.name}") as progress, _phase_status(case.name) as phase:
                if mc is not None:
                    mc["progress"] = progress
                res = check(case, at=at_values or None, mode=mode, force=force, monte_carlo=mc, progress=phase)
            if cross_check == "storm":
                from .crosscheck import storm_cross_check

                cc = storm_cross_check(case, res)
                res.cross_check["storm"] = cc
                res.verified = res.verified and cc["agrees_symbolically"] and cc["agrees_at_point"]
            if llm:
                from .sequence import analyse

                seq = case.sequence if not at_values else case.at(at_values).sequence
                res.sequence_estimators = analyse(seq, llm, mc=None if no_mc else {"seed": seed})
                res.verified = res.verified and all(
                    e.status == "ok" and (e.monte_carlo or {}).get("verdict") != "DIFFERS"
                    for e in res.sequence_estimators.estimators.values())
        except PgVerifyError as exc:
            _fail(str(exc))
        for w in res.warnings:
            click.echo(f"pgverify: warning: {w}", err=True)
        results.append(res)
    if plot_path is not None:
        from .montecarlo.plot import plot_convergence

        if not plot_path.lower().endswith((".png", ".svg")):
            _fail(f"--plot expects a .png or .svg file name, got {plot_path!r}")
        try:
            for k, res in enumerate(results):
                target = plot_path if len(results) == 1 else plot_path[:-4] + f"-{k + 1}" + plot_path[-4:]
                plot_convergence(res, target)
        except PgVerifyError as exc:
            _fail(str(exc))
    if as_json:
        data = [r.to_dict() for r in results]
        payload = data[0] if len(data) == 1 else data
        if sum(len(r.parameters) for r in results) > COMPACT_JSON_PARAMETERS:
            # hundreds of MB at 10^5 parameters: streamed, on one line, instead of built as one string
            json.dump(payload, sys.stdout, separators=(",", ":"))
            sys.stdout.write("\n")
            sys.stdout.flush()
        else:
            click.echo(json.dumps(payload, indent=2))
    else:
        console = Console(highlight=False)
        for res in results:
            render_summary(res, console)
            if res.sequence_estimators is not None:
                from .sequence.report import render_text as render_llm

                click.echo("\n" + render_llm(res.sequence_estimators, console.width), nl=False)
    sys.exit(EXIT_OK if all(r.verified for r in results) else EXIT_DISAGREE)


@main.command("derive")
@click.argument("case", metavar="CASE")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "latex"]), default="text",
              show_default=True, help="Plain text, Markdown (math in $...$) or a LaTeX document.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file (written whole or not at all) instead of standard output.")
@click.option("--at", "at", multiple=True, metavar="NAME=VALUE", help="Derive at this parameter value.")
@click.option("--symbolic", "force_symbolic", is_flag=True, help="Build full symbolic expressions in theta.")
@click.option("--at-point", "force_point", is_flag=True, help="Work at the parameter point only.")
def derive_command(case, fmt, output, at, force_symbolic, force_point):
    """Print the derivation of CASE's policy gradient, term by term, with the case's own expressions."""
    from .derivation import derive
    from .report import render

    if force_symbolic and force_point:
        _fail("--symbolic and --at-point exclude each other")
    mode = "symbolic" if force_symbolic else "at-point" if force_point else "auto"
    at_values = _parse_at(at)
    check_output(output)  # before any work: no folder is created
    try:
        loaded = load_case(case)
        if at_values:
            loaded = loaded.at(at_values)
        text = render(derive(loaded, mode=mode), fmt)
    except PgVerifyError as exc:
        _fail(str(exc))
    if fmt == "text" and output is None:
        width = _terminal_width()
        if width is not None:
            text = termlayout.wrap_document(text, width)
    emit(text, output)


def _terminal_width() -> int | None:
    """The width to wrap text to: the terminal's when standard output is one, or COLUMNS when it is set
    (as rich reads it); None otherwise (a pipe or a file gets the lines as rendered)."""
    import os
    import shutil

    if os.environ.get("COLUMNS", "").strip().isdigit():
        return max(int(os.environ["COLUMNS"]), 20)
    if sys.stdout.isatty():
        return max(shutil.get_terminal_size().columns, 20)
    return None


def render_summary(res: Result, console: Console) -> None:
    """The terminal summary of one result (renders; computes nothing)."""
    status = "[bold green]VERIFIED[/]" if res.verified else (
        "[bold yellow]AGREE, NOT VERIFIED[/]" if res.agree else "[bold red]DISAGREE[/]")
    console.rule(f"[bold]{res.case}[/]  {status}")
    if res.source:
        console.print(f"case file: {res.source}", markup=False)
    width = console.width
    items = [f"{k}\u00a0=\u00a0{_exact_text(v, None)}" for k, v in res.at.items()]  # no-break spaces: a line never ends at "="
    point = termlayout.summarise_items(items, width - 4, lines=2, what="(all in --json)") if items else "(no parameters)"
    _line(console, f"at: {point}")
    if res.objective.expression is not None:
        _line(console, f"J(theta) = {_expression_text(res, res.objective.expression, 'expression')}")
    if res.objective.value is not None and len(res.objective.value) > EXPRESSION_LIMIT:
        value = f"{res.objective.digits} {_shown(res, res.objective.value, 'value')}"
    else:
        value = (_exact_text(res.objective.value, res.objective.digits) if res.objective.value is not None
                 else _float_text(0.0, res.objective.digits, 50))
    if res.objective.bound is not None:
        _line(console, f"J = {res.objective.float:.17g} +/- {res.objective.bound:.3g} (certified bound)")
    else:
        _line(console, _exact_line("J", value, res.objective.float, width, res.objective.digits))
    if res.mode == "symbolic":
        for p, q in res.gradient.items():
            _line(console, f"dJ/d{p} = {_expression_text(res, q.expression, 'expression')}")
    long_values = any(q.value is not None and len(q.value) > 30 for q in res.gradient.values())
    if long_values:
        wide = []
        for p, q in list(res.gradient.items())[:GRADIENT_ROWS]:
            text = _shown(res, _exact_text(q.value, q.digits), "value")
            label = f"dJ/d{p} at the point"
            line = _exact_line(label, text, q.float, width, q.digits)
            if line.startswith(f"{label} ~ "):  # an exact value wider than the terminal: in one line below
                wide.append(text)
            else:
                _line(console, line)
        if wide:
            digits = max(len(v.lstrip("-").replace("/", "")) for v in wide)
            _line(console, f"dJ/dtheta at the point: {len(wide)} exact values are wider than the terminal (up to "
                           f"{digits} digits; --json gives them); the table shows their floats")
    shown = list(res.gradient.items())[:GRADIENT_ROWS]
    cols = {"parameter": [p for p, _ in shown]}
    if not long_values:
        cols["exact value"] = [q.value if q.value is not None else (f"+/- {q.bound:.2g}" if q.bound is not None else "-")
                               for _, q in shown]
    cols["float"] = [_float_text(q.float, q.digits, 12) for _, q in shown]
    for name in ("bellman", "trajectory", "occupancy"):
        m = res.methods.get(name)
        cols[name] = ["not run" if m is None else "(directions)" if m[p] is None else f"{m[p]:.10g}" for p, _ in shown]
    console.print("gradient of J at the point", markup=False)
    columns = [termlayout.Column(k, v, justify="left" if k in ("parameter", "exact value") else "right",
                                 names=k == "parameter") for k, v in cols.items()]
    dropped = termlayout.fit_table(console, None, columns, GRADIENT_DROP, min_name=24)
    if dropped:
        _line(console, f"(left out at {width} columns: {', '.join(dropped)}; --json has every engine's values)")
    if len(res.gradient) > len(shown):
        _line(console, f"({len(res.gradient) - len(shown)} more parameters: see --json)")
    if res.tangent is not None:
        console.print(f"bellman (tangent): along {res.tangent['directions']} random directions "
                      f"({res.tangent['entries']}): {res.tangent['why']}", markup=False)
    for name, reason in res.not_run.items():
        console.print(f"[yellow]{name}: not run[/]: {escape(reason)}")
    for name, t in res.truncation.items():
        loose = [c.quantity for c in res.comparisons if name in c.engines and c.proof == "inconclusive"]
        verdict = (f"; inconclusive for {', '.join(loose)} (the bound is not smaller than the value)"
                   if loose else "; within the bound")
        console.print(f"{name}: inexact, trajectories cut after {t['length']} steps "
                      f"({t['trajectories']} summed); rigorous bound on the rest: |J| <= {t['bound']['J']:.3g}, "
                      f"|grad| <= {max(t['bound']['grad'], default=0):.3g}{verdict}")
    if res.terms:
        render_terms(res, console)
    if res.monte_carlo is not None:
        render_monte_carlo(res, console)
    failed = [c for c in res.comparisons if not c.ok]
    ran = [n for n, m in res.methods.items() if m is not None]
    how = {"symbolic": "the differences are zero as rational functions of theta (symbolic)",
           "exact-at-point": "the differences are exactly zero at the point (exact rationals)",
           "numeric-50-digits": f"the differences are below {res.tolerance}",
           "certified": f"the results agree {res.tolerance}"}.get(res.proof, res.proof)
    if failed:
        for c in failed:
            console.print(f"[bold red]disagreement[/]: {c.engines[0]} vs {c.engines[1]} on {c.quantity}: "
                          f"|difference| = {c.difference:.6g}")
    else:
        console.print(f"engines that ran: {', '.join(ran)}; agreement proved: {how}")
    dc = res.dpg_check
    if dc is not None and dc.get("agree"):
        console.print(f"deterministic policy gradient = {dc['equals']} (proof: {dc['proof']}; "
                      f"largest |difference| {dc['max_difference']:.3g})", markup=False)
    elif dc is not None:
        for p in dc.get("failed", []):
            console.print(f"[bold red]disagreement[/]: deterministic policy gradient vs {escape(dc['equals'])} "
                          f"on d/d{escape(p)}: |difference| = {dc['differences'][p]:.6g}")
    if not res.agree and not failed and not (dc is not None and not dc.get("agree")):
        console.print("[bold red]disagreement[/]: the results do not agree (see --json: comparisons)")
    for tool, cc in res.cross_check.items():
        agree = cc["agrees_symbolically"] and cc["agrees_at_point"]
        console.print(f"{tool} {cc['version']} ({cc['engine']}): J(theta) = {cc['objective']}; "
                      + ("agrees with pgverify as a rational function and at the point" if agree else
                         f"[bold red]disagrees[/] with pgverify (difference {cc['difference']}, "
                         f"{cc['storm_value']} vs {cc['pgverify_value']} at the point)"), markup=not agree)
    console.print(f"mode: {res.mode} ({res.mode_reason}); {res.seconds:.2f} s", markup=False)


#: the gradient table's columns in the order they are left out when the terminal is too narrow (the
#: engines' own values first: the line "agreement proved" states that they agree)
GRADIENT_DROP = ("occupancy", "trajectory", "bellman", "float")
#: rows of the gradient table (and lines of long exact values) at most
GRADIENT_ROWS = 40


def _line(console: Console, text: str) -> None:
    """A line of text wrapped to the console at spaces, never inside a word or number; an expression
    is broken before a ' + ' or ' - ' (not after it), and continues indented."""
    for part in termlayout.wrap_text(text, console.width, indent="    "):
        console.print(part, markup=False, highlight=False, soft_wrap=True)


def _exact_line(label: str, value: str, number: float, width: int, digits: str | None = None) -> str:
    """``label = value  (~ float)``, or, when the exact value alone is wider than the terminal (a
    rational of many digits), the float and how long the exact value is (it is never split).
    ``digits``: the 50-digit decimal, for a float that under- or overflows float64."""
    number = _float_text(number, digits, 12)
    line = f"{label} = {value}  (~ {number})"
    if len(value) + len(label) + 3 <= width or " " in value:
        return line
    if "/" in value and value.replace("/", "").lstrip("-").isdigit():
        num, den = value.lstrip("-").split("/")
        what = f"a rational of {len(num)} / {len(den)} digits"
    else:
        what = f"{len(value)} characters"
    return f"{label} ~ {number}  (exact: {what}, wider than the terminal: --json gives it)"


def _shown(res: Result, text: str | None, what: str) -> str:
    """``text`` when it is short enough for a terminal, else where it is in full.

    Expressions and values longer than :data:`EXPRESSION_LIMIT` characters are not printed in the
    summary; the line says how long they are and where they went (``--json`` carries them in full
    when ``--symbolic`` was given, ``pgverify derive --output`` writes them).
    """
    if text is None:
        return "-"
    if len(text) <= EXPRESSION_LIMIT:
        return text
    case = res.source or "CASE"
    json_run = "--json prints it" if res.expression_limit is None else \
        f"'pgverify check {case} --symbolic --json' prints it"
    return (f"({what} of {len(text):,} characters, not shown here: {json_run} in full, "
            f"'pgverify derive {case} --output FILE' writes it)")


class _phase_status:
    """A transient spinner on standard error naming the phase of a check, shown once the check has
    run for a second (rich prints nothing when standard error is not a terminal)."""

    def __init__(self, name: str):
        self.name = name
        self.phase = "starting"
        self.status = None

    def __enter__(self):
        import threading

        self.lock = threading.Lock()
        self.timer = threading.Timer(1.0, self._show)
        self.timer.daemon = True
        self.timer.start()
        return self._update

    def _show(self):
        with self.lock:
            console = Console(stderr=True)
            if not console.is_terminal:  # rich would still write a line break to a pipe or file
                return
            if self.status is None and self.phase is not None:  # None: the check has ended
                self.status = console.status(f"{self.name}: {self.phase}")
                self.status.start()

    def _update(self, phase: str):
        with self.lock:
            if phase == "Monte Carlo":  # the sampling progress bar takes over (one live display at a time)
                self.phase = None
                if self.status is not None:
                    self.status.stop()
                    self.status = None
                return
            if self.phase is None:
                return
            self.phase = phase
            if self.status is not None:
                self.status.update(f"{self.name}: {phase}")

    def __exit__(self, *exc):
        self.timer.cancel()
        with self.lock:
            if self.status is not None:
                self.status.stop()
                self.status = None
            self.phase = None


class _progress_bar:
    """A rich progress bar on standard error for sampling runs (none when not wanted): it appears
    once sampling has taken more than a second (so short runs print nothing)."""

    def __init__(self, wanted: bool, label: str, after: float = 1.0):
        self.wanted, self.label, self.after = wanted, label, after
        self.bar = None

    def __enter__(self):
        if not self.wanted:
            return None
        import time

        self.t0 = time.perf_counter()

        def update(done, total):
            if self.bar is None:
                if time.perf_counter() - self.t0 < self.after:
                    return
                from rich.progress import Progress

                console = Console(stderr=True)
                if not console.is_terminal:  # nothing to animate on a pipe or file
                    self.t0 = float("inf")
                    return
                self.bar = Progress(console=console, transient=True)
                self.bar.start()
                self.task = self.bar.add_task(self.label, total=None)
            desc = self.label + (f": {done:,} episodes" if total is None else "")
            self.bar.update(self.task, completed=done, total=total, description=desc)

        return update

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


#: the Monte Carlo table's columns in the order they are left out when the terminal is too narrow
MC_DROP = ("exact var", "bias", "stderr", "sample mean", "exact mean")


def render_monte_carlo(res: Result, console: Console) -> None:
    """The table of estimators: exact mean and variance, sample mean, standard error, z, verdict.

    One row per estimator, at the parameter its ``shown_parameter`` names (the one Holm rejects, else
    the one with the smallest p-value); at a width where not every column fits, columns are left out
    in the order of :data:`MC_DROP` (see :mod:`pgverify.termlayout`), and a line says which.
    """
    mc = res.monte_carlo
    several = len(res.parameters) > 1
    drawn = f"{mc.episodes} episodes" + (f" (auto: {mc.stopped})" if mc.requested == "auto" else "")
    console.print(f"Monte Carlo: {drawn}, seed {mc.seed}", markup=False)
    console.print(f"test: {mc.threshold}", markup=False)
    rows = {k: [] for k in ("estimator", "parameter", "exact mean", "bias", "exact var", "sample mean", "stderr", "z",
                            "verdict")}
    for name, e in mc.estimators.items():
        p = e.get("shown_parameter", res.parameters[0] if res.parameters else None)

        def cell(d, fmt="{:.4g}"):
            return fmt.format(d[p]) if d is not None and p is not None and d.get(p) is not None else "-"
        verdict = {True: "[green]ok[/]", False: "[red]FAILS[/]", None: "no exact mean"}[e["consistent"]]
        if e["consistent"] is not False and p is not None and p in e.get("inconclusive", ()):
            verdict = "[yellow]inconclusive[/]"
        if p is not None and p in e.get("rejected", ()):
            verdict = "[red]FAILS[/]"
        bias = "0" if e["unbiased"] and not e.get("exact_moments_cut_at") else cell(e["bias"])
        var = cell(e["exact_variance"]) if e["exact_variance"] is not None else "sampled"
        for col, val in (("estimator", name), ("parameter", p or "-"), ("exact mean", cell(e["exact_mean"])),
                         ("bias", bias), ("exact var", var), ("sample mean", cell(e["sample_mean"])),
                         ("stderr", cell(e["stderr"])), ("z", cell(e["z"], "{:+.2f}")), ("verdict", verdict)):
            rows[col].append(val)
    headers = {"exact mean": "exact\nmean", "exact var": "exact\nvar", "sample mean": "sample\nmean"}
    columns = [termlayout.Column(headers.get(k, k), v, justify="left" if k in ("estimator", "parameter", "verdict")
                                 else "right", names=k == "parameter", markup=k == "verdict")
               for k, v in rows.items() if k != "parameter" or several]
    dropped = termlayout.fit_table(console, None, columns, MC_DROP, min_name=16)
    notes = []
    if several:
        notes.append("each row shows one parameter: the one that failed, else the one with the smallest p-value")
    if dropped:
        notes.append(f"left out at {console.width} columns: {', '.join(dropped)}")
    if several or dropped:
        notes.append("every estimator and parameter in --json")
    if notes:
        console.print("(" + "; ".join(notes) + ")", markup=False)
    for grp in mc.identical:
        on = "" if len(grp["parameters"]) == len(res.parameters) else \
            f" on {termlayout.summarise_items(grp['parameters'], console.width, 1, 'parameters')}"
        console.print(f"tested once, identical on every episode{on}: {', '.join(grp['estimators'])} "
                      f"(the test of {grp['tested']}): {grp['why']}", markup=False)
    sampled = [nm for nm, e in mc.estimators.items() if e["stderr_from"] == "sample" and e["exact_mean"] is not None]
    if not sampled:
        console.print("stderr: sqrt(exact variance / episodes)", markup=False)
    elif len(sampled) == len(mc.estimators):
        console.print("stderr: the sample's (no exact variance; it can miss rare, large values)", markup=False)
    else:
        console.print("stderr: sqrt(exact variance / episodes), except the sample's (no exact variance; it can miss "
                      f"rare, large values) for {', '.join(sampled)}", markup=False)
    pw = mc.power
    if pw:
        k50, k90 = pw["bias_for_probability"]["0.5"], pw["bias_for_probability"]["0.9"]
        det = "; ".join(f"{k} standard errors: {'> 0.999' if v > 0.999 else f'{v:.2g}'}"
                        for k, v in pw["detected"].items())
        console.print(f"power: a bias of {k90:.2g} standard errors in one test is detected with probability at least "
                      f"0.9, of {k50:.2g} with 0.5 ({det}); normal distribution, |z| > {pw['threshold_z']:.3g} "
                      f"(Holm's first threshold for {mc.tests} test{'' if mc.tests == 1 else 's'} at alpha = {mc.alpha:g})",
                      markup=False)
    if mc.inconclusive:  # each reason once: rare events, cut episodes, a sample beyond float64
        reasons = sorted({r for e in mc.estimators.values() for r in e.get("inconclusive_reasons", {}).values()})
        console.print(f"{mc.inconclusive} tests are inconclusive: " + "; ".join(reasons)
                      + " (effective_episodes and inconclusive_reasons in --json)", markup=False)
    if mc.cut:
        console.print(f"{mc.cut} episodes were cut at {mc.max_steps} steps; the cut leaves out at most "
                      f"{mc.tail_bound:.3g} of a return" + ("; --max-steps raises the cap" if mc.inconclusive else ""),
                      markup=False)


def _short(value: str | None, number: float, digits: str | None = None) -> str:
    """The exact value when it is short, else the float (from the 50 digits where float64 under- or overflows)."""
    return value if value is not None and len(value) <= 24 else _float_text(number, digits, 6)


def _expression_text(res: Result, text: str | None, what: str) -> str:
    """An expression for the terminal (:func:`_shown`), or a note where it holds numbers of more than 60 digits."""
    if text is not None and _LONG_NUMBER.search(text):
        longest = max(len(m) for m in re.findall(r"\d+", text))
        return (f"({what} of {len(text):,} characters with numbers of up to {longest} digits, not shown here: "
                "--json prints it)")
    return _shown(res, text, what)


#: parameter names in the terms table's contribution cells are cut (with an ellipsis that keeps them
#: apart) beyond this many characters, so that rich never has to cut one inside its column
TERMS_NAME_WIDTH = 20


def render_terms(res: Result, console: Console) -> None:
    """The table of gradient families: which vanish pointwise, which in expectation, which remain."""
    table = Table(title="where the terms go: the families of the gradient")
    table.add_column("family")
    table.add_column("per-step derivatives")
    table.add_column("contribution to dJ/dtheta at the point")
    table.add_column("fate")
    for f, rep in res.terms.items():
        contrib = rep.contribution
        names = termlayout.shorten_names(list(contrib)[:4], TERMS_NAME_WIDTH)
        shown = ", ".join(f"{names[p]}: {_short(c['value'], c['float'], c.get('digits'))}" for p, c in list(contrib.items())[:4])
        if len(contrib) > 4:
            nonzero = sum(1 for c in contrib.values() if not c["zero_at_point"])
            shown += f", ... ({nonzero} of {len(contrib)} non-zero)"
        if rep.pointwise_zero:
            fate = "vanishes pointwise"
        elif all(c["identically_zero"] for c in contrib.values()):
            fate = "vanishes in expectation"
        elif all(c["zero_at_point"] for c in contrib.values()):
            fate = "zero at this point"
        else:
            fate = "remains"
        table.add_row(f, "all zero" if rep.pointwise_zero else "not all zero", shown or "-", fate)
    console.print(table)
    for f, rep in res.terms.items():
        if rep.identity:
            console.print(f"{f} vanishes in expectation: {rep.identity}", markup=False)
    missed = {p: q for p, q in res.score_function_misses.items() if q.float != 0.0 or (q.value not in (None, "0"))}
    if missed:
        shown = ", ".join(f"{p}: {_short(q.value, q.float, q.digits)}" for p, q in list(missed.items())[:4])
        console.print(f"the score-function formula (policy family alone) misses: {shown}", markup=False)


def _register_commands() -> None:
    from .export.cli import export_command, show_command
    from .importers.cli import import_group
    from .sequence.cli import estimators_command

    main.add_command(import_group, "import")
    main.add_command(export_command, "export")
    main.add_command(show_command, "show")
    main.add_command(estimators_command, "estimators")


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
