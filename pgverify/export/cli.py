"""The commands ``pgverify export`` and ``pgverify show`` (registered by :mod:`pgverify.cli`).

Both read one case file, write the whole output or nothing (a file is written
next to its target and renamed into place), and exit with status 2 and a one-line
``pgverify: error: ...`` message, without a traceback, on bad input.
"""
from __future__ import annotations


import click


from ..casefile import load_case
from ..cliutil import check_output
from ..cliutil import emit as _emit
from ..cliutil import fail as _fail
from ..errors import PgVerifyError

__all__ = ["export_command", "show_command"]

def _load(path: str):
    try:
        return load_case(path)
    except PgVerifyError as exc:
        _fail(str(exc))


@click.command("export", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("case", metavar="CASE")
@click.option("--format", "fmt", type=click.Choice(["prism"]), default="prism", show_default=True,
              help="prism: the Markov chain the policy induces, as a parametric DTMC with a reward structure.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write to this file (whole or not at all) instead of standard output.")
def export_command(case, fmt, output):
    """Write CASE's induced Markov chain for another tool (PRISM language; J = R{"r"}=? [ F "done" ])."""
    from .prism import to_prism

    check_output(output)  # before any work: no folder is created
    loaded = _load(case)
    try:
        text = to_prism(loaded)
    except PgVerifyError as exc:
        _fail(str(exc))
    _emit(text, output)


@click.command("show", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("case", metavar="CASE")
@click.option("--format", "fmt", type=click.Choice(["dot", "png"]), default="dot", show_default=True,
              help="dot: Graphviz text; png: a picture (Graphviz's dot if installed, else matplotlib).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write to this file (whole or not at all); required for png. dot goes to standard output "
                   "without it.")
@click.option("--label-width", type=click.IntRange(min=5), default=24, show_default=True,
              help="Shorten expressions longer than this many characters.")
def show_command(case, fmt, output, label_width):
    """Draw CASE: states, actions with pi(a|s), transitions with P and rewards."""
    from .show import to_dot, to_png

    check_output(output)
    loaded = _load(case)
    if fmt == "png":
        if output is None:
            _fail("--format png needs an output file: add -o FILE.png")
        try:
            to_png(loaded, output, max_label=label_width)
        except PgVerifyError as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"cannot write {output}: {exc.strerror or exc}")
        return
    _emit(to_dot(loaded, max_label=label_width), output)
