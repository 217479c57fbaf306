"""What every command module shares: the exit status for bad input, its message, and output.

``pgverify check``/``derive`` (:mod:`pgverify.cli`), ``export``/``show``
(:mod:`pgverify.export.cli`) and ``import`` (:mod:`pgverify.importers.cli`) fail the same way:
one ``pgverify: error:`` line on standard error, exit status 2, no traceback.
"""
from __future__ import annotations

import sys

import click

from .files import output_problem, write_atomic

__all__ = ["EXIT_INPUT", "fail", "emit", "check_output"]

EXIT_INPUT = 2


def fail(message: str) -> None:
    """Report bad input or usage and exit with status 2."""
    click.echo(f"pgverify: error: {message}", err=True)
    sys.exit(EXIT_INPUT)


def emit(text: str, output: str | None) -> None:
    """Print ``text``, or write it to ``output`` whole or not at all."""
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        write_atomic(output, text)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")


def check_output(output: str | None) -> None:
    """Refuse an output path that cannot be written (a missing folder: none is created), before any work."""
    if output is None:
        return
    problem = output_problem(output)
    if problem is not None:
        fail(f"cannot write {output}: {problem}")
