"""Write a case dict as a readable, deterministic YAML case file.

:func:`render_case` turns the dict that an importer builds (the fields of a case file,
numbers as ints or exact ``"p/q"`` texts) into YAML text: the fields in the contract's
order, one line per state for ``transitions``, ``rewards`` and an explicit policy, short
lists and maps in flow style and long ones wrapped.  The same dict always gives the same
text.  :func:`write_case` checks that the text loads back (``pgverify.case_from_yaml``)
before it writes anything, and writes atomically: a temporary file in the same folder,
then ``os.replace``, so no half-written file is ever left behind.
"""
from __future__ import annotations

import json
import re
import textwrap
from fractions import Fraction
from pathlib import Path
from typing import Mapping

import yaml

from ..casefile import TOP_KEYS, case_from_yaml
from ..files import output_problem, write_atomic
from ..errors import UsageError
from ..model import Case
from .common import fraction_text

__all__ = ["render_case", "write_case"]

WIDTH = 100
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_PLAIN_NUMBER = re.compile(r"^-?[0-9]+(/[0-9]+)?$")


def _name(text) -> str:
    """A state, action or key name: plain when YAML reads it back as the same text, else quoted."""
    text = str(text)
    if _PLAIN_NAME.match(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _value(v) -> str:
    """A number or an expression."""
    if isinstance(v, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(v, (int, Fraction)):
        return str(fraction_text(v))
    text = str(v)
    if _PLAIN_NUMBER.match(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _flow(value) -> str:
    """A value in flow style: a name, a number, ``{k: v, ...}`` or ``[a, b]``."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_name(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_name(v) for v in value) + "]"
    if isinstance(value, str) and not _PLAIN_NUMBER.match(value):
        return _name(value) if _PLAIN_NAME.match(value) else json.dumps(value, ensure_ascii=False)
    return _value(value)


def _wrapped(key: str, items: list[str], open_: str, close: str, indent: str = "") -> list[str]:
    """``key: [a, b, ...]`` on one line, or wrapped over several (continuation indented)."""
    one = f"{indent}{key}: {open_}{', '.join(items)}{close}"
    if len(one) <= WIDTH:
        return [one]
    lines, current = [], f"{indent}{key}: {open_}"
    cont = indent + "  "
    for i, item in enumerate(items):
        piece = item + (", " if i < len(items) - 1 else close)
        if len(current) + len(piece.rstrip()) > WIDTH and current.strip() not in (f"{key}: {open_}",):
            lines.append(current.rstrip())
            current = cont
        current += piece
    lines.append(current.rstrip())
    return lines


def _text_block(key: str, text: str) -> list[str]:
    """A free text (the description) as a folded block, or quoted when that would not read back."""
    if text and "\n" not in text and text == text.strip() and "  " not in text:
        body = textwrap.wrap(text, WIDTH - 2, break_long_words=False, break_on_hyphens=False)
        lines = [f"{key}: >-"] + ["  " + b for b in body]
        if yaml.safe_load("\n".join(lines)) == {key: text}:
            return lines
    return [f"{key}: {json.dumps(text, ensure_ascii=False)}"]


def _state_map(key: str, data: Mapping) -> list[str]:
    """``key:`` then one line per state (``state: {...}`` or ``state: value``), however long."""
    return [f"{key}:"] + [f"  {_name(s)}: {_flow(v)}" for s, v in data.items()]


def render_case(data: Mapping, *, header: str | None = None) -> str:
    """The YAML text of a case dict (deterministic; comments from ``header``).

    Examples
    --------
    >>> print(render_case({"name": "coin", "states": ["S", "G"], "terminal": ["G"],
    ...     "actions": ["stop", "go"], "start": "S", "policy": {"softmax": "tabular"},
    ...     "transitions": {"S": {"stop": "G", "go": {"G": "1/2", "S": "1/2"}}},
    ...     "rewards": {"default": 0, "S": {"go": 1}}}), end="")
    name: coin
    states: [S, G]
    terminal: [G]
    actions: [stop, go]
    start: S
    policy: {softmax: tabular}
    transitions:
      S: {stop: G, go: {G: 1/2, S: 1/2}}
    rewards:
      default: 0
      S: {go: 1}
    """
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; fields of a case: {', '.join(TOP_KEYS)}")
    lines: list[str] = []
    if header:
        lines.extend(("# " + line).rstrip() for line in header.splitlines())
    for key in TOP_KEYS:
        if key not in data:
            continue
        value = data[key]
        if key == "name":
            lines.append(f"name: {_flow(str(value))}")
        elif key == "description":
            if value:
                lines.extend(_text_block("description", str(value)))
        elif key in ("states", "terminal") or (key == "actions" and isinstance(value, (list, tuple))):
            lines.extend(_wrapped(key, [_name(v) for v in value], "[", "]"))
        elif key in ("parameters", "constants"):
            if value:
                lines.append(f"{key}:")
                lines.extend(f"  {_name(k)}: {_value(v)}" for k, v in value.items())
        elif key == "start" and isinstance(value, Mapping):
            lines.extend(_wrapped("start", [f"{_name(k)}: {_flow(v)}" for k, v in value.items()], "{", "}"))
        elif key in ("start", "discount", "horizon"):
            if value is not None:
                lines.append(f"{key}: {_flow(value)}")
        elif key == "policy" and isinstance(value, Mapping) and set(value) <= {"softmax", "deterministic"} \
                and not isinstance(next(iter(value.values()), None), Mapping):
            lines.append(f"policy: {_flow(value)}")
        elif key == "policy" and isinstance(value, Mapping) and set(value) == {"softmax"}:
            lines.append("policy:")
            lines.extend("  " + line for line in _state_map("softmax", value["softmax"]))
        elif key == "rewards" and isinstance(value, Mapping):
            lines.append("rewards:")
            if "default" in value:
                lines.append(f"  default: {_value(value['default'])}")
            rest = {k: v for k, v in value.items() if k != "default"}
            lines.extend(_state_map("rewards", rest)[1:])
        elif isinstance(value, Mapping):  # actions map, explicit policy, transitions
            lines.extend(_state_map(key, value))
        else:
            lines.append(f"{key}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def write_case(data: Mapping, path, *, force: bool = False, header: str | None = None) -> Case:
    """Write a case dict to ``path`` as YAML, after checking that the text loads back.

    Parameters
    ----------
    data : mapping
        The fields of a case file (as the importers build them).
    path : str or path
        Where to write.  An existing file is an error unless ``force``.
    force : bool
        Overwrite an existing file.
    header : str, optional
        Comment lines to put first (each prefixed with ``# ``).

    Returns
    -------
    Case
        The case read back from the text that was written.

    Raises
    ------
    UsageError
        When the file exists and ``force`` is false, or it cannot be written.
    CaseFileError
        When the case is invalid (nothing is written).
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file name, e.g. {path / 'case.yaml'}")
    if path.exists() and not force:
        raise UsageError(f"{path} exists already; pass --force (force=True) to overwrite it, or choose another path")
    problem = output_problem(path)  # no folder is created, as by every command that writes
    if problem is not None:
        raise UsageError(f"cannot write {path}: {problem}")
    text = render_case(data, header=header)
    case = case_from_yaml(text, source=str(path))
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror or exc}); check that the folder is writable") from None
    return case
