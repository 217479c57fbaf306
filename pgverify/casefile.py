"""Case files (YAML) and dicts -> a validated :class:`~pgverify.model.Case`.

The YAML text is *composed* (PyYAML's ``compose``: a tree of nodes with line
numbers, no Python objects constructed, no tags executed), so every problem can
be reported with its line, and duplicate keys are caught.  Values are read as
text and parsed by the safe expression language of :mod:`pgverify.expr`.

All problems of a file are collected and raised together as one
:class:`~pgverify.errors.CaseFileError`.  The contract is ``case-format.md``
(version 1); ``docs/case-format.md`` documents it for users.
"""
from __future__ import annotations

import itertools
import keyword
import os
import random
import re
import stat
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

import sympy
import yaml

from .gcpause import gc_paused
from .errors import CaseFileError, ExpressionError, Problem
from .expr import FUNCTIONS, exact_number, parse_expression
from .model import DETERMINISTIC_ACTION, Case

__all__ = ["load_case", "case_from_yaml", "case_from_dict", "revalidate_at", "parse_point_value",
           "MAX_FILE_BYTES"]

#: The largest case file read (checked before reading): 200 MB.  A tabular case of 10**5 states
#: and 10**6 transitions is about 27 MB.
MAX_FILE_BYTES = 200 * 10**6

TOP_KEYS = (
    "name", "description", "parameters", "constants", "states", "terminal", "actions",
    "start", "discount", "horizon", "policy", "transitions", "rewards",
)
RESERVED = set(FUNCTIONS) | {"pi", "a", "default"}
#: Most horizon x states: every engine works per state and step (docs/limits.md).
MAX_STATE_STEPS = 10**8
ZERO = sympy.Integer(0)
ONE = sympy.Integer(1)


# ---------------------------------------------------------------------------
# A located tree: both YAML nodes and plain Python data become Nodes.
# ---------------------------------------------------------------------------
class Node:
    """A value with its place: ``kind`` is 'map', 'seq' or 'scalar'."""

    __slots__ = ("kind", "value", "line", "text", "tag")

    def __init__(self, kind, value, line=None, text=None, tag=None):
        self.kind = kind
        self.value = value  # map: list[(Node, Node)]; seq: list[Node]; scalar: python value
        self.line = line
        self.text = text  # scalar: the text as written (YAML) or None
        self.tag = tag

    @property
    def is_null(self):
        return self.kind == "scalar" and (self.value is None)

    def name(self) -> str:
        """The scalar as a name (state, action): the text as written."""
        if self.text is not None:
            return self.text
        return str(self.value)

    def shown(self) -> str:
        if self.kind == "scalar":
            return self.text if self.text is not None else str(self.value)
        if self.kind == "map":
            return "{...}"
        return "[...]"


def _from_yaml_node(node) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        return Node("map", [(_from_yaml_node(k), _from_yaml_node(v)) for k, v in node.value], line)
    if isinstance(node, yaml.SequenceNode):
        return Node("seq", [_from_yaml_node(v) for v in node.value], line)
    tag = node.tag.rsplit(":", 1)[-1]
    value: Any = node.value
    if tag == "null":
        value = None
    return Node("scalar", value, line, text=node.value, tag=tag)


def _from_python(value) -> Node:
    if isinstance(value, Mapping):
        return Node("map", [(_from_python(k), _from_python(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return Node("seq", [_from_python(v) for v in value])
    return Node("scalar", value, text=None, tag="python")


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------
def load_case(path) -> Case:
    """Read, parse and validate a case file.

    Only a regular file of at most :data:`MAX_FILE_BYTES` (200 MB) is read; a directory, a pipe
    or a device (``/dev/zero``) is refused before anything is read.

    Raises
    ------
    CaseFileError
        With every problem found, each with its line and key.
    """
    text = _read_text(path)
    return case_from_yaml(text, source=str(path))


def _read_text(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise CaseFileError([Problem(f"expected the path of a case file (a str or a pathlib.Path), got "
                                     f"{type(path).__name__}", given=repr(path)[:40],
                                     hint="Pass a path, or build the case with pgverify.Case.from_dict")])
    p = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below)
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise CaseFileError([Problem("file not found", hint="Check the path")], path=str(path)) from None
    except OSError as exc:
        raise CaseFileError([Problem(f"cannot read the file ({exc})")], path=str(path)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = ("a directory" if stat.S_ISDIR(info.st_mode) else "a pipe" if stat.S_ISFIFO(info.st_mode)
                    else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device"
                    if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a file")
            raise CaseFileError([Problem(f"not a regular file ({what}): only regular files are read",
                                         hint="Give the path of a case file")], path=str(path))
        limit = MAX_FILE_BYTES
        if info.st_size > limit:
            raise CaseFileError([Problem(f"the file is {info.st_size / 1e6:.1f} MB, larger than the limit of "
                                         f"{limit // 10**6} MB for a case file",
                                         hint="A tabular case of 10**5 states and 10**6 transitions is about "
                                              "27 MB; remove long comments or split the case")], path=str(path))
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise CaseFileError([Problem(f"cannot read the file ({exc})")], path=str(path)) from None
    if len(data) > limit:  # it grew after the check
        raise CaseFileError([Problem(f"the file is larger than the limit of {limit // 10**6} MB for a case file")],
                            path=str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaseFileError([Problem(f"cannot read the file ({exc})")], path=str(path)) from None
    if "\r" in text:  # as a text-mode read (universal newlines) gives it
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def case_from_yaml(text: str, *, source: str | None = None) -> Case:
    """Parse and validate a case from YAML text (``source`` is used in messages)."""
    with gc_paused():  # millions of small objects are made and kept (see pgverify.gcpause)
        root = _compose(text, source)
        if root is None:
            raise CaseFileError([Problem("the file is empty", hint="A case needs at least name, states, "
                                         "actions, start, policy and transitions")], path=source)
        if _is_sequence(root, source):
            return _sequence_case(root, source)
        return _Builder(root, source).build()


def _is_sequence(root: Node, source) -> bool:
    """True for ``kind: sequence`` or, without ``kind``, a ``vocabulary`` (pgverify.sequence); else an MDP.

    Another ``kind`` is an error.
    """
    if root.kind != "map":
        return False
    keys = {k.name(): v for k, v in root.value if k.kind == "scalar" and not k.is_null}
    v = keys.get("kind")
    if v is None:
        return "vocabulary" in keys
    if v.kind == "scalar" and not v.is_null and v.name() == "sequence":
        return True
    raise CaseFileError([Problem(f"unknown case kind {v.shown()!r}", key="kind", line=v.line, given=v.shown(),
                                 hint="Write 'kind: sequence' for a sequence case, or leave 'kind' out for an "
                                 "MDP")], path=source)


def _sequence_case(root: Node, source) -> Case:
    """The MDP compiled from a sequence case (its ``sequence`` is the SequenceCase)."""
    from .sequence.casefile import sequence_from_node

    return sequence_from_node(root, source).to_case()
#: Deepest nesting of YAML collections read (a case file needs about 6 levels); libyaml stops at
#: 1000 and PyYAML's pure-Python composer recursed until a RecursionError traceback.
MAX_YAML_DEPTH = 100
#: Most nodes that YAML aliases may add to a file by repeating what they refer to: a "billion laughs"
#: file of a few hundred bytes expands to 10**9 nodes.
MAX_ALIAS_NODES = 1_000_000


def _compose(text: str, source) -> Node | None:
    """The located tree of the YAML text: PyYAML's C parser where available, else the Python one.

    Both go through the same event loop (:func:`_compose_events`, no recursion), which refuses a
    nesting deeper than :data:`MAX_YAML_DEPTH`, aliases that add more than :data:`MAX_ALIAS_NODES`
    nodes, and an alias inside the node it names.  Any other YAML error is reported as the
    pure-Python composer words it (the messages the documentation shows), by composing the text once
    more with it: the nesting and the aliases are within the limits by then.
    """
    for loader in (getattr(yaml, "CSafeLoader", None), yaml.SafeLoader):
        if loader is None:
            continue
        try:
            return _compose_events(text, loader, source)
        except yaml.YAMLError:
            pass
    try:
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = f"not valid YAML: {exc.problem or exc.context}"
        raise CaseFileError([Problem(msg, line=line, hint="Fix the YAML syntax")], path=source) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: said by line and column
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise CaseFileError([Problem(f"not valid YAML: the character U+{ord(char):04X} at column {column} is not "
                                     "allowed in YAML", line=line,
                                     hint="Remove it (a NUL or control character: is the file binary, or saved "
                                     "in another encoding?)")], path=source) from None
    except yaml.YAMLError as exc:
        raise CaseFileError([Problem(f"not valid YAML: {exc}")], path=source) from None
    except RecursionError:  # not expected: the event loop refused deep nesting already
        raise CaseFileError([Problem(f"not valid YAML, nested too deeply (the limit is {MAX_YAML_DEPTH} "
                                     "levels)")], path=source) from None
    if tree is None:
        return None
    raise CaseFileError([Problem("not valid YAML: the parser's events and its composer disagree",
                                 hint="Report this file to pgverify's maintainers")], path=source)


_NO_KEY = object()


def _compose_events(text: str, loader, source=None) -> Node | None:
    """Nodes straight from the parser's events (as ``yaml.compose`` builds its nodes, without them).

    Raises a ``yaml.YAMLError`` for anything the composer would refuse (several documents,
    an undefined or duplicate anchor), so that the caller reports it with the Python parser's
    words; a :class:`CaseFileError` for what is beyond pgverify's limits (nesting deeper than
    :data:`MAX_YAML_DEPTH`, aliases adding more than :data:`MAX_ALIAS_NODES` nodes) and for an
    alias inside the node it names (a recursive structure, which no case can be).
    """
    resolve = yaml.resolver.Resolver().resolve
    tags: dict = {}
    root = None
    stack: list = []  # [node, pending key node or _NO_KEY]
    anchors: dict = {}
    open_nodes: set = set()
    documents = 0
    sizes: dict = {}  # id(anchored node) -> its number of nodes, aliases expanded (once it is complete)
    starts: dict = {}  # id(anchored collection still open) -> the node count before it
    count = 0  # nodes so far, aliases expanded
    added = 0  # nodes added by aliases
    scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
    map_start, seq_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
    ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    for event in yaml.parse(text, Loader=loader):
        kind = type(event)
        if kind is scalar_event:
            tag = event.tag
            if tag is None or tag == "!":
                key = (event.value, event.implicit)
                tag = tags.get(key)
                if tag is None:
                    tag = tags[key] = resolve(yaml.ScalarNode, event.value, event.implicit).rsplit(":", 1)[-1]
            else:
                tag = tag.rsplit(":", 1)[-1]
            value = event.value
            node = Node("scalar", None if tag == "null" else value, event.start_mark.line + 1, text=value, tag=tag)
        elif kind is map_start or kind is seq_start:
            node = Node("map" if kind is map_start else "seq", [], event.start_mark.line + 1)
        elif kind is alias_event:
            node = anchors.get(event.anchor)
            if node is None:
                raise yaml.composer.ComposerError(None, None, "alias", event.start_mark)
            if id(node) in open_nodes:
                raise CaseFileError([Problem(
                    f"the YAML alias *{event.anchor} is inside the node it refers to (a recursive structure)",
                    line=event.start_mark.line + 1, given=f"*{event.anchor}"[:200],
                    hint="Remove the alias, or refer to a node outside it")], path=source)
            added += sizes[id(node)]
            count += sizes[id(node)]
            if added > MAX_ALIAS_NODES:
                raise CaseFileError([Problem(
                    f"YAML aliases expand to more than {MAX_ALIAS_NODES:,} nodes (the limit on what aliases may "
                    f"add; an alias bomb such as 'billion laughs' adds billions)", line=event.start_mark.line + 1,
                    given=f"*{event.anchor}"[:200], hint="Write the repeated parts out, or use fewer aliases")],
                    path=source)
        elif kind in ends:
            node = stack.pop()[0]
            open_nodes.discard(id(node))
            if starts:
                start = starts.pop(id(node), None)
                if start is not None:
                    sizes[id(node)] = count - start
            continue
        elif kind is yaml.DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise yaml.composer.ComposerError(None, None, "another document", event.start_mark)
            continue
        else:
            continue
        anchor = getattr(event, "anchor", None)
        if anchor is not None and kind is not alias_event:
            if anchor in anchors:
                raise yaml.composer.ComposerError(None, None, "duplicate anchor", event.start_mark)
            anchors[anchor] = node
            if kind is scalar_event:
                sizes[id(node)] = 1
            else:  # a collection's size is known when it ends
                starts[id(node)] = count
        if kind is not alias_event:
            count += 1
        if not stack:
            root = node
        else:
            top = stack[-1]
            parent = top[0]
            if parent.kind == "seq":
                parent.value.append(node)
            elif top[1] is _NO_KEY:
                top[1] = node
            else:
                parent.value.append((top[1], node))
                top[1] = _NO_KEY
        if kind is map_start or kind is seq_start:
            if len(stack) >= MAX_YAML_DEPTH:
                raise CaseFileError([Problem(
                    f"YAML nested more than {MAX_YAML_DEPTH} levels deep (the limit; a case file needs about 6)",
                    line=event.start_mark.line + 1, hint="Flatten the structure")], path=source)
            stack.append([node, _NO_KEY])
            open_nodes.add(id(node))
    return root


def case_from_dict(data: Mapping, *, source: str | None = None) -> Case:
    """Validate a case given as a dict with the fields of a case file (``kind: sequence``: a sequence case)."""
    root = _from_python(data)
    if _is_sequence(root, source):
        return _sequence_case(root, source)
    return _Builder(root, source).build()


def parse_point_value(text, constants=None) -> sympy.Expr:
    """An exact parameter value from text (``"1/2"``, ``"0.5"``, ``"2 - sqrt(2)"``) or a number."""
    if isinstance(text, sympy.Basic):
        value = text
    else:
        value = parse_expression(text, constants or {}) if isinstance(text, str) else exact_number(text)
    if value.free_symbols:
        raise ExpressionError("a parameter value must be a number", str(text))
    if not value.is_real and value.is_real is not None:
        raise ExpressionError("a parameter value must be real", str(text))
    return value


def revalidate_at(case: Case, values: Mapping) -> Case:
    """The case at a new point, with the point-dependent checks run again."""
    if not isinstance(values, Mapping):
        raise CaseFileError([Problem(f"expected a mapping of parameter names to values, got "
                                     f"{type(values).__name__}", key="at", given=repr(values)[:40],
                                     hint="Write e.g. case.at({'p': '1/3'})")], path=case.source)
    point = dict(case.point)
    problems = []
    names = {p.name: p for p in case.parameters}
    for key, value in values.items():
        name = key.name if isinstance(key, sympy.Symbol) else str(key)
        if name not in names:
            problems.append(Problem(f"unknown parameter {name!r}", key="at", given=str(value),
                                    hint=f"Parameters of {case.name}: {', '.join(names) or 'none'}"))
            continue
        try:
            point[names[name]] = parse_point_value(value, case.constants)
        except ExpressionError as exc:
            problems.append(Problem(exc.reason, key=f"at.{name}", given=exc.text, hint=exc.hint))
    if problems:
        raise CaseFileError(problems, path=case.source)
    new = case.with_(point=point)
    problems = check_at_point(new)
    if case.sequence is not None:  # a compiled sequence case: its own point checks, and its point moved too
        from dataclasses import replace

        from .sequence.casefile import sequence_point_problems

        new = new.with_(sequence=replace(case.sequence, point=point))
        problems += sequence_point_problems(new.sequence)
    if problems:
        raise CaseFileError(problems, path=case.source)
    return new


class _NameList(list):
    """A list of names (in order) whose ``in`` is a set lookup; not changed after it is made."""

    def __init__(self, items=()):
        super().__init__(items)
        self._set = frozenset(self)

    def __contains__(self, item):
        try:
            return item in self._set
        except TypeError:
            return False


_INTEGER = re.compile(r"[+-]?(?:0|[1-9][0-9]*)\Z")
_FRACTION = re.compile(r"([+-]?(?:0|[1-9][0-9]*))/([1-9][0-9]*)\Z")


def _parse_text(text: str, names, context: str) -> sympy.Expr:
    """``parse_expression``, with a shortcut for plain integers and fractions (``3``, ``-1/4``)."""
    src = text.strip()
    if len(src) <= 40:
        if _INTEGER.match(src):
            return sympy.Integer(int(src))
        m = _FRACTION.match(src)
        if m:
            return sympy.Rational(int(m.group(1)), int(m.group(2)))
    return parse_expression(text, names, context=context)


# ---------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------
class _Builder:
    def __init__(self, root: Node, source: str | None):
        self.root = root
        self.source = source
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.lines: dict[str, int | None] = {}  # key path -> line, for point checks
        self.reward_keys: dict = {}  # (s, a, s_next) -> (key path, line) of the reward entry used
        self.tabular_names: set = set()  # theta_<state>_<action> of a tabular softmax
        self._memos: dict = {}  # id(names) -> (names, {text or number: expression or ExpressionError})
        self.refused_names: set = set()  # parameter or constant names whose declaration was refused

    # -- reporting ------------------------------------------------------------
    def unknown_action(self, key, node, a, s, actions):
        """Report an unknown action, unless the action list itself is missing (reported once)."""
        if self.top.get("actions") is None:
            return
        self.err(key, node, f"unknown action {a!r} in state {s!r}", hint=self._known("actions", actions.get(s, ())))

    def err(self, key, node: Node | None, message, given=None, hint=None):
        line = node.line if node is not None else None
        if given is None and node is not None and node.kind == "scalar":
            given = node.shown()
        self.problems.append(Problem(message, key=key, line=line, given=given, hint=hint))

    def mapping(self, node: Node, key: str, what: str) -> list[tuple[str, Node, Node]] | None:
        """The entries of a mapping node as (name, key node, value node); duplicates reported."""
        if node.kind != "map":
            self.err(key, node, f"expected a mapping ({what})", given=node.shown())
            return None
        seen: dict[str, int | None] = {}
        out = []
        for k, v in node.value:
            if k.kind != "scalar" or k.is_null:
                self.err(key, k, "a key must be a plain name")
                continue
            name = k.name()
            if name in seen:
                self.err(f"{key}.{name}" if key else name, k, f"duplicate key {name!r}",
                         hint=f"It is first given on line {seen[name]}" if seen[name] else None)
                continue
            seen[name] = k.line
            out.append((name, k, v))
        return out

    def state_entries(self, node: Node, key: str, what: str, states, terminal, terminal_message, hint):
        """The entries ``state -> ...`` of a mapping whose state is declared and not terminal."""
        for s, knode, vnode in self.mapping(node, key, what) or []:
            if s not in states:
                self.err(f"{key}.{s}", knode, f"unknown state {s!r}", hint=self._known("states", states))
            elif s in terminal:
                self.err(f"{key}.{s}", knode, terminal_message.format(s=s), hint=hint)
            else:
                yield s, knode, vnode

    def expr(self, node: Node, key: str, names: Mapping[str, sympy.Expr], context: str = "", cache: bool = True):
        """The expression of a scalar node, or None (a problem recorded).

        Each distinct text (and Python number) is parsed once per load and scope (``names``):
        every entry with that text gets the same sympy object, and an invalid text the same
        problem (at each entry's own line).  ``cache=False`` where ``names`` still grows
        (constants may use earlier constants).
        """
        if node.kind != "scalar" or node.is_null:
            self.err(key, node, "expected a number or an expression", given=node.shown())
            return None
        value = node.value
        if isinstance(value, sympy.Basic):
            try:
                # a sympy object from Python code: its symbols are matched to declared names
                bad = sorted(str(s) for s in value.free_symbols if s.name not in names)
                if bad:
                    raise ExpressionError(f"unknown symbol(s) {', '.join(bad)}", str(value),
                                          f"Names allowed here: {', '.join(sorted(names)) or 'none'}")
                return value.xreplace({s: names[s.name] for s in value.free_symbols})
            except ExpressionError as exc:
                self.err(key, node, exc.reason, given=exc.text, hint=exc.hint)
                return None
        if isinstance(value, str) or node.text is not None:
            text = node.text if node.text is not None else value
            ckey = (text, context)
        else:
            text = None
            ckey = (type(value), value)
        memo = self._memo(names) if cache else {}
        try:
            result = memo.get(ckey)
        except TypeError:  # an unhashable value: not cached
            memo, result = {}, None
        if result is None:
            try:
                result = _parse_text(text, names, context) if text is not None else exact_number(value)
            except ExpressionError as exc:
                result = exc
            memo[ckey] = result
        if isinstance(result, ExpressionError):
            if self.refused_names and result.text and any(
                    re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", result.text) for n in self.refused_names):
                return None  # a use of a name whose declaration was refused, with the reason: said once
            self.err(key, node, result.reason, given=result.text, hint=result.hint)
            return None
        return result

    def _memo(self, names) -> dict:
        """The parse cache of one scope (the mapping of names is kept alive with it)."""
        entry = self._memos.get(id(names))
        if entry is None:
            entry = self._memos[id(names)] = (names, {})
        return entry[1]

    # -- the build ------------------------------------------------------------
    def read_top(self, keys, what: str) -> dict:
        """The file's top-level fields (name -> node), an error for each one not in ``keys``; sets ``self.top``."""
        entries = self.mapping(self.root, "", "the case")
        if entries is None:
            raise CaseFileError(self.problems, path=self.source)
        top = {}
        for name, knode, vnode in entries:
            if name not in keys:
                self.err(name, knode, f"unknown field {name!r}", given=name, hint=f"Fields of {what}: {', '.join(keys)}")
                continue
            top[name] = vnode
        self.top = top
        return top

    def _header(self):
        """What every case file starts with: its name, description, constants, and the parameters
        with their point (``self.point``)."""
        top = self.top
        description = ""
        if "description" in top and top["description"].kind == "scalar" and not top["description"].is_null:
            description = str(top["description"].name())
        name = self._name()
        constants = self._constants()
        params, point = self._parameters(constants)
        self.point = point
        return name, description, constants, params, point

    def build(self) -> Case:
        root = self.root
        top = self.read_top(TOP_KEYS, "a case")

        name, description, constants, params, point = self._header()
        states, terminal = self._states()
        form, policy_node = self._policy_form()
        if form == "tabular":
            params, point = self._tabular_parameters(params, point, states, terminal)
        names = dict(constants)
        names.update({p.name: p for p in params})
        self.names = names
        actions = self._actions(form, states, terminal)
        rho0 = self._start(states, names)
        gamma = self._discount(names)
        horizon = self._horizon()
        pi, mu = self._policy(form, policy_node, states, terminal, actions, params, names)
        a_sym = sympy.Symbol("a", real=True) if form == "deterministic" else None
        P, P_of_a = self._transitions(form, states, terminal, actions, names, a_sym, mu)
        pi_sym = sympy.Symbol("pi", positive=True)
        r, r_of_a, r_written = self._rewards(form, states, terminal, actions, names, a_sym, mu, pi, P, pi_sym)

        case = Case(
            name=name, description=description, states=tuple(states), terminal=frozenset(terminal),
            actions=actions, rho0=rho0, pi=pi, P=P, r=r, gamma=gamma, horizon=horizon,
            parameters=tuple(params), point=point, policy_form=form, constants=constants,
            mu=mu, action_symbol=a_sym, P_of_a=P_of_a, r_of_a=r_of_a, r_written=r_written,
            pi_symbol=pi_sym, source=self.source, lines=dict(self.lines), reward_keys=dict(self.reward_keys),
        )
        # The checks below read only what parsed, so they run even when other problems were found.
        self._check_sums(case)
        self.problems.extend(check_at_point(case, self.lines, properness=not self.problems))
        if self.problems:
            self.problems.sort(key=lambda p: p.line if p.line is not None else 0)
            raise CaseFileError(self.problems, path=self.source)
        self._check_parameter_use(case)
        return case.with_(warnings=tuple(self.warnings))

    # -- fields -----------------------------------------------------------------
    def _name(self) -> str:
        node = self.top.get("name")
        if node is None:
            self.err("name", None, "the field 'name' is required", hint="Add e.g. 'name: my-case'")
            return "unnamed"
        if node.kind != "scalar" or node.is_null or not node.name().strip():
            self.err("name", node, "the name must be a non-empty text")
            return "unnamed"
        return node.name()

    def _constants(self) -> dict:
        out: dict[str, sympy.Expr] = {}
        node = self.top.get("constants")
        if node is None or node.is_null:
            return out
        for name, knode, vnode in self.mapping(node, "constants", "name -> value") or []:
            if not self._check_identifier(name, "constants", knode):
                continue
            value = self.expr(vnode, f"constants.{name}", out, context="in a constant (only numbers "
                              "and earlier constants)", cache=False)
            if value is not None:
                out[name] = value
        return out

    def _check_identifier(self, name, where, node) -> bool:
        """A parameter or constant name: letters, digits and _, starting with a letter, not reserved.

        A refused name is remembered, so that its uses are not reported again as unknown names.
        """
        why = _name_problem(name)
        if why is None:
            return True
        self.refused_names.add(name)
        message, hint = why
        self.err(f"{where}.{name}", node, message, given=name, hint=hint)
        return False

    def _parameters(self, constants):
        params, point = [], {}
        node = self.top.get("parameters")
        if node is None or node.is_null:
            return params, point
        for name, knode, vnode in self.mapping(node, "parameters", "name -> value at the point") or []:
            if not self._check_identifier(name, "parameters", knode):
                continue
            if name in constants:
                self.err(f"parameters.{name}", knode, f"{name!r} is both a parameter and a constant")
                continue
            if vnode.is_null:
                self.err(f"parameters.{name}", vnode, "a parameter needs a value (the point where "
                         "numbers are checked)", hint=f"Write e.g. '{name}: 1/2'")
                continue
            value = self.expr(vnode, f"parameters.{name}", constants, context="in a parameter value")
            sym = sympy.Symbol(name, real=True)
            self.lines[f"parameters.{name}"] = knode.line
            if value is not None:
                if not value.is_real:
                    self.err(f"parameters.{name}", vnode, "a parameter value must be a real number")
                    continue
                params.append(sym)
                point[sym] = value
        return params, point

    def _names_list(self, node: Node, key: str) -> list[tuple[str, Node]]:
        if node.kind != "seq":
            self.err(key, node, "expected a list of names", given=node.shown())
            return []
        out, seen = [], {}
        for item in node.value:
            if item.kind != "scalar" or item.is_null:
                self.err(key, item, "expected a name", given=item.shown())
                continue
            n = item.name()
            if n in seen:
                self.err(key, item, f"duplicate name {n!r}",
                         hint=f"It is first listed on line {seen[n]}" if seen[n] else None)
                continue
            seen[n] = item.line
            out.append((n, item))
        return out

    def _states(self):
        node = self.top.get("states")
        if node is None:
            self.err("states", None, "the field 'states' is required", hint="Add e.g. 'states: [S0, G]'")
            return _NameList(), set()
        states = _NameList(n for n, _ in self._names_list(node, "states"))
        if not states and node.kind == "seq":
            self.err("states", node, "at least one state is required")
        terminal = set()
        tnode = self.top.get("terminal")
        if tnode is not None and not tnode.is_null:
            for n, item in self._names_list(tnode, "terminal"):
                if n not in states:
                    self.err("terminal", item, f"unknown state {n!r}", hint=self._known("states", states))
                else:
                    terminal.add(n)
        return states, terminal

    @staticmethod
    def _known(what, names):
        shown = ", ".join(map(str, list(names)[:20])) + (", ..." if len(names) > 20 else "")
        return f"Known {what}: {shown}"

    def _policy_form(self):
        node = self.top.get("policy")
        if node is None:
            self.err("policy", None, "the field 'policy' is required")
            return "explicit", None
        if node.kind == "map":
            keys = [k.name() for k, _ in node.value if k.kind == "scalar"]
            if keys == ["softmax"]:
                inner = node.value[0][1]
                if inner.kind == "scalar" and inner.name() == "tabular":
                    return "tabular", inner
                return "softmax", inner
            if keys == ["deterministic"]:
                return "deterministic", node.value[0][1]
            if "softmax" in keys or "deterministic" in keys:
                self.err("policy", node, "'softmax' or 'deterministic' must be the only key of policy")
        return "explicit", node

    def _tabular_parameters(self, params, point, states, terminal):
        declared = {p.name: p for p in params}
        acts = self._raw_actions(states, terminal)
        out = list(params)
        owner: dict[str, tuple] = {}
        for s in states:
            if s in terminal:
                continue
            for a in acts.get(s, []):
                pname = f"theta_{s}_{a}"
                if pname in owner:
                    self.err("policy.softmax", self.top.get("policy"),
                             f"tabular parameter name {pname!r} stands for both {owner[pname]} and {(s, a)}",
                             given="tabular", hint="Rename states or actions so that theta_<state>_<action> "
                             "names differ (e.g. avoid '_' in names)")
                    continue
                owner[pname] = (s, a)
                self.tabular_names.add(pname)
                if pname in declared:
                    continue
                sym = sympy.Symbol(pname, real=True)
                out.append(sym)
                point[sym] = ZERO
                declared[pname] = sym
        return out, point

    def _raw_actions(self, states, terminal) -> dict[str, list[str]]:
        """Actions per non-terminal state, as declared (problems reported once, in _actions)."""
        node = self.top.get("actions")
        nonterminal = [s for s in states if s not in terminal]
        if node is None or node.is_null:
            return {}
        if node.kind == "seq":
            names = [item.name() for item in node.value if item.kind == "scalar" and not item.is_null]
            names = list(dict.fromkeys(names))
            return {s: names for s in nonterminal}
        if node.kind == "map":
            out = {}
            for k, v in node.value:
                if k.kind == "scalar" and v.kind == "seq":
                    out[k.name()] = list(dict.fromkeys(i.name() for i in v.value if i.kind == "scalar"))
            return out
        return {}

    def _actions(self, form, states, terminal) -> dict[str, tuple]:
        nonterminal = [s for s in states if s not in terminal]
        node = self.top.get("actions")
        if form == "deterministic":
            if node is not None:
                self.err("actions", node, "a deterministic policy has no action list (its action is "
                         "the real number a = mu(state))", hint="Remove 'actions'")
            return {s: (DETERMINISTIC_ACTION,) for s in nonterminal}
        if node is None or node.is_null:
            self.err("actions", None, "the field 'actions' is required",
                     hint="Add e.g. 'actions: [left, right]'")
            return {s: () for s in nonterminal}
        if node.kind == "seq":
            names = tuple(n for n, _ in self._names_list(node, "actions"))
            if not names:
                self.err("actions", node, "at least one action is required")
            return {s: names for s in nonterminal}
        out = {}
        for s, knode, vnode in self.state_entries(node, "actions", "state -> list of actions", states, terminal,
                                                  "terminal state {s!r} has no actions", "Remove it from 'actions'"):
            names = tuple(n for n, _ in self._names_list(vnode, f"actions.{s}"))
            if not names and vnode.kind == "seq":
                self.err(f"actions.{s}", vnode, "at least one action is required")
            out[s] = names
        for s in nonterminal:
            if s not in out:
                self.err("actions", node, f"non-terminal state {s!r} has no action list",
                         hint=f"Add '{s}: [...]' under actions, or list it as terminal")
                out[s] = ()
        return out

    def _start(self, states, names):
        node = self.top.get("start")
        if node is None:
            self.err("start", None, "the field 'start' is required", hint="Add e.g. 'start: S0'")
            return {}
        if node.kind == "scalar" and not node.is_null:
            s = node.name()
            if s not in states:
                self.err("start", node, f"unknown state {s!r}", hint=self._known("states", states))
                return {}
            self.lines["start"] = node.line
            return {s: ONE}
        out = {}
        for s, knode, vnode in self.mapping(node, "start", "state -> probability") or []:
            if s not in states:
                self.err(f"start.{s}", knode, f"unknown state {s!r}", hint=self._known("states", states))
                continue
            value = self.expr(vnode, f"start.{s}", names)
            self.lines[f"start.{s}"] = vnode.line
            if value is not None and value != 0:
                out[s] = value
        self.lines["start"] = node.line
        return out

    def _discount(self, names):
        node = self.top.get("discount")
        if node is None or node.is_null:
            return ONE
        self.lines["discount"] = node.line
        value = self.expr(node, "discount", names)
        if value is None:
            return ONE
        at = sympy.N(value.xreplace(self.point) if value.free_symbols else value, 60)
        if not at.is_real or at <= 0 or at > 1:
            self.err("discount", node, f"the discount must be in (0, 1]; it is {sympy.nsimplify(at)} at the "
                     "parameter point", hint="Use a discount gamma with 0 < gamma <= 1")
            return ONE
        return value

    def _horizon(self):
        node = self.top.get("horizon")
        if node is None or node.is_null:
            return None
        text = node.name().strip()
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < 1 or str(value) != text.lstrip("+"):
            self.err("horizon", node, "the horizon must be a positive integer",
                     hint="Write e.g. 'horizon: 10', or leave it out to run until a terminal state")
            return None
        states = self.top.get("states")
        count = len(states.value) if states is not None and states.kind == "seq" else 1
        if value * max(count, 1) > MAX_STATE_STEPS:
            self.err("horizon", node, f"horizon x states = {value:,} x {count:,} is over the limit of "
                     f"{MAX_STATE_STEPS:.0e} state-steps", given=text,
                     hint="Use a shorter horizon, or none with a discount below 1 (docs/limits.md)")
            return None
        return value

    def _policy(self, form, node, states, terminal, actions, params, names):
        nonterminal = [s for s in states if s not in terminal]
        pi: dict[str, dict[str, sympy.Expr]] = {s: {} for s in nonterminal}
        mu = None
        if node is None:
            return pi, mu
        if form == "tabular":
            for s in nonterminal:
                logits = {a: names[f"theta_{s}_{a}"] for a in actions[s] if f"theta_{s}_{a}" in names}
                pi[s] = _tabular_softmax(logits, actions[s])
            return pi, mu
        if form == "deterministic":
            mu = {}
            for s, knode, vnode in self.state_entries(node, "policy.deterministic", "state -> action", states,
                                                      terminal, "terminal state {s!r} takes no action", None):
                value = self.expr(vnode, f"policy.deterministic.{s}", names)
                if value is not None:
                    mu[s] = value
            for s in nonterminal:
                if s not in mu:
                    self.err("policy.deterministic", node, f"no action given for state {s!r}",
                             hint=f"Add '{s}: <expression>'")
                pi[s] = {DETERMINISTIC_ACTION: ONE}
            return pi, mu
        where = "policy.softmax" if form == "softmax" else "policy"
        rows = {}
        for s, knode, vnode in self.state_entries(node, where, "state -> action -> value", states, terminal,
                                                  "terminal state {s!r} has no actions", "Remove it from the policy"):
            row = {}
            for a, aknode, avnode in self.mapping(vnode, f"{where}.{s}", "action -> value") or []:
                if a not in actions.get(s, ()):
                    self.unknown_action(f"{where}.{s}.{a}", aknode, a, s, actions)
                    continue
                value = self.expr(avnode, f"{where}.{s}.{a}", names)
                self.lines[f"policy.{s}.{a}"] = avnode.line
                if value is not None:
                    row[a] = value
            rows[s] = row
            self.lines[f"policy.{s}"] = knode.line
        for s in nonterminal:
            if s not in rows:
                if form == "explicit":
                    self.err("policy", node, f"no policy row for state {s!r}",
                             hint=f"Add '{s}: {{action: probability, ...}}'")
                rows[s] = {}
            if form == "softmax":
                pi[s] = _softmax(rows[s], actions[s])
            else:
                pi[s] = {a: v for a, v in rows[s].items() if v != 0}
        return pi, mu

    def _next_row(self, node: Node, key: str, states, local):
        """``next`` or ``{next: probability}`` -> dict next -> expr (``local``: the names allowed)."""
        if node.kind == "scalar" and not node.is_null:
            s2 = node.name()
            if s2 not in states:
                self.err(key, node, f"leads to undeclared state {s2!r}", hint=self._known("states", states))
                return None
            return {s2: ONE}
        row = {}
        entries = self.mapping(node, key, "next state -> probability")
        if entries is None:
            return None
        for s2, knode, vnode in entries:
            if s2 not in states:
                self.err(f"{key}.{s2}", knode, f"leads to undeclared state {s2!r}",
                         hint=self._known("states", states))
                continue
            value = self.expr(vnode, f"{key}.{s2}", local)
            self.lines[f"{key}.{s2}"] = vnode.line
            if value is not None and not _is_zero(value):
                row[s2] = value
        self.lines[key] = node.line
        return row

    def _transitions(self, form, states, terminal, actions, names, a_sym, mu):
        nonterminal = [s for s in states if s not in terminal]
        P = {s: {} for s in nonterminal}
        P_of_a = None
        node = self.top.get("transitions")
        if node is None:
            self.err("transitions", None, "the field 'transitions' is required")
            return P, P_of_a
        local = names
        if a_sym is not None:
            local = dict(names)
            local["a"] = a_sym
        given = {}
        for s, knode, vnode in self.state_entries(node, "transitions", "state -> action -> next state", states,
                                                  terminal, "terminal state {s!r} is absorbing and has no "
                                                  "transitions", "Remove it from 'transitions'"):
            given[s] = (knode, vnode)
            self.lines[f"transitions.{s}"] = knode.line
        if form == "deterministic":
            P_of_a = {}
            for s in nonterminal:
                if s not in given:
                    self.err("transitions", node, f"no transition for state {s!r}")
                    continue
                row = self._next_row(given[s][1], f"transitions.{s}", states, local)
                if row is None:
                    continue
                P_of_a[s] = row
                if mu is not None and s in mu:
                    P[s] = {DETERMINISTIC_ACTION: {k: v.subs(a_sym, mu[s]) for k, v in row.items()}}
            return P, P_of_a
        for s in nonterminal:
            if s not in given:
                self.err("transitions", node, f"no transitions for state {s!r}",
                         hint=f"Add '{s}: {{action: next_state, ...}}'")
                continue
            knode, vnode = given[s]
            seen = set()
            for a, aknode, avnode in self.mapping(vnode, f"transitions.{s}", "action -> next state") or []:
                if a not in actions.get(s, ()):
                    self.unknown_action(f"transitions.{s}.{a}", aknode, a, s, actions)
                    continue
                seen.add(a)
                row = self._next_row(avnode, f"transitions.{s}.{a}", states, local)
                if row is not None:
                    P[s][a] = row
            if vnode.kind == "map":
                for a in actions.get(s, ()):
                    if a not in seen:
                        self.err(f"transitions.{s}", vnode, f"no transition for action {a!r}",
                                 hint=f"Add '{a}: <next state>'")
        return P, P_of_a

    def _rewards(self, form, states, terminal, actions, names, a_sym, mu, pi, P, pi_sym):
        nonterminal = [s for s in states if s not in terminal]
        node = self.top.get("rewards")
        local = dict(names)
        local["pi"] = pi_sym  # pi(a|s); 1 for the action a deterministic policy takes
        if form == "deterministic":
            local["a"] = a_sym
        default = ZERO
        specific: dict = {}  # (s, a or None, s2 or None) -> expr
        self.spec_keys = {}  # the same keys -> (key path, line) of the entry
        if node is not None and not node.is_null:
            for s, knode, vnode in self.mapping(node, "rewards", "default / state -> ...") or []:
                if s == "default":
                    v = self.expr(vnode, "rewards.default", local, context="in a reward")
                    default = v if v is not None else ZERO
                    self.spec_keys["default"] = ("rewards.default", vnode.line)
                    continue
                if s not in states:
                    self.err(f"rewards.{s}", knode, f"unknown state {s!r}", hint=self._known("states", states))
                    continue
                if s in terminal:
                    self.err(f"rewards.{s}", knode, f"terminal state {s!r} has no steps and no rewards")
                    continue
                if form == "deterministic":
                    self._reward_by_next(vnode, f"rewards.{s}", s, None, specific, local, states)
                    continue
                if vnode.kind == "scalar":
                    v = self.expr(vnode, f"rewards.{s}", local, context="in a reward")
                    if v is not None:
                        specific[(s, None, None)] = v
                        self.spec_keys[(s, None, None)] = (f"rewards.{s}", vnode.line)
                    continue
                for a, aknode, avnode in self.mapping(vnode, f"rewards.{s}", "action -> reward") or []:
                    if a not in actions.get(s, ()):
                        self.unknown_action(f"rewards.{s}.{a}", aknode, a, s, actions)
                        continue
                    self._reward_by_next(avnode, f"rewards.{s}.{a}", s, a, specific, local, states)
        r, r_written, r_of_a = {}, {}, ({} if form == "deterministic" else None)
        for s in nonterminal:
            r[s], r_written[s] = {}, {}
            for a in actions.get(s, ()):
                r[s][a], r_written[s][a] = {}, {}
                for s2 in P.get(s, {}).get(a, {}):
                    key_a = None if form == "deterministic" else a
                    v = None
                    for k in ((s, key_a, s2), (s, key_a, None), (s, None, s2), (s, None, None)):
                        if k in specific:
                            v = specific[k]
                            self.reward_keys[(s, a, s2)] = self.spec_keys[k]
                            break
                    if v is None:
                        v = default
                        self.reward_keys[(s, a, s2)] = self.spec_keys.get("default", ("rewards", None))
                    r_written[s][a][s2] = v
                    if form == "deterministic":
                        v = v.subs(pi_sym, ONE)
                        r_of_a.setdefault(s, {})[s2] = v
                        if mu is not None and s in mu:
                            v = v.subs(a_sym, mu[s])
                    elif not v.is_Rational and pi_sym in v.free_symbols:
                        v = v.subs(pi_sym, pi[s].get(a, ZERO))
                    if not _is_zero(v):
                        r[s][a][s2] = v
        # warn about rewards for steps that cannot happen
        for (s, a, s2), _ in specific.items():
            if s2 is None or s not in P:
                continue
            acts = [a] if a is not None else list(P[s])
            if all(s2 not in P[s].get(b, {}) for b in acts):
                where = f"rewards.{s}" + (f".{a}" if a else "") + f".{s2}"
                self.warnings.append(Problem(f"reward for a step to {s2!r} that the transitions never take",
                                             key=where, line=self.lines.get(where),
                                             hint="Check the transitions, or remove the entry"))
        return r, r_of_a, r_written

    def _reward_by_next(self, node, key, s, a, specific, local, states):
        if node.kind == "scalar":
            v = self.expr(node, key, local, context="in a reward")
            if v is not None:
                specific[(s, a, None)] = v
                self.spec_keys[(s, a, None)] = (key, node.line)
            return
        for s2, knode, vnode in self.mapping(node, key, "next state -> reward") or []:
            if s2 not in states:
                self.err(f"{key}.{s2}", knode, f"unknown state {s2!r}", hint=self._known("states", states))
                continue
            v = self.expr(vnode, f"{key}.{s2}", local, context="in a reward")
            self.lines[f"{key}.{s2}"] = vnode.line
            if v is not None:
                specific[(s, a, s2)] = v
                self.spec_keys[(s, a, s2)] = (f"{key}.{s2}", vnode.line)

    # -- checks -----------------------------------------------------------------
    def _check_sums(self, case: Case):
        rows = []
        if case.rho0 or "start" in self.top:
            rows.append(("start", case.rho0))
        if case.policy_form == "explicit":
            for s in case.nonterminal:
                if case.pi.get(s):
                    rows.append((f"policy.{s}", case.pi[s]))
        for s in case.nonterminal:
            for a in case.actions.get(s, ()):
                if a in case.P.get(s, {}):
                    key = f"transitions.{s}" + ("" if case.policy_form == "deterministic" else f".{a}")
                    rows.append((key, case.P[s][a]))
        for key, row in rows:
            problem = _sum_problem(row, case.point, case.parameters)
            if problem:
                line = self.lines.get(key)
                self.problems.append(Problem(problem[0], key=key, line=line, given=problem[1], hint=problem[2]))

    def _check_parameter_use(self, case: Case):
        # a tabular softmax uses each of its parameters theta_<state>_<action> in that pi(a|s)
        unused = {p for p in case.parameters if p.name not in self.tabular_names}
        for e in itertools.chain(case.expressions(), (case.mu or {}).values()):
            if not unused:
                break
            if not e.is_Rational:
                unused -= e.free_symbols
        for p in case.parameters:
            if p in unused:
                self.warnings.append(Problem(f"parameter {p.name!r} is declared but used nowhere",
                                             key=f"parameters.{p.name}",
                                             line=self.lines.get(f"parameters.{p.name}"),
                                             hint="Remove it, or use it in an expression"))


_RESERVED_WHY = {
    "a": "'a' is reserved for the action of a deterministic policy",
    "pi": "'pi' is reserved: in a reward it stands for the probability pi(a|s) of the step's action",
    "default": "'default' is reserved: it names the default reward",
}


def _name_problem(name: str):
    """(message, hint) when ``name`` cannot name a parameter or a constant, else None."""
    import unicodedata

    rename = "Rename it: letters, digits and _, starting with a letter"
    if unicodedata.normalize("NFKC", name) != name:
        return (f"{name!r} is written with compatibility characters: expressions read it as "
                f"{unicodedata.normalize('NFKC', name)!r}", f"Write {unicodedata.normalize('NFKC', name)!r}")
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword, which an expression cannot use as a name", rename
    if not name.isidentifier() or not name[0].isalpha():
        return f"{name!r} is not a valid name", "Use letters, digits and _, starting with a letter"
    if name in FUNCTIONS:
        return f"{name!r} is the name of a function of the expression language", rename
    if name in _RESERVED_WHY:
        return _RESERVED_WHY[name], rename
    return None


def _softmax(logits: Mapping[str, sympy.Expr], actions) -> dict[str, sympy.Expr]:
    """pi(a|s) = exp(l_a) / sum_b exp(l_b); a missing logit is 0 (Sutton & Barto 2018, eq. 13.2)."""
    exps = {a: sympy.exp(logits.get(a, ZERO)) for a in actions}
    total = sympy.Add(*exps.values())
    return {a: e / total for a, e in exps.items()}


def _is_zero(e) -> bool:
    """``e == 0`` (sympy makes every rational zero the one object S.Zero; a quick test for them)."""
    return e is ZERO if e.is_Rational else e == 0


def _tabular_softmax(logits: Mapping[str, sympy.Expr], actions) -> dict[str, sympy.Expr]:
    """:func:`_softmax` of distinct real parameter symbols, built without sympy's canonicalisation.

    The result is the same expression, arguments in the same order (``exp(t_a)/(exp(t_a) +
    exp(t_b) + ...)``, the sum ordered by the symbols' names as sympy orders it), made about
    four times faster: a tabular case with 10**5 states builds 3 * 10**5 of them.
    Anything else (one action, a missing or non-symbol logit) goes to :func:`_softmax`.
    """
    syms = [logits.get(a) for a in actions]
    if (len(syms) < 2 or any(not isinstance(x, sympy.Symbol) or x.is_real is not True for x in syms)
            or len({x.name for x in syms}) != len(syms)):
        return _softmax(logits, actions)
    fast = _fast_softmax_ok()
    exps = {x.name: (_raw_exp(x) if fast else sympy.exp(x, evaluate=False)) for x in syms}
    total = sympy.Add._from_args([exps[n] for n in sorted(exps)], True)
    inverse = sympy.Pow(total, -ONE, evaluate=False)
    exp_first = _SOFTMAX_CHECK[1]
    return {a: sympy.Mul._from_args((exps[x.name], inverse) if exp_first else (inverse, exps[x.name]), True)
            for a, x in zip(actions, syms)}


def _raw_exp(x):
    """exp(x), unevaluated, as ``sympy.exp(x, evaluate=False)`` makes it (with its shared ``nargs``)."""
    obj = sympy.Expr.__new__(sympy.exp, x)
    obj.nargs = _SOFTMAX_CHECK[2]
    return obj


_SOFTMAX_CHECK: list = []  # [whether the shortcut gives sympy's own expressions, exp before pow, exp's nargs]


def _fast_softmax_ok() -> bool:
    """Asked once, of sympy itself: does :func:`_tabular_softmax`'s shortcut build sympy's own expressions?"""
    if not _SOFTMAX_CHECK:
        x, y = sympy.Symbol("x_1", real=True), sympy.Symbol("X0", real=True)
        genuine = sympy.exp(x) / (sympy.exp(x) + sympy.exp(y))
        _SOFTMAX_CHECK[:] = [False, genuine.args[0] == sympy.exp(x), sympy.exp(x).nargs]
        try:
            _SOFTMAX_CHECK[0] = True
            built = _tabular_softmax({"a": x, "b": y}, ("a", "b"))["a"]
            ok = (built == genuine and sympy.srepr(built) == sympy.srepr(genuine) and hash(built) == hash(genuine)
                  and built.args == genuine.args
                  and all(e.nargs == sympy.exp(x).nargs for e in built.atoms(sympy.exp))
                  and built.diff(x) == genuine.diff(x))
        except Exception:  # noqa: BLE001 - any failure means: use sympy's own constructors
            ok = False
        _SOFTMAX_CHECK[0] = ok
    return _SOFTMAX_CHECK[0]


def _sum_problem(row: Mapping[str, sympy.Expr], point, params):
    """None if the row sums to exactly 1 for every theta; else (message, given, hint).

    Proved symbolically when possible; otherwise checked exactly at the point and at
    three random points to 50 digits (raising only when definitely not 1, as
    sympy.stats does).
    """
    if _rational_sum(row.values()) == 1:
        return None
    total = sympy.Add(*row.values()) if row else ZERO
    diff = total - 1
    try:
        if diff == 0 or sympy.expand(diff) == 0 or sympy.cancel(sympy.expand(diff)) == 0:
            return None
    except (OverflowError, MemoryError, RecursionError):
        # sympy's polynomials read exp(1e400*a) as exp(a)**(10**400): no symbolic proof; the exact
        # test at the point below decides (and the limit on exp at the point refuses such a case)
        pass
    at_point = diff.xreplace(point) if diff.free_symbols else diff
    if at_point.is_Rational:  # exact: a sum of 1 + 1e-46 is not 1
        off = at_point != 0
    else:
        off = abs(sympy.N(at_point, 120)) > sympy.Float("1e-100", 120)
    if off:
        shown = total.xreplace(point)
        shown = str(shown) if shown.is_Rational else f"{sympy.N(shown, 20)} (to 20 digits)"
        return (f"probabilities sum to {shown}, not 1, at the parameter point",
                str(total), "Make the probabilities of this distribution add up to exactly 1")
    rng = random.Random(12345)
    for _ in range(3):
        pt = {p: sympy.Rational(rng.randint(1, 99), 100) for p in params if p in diff.free_symbols}
        v = diff.xreplace(pt)
        if v.is_Rational:
            bad = v != 0
        else:
            v = sympy.N(v, 60)
            bad = v.is_real is False or abs(v) > sympy.Float("1e-40")
        if bad:
            return ("probabilities sum to 1 at the parameter point but not for every theta "
                    f"(at {dict((str(k), str(x)) for k, x in pt.items())} the sum minus 1 is {sympy.N(v, 6)})",
                    str(total), "The gradient needs the distribution to sum to 1 for all theta")
    return None


def _rational_sum(values):
    """The exact sum (a Fraction) when every value is a sympy rational, else None."""
    by_denominator: dict = {}
    for e in values:
        if not e.is_Rational:
            return None
        q = e.q
        by_denominator[q] = by_denominator.get(q, 0) + e.p
    if len(by_denominator) == 1:
        (q, p), = by_denominator.items()
        return 1 if p == q else Fraction(p, q)
    return sum((Fraction(p, q) for q, p in by_denominator.items()), Fraction(0))


def _describe(v) -> str:
    """A number that is not finite and real, in words."""
    if v is sympy.zoo:
        return "complex infinity: a division by zero or log(0)"
    if v is sympy.nan:
        return "undefined (nan)"
    if v in (sympy.oo, -sympy.oo):
        return f"{v}: infinite"
    return f"{v}: not real"


#: The largest |u| of an exp(u) (sigmoid, softmax) at the parameter point: e^2303 has 1000 digits,
#: the limit on exact numbers (:data:`pgverify.expr.MAX_DIGITS`).  The parser checks exp of a number;
#: this is the same limit where the argument holds parameters.
EXP_ARGUMENT_LIMIT = 2303


def _exp_arguments_at_point(case: Case, lines: Mapping) -> list[Problem]:
    """exp(u) (written, or from sigmoid or a softmax) with |u| beyond :data:`EXP_ARGUMENT_LIMIT` at the point.

    exp(10**400) has 4e399 digits: sympy's adaptive evaluation took 44 s on a deterministic case
    with a parameter of 1e400, and ball arithmetic cannot hold it to 60 digits.  Refused before the
    work, like ``exp(1e400)`` written as a number.  One problem per entry, each distinct expression and
    exponential looked at once.
    """
    point = case.point
    seen: dict = {}  # exp atom -> (atom, its argument at the point) when beyond the limit, else None
    per_expr: dict = {}  # id(expression) -> the first exp beyond the limit in it, or None
    keep: list = []

    def beyond(e):
        """The first exp in ``e`` beyond the limit, or None; each sub-expression object visited once
        (a softmax's denominator is one object shared by its actions)."""
        if e.is_Atom:
            return None
        hit = per_expr.get(id(e), False)
        if hit is not False:
            return hit
        found = None
        if isinstance(e, sympy.exp):
            if e not in seen:
                u = e.args[0]
                v = point.get(u) if u.is_Symbol else None
                if v is None:
                    v = sympy.N(u.xreplace(point), 15) if u.free_symbols else u
                big = v.is_real and v.is_finite is not False and bool(abs(v) > EXP_ARGUMENT_LIMIT)
                seen[e] = (e, v) if big else None
            found = seen[e]
        if found is None:
            for arg in e.args:
                found = beyond(arg)
                if found is not None:
                    break
        per_expr[id(e)] = found
        keep.append(e)  # ids stay valid while the cache lives
        return found

    det = case.policy_form == "deterministic"

    def entries():  # (expression, a function making its key): keys are made only for a problem
        for s, e in case.rho0.items():
            yield e, lambda s=s: f"start.{s}"
        yield case.gamma, lambda: "discount"
        for s in case.nonterminal:
            if case.mu is not None and s in case.mu:
                yield case.mu[s], lambda s=s: f"policy.{s}"
            for a, e in case.pi.get(s, {}).items():
                yield e, (lambda s=s, a=a: f"policy.{s}.{a}" if case.policy_form == "explicit" else f"policy.{s}")
            P_s, r_s = case.P.get(s, {}), case.r.get(s, {})
            for a in case.actions.get(s, ()):
                for s2, e in P_s.get(a, {}).items():
                    if not e.is_Rational:
                        yield e, (lambda s=s, a=a, s2=s2: f"transitions.{s}.{s2}" if det
                                  else f"transitions.{s}.{a}.{s2}")
                for s2, e in r_s.get(a, {}).items():
                    if not e.is_Rational:
                        yield e, lambda s=s, a=a, s2=s2: case.reward_keys.get((s, a, s2), ("rewards", None))[0]

    problems, said = [], set()
    for e, make_key in entries():
        hit = beyond(e)
        if hit is None:
            continue
        key = make_key()
        if key in said:
            continue
        said.add(key)
        atom, v = hit
        problems.append(Problem(
            f"exp of a number beyond {EXP_ARGUMENT_LIMIT} in magnitude at the parameter point: {_short_numbers(atom)} is "
            f"exp({sympy.N(v, 3)}), whose value would have more than 1000 digits", key=key, line=lines.get(key),
            given=str(e), hint="Move the parameter point (docs/limits.md lists the limits)"))
        if len(problems) >= 20:
            break
    return problems


_LONG_INTEGER = re.compile(r"\d{21,}")


def _short_numbers(x) -> str:
    """``str(x)`` with integers of more than 20 digits in scientific form (1000...0 -> 1.000e+400)."""
    return _LONG_INTEGER.sub(lambda m: f"{m.group(0)[0]}.{m.group(0)[1:4]}e+{len(m.group(0)) - 1}", str(x))


def check_at_point(case: Case, lines: Mapping[str, int | None] | None = None,
                   properness: bool = True) -> list[Problem]:
    """The checks that depend on the parameter point: entries in [0, 1], the discount, properness.

    ``properness`` (no horizon, discount 1: a terminal state must be reachable from every
    reachable state) needs a consistent case; the builder skips it when other problems exist.
    """
    from .graph import improper_states

    lines = case.lines if lines is None else lines
    problems = _exp_arguments_at_point(case, lines)
    if problems:  # the checks below would evaluate those exponentials
        return problems

    def value(e):
        return e.subs(case.point) if e.free_symbols else e

    outside: dict = {}  # distinct non-rational probability -> its value if outside [0, 1], else None

    def check_entry(key, e):
        if e.is_Rational:  # exact and quick: 0 <= p/q <= 1 with q > 0
            if 0 <= e.p <= e.q:
                return
            v = e
        else:
            if e not in outside:
                v = value(e)
                if v.is_Rational:  # exact: -1e-60 is negative
                    bad = v < 0 or v > 1
                else:
                    num = sympy.N(v, 120)
                    bad = not num.is_real or num < -sympy.Float("1e-100", 120) or num > 1 + sympy.Float("1e-100", 120)
                outside[e] = v if bad else None
            v = outside[e]
            if v is None:
                return
        problems.append(Problem(f"probability {v} outside [0, 1] at the parameter point", key=key,
                                line=lines.get(key), given=str(e),
                                hint="Probabilities must lie in [0, 1]"))

    for s, e in case.rho0.items():
        check_entry(f"start.{s}", e)
    transition_key = "transitions.{s}" + ("" if case.policy_form == "deterministic" else ".{a}") + ".{s2}"
    for s in case.nonterminal:
        if case.policy_form == "explicit":
            for a, e in case.pi.get(s, {}).items():
                check_entry(f"policy.{s}.{a}", e)
        P_s = case.P.get(s, {})
        for a in case.actions.get(s, ()):
            for s2, e in P_s.get(a, {}).items():
                if e.is_Rational and 0 <= e.p <= e.q:
                    continue  # the common case, without making the key
                check_entry(transition_key.format(s=s, a=a, s2=s2), e)
    infinite: dict = {}  # distinct non-rational reward -> True when not finite and real at the point
    for s in case.nonterminal:
        r_s = case.r.get(s, {})
        for a in case.actions.get(s, ()):
            for s2, e in r_s.get(a, {}).items():
                if e.is_Rational:
                    continue
                if e not in infinite:
                    v = sympy.N(value(e), 30)
                    infinite[e] = not (v.is_real and v.is_finite)
                if infinite[e]:
                    key, line = case.reward_keys.get((s, a, s2), ("rewards", None))
                    written = (case.r_written or {}).get(s, {}).get(a, {}).get(s2, e)
                    problems.append(Problem(
                        f"the reward of the step ({s}, {a}, {s2}) is not a finite real number at the "
                        f"parameter point (it is {_describe(value(e))})", key=key, line=line, given=str(written),
                        hint="Move the point to where every reward is defined (e.g. log(pi) needs pi > 0)"))
    g = sympy.N(value(case.gamma), 60)
    if not g.is_real or g <= 0 or g > 1 + sympy.Float("1e-50"):
        problems.append(Problem(f"the discount must be in (0, 1]; it is {value(case.gamma)} at the "
                                "parameter point", key="discount", line=lines.get("discount"),
                                given=str(case.gamma), hint="Use a discount gamma with 0 < gamma <= 1"))
        return problems
    if problems or not properness:
        return problems
    g_at = value(case.gamma)  # exactly 1 (1 - 1e-60 is not; nsimplify called it 1)
    if case.horizon is None and (g_at == 1 if g_at.is_Rational else g_at.equals(1) is True):
        bad = improper_states(case)
        if bad:
            shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
            problems.append(Problem(
                f"with discount 1 and no horizon, no terminal state can be reached from {shown} "
                "(reachable from the start under the policy's support at the parameter point); "
                "the return is undefined", key=f"transitions.{bad[0]}", line=lines.get(f"transitions.{bad[0]}"),
                hint="Add a horizon, a discount below 1, or a path to a terminal state"))
    return problems
