"""Errors of the exporters and cross-checks (all :class:`~pgverify.errors.PgVerifyError`).

:class:`ExportError` carries one :class:`~pgverify.errors.Problem` per offending
expression (key path, line, the text given, how to fix it) and builds its message
from them, like :class:`~pgverify.errors.CaseFileError`; :class:`MissingExtraError`
says which optional extra to install.
"""
from __future__ import annotations

from ..errors import PgVerifyError, Problem

__all__ = ["ExportError", "MissingExtraError"]

#: How many problems the message lists (all of them are in ``problems``).
SHOWN_PROBLEMS = 10


class ExportError(PgVerifyError):
    """A valid case that cannot be written in the requested format.

    Parameters
    ----------
    what : str
        One line saying what cannot be done and why.
    problems : list of Problem
        Each offending place of the case.
    path : str, optional
        The case file, to prefix each place with ``path:line:``.
    hint : str, optional
        How to fix all of them (said once, after the places).
    """

    def __init__(self, what: str, problems: list[Problem] = (), path: str | None = None,
                 hint: str | None = None):
        self.what = what
        self.problems = list(problems)
        self.path = path
        self.hint = hint
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [self.what]
        for p in self.problems[:SHOWN_PROBLEMS]:
            lines.append("  " + p.format(self.path))
        rest = len(self.problems) - SHOWN_PROBLEMS
        if rest > 0:
            lines.append(f"  ... and {rest} more like these")
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


class MissingExtraError(PgVerifyError):
    """An optional dependency is not installed; the message says how to install it."""

    def __init__(self, feature: str, module: str, extra: str):
        self.feature = feature
        self.module = module
        self.extra = extra
        super().__init__(
            f"{feature} needs the Python package {module!r}, which is not installed. "
            f"Install it with: pip install 'pgverify[{extra}]' (or pip install {module})"
        )
