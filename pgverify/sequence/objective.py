r"""The sequence objective and its exact gradient, by enumeration of completions.

For a prompt x the policy writes a completion o with probability
p_theta(o|x) = \prod_t pi_theta(o_t | x, o_<t); its token scores are
s_t = \nabla \log pi_theta(o_t | x, o_<t) and its sequence score is
\sigma(o) = \nabla \log p_theta(o|x) = \sum_t s_t.  The objective is

.. math::

    J(\theta) = \sum_x \rho(x) \Big[ \sum_o p_\theta(o|x) R(x, o)
                - \beta\, \mathrm{KL}(p_\theta(\cdot|x) \,\|\, p_\mathrm{ref}(\cdot|x)) \Big],

and its gradient follows from the score-function identity (Williams 1992;
Sutton & Barto 2018, eq. 13.6) and \sum_o \nabla p_theta(o|x) = 0:

.. math::

    \nabla J = \sum_x \rho(x) \sum_o p_\theta(o|x)\, \sigma(o)
               \Big[ R(x, o) - \beta \log \frac{p_\theta(o|x)}{p_\mathrm{ref}(o|x)} \Big].

Values at the point come from :class:`pgverify.pointvalues.PointEvaluator`: exact rationals
(``fmpq``), or arb balls where the policy is irrational at the point; logarithms of ratios
other than 1 are balls (:mod:`pgverify.sequence.numbers`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import flint
import numpy as np
import sympy

from ..errors import UsageError
from ..pointvalues import BALL_PREC, Irrational, PointEvaluator
from . import numbers as nb

__all__ = ["SequenceTables", "Objective", "objective", "COMPLETION_LIMIT"]

#: the most completions (over all prompts) enumerated; beyond it the tables refuse to build
COMPLETION_LIMIT = 20_000


class _Token:
    """pi_theta(token | x, prefix) at the point: value, score, reference and stale values."""

    __slots__ = ("key", "expr", "pi", "s", "ref", "old", "_l", "_H")

    def __init__(self, key, expr, pi, s, ref, old):
        self.key, self.expr, self.pi, self.s, self.ref, self.old = key, expr, pi, s, ref, old
        self._l = None
        self._H = None

    @property
    def l(self):
        """The log-ratio log(pi / pi_ref) (Schulman 2020's k1 of this token)."""
        if self._l is None:
            self._l = nb.log(self.pi / self.ref)
        return self._l


class _Completion:
    __slots__ = ("tokens", "L", "R", "R_exact", "p", "sigma", "toks", "p_ref", "p_old", "_cache")

    def __init__(self, tokens, R, R_exact, toks):
        self.tokens, self.L, self.R, self.R_exact, self.toks = tokens, len(tokens), R, R_exact, toks
        self._cache = {}


class SequenceTables:
    """Every completion of every prompt with its probability, scores and log-ratios at the point.

    Parameters
    ----------
    seq : SequenceCase
    prec : int, optional
        Bits of the balls (default :data:`pgverify.pointvalues.BALL_PREC`); a higher precision
        is used to decide a sign that the default balls leave open.

    Notes
    -----
    ``kind`` is ``"exact"`` when the policy is rational at the point, else ``"ball"``.  The
    per-token Hessians of log pi (for the Jacobian of an expected update) are computed on first
    use by :meth:`hessian_form`: sums of outer products of scores for a softmax of linear logits,
    else by :meth:`hessian`, from sympy's derivative of pi evaluated at the point.
    """

    def __init__(self, seq, prec: int | None = None):
        self.seq = seq
        self.prec = BALL_PREC if prec is None else max(int(prec), BALL_PREC)
        self.params = tuple(seq.parameters)
        self.n = len(self.params)
        self._linear, self._fisher = {}, {}
        total = sum(len(seq.completions(x)) for x in seq.prompts)
        if total > COMPLETION_LIMIT:
            raise UsageError(f"sequence case {seq.name!r} has {total} completions; the estimators enumerate "
                             f"at most {COMPLETION_LIMIT} (lower max_length or the vocabulary)")
        with self.precision():
            try:
                self._build("exact")
            except Irrational:
                self._build("ball")

    def _build(self, kind):
        seq = self.seq
        self.kind = kind
        ev = PointEvaluator(self.params, seq.point, kind=kind, prec=self.prec)
        self._ev = ev
        # theta_old: exact where the policy is rational there, balls for the entries that are not
        self._ev_old = None
        if seq.old_point is not None:
            self._ev_old = PointEvaluator(self.params, seq.old_point, kind="exact")
            self._ev_old_ball = PointEvaluator(self.params, seq.old_point, kind="ball", prec=self.prec)
        with nb.working_precision():
            self.rho = {x: self._constant(seq.prompt_probs[x]) for x in seq.prompts}
            self.beta = self._constant(seq.beta)
            self.clip_epsilon = None if seq.clip_epsilon is None else self._constant(seq.clip_epsilon)
            self.tokens = {}
            self.comps = {x: [] for x in seq.prompts}
            for x in seq.prompts:
                for o in seq.completions(x):
                    toks = [self._token(x, o[:t], o[t]) for t in range(len(o))]
                    R = sympy.sympify(seq.reward[(x, o)])
                    R_exact = flint.fmpq(int(R.p), int(R.q)) if getattr(R, "is_Rational", False) else None
                    c = _Completion(o, R_exact if R_exact is not None else self._constant(R), R_exact, toks)
                    p, sigma = nb.ONE, nb.zeros(self.n)
                    for tk in toks:
                        p = p * tk.pi
                        sigma = sigma + tk.s
                    c.p, c.sigma = p, sigma
                    c.p_ref = None
                    if seq.reference is not None:
                        c.p_ref = nb.ONE
                        for tk in toks:
                            c.p_ref = c.p_ref * tk.ref
                    c.p_old = None
                    if self._ev_old is not None:
                        c.p_old = nb.ONE
                        for tk in toks:
                            c.p_old = c.p_old * tk.old
                    self.comps[x].append(c)

    def _constant(self, e):
        if getattr(e, "is_Rational", False):
            return flint.fmpq(int(e.p), int(e.q))
        with nb.working_precision():
            return PointEvaluator(self.params, self.seq.point, kind="ball", prec=self.prec).eval(sympy.sympify(e))[0]

    def _token(self, x, prefix, tok):
        key = (x, prefix, tok)
        hit = self.tokens.get(key)
        if hit is not None:
            return hit
        e = self.seq.policy[(x, prefix)][tok]
        v, g = self._ev.eval(e)
        if nb.certainly_zero(v):
            raise UsageError(f"pi({tok!r} | {x!r}, {prefix!r}) is 0 at the point; every completion must have "
                             "positive probability for the scores to exist (give a point inside the simplex)")
        s = nb.zeros(self.n)
        for j, d in g.items():
            s[j] = d / v
        ref = None
        if self.seq.reference is not None:
            ref = self._constant(self.seq.reference[(x, prefix)][tok])
        old = None
        if self._ev_old is not None:
            try:
                old = self._ev_old.eval(e)[0]
            except Irrational:
                old = self._ev_old_ball.eval(e)[0]
        t = _Token(key, e, v, s, ref, old)
        self.tokens[key] = t
        return t

    def hessian(self, tk: _Token) -> np.ndarray:
        r"""The Hessian of log pi(token | x, prefix) at the point:
        \nabla^2 \log \pi = \nabla^2 \pi / \pi - s s^T."""
        if tk._H is None:
            n = self.n
            H = nb.zeros((n, n))
            with self.precision():
                for sym in tk.expr.free_symbols:
                    j = self.params.index(sym)
                    d = sympy.diff(tk.expr, sym)
                    _, row = self._ev.eval(d)
                    for k, v in row.items():
                        H[j, k] = v / tk.pi
                H = H - np.outer(tk.s, tk.s)
            tk._H = H
        return tk._H

    def precision(self):
        """A context with flint's precision at least this table's :attr:`prec`."""
        return flint.ctx.workprec(self.prec) if flint.ctx.prec < self.prec else contextlib.nullcontext()

    def softmax_linear(self, x, prefix) -> bool:
        """Whether pi(.|x, prefix) is the softmax of logits linear in theta (checked on the
        logits as written: each a polynomial of degree at most 1 in the parameters)."""
        key = (x, prefix)
        hit = self._linear.get(key)
        if hit is None:
            hit = False
            seq = self.seq
            if seq.logits is not None and seq.policy_form in ("tabular", "logits") and key in seq.logits:
                params = set(self.params)
                hit = True
                for z in seq.logits[key].values():
                    z = sympy.sympify(z)
                    syms = [p for p in z.free_symbols if p in params]
                    if z.is_Symbol or not syms:
                        continue
                    if not (z.is_polynomial(*syms) and sympy.Poly(z, *syms).total_degree() <= 1):
                        hit = False
                        break
            self._linear[key] = hit
        return hit

    def hessian_form(self, tk: _Token):
        r"""The Hessian of log pi(token | x, prefix) as ``("outer", [(c, s), ...])``, meaning
        H = \sum c s s^T, or ``("dense", H)`` (:meth:`hessian`).

        For a softmax of logits z_b linear in theta, \nabla \log \pi_a = g_a - \sum_b \pi_b g_b
        (g_b = \nabla z_b constant), so \nabla^2 \log \pi_a = -\sum_b \pi_b s_b g_b^T
        = -\sum_b \pi_b s_b s_b^T (using \sum_b \pi_b s_b = \nabla \sum_b \pi_b = 0): minus the
        Fisher information of the context's categorical distribution, the same for every token
        (the Hessian of the log-partition function of an exponential family is the covariance of
        its sufficient statistics: Wainwright & Jordan 2008, "Graphical models, exponential
        families, and variational inference", Proposition 3.1).  Other policies: sympy's
        derivatives (:meth:`hessian`).
        """
        x, prefix, _ = tk.key
        if self.softmax_linear(x, prefix):
            hit = self._fisher.get((x, prefix))
            if hit is None:
                with self.precision():
                    sib = [self._token(x, prefix, b) for b in self.seq.vocabulary]
                    hit = ("outer", [(-t.pi, t.s) for t in sib])
                self._fisher[(x, prefix)] = hit
            return hit
        return ("dense", self.hessian(tk))

    def outer_sum(self) -> nb.OuterSum:
        """An empty :class:`~pgverify.sequence.numbers.OuterSum` whose Hessians are this table's."""
        return nb.OuterSum(self.n, self.hessian_form)

    def log_ratio(self, c: _Completion):
        """log(p_theta(o|x) / p_ref(o|x)) = sum_t l_t."""
        lr = c._cache.get("lr")
        if lr is None:
            lr = nb.ZERO
            for tk in c.toks:
                lr = lr + tk.l
            c._cache["lr"] = lr
        return lr


@dataclass
class Objective:
    r"""J(theta) and its gradient at the point.

    ``kind`` is ``"exact"`` (every number an ``fmpq``) or ``"certified"`` (arb balls; ``bound``
    is the largest distance of a float64 midpoint from the exact value).
    """

    value: object
    gradient: np.ndarray
    kind: str
    bound: float
    expected_reward: object
    grad_reward: np.ndarray
    kl: object | None  # sum_x rho(x) KL(p_theta(.|x) || p_ref(.|x)), None without a reference
    grad_kl: np.ndarray | None
    per_prompt: dict = field(default_factory=dict)  # x -> (J_x, grad J_x)

    def to_dict(self) -> dict:
        def vec(v):
            return None if v is None else [nb.as_text(a) for a in v]

        def fl(v):
            return None if v is None else [nb.as_float(a) for a in v]

        return {"value": nb.as_text(self.value), "value_float": nb.as_float(self.value),
                "gradient": vec(self.gradient), "gradient_float": fl(self.gradient),
                "expected_reward": nb.as_text(self.expected_reward),
                "kl": None if self.kl is None else nb.as_text(self.kl),
                "grad_kl": vec(self.grad_kl), "proof": self.kind, "bound": self.bound}


def has_kl(seq) -> bool:
    """Whether the objective has a KL term (beta != 0 and a reference policy)."""
    return seq.reference is not None and seq.beta != 0


def objective(seq, tables: SequenceTables | None = None) -> Objective:
    r"""J(theta) and \nabla J(theta) at ``seq.point``, by enumeration of completions.

    Parameters
    ----------
    seq : SequenceCase
    tables : SequenceTables, optional
        Reused when given.

    Returns
    -------
    Objective

    Notes
    -----
    \nabla \mathrm{KL}(p_\theta \| p_\mathrm{ref}) = \sum_o p_\theta(o) \sigma(o)
    \log(p_\theta(o)/p_\mathrm{ref}(o)) (the score-function identity; the term
    \sum_o \nabla p_\theta(o) vanishes).  See Schulman (2020), "Approximating KL divergence",
    and Tang & Munos (2025), "On a few pitfalls in KL divergence gradient estimation for RL".
    """
    tb = tables if tables is not None else SequenceTables(seq)
    if seq.beta != 0 and seq.reference is None:
        raise UsageError(f"sequence case {seq.name!r} has beta = {seq.beta} but no reference policy; "
                         "give a reference or set beta to 0")
    n = tb.n
    kl_on = has_kl(seq)
    with nb.working_precision():
        J, ER, KL = nb.ZERO, nb.ZERO, nb.ZERO
        gR, gK = nb.zeros(n), nb.zeros(n)
        per = {}
        for x in seq.prompts:
            er, gr = nb.ZERO, nb.zeros(n)
            kl, gk = nb.ZERO, nb.zeros(n)
            for c in tb.comps[x]:
                er = er + c.p * c.R
                gr = gr + (c.p * c.R) * c.sigma
                if kl_on:
                    lr = tb.log_ratio(c)
                    kl = kl + c.p * lr
                    gk = gk + (c.p * lr) * c.sigma
            jx = er - tb.beta * kl if kl_on else er
            gx = gr - tb.beta * gk if kl_on else gr
            per[x] = (jx, gx)
            w = tb.rho[x]
            ER, gR = ER + w * er, gR + w * gr
            KL, gK = KL + w * kl, gK + w * gk
            J = J + w * jx
        grad = gR - tb.beta * gK if kl_on else gR
    exact = nb.is_exact(grad) and nb.is_exact(J)
    return Objective(value=J, gradient=grad, kind="exact" if exact else "certified",
                     bound=0.0 if exact else nb.bound([J, *grad]), expected_reward=ER, grad_reward=gR,
                     kl=KL if kl_on else None, grad_kl=gK if kl_on else None, per_prompt=per)
