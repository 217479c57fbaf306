r"""Sequence case files (YAML, ``kind: sequence``) and dicts -> a validated :class:`SequenceCase`.

The reading is :mod:`pgverify.casefile`'s (size limits, YAML composed with lines, the safe
expression language, the name rules, every problem collected with its place); this module reads
the fields of a sequence case, documented in ``docs/case-format.md`` (section *Sequence cases*):

.. code-block:: yaml

    name: coin-flip
    kind: sequence
    prompts: q
    vocabulary: [A, B]          # the end token eos is added
    max_length: 2
    logits: tabular             # or token -> logit, or context -> token -> logit
    reward: {A.eos: 1}          # completion -> value (default 0), or one expression of the features

Logits, rewards and the reference may use *features* of the context or of the completion
(``length``, ``count_A``, ``has_A``, ``first_A``, ``last_A``, the prompts' names as indicators;
for a completion also ``finished`` and ``correct``), which are numbers once the context is known.
"""
from __future__ import annotations

import math
import re
from typing import Mapping

import sympy

from ..casefile import (_Builder, _compose, _from_python, _name_problem, _read_text, _softmax, _sum_problem,
                        _tabular_softmax)
from ..errors import CaseFileError, Problem
from ..gcpause import gc_paused
from .compile import TERMINAL, state_name
from .model import SequenceCase

__all__ = ["load_sequence_case", "sequence_case_from_yaml", "sequence_case_from_dict", "sequence_from_node",
           "sequence_point_problems", "MAX_PREFIXES", "MAX_TOKEN_STEPS", "SEQUENCE_KEYS"]

SEQUENCE_KEYS = ("name", "kind", "description", "parameters", "constants", "prompts", "vocabulary", "eos",
                 "max_length", "answers", "logits", "reward", "reference", "beta", "stale", "clip")
#: Most (prompt, prefix) pairs, i.e. non-terminal states of the compiled MDP (docs/limits.md).
MAX_PREFIXES = 10**5
#: Most (prompt, prefix, token) triples, i.e. transitions of the compiled MDP (docs/limits.md).
MAX_TOKEN_STEPS = 10**6
#: The prompt of a case that lists none.
DEFAULT_PROMPT = "prompt"
_TOKEN = re.compile(r"[A-Za-z0-9_]+\Z")
_FEATURE_PREFIX = re.compile(r"(count|has|first|last)_")
ZERO = sympy.Integer(0)
ONE = sympy.Integer(1)


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------
def load_sequence_case(path) -> SequenceCase:
    """Read, parse and validate a sequence case file (``kind: sequence``).

    The file is read as :func:`pgverify.load_case` reads a case file (a regular file of at most
    200 MB).  ``pgverify.load_case`` on the same file returns the compiled MDP, whose
    ``sequence`` is this :class:`SequenceCase`.

    Raises
    ------
    CaseFileError
        With every problem found, each with its line and key.
    """
    text = _read_text(path)
    return sequence_case_from_yaml(text, source=str(path))


def sequence_case_from_yaml(text: str, *, source: str | None = None) -> SequenceCase:
    """Parse and validate a sequence case from YAML text (``source`` is used in messages)."""
    with gc_paused():
        root = _compose(text, source)
        if root is None:
            raise CaseFileError([Problem("the file is empty", hint="A sequence case needs at least name, kind, "
                                         "prompts, vocabulary, max_length, logits and reward")], path=source)
        return sequence_from_node(root, source)


def sequence_case_from_dict(data: Mapping, *, source: str | None = None) -> SequenceCase:
    """Validate a sequence case given as a dict with the fields of a sequence case file.

    ``kind`` may be left out.  Values may be numbers, strings in the expression language or sympy
    expressions (their symbols matched to the declared names, as in :meth:`pgverify.Case.from_dict`).
    """
    return sequence_from_node(_from_python(data), source)


def sequence_from_node(root, source) -> SequenceCase:
    """The sequence case of a located tree (:class:`pgverify.casefile.Node`)."""
    return _SequenceBuilder(root, source).build()


# ---------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------
def _context_features(x, prefix, prompts, body) -> dict:
    """The features of the context (prompt x, tokens written so far)."""
    out = {"length": len(prefix)}
    for p in prompts:
        out[p] = int(p == x)
    for t in body:
        n = prefix.count(t)
        out[f"count_{t}"] = n
        out[f"has_{t}"] = int(n > 0)
        out[f"first_{t}"] = int(prefix[:1] == (t,))
        out[f"last_{t}"] = int(prefix[-1:] == (t,))
    return out


def _completion_features(x, o, prompts, body, eos, answers) -> dict:
    """The features of a completion o of prompt x (``length`` counts the end token when written)."""
    content = o[:-1] if o[-1] == eos else o
    out = _context_features(x, content, prompts, body)
    out["length"] = len(o)
    out["finished"] = int(o[-1] == eos)
    if answers is not None:
        out["correct"] = int(bool(content) and content[-1] == answers[x])
    return out


def _feature_names(prompts, body, completion: bool, answers) -> list[str]:
    names = ["length"] + [f"{f}_{t}" for t in body for f in ("count", "has", "first", "last")] + list(prompts)
    if completion:
        names.append("finished")
        if answers is not None:
            names.append("correct")
    return names


# ---------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------
class _SequenceBuilder(_Builder):
    """Reads a sequence case with the MDP builder's reporting, names, parameters and constants."""

    def build(self) -> SequenceCase:
        top = self.read_top(SEQUENCE_KEYS, "a sequence case")
        kind = top.get("kind")
        if kind is not None and not (kind.kind == "scalar" and kind.name() == "sequence"):
            self.err("kind", kind, "a sequence case has 'kind: sequence'", hint="Write 'kind: sequence'")
        for key in ("vocabulary", "max_length", "logits", "reward"):
            if key not in top:
                self.err(key, None, f"the field {key!r} is required", hint=f"Add e.g. '{_EXAMPLE[key]}'")

        name, description, constants, params, point = self._header()
        eos, vocab = self._vocabulary()
        body = [t for t in vocab if t != eos]
        prompts, probs = self._prompts(constants, params, vocab)
        max_length = self._max_length()
        shaped = bool(prompts) and bool(body) and max_length is not None and self._within_limits(
            prompts, body, vocab, max_length)
        answers = self._answers(prompts, body, eos)
        form = self._policy_form()
        contexts: list = []
        if shaped:
            contexts = [(x, p) for x in prompts for p in _prefixes(body, max_length)]
        if form == "tabular" and shaped:
            params, point = self._tabular(params, point, contexts, vocab)
        self._check_clashes(params, constants, prompts, body, answers)
        names = dict(constants)
        names.update({p.name: p for p in params})
        beta = self._beta(constants, params)
        clip = self._clip(constants, params)
        old_point = self._stale(constants, params, point)
        logits = policy = reward = reference = None
        if shaped:
            self.ctx = dict(prompts=prompts, body=body, eos=eos, vocab=vocab, max_length=max_length,
                            answers=answers)
            logits = self._logits(form, contexts, names, params)
            policy = None if logits is None else {
                c: (_tabular_softmax if form == "tabular" else _softmax)(row, vocab) for c, row in logits.items()}
            reward = self._reward(names, params)
            reference = self._reference(contexts, names, params, vocab)
        if beta != 0 and "reference" not in top and "beta" in top:
            self.err("beta", top["beta"], "a KL coefficient beta needs a reference policy",
                     hint="Add 'reference: uniform', or reference logits")
        if self.problems:
            raise self._error()
        seq = SequenceCase(
            name=name, parameters=tuple(params), point=point, prompts=tuple(prompts), prompt_probs=probs,
            vocabulary=tuple(vocab), eos=eos, max_length=max_length, policy=policy, reward=reward,
            logits=logits, reference=reference, beta=beta, old_point=old_point, clip_epsilon=clip,
            description=description, source=self.source, lines=dict(self.lines),
            policy_form="tabular" if form == "tabular" else "logits", constants=constants)
        self.problems.extend(sequence_point_problems(seq))
        if self.problems:
            raise self._error()
        self._warn_unused(seq)
        return _replace(seq, warnings=tuple(self.warnings))

    def _error(self) -> CaseFileError:
        self.problems.sort(key=lambda p: p.line if p.line is not None else 0)
        return CaseFileError(self.problems, path=self.source)

    # -- fields -------------------------------------------------------------------
    def _vocabulary(self):
        eos = "eos"
        enode = self.top.get("eos")
        if enode is not None:
            if enode.kind != "scalar" or enode.is_null or not _TOKEN.match(enode.name()):
                self.err("eos", enode, "the end token must be a token name: letters, digits and _",
                         hint="Write e.g. 'eos: stop'")
            else:
                eos = enode.name()
        node = self.top.get("vocabulary")
        if node is None:
            return eos, []
        vocab = []
        for t, item in self._names_list(node, "vocabulary"):
            if not _TOKEN.match(t):
                self.err("vocabulary", item, f"{t!r} is not a token name", given=t,
                         hint="A token is letters, digits and _ (prefixes are written A.B, contexts easy:A.B)")
                continue
            vocab.append(t)
        if eos not in vocab:
            vocab.append(eos)
        if node.kind == "seq" and len(vocab) < 2:
            self.err("vocabulary", node, f"the vocabulary needs at least one token besides the end token {eos!r}",
                     hint="Write e.g. 'vocabulary: [A, B]'")
        self.lines["vocabulary"] = node.line
        return eos, vocab

    def _prompts(self, constants, params, vocab):
        node = self.top.get("prompts")
        if node is None:  # one prompt
            if DEFAULT_PROMPT in vocab:
                self.err("prompts", None, f"without 'prompts' the one prompt is named {DEFAULT_PROMPT!r}, which is "
                         "also a token", hint="Name the prompt, e.g. 'prompts: q'")
                return [], {}
            return [DEFAULT_PROMPT], {DEFAULT_PROMPT: ONE}
        self.lines["prompts"] = node.line
        given: list = []  # (name, key node, value node or None)
        ok_keys = True  # no duplicate or invalid key in a map (its sum is then not checked)
        if node.kind == "scalar" and not node.is_null:
            given = [(node.name(), node, None)]
        elif node.kind == "seq":
            given = [(n, item, None) for n, item in self._names_list(node, "prompts")]
        elif node.kind == "map":
            before = len(self.problems)
            given = self.mapping(node, "prompts", "prompt -> probability") or []
            ok_keys = len(self.problems) == before
        else:
            self.err("prompts", node, "expected a prompt name, a list of prompts or a map prompt -> probability")
        if not given and node.kind in ("seq", "map"):
            self.err("prompts", node, "at least one prompt is required")
        prompts, probs, ok = [], {}, ok_keys
        names = dict(constants)
        names.update({p.name: p for p in params})
        for x, knode, vnode in given:
            why = _name_problem(x)
            if why is None and x == TERMINAL:
                why = (f"{TERMINAL!r} names the terminal state of the compiled MDP", "Rename the prompt")
            if why is None and x in vocab:
                why = (f"{x!r} is both a prompt and a token", "Rename the prompt or the token")
            if why is None and (x in ("length", "finished", "correct") or _FEATURE_PREFIX.match(x)):
                why = (f"{x!r} is the name of a feature, or looks like one (length, finished, correct, "
                       "count_/has_/first_/last_ of a token)", "Rename the prompt")
            if why is not None:
                self.err(f"prompts.{x}", knode, why[0], given=x, hint=why[1])
                ok = False
                continue
            prompts.append(x)
            if vnode is None:
                continue
            value = self.expr(vnode, f"prompts.{x}", names, context="in a prompt probability")
            self.lines[f"prompts.{x}"] = vnode.line
            if value is None:
                ok = False
            elif value.free_symbols:
                self.err(f"prompts.{x}", vnode, "the prompt distribution must not depend on the parameters "
                         f"(it uses {', '.join(sorted(s.name for s in value.free_symbols))})")
                ok = False
            elif not (value.is_real and 0 <= value <= 1):
                self.err(f"prompts.{x}", vnode, f"probability {value} outside [0, 1]",
                         hint="Probabilities must lie in [0, 1]")
                ok = False
            else:
                probs[x] = value
        if node.kind != "map":
            probs = {x: sympy.Rational(1, len(prompts)) for x in prompts}
        elif ok and prompts:
            problem = _sum_problem(probs, {}, ())
            if problem:
                self.err("prompts", node, problem[0].replace(", at the parameter point", ""), given=problem[1],
                         hint=problem[2])
        return prompts, probs

    def _max_length(self):
        node = self.top.get("max_length")
        if node is None:
            return None
        text = node.name().strip() if node.kind == "scalar" and not node.is_null else node.shown()
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < 1 or str(value) != text.lstrip("+"):
            self.err("max_length", node, "max_length must be a positive integer",
                     hint="Write e.g. 'max_length: 3' (the most tokens of a completion, the end token included)")
            return None
        self.lines["max_length"] = node.line
        return value

    def _within_limits(self, prompts, body, vocab, max_length) -> bool:
        """The prefixes and (prefix, token) pairs are counted (a closed form) before any is made."""
        n, L = len(body), max_length
        node = self.top["max_length"]
        if n > 1 and L * math.log10(n) > 60:  # beyond 10**60 the exact count is not worth its digits
            shown = f"about 10^{L * math.log10(n) - math.log10(n - 1):.0f} prefixes each"
            total = None
        else:
            per_prompt = L if n == 1 else (n**L - 1) // (n - 1)  # 1 + n + ... + n**(L - 1)
            shown = f"{per_prompt:,} prefixes each"
            total = per_prompt * len(prompts)
        if total is None or total > MAX_PREFIXES:
            self.err("max_length", node, f"{len(prompts):,} prompt(s) x {shown}"
                     + (f" = {total:,} prefixes" if total is not None else "")
                     + f", over the limit of {MAX_PREFIXES:,} (each prefix is a state of the compiled MDP)",
                     hint="Use a shorter max_length, fewer tokens or fewer prompts (docs/limits.md)")
            return False
        if total * len(vocab) > MAX_TOKEN_STEPS:
            self.err("vocabulary", self.top["vocabulary"], f"{total:,} prefixes x {len(vocab):,} tokens = "
                     f"{total * len(vocab):,} token steps, over the limit of {MAX_TOKEN_STEPS:,}",
                     hint="Use fewer tokens or a shorter max_length (docs/limits.md)")
            return False
        return True

    def _answers(self, prompts, body, eos):
        node = self.top.get("answers")
        if node is None or node.is_null or not prompts:
            return None
        if node.kind == "scalar":
            entries = [(x, node, node) for x in prompts]
        else:
            entries = self.mapping(node, "answers", "prompt -> token") or []
        out = {}
        for x, knode, vnode in entries:
            if x not in prompts:
                self.err(f"answers.{x}", knode, f"unknown prompt {x!r}", hint=self._known("prompts", prompts))
                continue
            if vnode.kind != "scalar" or vnode.is_null or vnode.name() not in body:
                shown = vnode.shown()
                why = (f"the end token {eos!r} cannot be an answer" if shown == eos
                       else f"unknown token {shown!r}")
                self.err(f"answers.{x}" if node.kind == "map" else "answers", vnode, why,
                         hint=f"An answer is the last token before {eos!r}: one of {', '.join(body)}")
                return None
            out[x] = vnode.name()
        missing = [x for x in prompts if x not in out]
        if missing and node.kind == "map":
            self.err("answers", node, f"no answer for prompt(s) {', '.join(missing)}",
                     hint="Give every prompt its answer, or one token for all: 'answers: A'")
            return None
        return out if len(out) == len(prompts) else None

    def _policy_form(self):
        node = self.top.get("logits")
        if node is None:
            return None
        self.lines["logits"] = node.line
        if node.kind == "scalar" and not node.is_null:
            if node.name() == "tabular":
                return "tabular"
            self.err("logits", node, "expected 'tabular', a map token -> logit or a map context -> token -> logit")
            return None
        return "logits"

    def _tabular(self, params, point, contexts, vocab):
        """One parameter theta_<prompt>[_<prefix tokens>]_<token> per context and token, 0 unless declared."""
        declared = {p.name: p for p in params}
        out = list(params)
        owner: dict = {}
        for x, prefix in contexts:
            for t in vocab:
                pname = "_".join(("theta", x) + prefix + (t,))
                if pname in owner:
                    self.err("logits", self.top["logits"], f"tabular parameter name {pname!r} stands for both "
                             f"{owner[pname]} and {(state_name(x, prefix), t)}", given="tabular",
                             hint="Rename prompts or tokens so that the names differ (e.g. avoid '_' in names)")
                    continue
                owner[pname] = (state_name(x, prefix), t)
                self.tabular_names.add(pname)
                if pname not in declared:
                    sym = sympy.Symbol(pname, real=True)
                    out.append(sym)
                    point[sym] = ZERO
                    declared[pname] = sym
        self.tabular_params = declared
        return out, point

    def _check_clashes(self, params, constants, prompts, body, answers):
        """A parameter or constant may not have the name of a feature (a prompt, length, count_A, ...)."""
        features = set(_feature_names(prompts, body, True, answers or {})) | {"finished", "correct"}
        for what, names in (("parameters", [p.name for p in params]), ("constants", list(constants))):
            for n in names:
                if n in features:
                    self.err(f"{what}.{n}", self._key_node(what, n),
                             f"{n!r} is the name of a feature (a prompt, length, finished, correct, or "
                             "count_/has_/first_/last_ of a token)", given=n, hint="Rename it")
        self.clashes = features & ({p.name for p in params} | set(constants))

    def _key_node(self, field_name, name):
        node = self.top.get(field_name)
        if node is not None and node.kind == "map":
            for k, _ in node.value:
                if k.kind == "scalar" and k.name() == name:
                    return k
        return node

    def _number(self, key, constants, params, what, positive=False):
        """A number without parameters (beta, clip), or None."""
        node = self.top.get(key)
        if node is None or node.is_null:
            return None
        self.lines[key] = node.line
        names = dict(constants)
        names.update({p.name: p for p in params})
        value = self.expr(node, key, names, context=f"in {what}")
        if value is None:
            return None
        if value.free_symbols:
            self.err(key, node, f"{what} must not depend on the parameters")
            return None
        num = sympy.N(value, 30)
        if not (num.is_real and num.is_finite) or num < 0 or (positive and num == 0):
            self.err(key, node, f"{what} must be a {'positive' if positive else 'non-negative'} real number "
                     f"(it is {value})", hint=_EXAMPLE[key])
            return None
        return value

    def _beta(self, constants, params):
        value = self._number("beta", constants, params, "the KL coefficient beta")
        return ZERO if value is None else value

    def _clip(self, constants, params):
        return self._number("clip", constants, params, "the clip epsilon", positive=True)

    def _stale(self, constants, params, point):
        node = self.top.get("stale")
        if node is None or node.is_null:
            return None
        self.lines["stale"] = node.line
        by_name = {p.name: p for p in params}
        old = dict(point)
        for n, knode, vnode in self.mapping(node, "stale", "parameter -> value of theta_old") or []:
            if n not in by_name:
                if n not in self.refused_names:
                    self.err(f"stale.{n}", knode, f"unknown parameter {n!r}",
                             hint=self._known("parameters", list(by_name)) if by_name else "Declare it under "
                             "parameters first")
                continue
            value = self.expr(vnode, f"stale.{n}", constants, context="in a value of theta_old (numbers and "
                              "constants)")
            if value is not None:
                if not value.is_real:
                    self.err(f"stale.{n}", vnode, "a parameter value must be a real number")
                    continue
                old[by_name[n]] = value
        return old

    # -- tables -------------------------------------------------------------------
    def _logits(self, form, contexts, names, params):
        if form is None:
            return None
        if form == "tabular":
            vocab, tab = self.ctx["vocab"], self.tabular_params
            return {(x, p): {t: tab["_".join(("theta", x) + p + (t,))] for t in vocab} for x, p in contexts}
        return self._rows(self.top["logits"], "logits", contexts, names, params, reference=False)

    def _reference(self, contexts, names, params, vocab):
        node = self.top.get("reference")
        if node is None or node.is_null:
            return None
        self.lines["reference"] = node.line
        if node.kind == "scalar":
            if node.name() != "uniform":
                self.err("reference", node, "expected 'uniform', a map token -> logit or a map context -> token "
                         "-> logit")
                return None
            u = sympy.Rational(1, len(vocab))
            return {c: {t: u for t in vocab} for c in contexts}
        rows = self._rows(node, "reference", contexts, names, params, reference=True)
        return None if rows is None else {c: _softmax(row, vocab) for c, row in rows.items()}

    def _features(self, completion: bool) -> dict:
        """The feature symbols (Dummies, so they can never meet a parameter) of contexts or completions."""
        key = ("completion" if completion else "context")
        cache = self.__dict__.setdefault("_feature_cache", {})
        if key not in cache:
            c = self.ctx
            cache[key] = {n: sympy.Dummy(n, real=True)
                          for n in _feature_names(c["prompts"], c["body"], completion, c["answers"])
                          if n not in self.clashes}
        return cache[key]

    def _parse(self, node, key, names, params, completion, what):
        """An expression of constants, parameters and features; (expr, node) or None."""
        local = dict(names)
        local.update(self._features(completion))
        value = self.expr(node, key, local, context=f"in {what}")
        if value is None:
            return None
        if what != "the logits":
            used = sorted(s.name for s in value.free_symbols if s in set(params))
            if used:
                self.err(key, node, f"{what} must not depend on the parameters (it uses {', '.join(used)})",
                         hint="Only the policy's logits depend on theta")
                return None
        return value

    def _token_row(self, node, key, names, params, what) -> dict | None:
        row = {}
        vocab = self.ctx["vocab"]
        for t, knode, vnode in self.mapping(node, key, "token -> logit") or []:
            if t not in vocab:
                self.err(f"{key}.{t}", knode, f"unknown token {t!r}", hint=self._known("tokens", vocab))
                continue
            value = self._parse(vnode, f"{key}.{t}", names, params, False, what)
            self.lines[f"{key}.{t}"] = vnode.line
            if value is not None:
                row[t] = (value, f"{key}.{t}", vnode)
        return row

    def _rows(self, node, key, contexts, names, params, reference):
        """Logits per context: a row token -> logit for all, or rows per context (with a default)."""
        what = "the reference logits" if reference else "the logits"
        if node.kind != "map":
            self.err(key, node, "expected a map token -> logit or a map context -> token -> logit")
            return None
        table_form = any(v.kind == "map" for _, v in node.value)
        default: dict = {}
        specific: dict = {}  # (prompt or None, prefix) -> row
        if not table_form:
            default = self._token_row(node, key, names, params, what)
        else:
            for k, knode, vnode in self.mapping(node, key, "context -> token -> logit") or []:
                if vnode.kind != "map":
                    self.err(f"{key}.{k}", knode, "in the table form every entry is a context -> token -> logit map",
                             given=k, hint="Put the logits of every context under 'default: {token: logit}'")
                    continue
                row = self._token_row(vnode, f"{key}.{k}", names, params, what)
                if k == "default":
                    default = row
                    continue
                ctx = self._context(k, knode, key)
                if ctx is not None:
                    specific[ctx] = row
        out = {}
        seen: dict = {}  # (expression, context features) -> value, and the problems said once per entry
        bad_entries: set = set()
        prompts, body = self.ctx["prompts"], self.ctx["body"]
        feats = self._features(False)
        for x, prefix in contexts:
            row = specific.get((x, prefix), specific.get((None, prefix), default))
            values = None
            out_row = dict.fromkeys(self.ctx["vocab"], ZERO)  # a token without a logit has logit 0
            for t, (e, where, vnode) in row.items():
                if e.free_symbols & set(feats.values()):
                    if values is None:
                        f = _context_features(x, prefix, prompts, body)
                        values = {d: sympy.Integer(f[n]) for n, d in feats.items()}
                    e = e.xreplace(values)
                if where not in bad_entries and not e.free_symbols:
                    num = seen.get(e)
                    if num is None:
                        num = seen[e] = sympy.N(e, 30)
                    if not (num.is_real and num.is_finite):
                        bad_entries.add(where)
                        self.err(where, vnode, f"{what[:-1]} of token {t!r} in context {state_name(x, prefix)!r} "
                                 f"is not a finite real number (it is {e})")
                out_row[t] = e
            out[(x, prefix)] = out_row
        return out

    def _context(self, k, knode, key):
        """``easy`` (nothing written yet), ``easy:A.B`` or ``A.B`` (every prompt) -> (prompt or None, prefix)."""
        prompts = self.ctx["prompts"]
        if ":" in k:
            x, _, rest = k.partition(":")
            if x not in prompts:
                self.err(f"{key}.{k}", knode, f"unknown prompt {x!r}", given=k, hint=self._known("prompts", prompts))
                return None
        elif k in prompts:
            return (k, ())
        elif k.split(".")[0] not in self.ctx["vocab"]:
            self.err(f"{key}.{k}", knode, f"unknown context {k!r}: not a prompt, nor a prefix of known tokens",
                     given=k, hint=f"A context is a prompt ({', '.join(prompts)}), prompt:A.B, or a prefix A.B for "
                     "every prompt")
            return None
        else:
            x, rest = None, k
        if not rest:
            self.err(f"{key}.{k}", knode, "an empty prefix after ':'", given=k,
                     hint=f"The context of prompt {x!r} with nothing written yet is written {x!r}")
            return None
        prefix = self._tokens(rest, k, knode, key, completion=False)
        return None if prefix is None else (x, prefix)

    def _tokens(self, text, k, knode, key, completion):
        """The tokens of a prefix or completion written ``A.B.eos``, checked; or None."""
        c = self.ctx
        eos, L = c["eos"], c["max_length"]
        parts = text.split(".")
        where = f"{key}.{k}"
        if not text:
            self.err(where, knode, "no tokens after ':'", given=k, hint=f"Write e.g. '{k}A.{eos}'")
            return None
        if any(not p for p in parts):
            self.err(where, knode, f"an empty token in {text!r}", given=k,
                     hint="Write the tokens separated by single dots, e.g. A.B.eos")
            return None
        for p in parts:
            if p not in c["vocab"]:
                self.err(where, knode, f"unknown token {p!r}", given=k, hint=self._known("tokens", c["vocab"]))
                return None
        tokens = tuple(parts)
        if eos in tokens[:-1] or (not completion and tokens[-1:] == (eos,)):
            self.err(where, knode, f"the end token {eos!r} ends a completion: nothing follows it"
                     + ("" if completion else ", and the policy does not act after it"), given=k)
            return None
        if completion:
            if len(tokens) > L:
                self.err(where, knode, f"the completion has {len(tokens)} tokens, more than max_length = {L}",
                         given=k)
                return None
            if tokens[-1] != eos and len(tokens) < L:
                self.err(where, knode, f"{text!r} is not a completion: it neither ends with the end token {eos!r} "
                         f"nor has max_length = {L} tokens", given=k, hint=f"Write e.g. {text + '.' + eos!r}")
                return None
        elif len(tokens) >= L:
            self.err(where, knode, f"the prefix has {len(tokens)} tokens; the policy acts only after fewer than "
                     f"max_length = {L}", given=k)
            return None
        return tokens

    def _reward(self, names, params):
        node = self.top.get("reward")
        if node is None:  # reported as required
            return None
        c = self.ctx
        prompts, body, eos, answers = c["prompts"], c["body"], c["eos"], c["answers"]
        self.lines["reward"] = node.line
        default = (ZERO, "reward", node)
        specific: dict = {}  # (prompt or None, completion) -> (expr, key, node)
        if node.kind == "scalar":
            value = self._parse(node, "reward", names, params, True, "the reward")
            if value is None:
                return None
            default = (value, "reward", node)
        elif node.kind == "map":
            for k, knode, vnode in self.mapping(node, "reward", "default / completion -> value") or []:
                value = self._parse(vnode, f"reward.{k}", names, params, True, "the reward")
                if k == "default":
                    if value is not None:
                        default = (value, "reward.default", vnode)
                    continue
                if ":" in k:
                    x, _, rest = k.partition(":")
                    if x not in prompts:
                        self.err(f"reward.{k}", knode, f"unknown prompt {x!r}", given=k,
                                 hint=self._known("prompts", prompts))
                        continue
                elif k in prompts:
                    self.err(f"reward.{k}", knode, f"{k!r} is a prompt: a reward entry names a completion",
                             given=k, hint=f"Write '{k}:A.{eos}' for the completion A.{eos} of {k}")
                    continue
                else:
                    x, rest = None, k
                o = self._tokens(rest, k, knode, "reward", completion=True)
                if o is not None and value is not None:
                    specific[(x, o)] = (value, f"reward.{k}", vnode)
        else:
            self.err("reward", node, "expected an expression or a map completion -> value")
            return None
        feats = self._features(True)
        out, bad = {}, set()
        for x in prompts:
            for o in _completions(body, eos, c["max_length"]):
                e, where, vnode = specific.get((x, o), specific.get((None, o), default))
                if e.free_symbols:
                    f = _completion_features(x, o, prompts, body, eos, answers)
                    e = e.xreplace({d: sympy.Integer(f[n]) for n, d in feats.items()})
                num = sympy.N(e, 30)
                if where not in bad and not (num.is_real and num.is_finite):
                    bad.add(where)
                    self.err(where, vnode, f"the reward of the completion {state_name(x, o)!r} is not a finite "
                             f"real number (it is {e})")
                out[(x, o)] = e
        return out

    def _warn_unused(self, seq):
        unused = {p for p in seq.parameters if p.name not in self.tabular_names}
        for row in (seq.logits or {}).values():
            for e in row.values():
                unused -= e.free_symbols
            if not unused:
                break
        for p in seq.parameters:
            if p in unused:
                self.warnings.append(Problem(f"parameter {p.name!r} is declared but used nowhere",
                                             key=f"parameters.{p.name}", line=self.lines.get(f"parameters.{p.name}"),
                                             hint="Remove it, or use it in the logits"))


_EXAMPLE = {
    "prompts": "prompts: {easy: 1/2, hard: 1/2}",
    "vocabulary": "vocabulary: [A, B]",
    "max_length": "max_length: 3",
    "logits": "logits: tabular",
    "reward": "reward: {A.eos: 1}",
    "beta": "Write e.g. 'beta: 1/10'",
    "clip": "Write e.g. 'clip: 1/5'",
}


def _prefixes(body, max_length) -> list[tuple]:
    """Every prefix (no end token, fewer than ``max_length`` tokens), shortest first (as SequenceCase.prefixes)."""
    out, frontier = [()], [()]
    for _ in range(max_length - 1):
        frontier = [p + (t,) for p in frontier for t in body]
        out.extend(frontier)
    return out


def _completions(body, eos, max_length) -> list[tuple]:
    out = []
    for p in _prefixes(body, max_length):
        for t in body + [eos]:
            o = p + (t,)
            if t == eos or len(o) == max_length:
                out.append(o)
    return out


def _replace(seq, **changes):
    from dataclasses import replace

    return replace(seq, **changes)


def sequence_point_problems(seq: SequenceCase) -> list[Problem]:
    """The checks that depend on the parameter point: every logit a finite real number there."""
    problems: list[Problem] = []
    if seq.logits is None or seq.policy_form == "tabular":
        return problems
    seen: dict = {}
    said = False
    for (x, prefix), row in seq.logits.items():
        for t, e in row.items():
            if not e.free_symbols:
                continue
            if e not in seen:
                num = sympy.N(e.xreplace(seq.point), 30)
                seen[e] = not (num.is_real and num.is_finite)
            if seen[e] and not said:
                said = True
                problems.append(Problem(
                    f"the logit of token {t!r} in context {state_name(x, prefix)!r} is not a finite real number at "
                    f"the parameter point (it is {e.xreplace(seq.point)})", key="logits", line=seq.lines.get("logits"),
                    given=str(e), hint="Move the point to where every logit is defined"))
    return problems
