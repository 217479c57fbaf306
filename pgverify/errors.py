"""The exception hierarchy of pgverify.

Every error pgverify raises on purpose is a :class:`PgVerifyError`.  Errors about
a case file carry, for each problem, where it is (file, line, key path), what was
given and how to fix it, and build their message from those fields, so the CLI can
print them without a traceback and tests can assert them exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PgVerifyError",
    "Problem",
    "CaseFileError",
    "ExpressionError",
    "EngineError",
    "TooManyTrajectoriesError",
    "UsageError",
]


class PgVerifyError(Exception):
    """Base class of every error pgverify raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a case: what, where, what was given, how to fix it.

    Parameters
    ----------
    message : str
        What is wrong.
    key : str
        The key path in the case, e.g. ``transitions.S1.right``.
    line : int or None
        1-based line in the file, when the case came from a file.
    given : str or None
        The offending text as written.
    hint : str or None
        How to fix it.
    """

    message: str
    key: str = ""
    line: int | None = None
    given: str | None = None
    hint: str | None = None
    column: int | None = None

    def format(self, path: str | None = None) -> str:
        """``path:line: key: message (given: 'text'). hint``"""
        if path and self.line is not None:
            place = f"{path}:{self.line}:"
        elif path:
            place = f"{path}:"
        elif self.line is not None:
            place = f"line {self.line}:"
        else:
            place = ""
        key = shorten(self.key) if self.key else ""
        text = " ".join(p for p in (place, f"{key}:" if key else "", shorten(self.message, 2000)) if p)
        if self.given is not None:
            text += f" (given: {shorten(self.given)!r})"
        if self.hint:
            text += f". {shorten(self.hint, 500)}"
        return text


#: Longest text of a case quoted whole in a message (a state name of 10^6 characters made a 4 MB message)
QUOTE_LIMIT = 200


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text``, or its start with its length when it is longer than ``limit`` characters."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


class CaseFileError(PgVerifyError):
    """A case (file or dict) is invalid.  Holds every problem found, each with its place."""

    def __init__(self, problems: list[Problem], path: str | None = None):
        self.problems = list(problems)
        self.path = path
        super().__init__(self._message())

    # Convenience accessors for the first problem (most errors have one).
    @property
    def line(self):
        return self.problems[0].line if self.problems else None

    @property
    def key(self):
        return self.problems[0].key if self.problems else None

    def _message(self) -> str:
        n = len(self.problems)
        head = f"invalid case{f' {self.path}' if self.path else ''}: {n} problem{'s' if n != 1 else ''}"
        return head + "\n" + "\n".join("  " + p.format(self.path) for p in self.problems)


class ExpressionError(PgVerifyError):
    """An expression is outside pgverify's expression language."""

    def __init__(self, message: str, text: str, hint: str | None = None):
        self.text = text
        self.hint = hint
        self.reason = message
        super().__init__(f"{message} in {shorten(text)!r}" + (f". {hint}" if hint else ""))


class EngineError(PgVerifyError):
    """An engine could not run on a case (the reason is in the message)."""


class TooManyTrajectoriesError(EngineError):
    """Trajectory enumeration would take too long; carries the estimated count."""

    def __init__(self, count: int, limit: int, detail: str = ""):
        self.count = count
        self.limit = limit
        super().__init__(
            f"enumeration refused: about {count:.3g} trajectories (limit {limit:.3g}){detail}; "
            "pass force=True (CLI: --force) to enumerate anyway"
        )


class UsageError(PgVerifyError):
    """The command line or API was used wrongly (bad --at value, unknown parameter, ...)."""
