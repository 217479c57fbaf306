r"""The policy-gradient estimators of LLM training, with their exact mean, bias and variance.

One *batch* is one prompt x ~ rho and a group o_1, ..., o_G of completions drawn i.i.d. from
p_theta(.|x) (from p_theta_old(.|x) for the clipped surrogate).  An estimator is named
``advantage[+aggregation][+kl_term][+clip]`` and its update is

.. math::

    g = c \sum_{i=1}^G \Big[ A_i\, u(o_i) - \beta\, v(o_i) \Big],

- advantages A_i: ``reinforce`` (R_i; Williams 1992), ``reinforce_baseline`` (R_i - V(x), V
  exact), ``rloo`` (R_i minus the mean of the others; Kool et al. 2019), ``grpo``
  ((R_i - mean) / (std + eps), population std; Shao et al. 2024), ``grpo_sample_std`` (std with
  G - 1), ``dr_grpo`` (R_i - mean; Liu et al. 2025);
- aggregations (c and u): ``sum`` (c = 1/G, u = sigma), ``seq_mean`` (c = 1/G, u = sigma/|o|;
  GRPO), ``token_mean`` (c = 1/sum_j |o_j|, u = sigma; DAPO, Yu et al. 2025), ``max_len``
  (c = 1/(G max_length), u = sigma; Dr. GRPO);
- KL terms (Schulman 2020, with the per-token log-ratio l_t = log(pi/pi_ref)): k1 = l,
  k2 = l^2/2, k3 = exp(-l) - 1 + l.  ``kN_reward``: R_i replaced by R_i - beta sum_t k_t (held
  constant) before the advantage; ``kN_loss``: v = sum_t grad k_t, the penalty differentiated
  per token as implementations do (grad k1 = s_t, grad k2 = l_t s_t, grad k3 = (1 - e^{-l_t}) s_t;
  Tang & Munos 2025); ``kl_score``: v = sigma(o) log(p(o)/p_ref(o)), the sequence-level
  score-function gradient of the KL; v is divided by |o| under ``seq_mean`` like u;
- ``clip``: samples from theta_old, u = the gradient at theta of the PPO clipped surrogate
  min(rho_t A, clip(rho_t, 1-e, 1+e) A) per token, rho_t = pi_theta/pi_theta_old (Schulman et
  al. 2017): sum_t rho_t s_t over the tokens where the unclipped branch is taken.

The target of every estimator is \nabla J, J = E[R] - beta KL (:mod:`.objective`).

Exact moments.  The update is a sum over the samples of \sum_k a_k(T_i; N) u_k(o_i) where u_k
depends on the completion alone and the coefficients a_k on small *types* (the reward, and the
length under ``token_mean``) of the group N.  Per type t, q_t = sum_{o in t} p(o) and
S_{k,t} = sum_{o in t} p(o) u_k(o); the mean and second moment sum over the multisets of the G
sampled types with multinomial weights (:func:`_multiset_moments`).  Advantages linear in the
rewards with a constant c have closed forms (:func:`_closed_form_moments`), which the tests
verify against the multisets and a brute force over ordered groups.

Gradient verdicts.  Exact equalities first (the bias exactly 0, the mean a known constant times
grad J); then identities that hold for every theta (:func:`_score_identity`: for linear
advantages with u = sigma the mean is a grad E[R] - m beta grad KL, since E_p[sigma] = 0); then
the Jacobian of the expected update (Nota & Thomas 2020), kept as an unexpanded sum of outer
products (:class:`~pgverify.sequence.numbers.OuterSum`; a softmax of linear logits has the
Hessian of log pi = minus the context's Fisher information, a sum of outer products of scores).
An asymmetry is proved by one entry: a float64 image of J - J^T names the candidates, computed
exactly or as certified balls.  Symmetry is proved from the terms' structure (each term
symmetric) or from the exact (``fmpq_mat``) or certified (``arb_mat``) J - J^T; entries the balls
leave open are computed again at up to :data:`MAX_BALL_PREC` bits.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import flint
import numpy as np

from ..errors import UsageError
from . import numbers as nb
from .objective import Objective, SequenceTables, has_kl, objective

__all__ = ["ADVANTAGES", "AGGREGATIONS", "KL_TERMS", "Spec", "parse_estimator", "default_estimators",
           "MULTISET_LIMIT", "JACOBIAN_PARAMETER_LIMIT", "DEFAULT_EPS", "EstimatorResult",
           "EstimatorsResult", "analyse", "moments"]

ADVANTAGES = ("reinforce", "reinforce_baseline", "rloo", "grpo", "grpo_sample_std", "dr_grpo")
AGGREGATIONS = ("sum", "seq_mean", "token_mean", "max_len")
KL_TERMS = ("k1_reward", "k2_reward", "k3_reward", "k1_loss", "k2_loss", "k3_loss", "kl_score")
#: the most multisets of group types enumerated per estimator (over all prompts); beyond it the
#: estimator is not run.  3,498 multisets (G = 8 over 8 types on two prompts) take about 0.05 s for
#: the mean and 0.25 s with the variance, so the limit bounds one estimator to about 10 s.
MULTISET_LIMIT = 100_000
#: the most parameters for which the Jacobian of the expected update is computed
JACOBIAN_PARAMETER_LIMIT = 150
#: GRPO's eps in (R - mean) / (std + eps), exact: 10^-6 (TRL uses 1e-4, the GRPO paper none)
DEFAULT_EPS = flint.fmpq(1, 10**6)


class NotRun(Exception):
    """An estimator that cannot be computed within the limits (the message says why)."""


@dataclass(frozen=True)
class Spec:
    """A parsed estimator name."""

    name: str
    advantage: str
    aggregation: str = "sum"
    kl: str | None = None
    clip: bool = False

    @property
    def kl_form(self):
        """``"reward"``, ``"loss"``, ``"score"`` or None."""
        if self.kl is None:
            return None
        return self.kl.split("_")[1] if self.kl != "kl_score" else "score"

    @property
    def linear(self) -> bool:
        """Whether the advantage is linear in the rewards with a constant c (closed forms apply)."""
        return (self.advantage in ("reinforce", "reinforce_baseline", "rloo", "dr_grpo")
                and self.aggregation != "token_mean" and not self.clip)


def parse_estimator(name: str) -> Spec:
    """Parse ``advantage[+aggregation][+kl_term][+clip]``.

    >>> parse_estimator("grpo+seq_mean+k3_loss")
    Spec(name='grpo+seq_mean+k3_loss', advantage='grpo', aggregation='seq_mean', kl='k3_loss', clip=False)
    """
    parts = [p.strip() for p in str(name).split("+")]
    hint = (f"an estimator is advantage[+aggregation][+kl_term][+clip]; advantages: {', '.join(ADVANTAGES)}; "
            f"aggregations: {', '.join(AGGREGATIONS)}; KL terms: {', '.join(KL_TERMS)}")
    if not parts or parts[0] not in ADVANTAGES:
        raise UsageError(f"unknown estimator {name!r}: {parts[0]!r} is not an advantage ({hint})")
    agg, kl, clip = None, None, False
    for p in parts[1:]:
        if p in AGGREGATIONS and agg is None:
            agg = p
        elif p in KL_TERMS and kl is None:
            kl = p
        elif p == "clip" and not clip:
            clip = True
        else:
            raise UsageError(f"unknown or repeated part {p!r} in estimator {name!r} ({hint})")
    if clip and kl is not None and not kl.endswith("_loss"):
        raise UsageError(f"estimator {name!r}: with clip only the KL loss terms (k1_loss, k2_loss, k3_loss) "
                         "are supported")
    return Spec(name, parts[0], agg or "sum", kl, clip)


def default_estimators(seq) -> list[str]:
    """The estimators of the report when none are named: every advantage with its usual
    aggregation; the KL terms when the case has beta and a reference; the clipped surrogate when
    it has a stale point."""
    names = ["reinforce", "reinforce_baseline", "rloo", "dr_grpo", "dr_grpo+max_len", "grpo", "grpo+seq_mean",
             "grpo+token_mean", "grpo_sample_std+seq_mean"]
    if has_kl(seq):
        names += ["rloo+k1_reward", "rloo+k3_reward", "rloo+k1_loss", "rloo+k2_loss", "rloo+k3_loss",
                  "rloo+kl_score", "grpo+seq_mean+k3_loss"]
    if seq.old_point is not None and seq.clip_epsilon is not None:
        names += ["rloo+clip", "grpo+seq_mean+clip"]
        if has_kl(seq):
            names.append("grpo+seq_mean+k3_loss+clip")
    return names


# -- per-completion quantities ---------------------------------------------------------------
def _kl_value(kind: str, tk):
    """k_t of one token (Schulman 2020): k1 = l, k2 = l^2/2, k3 = pi_ref/pi - 1 + l."""
    if kind == "k1":
        return tk.l
    if kind == "k2":
        return tk.l * tk.l / 2
    return tk.ref / tk.pi - 1 + tk.l


def _kl_grad(kind: str, tk):
    """grad k_t: k1 -> s_t, k2 -> l_t s_t, k3 -> (1 - pi_ref/pi) s_t."""
    if kind == "k1":
        return tk.s
    if kind == "k2":
        return tk.l * tk.s
    return (1 - tk.ref / tk.pi) * tk.s


def _add_kl_grad_jacobian(J, kind: str, tk, f):
    """Add f times the Jacobian of grad k_t: k1 -> H, k2 -> s s^T + l H, k3 -> w s s^T + (1 - w) H
    (w = pi_ref/pi, H the Hessian of log pi)."""
    if kind == "k1":
        J.add_hessian(f, tk)
    elif kind == "k2":
        J.add_outer(f, tk.s, tk.s)
        J.add_hessian(f * tk.l, tk)
    else:
        w = tk.ref / tk.pi
        J.add_outer(f * w, tk.s, tk.s)
        J.add_hessian(f * (1 - w), tk)


class _Prompt:
    """The completions of one prompt as the estimator sees them: sampling weights, rewards, the
    vectors u_k and v, their type keys."""

    def __init__(self, tb: SequenceTables, x, spec: Spec, *, jacobian: bool = False):
        self.x = x
        comps = tb.comps[x]
        self.comps = comps
        self.stale = spec.clip
        self.w = [c.p_old if spec.clip else c.p for c in comps]
        self.L = [c.L for c in comps]
        kl_kind = spec.kl.split("_")[0] if spec.kl and spec.kl != "kl_score" else None
        form = spec.kl_form
        beta = tb.beta
        n = tb.n
        # rewards for the advantage (penalised under kN_reward: then each completion its own type)
        if form == "reward":
            self.r = [c.R - beta * sum((_kl_value(kl_kind, tk) for tk in c.toks), nb.ZERO) for c in comps]
            # exact penalised rewards (log-ratios 0) group by value; balls each make their own type
            self.r_key = [r if nb.is_exact(r) else ("o", i) for i, r in enumerate(self.r)]
            self.r_exact = [r if nb.is_exact(r) else None for r in self.r]
        else:
            self.r = [c.R for c in comps]
            self.r_exact = [c.R_exact for c in comps]
            self.r_key = [c.R_exact if c.R_exact is not None else ("o", i) for i, c in enumerate(comps)]
        per_len = spec.aggregation == "seq_mean"
        U = []  # U[k][i]: vector u_k of completion i
        DU = [] if jacobian else None
        if spec.clip:
            eps = tb.clip_epsilon
            up, um, dup, dum = [], [], [], []
            for c in comps:
                a, b = nb.zeros(n), nb.zeros(n)
                da, db = (tb.outer_sum(), tb.outer_sum()) if jacobian else (None, None)
                f = flint.fmpq(1, c.L) if per_len else nb.ONE
                for tk in c.toks:
                    rho = tk.pi / tk.old
                    hi, lo = _compare(rho, 1 + eps), _compare(rho, 1 - eps)
                    if hi is None or lo is None:
                        raise NotRun(f"a ratio pi/pi_old of completion {c.tokens} is too close to the clip "
                                     "boundary to decide with balls")
                    term = rho * tk.s
                    if jacobian and (hi == 0 or lo == 0):
                        raise NotRun(f"a ratio pi/pi_old of completion {c.tokens} is exactly at the clip "
                                     "boundary: the expected update is not differentiable there")
                    # d(rho s)/d theta = rho (s s^T + H): a symmetric term
                    if hi <= 0:  # rho <= 1 + eps: unclipped for A > 0
                        a = a + term
                        if jacobian:
                            da.add_outer(f * rho, tk.s, tk.s)
                            da.add_hessian(f * rho, tk)
                    if lo >= 0:  # rho >= 1 - eps: unclipped for A < 0
                        b = b + term
                        if jacobian:
                            db.add_outer(f * rho, tk.s, tk.s)
                            db.add_hessian(f * rho, tk)
                if per_len:
                    a, b = a / c.L, b / c.L
                up.append(a)
                um.append(b)
                dup.append(da)
                dum.append(db)
            U += [up, um]
            if jacobian:
                DU += [dup, dum]
        else:
            U.append([c.sigma / c.L if per_len else c.sigma for c in comps])
            if jacobian:
                dus = []
                for c in comps:
                    J = tb.outer_sum()
                    f = flint.fmpq(1, c.L) if per_len else nb.ONE
                    for tk in c.toks:
                        J.add_hessian(f, tk)
                    dus.append(J)
                DU.append(dus)
        self.has_v = form in ("loss", "score")
        if self.has_v:
            vs, dvs = [], []
            for c in comps:
                f = flint.fmpq(1, c.L) if per_len else nb.ONE
                dv = tb.outer_sum() if jacobian else None
                if form == "loss":
                    v = sum((_kl_grad(kl_kind, tk) for tk in c.toks), nb.zeros(n))
                    if jacobian:
                        for tk in c.toks:
                            _add_kl_grad_jacobian(dv, kl_kind, tk, f)
                else:
                    lr = tb.log_ratio(c)
                    v = lr * c.sigma
                    if jacobian:  # d(lr sigma) = lr sum_t H_t + sigma sigma^T
                        for tk in c.toks:
                            dv.add_hessian(f * lr, tk)
                        dv.add_outer(f, c.sigma, c.sigma)
                if per_len:
                    v = v / c.L
                vs.append(v)
                dvs.append(dv)
            U.append(vs)
            if jacobian:
                DU.append(dvs)
        self.U, self.DU = U, DU
        # d r / d theta (penalised rewards) and d w / d theta (zero for stale samples)
        if jacobian:
            self.dr = [-beta * sum((_kl_grad(kl_kind, tk) for tk in c.toks), nb.zeros(n)) if form == "reward"
                       else None for c in comps]
            self.dw = [None if spec.clip else c.p * c.sigma for c in comps]
        self.V = sum((w * r for w, r in zip(self.w, self.r)), nb.ZERO)  # the exact baseline E[r]


def _compare(a, b):
    """-1, 0, 1 for a < b, a == b, a > b; None when balls cannot decide."""
    d = a - b
    if isinstance(d, flint.fmpq):
        return (d > 0) - (d < 0)
    if d > 0:
        return 1
    if d < 0:
        return -1
    if d.is_zero():
        return 0
    return None


# -- coefficients of the group ---------------------------------------------------------------
def _aggregation_c(spec: Spec, G: int, lengths, max_length: int):
    if spec.aggregation == "token_mean":
        return flint.fmpq(1, sum(lengths))
    if spec.aggregation == "max_len":
        return flint.fmpq(1, G * max_length)
    return flint.fmpq(1, G)


def _advantages(spec: Spec, rewards, counts, G: int, eps, V):
    """The advantage of each type present in the group (types with their counts)."""
    tot = sum((n * r for r, n in zip(rewards, counts)), nb.ZERO)
    mean = tot / G
    adv = spec.advantage
    if adv == "reinforce":
        return [r for r in rewards]
    if adv == "reinforce_baseline":
        return [r - V for r in rewards]
    if adv == "rloo":
        return [r - (tot - r) / (G - 1) for r in rewards]
    if adv == "dr_grpo":
        return [r - mean for r in rewards]
    ss = sum((n * (r - mean) * (r - mean) for r, n in zip(rewards, counts)), nb.ZERO)
    var = ss / G if adv == "grpo" else ss / (G - 1)
    std = nb.sqrt(var)
    return [(r - mean) / (std + eps) for r in rewards]


def _check_group(spec: Spec, G: int):
    if G < 1:
        raise UsageError(f"the group size must be at least 1 (given {G})")
    if spec.advantage in ("rloo", "grpo_sample_std") and G < 2:
        raise UsageError(f"estimator {spec.name!r} needs a group of at least 2 completions (given {G})")


# -- closed forms ------------------------------------------------------------------------------
def _linear_constants(spec: Spec, G: int):
    """(alpha, gamma, baseline?) of g = c sum_i [alpha r_i u_i - alpha V u_i - beta v_i]
    - c gamma sum_{i != j} r_j u_i."""
    if spec.advantage == "reinforce":
        return nb.ONE, nb.ZERO, False
    if spec.advantage == "reinforce_baseline":
        return nb.ONE, nb.ZERO, True
    if spec.advantage == "rloo":
        return nb.ONE, flint.fmpq(1, G - 1), False
    return flint.fmpq(G - 1, G), flint.fmpq(1, G), False  # dr_grpo: r_i - mean


def _closed_form_moments(pr: _Prompt, spec: Spec, G: int, beta, max_length: int, second: bool):
    r"""Mean and per-coordinate second moment of one batch of prompt ``pr`` (linear advantages).

    With F = sum_i f(o_i), f = alpha (r - V) u - beta v, and W = sum_{i != j} r_j u(o_i),
    g = c (F - gamma W); the moments of F and W over i.i.d. samples follow by counting the index
    coincidences (products elementwise).
    """
    c = _aggregation_c(spec, G, None, max_length)
    alpha, gamma, base = _linear_constants(spec, G)
    V = pr.V if base else nb.ZERO
    w, r, u = pr.w, pr.r, pr.U[0]
    v = pr.U[1] if pr.has_v else None
    n = len(u[0])
    f = []
    for i in range(len(w)):
        fi = (alpha * (r[i] - V)) * u[i]
        if v is not None:
            fi = fi - beta * v[i]
        f.append(fi)

    def E(xs):
        out = nb.zeros(n) if isinstance(xs[0], np.ndarray) else nb.ZERO
        for wi, xi in zip(w, xs):
            out = out + wi * xi
        return out

    Ef, Er, Eu = E(f), E(r), E(u)
    mean = c * (G * Ef - gamma * (G * (G - 1)) * Er * Eu)
    kl_part = (c * G * -beta) * E(v) if v is not None else None
    if not second:
        return mean, None, kl_part
    Ef2 = E([a * a for a in f])
    EF2 = G * Ef2 + (G * (G - 1)) * Ef * Ef
    if gamma == 0:
        return mean, c * c * EF2, kl_part
    Efu = E([a * b for a, b in zip(f, u)])
    Efr = E([a * b for a, b in zip(f, r)])
    Eu2 = E([a * a for a in u])
    Er2 = E([a * a for a in r])
    Eru = E([a * b for a, b in zip(r, u)])
    m = G * (G - 1)
    EFW = m * (Efu * Er + Efr * Eu + (G - 2) * Ef * Er * Eu)
    EW2 = m * (Er2 * Eu2 + Eru * Eru + (G - 2) * (Eu2 * Er * Er + Er2 * Eu * Eu + 2 * Eru * Eu * Er)
               + (G - 2) * (G - 3) * Er * Er * Eu * Eu)
    return mean, c * c * (EF2 - 2 * gamma * EFW + gamma * gamma * EW2), kl_part


def _closed_form_jacobian(pr: _Prompt, spec: Spec, G: int, beta, max_length: int, tb):
    """d mean / d theta of the closed form as an :class:`~pgverify.sequence.numbers.OuterSum`, by
    the product rule on expectations: d E[x] = sum_o (x dp(o)^T + p(o) dx(o))."""
    c = _aggregation_c(spec, G, None, max_length)
    alpha, gamma, base = _linear_constants(spec, G)
    w, dw, r, dr, u, du = pr.w, pr.dw, pr.r, pr.dr, pr.U[0], pr.DU[0]
    n = len(u[0])

    def Es(xs, dxs):  # scalar jet: (value, gradient)
        val, grad = nb.ZERO, nb.zeros(n)
        for wi, dwi, x, dx in zip(w, dw, xs, dxs):
            val = val + wi * x
            grad = grad + x * dwi
            if dx is not None:
                grad = grad + wi * dx
        return val, grad

    def Ev(xs, dxs, J, f):  # vector jet: value, and f times its Jacobian added to J
        val = nb.zeros(n)
        for wi, dwi, x, dx in zip(w, dw, xs, dxs):
            val = val + wi * x
            J.add_outer(f, x, dwi)
            J.add(dx, f * wi)
        return val

    jac = tb.outer_sum()
    Er, dEr = Es(r, dr)
    Eu = sum((wi * x for wi, x in zip(w, u)), nb.zeros(n))
    k = c * G * alpha
    # d E[r u]: r u has Jacobian r du + u dr^T
    for wi, dwi, ri, ui, dui, dri in zip(w, dw, r, u, du, dr):
        jac.add_outer(k * ri, ui, dwi)
        jac.add(dui, k * wi * ri)
        if dri is not None:
            jac.add_outer(k * wi, ui, dri)
    coef = (k if base else nb.ZERO) + (c * gamma * G * (G - 1) if gamma != 0 else nb.ZERO)
    if coef != 0:  # - coef (Eu dEr^T + Er dEu)
        jac.add_outer(-coef, Eu, dEr)
        Ev(u, du, jac, -coef * Er)
    if pr.has_v:
        Ev(pr.U[1], pr.DU[1], jac, -(c * G * beta))
    return jac


# -- multisets of types --------------------------------------------------------------------------
def _types(pr: _Prompt, spec: Spec):
    """Group the completions by type: (reward key, length under token_mean)."""
    keys = {}
    for i in range(len(pr.w)):
        if nb.certainly_zero(pr.w[i]):
            continue
        k = (pr.r_key[i], pr.L[i] if spec.aggregation == "token_mean" else None)
        keys.setdefault(k, []).append(i)
    return list(keys.values())


def multiset_count(T: int, G: int) -> int:
    """The number of multisets of size G over T types: C(T + G - 1, G)."""
    return math.comb(T + G - 1, G)


def _multiset_moments(pr: _Prompt, spec: Spec, G: int, eps, beta, max_length: int, second: bool,
                      jacobian: bool = False, tables: SequenceTables | None = None):
    r"""Mean, second moment and (optionally) Jacobian of one batch, by the multisets of types.

    With N the type counts of the group and P(N) its multinomial probability,
    E[g] = sum_N P(N) sum_t n_t sum_k a_k(t, N) S_{k,t}/q_t, and, the completions being
    independent given their types,
    E[g^2] = sum_N P(N) [ sum_t n_t (sum_{kl} a_k a_l Q_{kl,t}/q_t - (sum_k a_k m_{k,t})^2)
                          + (sum_t n_t sum_k a_k m_{k,t})^2 ],  m_{k,t} = S_{k,t}/q_t.
    """
    groups = _types(pr, spec)
    T = len(groups)
    K = len(pr.U)
    n = len(pr.U[0][0])
    q = [sum((pr.w[i] for i in g), nb.ZERO) for g in groups]
    S = [[sum((pr.w[i] * pr.U[k][i] for i in g), nb.zeros(n)) for g in groups] for k in range(K)]
    r_t = [pr.r[g[0]] for g in groups]
    r_ex = [pr.r_exact[g[0]] for g in groups]
    L_t = [pr.L[g[0]] for g in groups]
    qpow = [[nb.ONE] + [None] * G for _ in range(T)]
    for t in range(T):
        for m in range(1, G + 1):
            qpow[t][m] = qpow[t][m - 1] * q[t]
    fact = [math.factorial(i) for i in range(G + 1)]
    B1 = [[nb.ZERO] * T for _ in range(K)]
    B2 = {} if second else None
    B3 = {} if second else None
    BJ = {} if jacobian else None  # (k, t, s) -> sum P n_t a_k (N_s - delta_st)
    v_index = K - 1 if pr.has_v else None
    for combo in itertools.combinations_with_replacement(range(T), G):
        counts = {}
        for t in combo:
            counts[t] = counts.get(t, 0) + 1
        supp = list(counts)
        P = flint.fmpq(fact[G])
        for t in supp:
            P = P * qpow[t][counts[t]] / fact[counts[t]]
        cnt = [counts[t] for t in supp]
        c = _aggregation_c(spec, G, [L_t[t] * counts[t] for t in supp], max_length)
        A = _advantages(spec, [r_t[t] for t in supp], cnt, G, eps, pr.V)
        z = []  # (k, t, n_t a_k)
        for j, t in enumerate(supp):
            a = []
            if spec.clip:
                sgn = _sign_of_advantage(spec, [r_ex[s] for s in supp], [r_t[s] for s in supp], cnt, j, G, pr.V)
                a.append(c * A[j] if sgn > 0 else nb.ZERO)
                a.append(c * A[j] if sgn < 0 else nb.ZERO)
            else:
                a.append(c * A[j])
            if v_index is not None:
                a.append(-beta * c)
            nt = counts[t]
            for k in range(K):
                B1[k][t] = B1[k][t] + P * nt * a[k]
                if jacobian:
                    for s in supp:
                        key = (k, t, s)
                        BJ[key] = BJ.get(key, nb.ZERO) + P * nt * a[k] * (counts[s] - (1 if s == t else 0))
                if second:
                    for l in range(k, K):
                        key = (k, l, t)
                        B2[key] = B2.get(key, nb.ZERO) + P * nt * a[k] * a[l]
                z.append((k, t, nt * a[k]))
        if second:
            for i1, (k, t, x1) in enumerate(z):
                for (l, s, x2) in z[i1:]:
                    key = (k, t, l, s)
                    B3[key] = B3.get(key, nb.ZERO) + P * x1 * x2
    m = [[S[k][t] / q[t] for t in range(T)] for k in range(K)]
    mean = nb.zeros(n)
    for k in range(K):
        for t in range(T):
            mean = mean + B1[k][t] * m[k][t]
    kl_part = None
    if v_index is not None:
        kl_part = nb.zeros(n)
        for t in range(T):
            kl_part = kl_part + B1[v_index][t] * m[v_index][t]
    sec = None
    if second:
        sec = nb.zeros(n)
        for (k, l, t), b in B2.items():
            Q = sum((pr.w[i] * pr.U[k][i] * pr.U[l][i] for i in groups[t]), nb.zeros(n))
            term = b * (Q / q[t] - m[k][t] * m[l][t])
            sec = sec + (term if k == l else 2 * term)
        for (k, t, l, s), b in B3.items():
            term = b * (m[k][t] * m[l][s])
            sec = sec + (term if (k, t) == (l, s) else 2 * term)
    jac = None
    if jacobian:
        jac = tables.outer_sum()
        dq = None if pr.stale else [sum((pr.dw[i] for i in g), nb.zeros(n)) for g in groups]
        for k in range(K):
            for t in range(T):
                Wkt = B1[k][t] / q[t]
                for i in groups[t]:
                    jac.add(pr.DU[k][i], Wkt * pr.w[i])
                    if not pr.stale:
                        jac.add_outer(Wkt, pr.U[k][i], pr.dw[i])
                if not pr.stale:
                    dW = nb.zeros(n)
                    for s in range(T):
                        b = BJ.get((k, t, s))
                        if b is not None:
                            dW = dW + (b / (q[t] * q[s])) * dq[s]
                    jac.add_outer(nb.ONE, S[k][t], dW)
    return mean, sec, kl_part, jac, T


def _sign_of_advantage(spec, r_ex, r_t, counts, j, G, V) -> int:
    """The sign of the advantage of type j (decided exactly where the rewards are rational)."""
    rs = r_ex if all(x is not None for x in r_ex) else r_t
    tot = sum((n * r for r, n in zip(rs, counts)), nb.ZERO)
    r = rs[j]
    if spec.advantage == "reinforce":
        d = r
    elif spec.advantage == "reinforce_baseline":
        d = r - V
    elif spec.advantage == "rloo":
        d = r - (tot - r) / (G - 1)
    else:  # grpo, grpo_sample_std, dr_grpo: the sign of r - mean
        d = r - tot / G
    s = _compare(d, nb.ZERO)
    if s is None:
        raise NotRun("the sign of an advantage cannot be decided with balls")
    return s


# -- one estimator, all prompts ------------------------------------------------------------------
def moments(seq, spec: Spec | str, *, group: int = 8, eps=DEFAULT_EPS, tables: SequenceTables | None = None,
            method: str = "auto", second: bool = True, jacobian: bool = False,
            multiset_limit: int = MULTISET_LIMIT) -> dict:
    r"""Exact mean (and per-coordinate second moment, Jacobian) of one batch of an estimator.

    Parameters
    ----------
    seq : SequenceCase
    spec : Spec or str
    group : int
        G, the completions of one prompt in a batch.
    eps : fmpq
        GRPO's eps.
    method : {"auto", "closed_form", "multisets"}
        ``auto``: closed forms where the advantage is linear with a constant c, else multisets.
    second : bool
        Compute the second moment.
    jacobian : bool or "lazy"
        Compute the Jacobian of the mean: an object array (True), or the unexpanded
        :class:`~pgverify.sequence.numbers.OuterSum` (``"lazy"``).

    Returns
    -------
    dict with ``mean``, ``second`` (or None), ``kl_part`` (the expected KL loss/score term, or
    None), ``jacobian`` (or None), ``method``, ``multisets`` (the number enumerated).

    Raises
    ------
    NotRun
        Beyond ``multiset_limit``, or where balls cannot decide a sign.
    """
    spec = parse_estimator(spec) if isinstance(spec, str) else spec
    _check_group(spec, group)
    tb = tables if tables is not None else SequenceTables(seq)
    if spec.kl is not None and not has_kl(seq):
        raise UsageError(f"estimator {spec.name!r} has a KL term but case {seq.name!r} has no KL "
                         "(give beta != 0 and a reference policy)")
    if spec.clip and (seq.old_point is None or seq.clip_epsilon is None):
        raise UsageError(f"estimator {spec.name!r} clips, but case {seq.name!r} has no stale point theta_old "
                         "and clip epsilon")
    if method == "auto":
        method = "closed_form" if spec.linear else "multisets"
    if method == "closed_form" and not spec.linear:
        raise UsageError(f"estimator {spec.name!r} has no closed form (its advantage is not linear in the "
                         "rewards with a constant divisor)")
    n = tb.n
    with nb.working_precision():
        prompts = {x: _Prompt(tb, x, spec, jacobian=jacobian) for x in seq.prompts}
        count = 0
        if method == "multisets":
            counts = {x: multiset_count(len(_types(pr, spec)), group) for x, pr in prompts.items()}
            count = sum(counts.values())
            if count > multiset_limit:
                raise NotRun(f"{count} multisets of group types to enumerate, beyond the limit of {multiset_limit}")
        mean, sec, kl = nb.zeros(n), nb.zeros(n) if second else None, None
        jac = tb.outer_sum() if jacobian else None
        for x, pr in prompts.items():
            w = tb.rho[x]
            if nb.certainly_zero(w):
                continue
            if method == "closed_form":
                m, s, k = _closed_form_moments(pr, spec, group, tb.beta, seq.max_length, second)
                j = _closed_form_jacobian(pr, spec, group, tb.beta, seq.max_length, tb) if jacobian else None
            else:
                m, s, k, j, _ = _multiset_moments(pr, spec, group, eps, tb.beta, seq.max_length, second, jacobian,
                                                  tb)
            mean = mean + w * m
            if second:
                sec = sec + w * s
            if k is not None:
                kl = w * k if kl is None else kl + w * k
            if jacobian:
                jac.add(j, w)
        if jacobian and jacobian != "lazy":
            jac = jac.dense()
    return {"mean": mean, "second": sec, "kl_part": kl, "jacobian": jac, "method": method, "multisets": count}


# -- results ---------------------------------------------------------------------------------
@dataclass
class EstimatorResult:
    """One estimator's exact analysis (numbers fmpq or arb; see ``proof``)."""

    name: str
    status: str  # "ok" or "not_run"
    reason: str = ""
    method: str = ""
    multisets: int = 0
    mean: np.ndarray | None = None
    bias: np.ndarray | None = None
    relative_bias: object = None
    cosine: object = None
    variance: np.ndarray | None = None
    variance_trace: object = None
    is_gradient: str = "undecided"
    objective: str | None = None
    gradient_reason: str = ""
    proof: str = "exact"
    bound: float = 0.0
    kl_part: dict | None = None
    #: (i, j, d mean_i/d theta_j - d mean_j/d theta_i) of the asymmetry behind a "no", else None
    asymmetry: tuple | None = None
    monte_carlo: dict | None = None
    #: the identity that proves the bias exactly 0 where the numbers are balls, else None
    bias_identity: str | None = None
    #: the identity that proves the expected KL term equal to its target, else None
    kl_identity: str | None = None

    def to_dict(self) -> dict:
        def vec(v):
            return None if v is None else [nb.as_text(a) for a in v]

        def fl(v):
            return None if v is None else [nb.as_float(a) for a in v]

        def one(a):
            return None if a is None else nb.as_text(a)

        def onef(a):
            return None if a is None else nb.as_float(a)

        if self.status != "ok":
            return {"status": self.status, "reason": self.reason, "multisets": self.multisets,
                    "monte_carlo": self.monte_carlo}
        kl = None
        if self.kl_part is not None:
            kl = {k: (vec(v) if isinstance(v, np.ndarray) else one(v)) for k, v in self.kl_part.items()}
            mr = self.kl_part.get("missing_relative")
            if mr is not None:
                kl["missing_relative_bound"] = nb.upper(mr)
                kl["missing_relative_zero"] = _zero_kind(mr, self.kl_identity)
                kl["identity"] = self.kl_identity
        asym = None
        if self.asymmetry is not None:
            i, j, d = self.asymmetry
            asym = {"row": i, "column": j, "difference": nb.as_text(d), "difference_float": nb.as_float(d)}
        zero, rb_bound = None, None
        if self.relative_bias is not None:
            rb_bound = nb.upper(self.relative_bias)
            zero = _zero_kind(self.relative_bias, self.bias_identity)
        return {"status": "ok", "method": self.method, "multisets": self.multisets,
                "mean": vec(self.mean), "mean_float": fl(self.mean),
                "bias": vec(self.bias), "bias_float": fl(self.bias),
                "relative_bias": one(self.relative_bias), "relative_bias_float": onef(self.relative_bias),
                "relative_bias_bound": rb_bound, "relative_bias_zero": zero, "bias_identity": self.bias_identity,
                "cosine": one(self.cosine), "cosine_float": onef(self.cosine),
                "variance": vec(self.variance), "variance_float": fl(self.variance),
                "variance_trace": one(self.variance_trace), "variance_trace_float": onef(self.variance_trace),
                "is_gradient": self.is_gradient, "objective": self.objective, "gradient_reason": self.gradient_reason,
                "proof": self.proof, "bound": self.bound, "kl_part": kl, "jacobian_asymmetry": asym,
                "monte_carlo": self.monte_carlo}


def _zero_kind(x, identity) -> str:
    """Whether a non-negative number is 0: ``"exact"``, ``"identity"`` (proved by ``identity``),
    ``"within_bound"`` (a ball containing 0) or ``"no"``."""
    if isinstance(x, flint.fmpq):
        return "exact" if x == 0 else "no"
    if identity is not None:
        return "identity"
    with nb.working_precision():
        return "no" if nb.certainly_nonzero(x) else "within_bound"


@dataclass
class EstimatorsResult:
    """The report of :func:`analyse`."""

    case: str
    parameters: list
    group: int
    eps: object
    objective: Objective
    estimators: dict = field(default_factory=dict)  # name -> EstimatorResult
    monte_carlo: dict | None = None  # the sampling's settings and family-wise verdict

    def to_dict(self) -> dict:
        return {"case": self.case, "parameters": self.parameters, "group": self.group, "eps": nb.as_text(self.eps),
                "objective": self.objective.to_dict(),
                "estimators": {k: v.to_dict() for k, v in self.estimators.items()},
                "monte_carlo": self.monte_carlo}


def _norm2(v):
    return sum((a * a for a in v), nb.ZERO)


def _dot(a, b):
    return sum((x * y for x, y in zip(a, b)), nb.ZERO)


def _known_constant(spec: Spec, G: int, max_length: int):
    """The constant c with E[g] = c grad J for the estimators unbiased up to a constant factor by
    construction (linear advantages, u = sigma): alpha * G * c_agg, or None."""
    if spec.clip or spec.aggregation in ("seq_mean", "token_mean"):
        return None
    alpha, _, _ = _linear_constants(spec, G) if spec.advantage in ("reinforce", "reinforce_baseline", "rloo",
                                                                    "dr_grpo") else (None, None, None)
    if alpha is None:
        return None
    return alpha * G * _aggregation_c(spec, G, None, max_length)


def _sums_to_one(seq, tb) -> str | None:
    """Why the policy sums to 1 at every context for every theta, or None when that is not shown:
    a softmax (of the logits as written) by construction, or each context's sum simplifies to 1."""
    if seq.logits is not None and seq.policy_form in ("tabular", "logits"):
        return "a softmax at every context"
    hit = getattr(tb, "_sums_to_one", None)
    if hit is None:
        import sympy

        ok = True
        for row in seq.policy.values():
            diff = sympy.Add(*row.values()) - 1
            if not (diff == 0 or sympy.cancel(sympy.together(diff)) == 0):
                ok = False
                break
        hit = "every context's probabilities sum to 1 symbolically" if ok else ""
        tb._sums_to_one = hit
    return hit or None


def _score_identity(seq, spec: Spec, G: int, tb, res: EstimatorResult, obj: Objective):
    r"""(is_gradient, objective, reason) from an exact identity, or None where none applies.

    For an advantage linear in the rewards with a constant divisor, u = sigma (aggregation
    ``sum`` or ``max_len``), no clip, and a KL term among none, ``k1_reward``, ``k1_loss`` and
    ``kl_score``, the closed form (:func:`_closed_form_moments`) is, with r the (penalised)
    reward, E[g] = c G alpha E_p[r sigma] - c G beta E_p[v] + (constant) E_p[sigma] per prompt.
    E_p[sigma] = \nabla \sum_o p_\theta(o|x) = 0 for every theta (the policy sums to 1 at every
    context); E_p[R sigma] = \nabla E[R] and E_p[\log(p/p_\mathrm{ref}) sigma] = \nabla KL (the
    score-function identity, Williams 1992; the objective's own formula); the k1 reward penalty
    sums to \log(p/p_\mathrm{ref}) over the tokens; k1 as a loss gives v = sigma.  So
    E[g] = a \nabla E[R] - m beta \nabla KL with a = c G alpha and m exact rationals, for every
    theta: the gradient of a E[R] - m beta KL.  The mean computed at the point is checked against
    that form (each coordinate's difference must be within its ball of 0).
    """
    if spec.clip or spec.aggregation not in ("sum", "max_len") or not spec.linear:
        return None
    if spec.kl not in (None, "k1_reward", "k1_loss", "kl_score"):
        return None
    why = _sums_to_one(seq, tb)
    if why is None:
        return None
    alpha, _, _ = _linear_constants(spec, G)
    cG = G * _aggregation_c(spec, G, None, seq.max_length)
    a = cG * alpha
    kl_on = has_kl(seq)
    m = cG * (alpha if spec.kl == "k1_reward" else nb.ONE if spec.kl == "kl_score" else nb.ZERO)
    with nb.working_precision():
        predicted = a * obj.grad_reward
        if kl_on:
            predicted = predicted - (m * tb.beta) * obj.grad_kl
        if any(nb.certainly_nonzero(x - y) for x, y in zip(res.mean, predicted)):
            return None  # the identity does not hold here: let the numbers decide
    if not kl_on:
        what = "J" if a == 1 else f"({a}) * J"
    elif a == 1 and m == 1:
        what = "J"
    elif a == m:
        what = f"({a}) * J"
    elif m == 0:
        what = "E[R]" if a == 1 else f"({a}) * E[R]"
    else:
        what = ("E[R]" if a == 1 else f"({a}) * E[R]") + " - " + ("beta * KL" if m == 1 else f"({m}) * beta * KL")
    parts = [f"E_p[sigma] = grad sum_o p(o|x) = 0 for every theta ({why})"]
    if spec.kl == "k1_reward":
        parts.append("the k1 penalty sums to log(p(o)/p_ref(o)) over the tokens")
    if spec.kl == "k1_loss":
        parts.append("k1 as a loss differentiates to v = sigma, whose expectation is 0")
    if spec.kl in ("k1_reward", "kl_score"):
        parts.append("E_p[log(p/p_ref) sigma] = grad KL (score function)")

    def times(c, x):
        return x if c == 1 else f"{c} * {x}"

    reason = (f"by identity, for every theta: the advantage is linear in the rewards and u = sigma, so "
              f"E[g] = {times(a, 'E_p[R sigma]')}"
              + (f" - {times(m, 'beta * E_p[log(p/p_ref) sigma]')}" if kl_on and m != 0 else "")
              + " = grad " + what + "; " + "; ".join(parts)
              + "; the mean computed at the point agrees with this form")
    if what == "J":
        res.bias_identity = reason
    if spec.kl == "kl_score" and cG == 1:
        res.kl_identity = "E_p[log(p/p_ref) sigma] = grad KL (score function)"
    return "yes", what, reason


def _prompt_weights(seq, spec, G, eps, tb, multiset_limit) -> dict:
    """x -> phi_x at the point, where the expected update given prompt x is phi_x grad q_x (q_x the
    probability of x's higher reward): each prompt's update computed alone (all of rho on x) and divided
    by grad q_x, with the proportionality checked; prompts whose update is not such a multiple, or whose
    grad q_x is 0, are left out (an empty dict: nothing to show)."""
    from dataclasses import replace

    import sympy

    out = {}
    for x in seq.prompts:
        values = sorted({c.R_exact for c in tb.comps[x]})
        if len(values) != 2 or any(c.R_exact is None for c in tb.comps[x]):
            return {}
        grad_q = nb.zeros(tb.n)
        for c in tb.comps[x]:
            if c.R_exact == values[1]:
                grad_q = grad_q + c.p * c.sigma
        gq2 = _norm2(grad_q)
        if not nb.certainly_nonzero(gq2):
            continue
        alone = replace(seq, prompt_probs={y: sympy.Integer(1 if y == x else 0) for y in seq.prompts})
        try:
            mean = moments(alone, spec, group=G, eps=eps, second=False, multiset_limit=multiset_limit)["mean"]
        except NotRun:
            return {}
        with nb.working_precision():
            phi = _dot(mean, grad_q) / gq2
            if any(nb.certainly_nonzero(m - phi * g) for m, g in zip(mean, grad_q)):
                return {}
        out[x] = phi
    return out


def _gradient_verdict(seq, spec, res: EstimatorResult, obj: Objective, tb, G, eps, multiset_limit, jacobian):
    """(is_gradient, objective, reason): proved equalities first, then the Jacobian's symmetry."""
    bias, grad, mean = res.bias, obj.gradient, res.mean
    if all(isinstance(b, flint.fmpq) and b == 0 for b in bias):
        return "yes", "J", "the exact mean equals grad J at the point (bias exactly 0): it ascends J"
    known = _known_constant(spec, G, seq.max_length)
    if known is not None and nb.is_exact(mean) and nb.is_exact(grad) and any(g != 0 for g in grad):
        if all(m == known * g for m, g in zip(mean, grad)):
            return ("yes", f"({known}) * J",
                    f"the exact mean equals {known} * grad J at the point; {known} is the estimator's constant "
                    "(advantage factor times G times the aggregation's constant divisor)")
    if has_kl(seq) and nb.is_exact(mean) and nb.is_exact(obj.grad_reward):
        c = known if known is not None else nb.ONE
        if all(m == c * g for m, g in zip(mean, obj.grad_reward)) and any(g != 0 for g in obj.grad_reward):
            what = "E[R]" if c == 1 else f"({c}) * E[R]"
            return ("yes", what, f"the exact mean equals grad {what} at the point: it ascends the expected "
                    "reward and ignores the KL term")
    ident = _score_identity(seq, spec, G, tb, res, obj)
    if ident is not None:
        return ident
    if not nb.is_exact(bias) and all(not nb.certainly_nonzero(b) for b in bias):
        return ("undecided", None, f"every coordinate of the bias is within {nb.bound(bias):.3g} of 0 "
                "(certified balls): consistent with grad J, but balls cannot prove the equality")
    # the update alone (no KL term in it), whatever the objective: a gradient of a transformed E[R|x]
    if spec.kl is None and not spec.clip and spec.aggregation in ("sum", "max_len"):
        prompts_ok = True
        for x in seq.prompts:
            vals = {c.R_exact if c.R_exact is not None else id(c) for c in tb.comps[x]}
            if len(vals) > 2:
                prompts_ok = False
        if prompts_ok:
            weights = _prompt_weights(seq, spec, G, eps, tb, multiset_limit)
            here = ""
            if weights:
                shown = ", ".join(f"{x}: {nb.as_float(w):.6g}" for x, w in weights.items())
                here = (f"; at this point phi_x = {shown} (the expected update given x divided by grad q_x, "
                        "exact or certified): locally a reweighting of the prompts' success probabilities")
            return ("yes", "sum_x rho(x) F_x(E[R|x]) for functions F_x fixed by the group coefficients",
                    "each prompt's rewards take at most two values, so the expected update of each prompt is "
                    "phi_x(q_x) grad q_x with q_x the probability of the higher reward and phi_x a function of "
                    "q_x alone (the group's type distribution); it is the gradient of sum_x rho(x) Phi_x(q_x), "
                    "Phi_x' = phi_x, an increasing transform of E[R|x] when phi_x > 0" + here)
    if tb.n == 1 and not spec.clip:
        return ("yes", "F(theta), the integral of the expected update along theta",
                "one parameter: without clip the expected update is a smooth function of theta alone (finite sums "
                "and products of the policy's probabilities with coefficients that depend only on the rewards), so "
                "it is the derivative of its own integral F; every one-parameter update is a gradient, and the "
                "Jacobian test (Nota & Thomas 2020) needs two parameters")
    if not jacobian:
        return "undecided", None, "the Jacobian was not computed"
    if tb.n > JACOBIAN_PARAMETER_LIMIT:
        return "undecided", None, (f"{tb.n} parameters, beyond the Jacobian limit of {JACOBIAN_PARAMETER_LIMIT}")
    if spec.kl_form == "reward" and not spec.linear:
        return "undecided", None, ("the Jacobian is not computed for group-normalised advantages of penalised "
                                   "rewards (the types then depend on theta)")
    if spec.advantage == "reinforce_baseline" and not spec.linear:
        return "undecided", None, "the Jacobian is not computed for the exact baseline under token_mean"
    try:
        jac = moments(seq, spec, group=G, eps=eps, tables=tb, second=False, jacobian="lazy",
                      multiset_limit=multiset_limit)["jacobian"]
    except NotRun as e:
        return "undecided", None, f"the Jacobian could not be computed: {e}"
    names = seq.parameter_names
    verdict, open_pairs = _symmetry_verdict(jac, res, names)
    prec = tb.prec
    while open_pairs and len(open_pairs) <= RAISE_PRECISION_ENTRIES and 2 * prec <= MAX_BALL_PREC:
        # balls too wide to decide: the same entries again from tables at twice the precision
        prec *= 2
        with flint.ctx.workprec(prec):
            tb2 = SequenceTables(seq, prec=prec)
            try:
                jac2 = moments(seq, spec, group=G, eps=eps, tables=tb2, second=False, jacobian="lazy",
                               multiset_limit=multiset_limit)["jacobian"]
            except NotRun:
                break
            still = []
            for i, j in open_pairs:
                d = jac2.entry(i, j) - jac2.entry(j, i)
                if nb.certainly_nonzero(d):
                    out = _asymmetric(res, names, i, j, d)
                    return out[0], out[1], out[2] + f"; decided with {prec}-bit balls"
                if not nb.certainly_zero(d):
                    still.append((i, j))
        open_pairs = still
        if not open_pairs:
            return "undecided", None, (f"the Jacobian of the expected update is symmetric at this point (decided "
                                       f"with {prec}-bit balls); symmetry at one point does not prove a gradient")
    if open_pairs and prec > tb.prec:
        return verdict[0], verdict[1], verdict[2] + f" (also with {prec}-bit balls)"
    return verdict


#: how many of the largest float64 asymmetries are computed exactly before the whole Jacobian is
SCREEN_CANDIDATES = 3
#: the most bits of the balls, doubled from the default, for asymmetries the default balls leave
#: open; at most this many entries are tried again
MAX_BALL_PREC = 1280
RAISE_PRECISION_ENTRIES = 20


def _symmetry_verdict(jac: nb.OuterSum, res: EstimatorResult, names):
    """((is_gradient, objective, reason), open pairs) from the Jacobian's symmetry (Nota & Thomas
    2020); the open pairs (i, j) are the asymmetries whose balls contain 0 without being 0.

    An asymmetry is proved by one entry: the float64 image of J - J^T names the largest
    candidates, computed exactly (or as certified balls) one entry at a time.  Symmetry needs
    every entry: proved from the terms' structure when each is symmetric, else from the exact
    (or certified) J - J^T.
    """
    n = jac.n
    with nb.working_precision():
        if jac.structurally_symmetric():
            return ("undecided", None, "the Jacobian of the expected update is symmetric at this point (exactly: "
                    "it is a sum of symmetric terms, outer products s s^T and Hessians of log pi, whatever the "
                    "rounding of their coefficients); symmetry at one point does not prove a gradient"), []
        D = jac.float_matrix(antisymmetric=True)
        iu, ju = np.triu_indices(n, 1)
        size = np.abs(D[iu, ju])
        for k in np.argsort(-size, kind="stable")[:SCREEN_CANDIDATES]:
            if not size[k] > 0:
                break
            i, j = int(iu[k]), int(ju[k])
            d = jac.entry(i, j) - jac.entry(j, i)
            if nb.certainly_nonzero(d):
                return _asymmetric(res, names, i, j, d), []
        full = jac.dense(antisymmetric=True)
        undecided, best = [], None
        for i in range(n):
            for j in range(i + 1, n):
                d = full[i, j]
                if nb.certainly_nonzero(d):
                    if best is None or abs(nb.as_float(d)) > abs(nb.as_float(best[2])):
                        best = (i, j, d)
                elif not nb.certainly_zero(d):
                    undecided.append((i, j))
        if best is not None:
            return _asymmetric(res, names, *best), []
    if undecided:
        k = len(undecided)
        what = ("1 Jacobian asymmetry is within its ball's radius of 0" if k == 1 else
                f"{k} Jacobian asymmetries are within their balls' radius of 0")
        return ("undecided", None, f"{what}; balls cannot prove symmetry"), undecided
    return ("undecided", None, "the Jacobian of the expected update is symmetric at this point; symmetry at one "
            "point does not prove a gradient"), []


def _asymmetric(res: EstimatorResult, names, i: int, j: int, d):
    res.asymmetry = (i, j, d)
    how = "exactly" if isinstance(d, flint.fmpq) else "certified (the ball excludes 0)"
    return ("no", None,
            f"the Jacobian of the expected update is asymmetric, {how}: d mean[{names[i]}]/d "
            f"{names[j]} - d mean[{names[j]}]/d {names[i]} = {nb.as_text(d)} "
            "(Nota & Thomas 2020: a gradient field has a symmetric Jacobian)")


def analyse(seq, names=None, *, group: int = 8, eps=DEFAULT_EPS, mc=None, variance: bool = True,
            jacobian: bool = True, multiset_limit: int = MULTISET_LIMIT) -> EstimatorsResult:
    r"""Every named estimator's exact mean, bias against \nabla J, variance and gradient verdict.

    Parameters
    ----------
    seq : SequenceCase
    names : list of str, optional
        Estimator names (:func:`parse_estimator`); :func:`default_estimators` when None.
    group : int
        G, completions per prompt in one batch.
    eps : fmpq or int or str
        GRPO's eps (exact rational; default :data:`DEFAULT_EPS` = 10^-6).
    mc : dict, optional
        Run the Monte Carlo check (:func:`pgverify.sequence.sampling.check`) with these keyword
        arguments (``batches``, ``seed``, ``alpha``).
    variance, jacobian : bool
        Compute the variances / the Jacobians (for the gradient verdicts).

    Returns
    -------
    EstimatorsResult

    References
    ----------
    Kool, van Hoof & Welling (2019), "Buy 4 REINFORCE samples, get a baseline for free!";
    Shao et al. (2024), "DeepSeekMath" (GRPO); Liu et al. (2025), "Understanding R1-Zero-like
    training: a critical perspective" (Dr. GRPO); Yu et al. (2025), "DAPO"; Schulman (2020),
    "Approximating KL divergence"; Tang & Munos (2025), "On a few pitfalls in KL divergence
    gradient estimation for RL"; Nota & Thomas (2020), "Is the policy gradient a gradient?".
    """
    eps = flint.fmpq(eps) if isinstance(eps, int) else (eps if isinstance(eps, flint.fmpq) else _parse_eps(eps))
    if eps < 0:
        raise UsageError(f"GRPO's eps must be >= 0 (given {eps})")
    names = default_estimators(seq) if names is None else list(names)
    specs = [parse_estimator(nm) for nm in names]
    for sp in specs:
        _check_group(sp, group)
    tb = SequenceTables(seq)
    obj = objective(seq, tb)
    out = EstimatorsResult(seq.name, seq.parameter_names, group, eps, obj)
    for sp in specs:
        res = EstimatorResult(sp.name, "ok")
        try:
            mo = moments(seq, sp, group=group, eps=eps, tables=tb, second=variance, multiset_limit=multiset_limit)
        except NotRun as e:
            res.status, res.reason = "not_run", str(e)
            out.estimators[sp.name] = res
            continue
        with nb.working_precision():
            res.method, res.multisets = mo["method"], mo["multisets"]
            res.mean = mo["mean"]
            res.bias = res.mean - obj.gradient
            g2 = _norm2(obj.gradient)
            if nb.certainly_nonzero(g2):
                res.relative_bias = nb.sqrt(_norm2(res.bias) / g2)
                m2 = _norm2(res.mean)
                if nb.certainly_nonzero(m2):
                    res.cosine = _dot(res.mean, obj.gradient) / nb.sqrt(m2 * g2)
            if variance:
                res.variance = mo["second"] - res.mean * res.mean
                res.variance_trace = sum(res.variance, nb.ZERO)
            if mo["kl_part"] is not None:
                target = -tb.beta * obj.grad_kl
                missing = target - mo["kl_part"]
                t2 = _norm2(target)
                res.kl_part = {"expected": mo["kl_part"], "target": target, "missing": missing,
                               "missing_relative": nb.sqrt(_norm2(missing) / t2) if nb.certainly_nonzero(t2) else None}
            nums = list(res.mean) + list(res.bias) + (list(res.variance) if variance else [])
            exact = nb.is_exact(np.array(nums, dtype=object))
            res.proof = "exact" if exact else "certified"
            res.bound = 0.0 if exact else nb.bound(nums)
        res.is_gradient, res.objective, res.gradient_reason = _gradient_verdict(
            seq, sp, res, obj, tb, group, eps, multiset_limit, jacobian)
        out.estimators[sp.name] = res
    if mc is not None:
        from .sampling import check

        out.monte_carlo = check(seq, out, tables=tb, **mc)
    return out


def _parse_eps(text):
    try:
        return flint.fmpq(*[int(t) for t in str(text).split("/")]) if "/" in str(text) else \
            _decimal_fmpq(str(text))
    except (ValueError, TypeError):
        raise UsageError(f"GRPO's eps must be a rational number such as 1/1000000 or 1e-6 (given {text!r})") from None


def _decimal_fmpq(text: str):
    from fractions import Fraction

    f = Fraction(text)
    return flint.fmpq(f.numerator, f.denominator)
