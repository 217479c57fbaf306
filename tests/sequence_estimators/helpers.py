"""Build :class:`pgverify.sequence.model.SequenceCase` objects directly in Python for the tests."""
from __future__ import annotations

import sympy

from pgverify.sequence.model import SequenceCase

EOS = "<eos>"


def _prefixes(body, max_length):
    out, frontier = [()], [()]
    for _ in range(max_length - 1):
        frontier = [p + (t,) for p in frontier for t in body]
        out.extend(frontier)
    return out


def make_case(*, prompts=("x",), prompt_probs=None, vocabulary=("a", "b", EOS), max_length=2, reward=None,
              form="softmax", point=None, reference=None, beta=0, old_point=None, clip_epsilon=None,
              shared=False, name="test"):
    """A sequence case with tabular parameters.

    form ``"softmax"``: pi = softmax of logits th_<x>_<prefix>_<token> (one Symbol per prompt,
    prefix and token, or per token only with ``shared``); form ``"direct"``: pi(t) = th_t for the
    tokens but the last, pi(last) = 1 - their sum (rational at rational points).
    ``point``: a callable symbol -> value (default 0 for softmax, 1/(|V|+1) for direct), or a dict.
    ``reward(x, o)``: a number; ``reference(x, prefix)``: {token: probability} or None.
    """
    vocab = tuple(vocabulary)
    body = [t for t in vocab if t != EOS]
    prompts = tuple(prompts)
    rho = prompt_probs or {x: sympy.Rational(1, len(prompts)) for x in prompts}
    params, policy, logits, ref = [], {}, {}, ({} if reference is not None else None)
    symbols = {}

    def sym(x, prefix, tok):
        key = (tok,) if shared else (x, prefix, tok)
        if key not in symbols:
            nm = "th_" + "_".join([tok] if shared else [x, "".join(prefix) or "0", tok]).replace("<", "").replace(">", "")
            symbols[key] = sympy.Symbol(nm, real=True)
            params.append(symbols[key])
        return symbols[key]

    for x in prompts:
        for prefix in _prefixes(body, max_length):
            if form == "softmax":
                ls = {t: sym(x, prefix, t) for t in vocab}
                z = sum(sympy.exp(v) for v in ls.values())
                policy[(x, prefix)] = {t: sympy.exp(ls[t]) / z for t in vocab}
                logits[(x, prefix)] = ls
            else:
                th = {t: sym(x, prefix, t) for t in vocab[:-1]}
                d = dict(th)
                d[vocab[-1]] = 1 - sum(th.values())
                policy[(x, prefix)] = d
            if reference is not None:
                ref[(x, prefix)] = {t: sympy.nsimplify(v) for t, v in reference(x, prefix).items()}
    if point is None:
        point = (lambda s: 0) if form == "softmax" else (lambda s: sympy.Rational(1, len(vocab) + 1))
    if callable(point):
        pt = {p: sympy.sympify(point(p)) for p in params}
    else:
        pt = {p: sympy.sympify(point.get(p.name, 0)) for p in params}
    opt = None
    if old_point is not None:
        opt = {p: sympy.sympify(old_point(p) if callable(old_point) else old_point.get(p.name, pt[p])) for p in params}
    rew = {}
    probe = SequenceCase(name, tuple(params), pt, prompts, rho, vocab, EOS, max_length, policy, {})
    for x in prompts:
        for o in probe.completions(x):
            rew[(x, o)] = sympy.sympify(reward(x, o) if reward else 0)
    return SequenceCase(name, tuple(params), pt, prompts, rho, vocab, EOS, max_length, policy, rew,
                        logits=logits or None, reference=ref, beta=sympy.sympify(beta), old_point=opt,
                        clip_epsilon=None if clip_epsilon is None else sympy.sympify(clip_epsilon),
                        policy_form="logits" if form == "softmax" else "explicit")
