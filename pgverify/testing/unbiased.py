r"""``assert_unbiased``: a user's policy-gradient estimator against the exact gradient.

pgverify samples episodes at the point with its own seeded sampler
(:func:`pgverify.montecarlo.sample`), hands them to the estimator as an
:class:`~pgverify.testing.episodes.EpisodeBatch`, and tests, per parameter, the mean of the
estimator's output against the exact gradient (:func:`pgverify.testing.exact_gradient`):

.. math::

    z_i = \frac{\bar g_i - \nabla_i J}{s_i / \sqrt{U}},

with U independent units (the episodes, or batch means), and two-sided p-values corrected by
Holm's step-down procedure (Holm 1979) over the parameters at family-wise level ``alpha``:
the test of ``pgverify check`` (:mod:`pgverify.montecarlo.check`), at its default level
(:data:`pgverify.montecarlo.check.ALPHA`, 1e-4).  An unbiased estimator therefore fails for about a
fraction ``alpha`` of seeds; a fixed seed makes a test repeatable.

Units.  An estimator that returns one gradient per episode (shape (E, n)) is tested with the
episodes as units and normal p-values, as in ``pgverify check``.  One that returns only a mean
(shape (n,)) gives no spread to test against, so it is called again on ``batches`` disjoint
batches of consecutive episodes and the batch means are the units, with Student's t
(``batches - 1`` degrees of freedom) in place of the normal distribution.  The expectation is
then that of the estimator at that batch size, which differs from the per-episode one only for
estimators whose baseline depends on the batch.

Diagnosis.  The output is compared, on the same episodes, with each estimator pgverify
knows (:mod:`pgverify.montecarlo.estimators`) and with its negative; a match is named with its
exact mean and bias (:mod:`pgverify.montecarlo.moments`: by enumerating every trajectory where
that is finite, otherwise from the theory of that estimator).  Where the trajectories can be
enumerated, the user's estimator is also run on all of them and weighted by p(tau): its exact
mean up to float64 rounding (bound stated), valid when each episode's value depends on that
episode alone.
"""
from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import mpmath
import numpy as np

from ..montecarlo import sample, tabulate
from ..montecarlo.check import ALPHA, NEFF_MIN, effective_episodes, holm
from ..montecarlo.recursive import at_boundary
from ..montecarlo.estimators import ESTIMATORS, UNBIASED, estimate
from ..montecarlo.moments import (
    ENUMERATION_LIMIT,
    enumerate_episodes,
    exact_moments,
    gamma_dropped_mean,
    state_values,
)
from .episodes import EpisodeBatch, batch_from_episodes
from .gradient import (
    HelperInputError,
    _point_text,
    _table,
    exact_or_float,
    exact_result,
    exact_value,
    resolve_case,
)

__all__ = [
    "KNOWN",
    "MATCH_RTOL",
    "MEAN_ENUMERATION_LIMIT",
    "BiasDetected",
    "SampleInconclusive",
    "Match",
    "UnbiasedReport",
    "assert_unbiased",
]

#: What each of pgverify's estimators computes per episode (G_t discounted from time 0).
KNOWN = {
    "reinforce": "G sum_t score_t, the whole return (Williams 1992)",
    "reward_to_go": "sum_t score_t G_t, the reward-to-go (Williams 1992; Sutton & Barto 2018, 13.3)",
    "constant_baseline": "sum_t score_t (G_t - gamma^t J), a constant baseline b = J (Williams 1992)",
    "value_baseline": "sum_t score_t (G_t - gamma^t V(s_t)), the state-value baseline (Sutton & Barto 2018, 13.4)",
    "no_discount_weighting": "sum_t score_t gamma^-t G_t, which drops the gamma^t weight (Nota & Thomas 2020)",
    "group_mean": "score sum times (G - the mean G of its group, itself included) (Shao et al. 2024, GRPO)",
    "group_mean_loo": "score sum times (G - the mean G of the rest of its group) (Kool et al. 2019)",
}
#: Relative tolerance of a match: max |yours - pgverify's| <= MATCH_RTOL * max(1, max |pgverify's|)
#: (loose enough for float32 estimators, far tighter than any two distinct estimators differ).
MATCH_RTOL = 1e-5
#: Most trajectories on which an estimator that returns a mean is called one at a time.
MEAN_ENUMERATION_LIMIT = 2_000
GROUP_SIZES = (2, 4, 5, 8, 10, 16, 20, 32, 50, 64, 100)


class BiasDetected(AssertionError):
    """:func:`assert_unbiased` failed; ``report`` is the :class:`UnbiasedReport`."""

    def __init__(self, report: UnbiasedReport):
        self.report = report
        super().__init__(report.format())


class SampleInconclusive(AssertionError):
    """:func:`assert_unbiased` could not test some parameters: too few effective episodes carry
    their variance (rare events).  ``report`` is the :class:`UnbiasedReport`."""

    def __init__(self, report: UnbiasedReport):
        self.report = report
        super().__init__(report.format())


@dataclass
class Match:
    """The output equals (``sign`` +1) or is the negative of (-1) pgverify's estimator ``name``."""

    name: str
    sign: int
    group: int | None
    max_difference: float
    exact_mean: list | None  # per parameter: Fraction, mpf or float; None if unknown
    exact_mean_from: str
    bias: list | None

    @property
    def label(self) -> str:
        base = f"{self.name} (group of {self.group})" if self.group else self.name
        return base if self.sign > 0 else f"minus {base}"


@dataclass
class UnbiasedReport:
    """What :func:`assert_unbiased` found.  ``format()`` is the failure message."""

    case: str
    parameters: list
    at: dict
    episodes: int
    seed: int | None
    alpha: float
    units: str  # "episodes" or "batch means"
    unit_count: int
    test: str
    gradient: np.ndarray  # exact, float
    gradient_exact: list  # Fraction or float
    sample_mean: np.ndarray
    stderr: np.ndarray
    z: np.ndarray
    p: np.ndarray
    rejected: list
    passed: bool
    matches: list = field(default_factory=list)  # of Match
    exact_mean: np.ndarray | None = None  # of the user's estimator, by enumeration (float64)
    exact_mean_tolerance: float | None = None
    exact_mean_note: str = ""
    trajectories: int | None = None
    policy_family: np.ndarray | None = None
    cut: int = 0
    seconds: float = 0.0
    #: per parameter, (sum d^2)^2 / sum d^4 over the episodes, d = estimate - exact gradient (None for batch means)
    effective_episodes: np.ndarray | None = None
    inconclusive: list = field(default_factory=list)  # parameters left untested (fewer than NEFF_MIN)
    stderr_from: str = "the sample's"
    constant: list = field(default_factory=list)  # parameters where every episode gave the same value
    decided_by_exact_bias: list = field(default_factory=list)  # untested, but failed by a known exact bias

    @property
    def match(self) -> Match | None:
        return self.matches[0] if self.matches else None

    @property
    def exact_bias(self) -> np.ndarray | None:
        """The estimator's exact mean minus the gradient (float64): from a named match where there is
        one with a known mean, else from the enumeration; None when neither is available."""
        m = self.match
        if m is not None and m.bias is not None:
            return np.array([float(b) for b in m.bias])
        if self.exact_mean is not None:
            return self.exact_mean - self.gradient
        return None

    def format(self) -> str:
        names = self.parameters
        head = ("the estimator's mean differs from the exact gradient" if not self.passed else
                "the sample cannot test every parameter (rare events)" if self.inconclusive else
                "the estimator's mean is consistent with the exact gradient")
        lines = [f"assert_unbiased: {head} of {self.case!r} at {_point_text(self)}",
                 f"  {self.episodes} episodes, seed {self.seed}; {self.test}"]
        m = self.match
        bias, bias_from = None, ""
        if m is not None and m.bias is not None:
            bias, bias_from = m.bias, f"exact bias = exact mean of {m.label} ({m.exact_mean_from}) - exact gradient"
        elif self.exact_mean is not None:
            bias = list(self.exact_mean - self.gradient)
            bias_from = (f"exact bias = your estimator's mean over all {self.trajectories} trajectories, weighted by "
                         f"p(tau) in float64 ({self.exact_mean_note}; summation rounding <= "
                         f"{self.exact_mean_tolerance:.1g}) - exact gradient")
        header = ["parameter", "exact gradient", "sample mean", "stderr", "z" if self.units == "episodes" else "t",
                  "p", "verdict"] + (["exact bias"] if bias is not None else [])
        rows = [[p, f"{self.gradient[j]:.6g}", f"{self.sample_mean[j]:.6g}", f"{self.stderr[j]:.3g}",
                 _zfmt(self.z[j]), _pfmt(self.p[j]),
                 "OFF" if self.rejected[j] else "inconclusive" if p in self.inconclusive else "ok"]
                + ([_num(bias[j])] if bias is not None else [])
                for j, p in enumerate(names)]
        lines.append(_table(header, rows))
        if self.stderr_from != "the sample's":
            lines.append(f"  stderr: {self.stderr_from}")
        rare = [q for q in self.inconclusive if q not in self.constant]
        if rare:
            neff = ", ".join(f"{q} {self.effective_episodes[names.index(q)]:.3g}" for q in rare)
            lines.append(f"  inconclusive: fewer than {NEFF_MIN} effective episodes carry the variance of "
                         f"{', '.join(rare)} (n_eff: {neff}), so their z is not nearly normal and is "
                         f"not tested (p = 1); sample more episodes, or pass allow_inconclusive=True")
        if self.constant:
            lines.append(f"  every episode gave the same value for {', '.join(self.constant)}, different from the "
                         "gradient, so the sample cannot tell a bias from rare episodes it never saw (not tested, "
                         "p = 1): check whether your output depends on the episode; if it should be constant here, "
                         "sample more episodes")
        if self.decided_by_exact_bias:
            lines.append(f"  {', '.join(self.decided_by_exact_bias)}: not tested by sampling, but failed: the exact "
                         "bias below is not 0")
        if self.cut:
            lines.append(f"  note: {self.cut} episodes were cut at the sampler's step limit before they ended")
        if m is not None:
            also = f"; so do {', '.join(x.label for x in self.matches[1:])}" if len(self.matches) > 1 else ""
            what = KNOWN[m.name] if m.sign > 0 else f"-1 times {KNOWN[m.name]}: a sign error"
            lines.append(f"  on these episodes your estimator equals pgverify's {m.label} "
                         f"(to a relative {MATCH_RTOL:g}{also}): {what}")
            if m.exact_mean is None:
                lines.append(f"  its exact mean is not known here ({m.exact_mean_from})")
        elif self.units == "episodes" or self.exact_mean is not None:
            lines.append("  it equals none of pgverify's estimators (" + ", ".join(ESTIMATORS)
                         + ") nor their negatives")
        if bias_from:
            lines.append(f"  {bias_from}")
        elif self.exact_mean_note and m is None:
            lines.append(f"  exact mean of your estimator: {self.exact_mean_note}")
        if not self.passed and bias is not None and all(
                abs(float(b)) <= 1e-9 * max(1.0, abs(g)) for b, g in zip(bias, self.gradient)):
            lines.append(f"  the exact bias is 0, so this failure is a false alarm: an unbiased estimator fails for a "
                         f"fraction alpha = {self.alpha} of seeds; try another seed")
        pol = self.policy_family
        em = self.exact_mean if self.exact_mean is not None else (
            np.array([float(x) for x in m.exact_mean]) if m is not None and m.exact_mean is not None else None)
        if (pol is not None and em is not None and not np.allclose(pol, self.gradient, rtol=1e-9, atol=1e-12)
                and np.allclose(em, pol, rtol=1e-7, atol=1e-9)):
            lines.append("  that mean is the policy family alone: the case's start, dynamics, reward or discount "
                         f"families ({_vec(names, self.gradient - pol)}) are missing from the estimator")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _zfmt(z: float) -> str:
    return f"{z:+.2f}" if math.isfinite(z) else ("+inf" if z > 0 else "-inf")


def _pfmt(p: float) -> str:
    return f"{p:.2g}" if p > 0 else "<1e-300"


def _num(x) -> str:
    if isinstance(x, Fraction):
        return str(x.numerator) if x.denominator == 1 else f"{x} (~{float(x):.6g})"
    return f"{float(x):.6g}"


def _vec(names, values) -> str:
    return ", ".join(f"{p} = {_num(v)}" for p, v in zip(names, values))


# -- calling the estimator ------------------------------------------------------
def _call(estimator: Callable, batch: EpisodeBatch, names: list[str]):
    """Run the estimator; return ("episodes", (E, n) array) or ("mean", (n,) array)."""
    out = estimator(batch)
    E, n = batch.num_episodes, len(names)
    given = f"{type(out).__name__}"
    if hasattr(out, "detach"):  # a torch tensor
        out = out.detach().cpu().numpy()
    if isinstance(out, Mapping):
        keys = [str(k) for k in out]
        if sorted(keys) != sorted(names):
            unknown = [k for k in keys if k not in names]
            missing = [p for p in names if p not in keys]
            raise HelperInputError(
                "the estimator returned a dict whose keys are not the case's parameters"
                + (f"; unknown: {', '.join(map(repr, unknown))}" if unknown else "")
                + (f"; missing: {', '.join(map(repr, missing))}" if missing else ""),
                "estimator output", f"dict with keys {', '.join(map(repr, keys))}",
                f"Return one entry per parameter: {', '.join(names)}")
        cols = [np.asarray(out[p].detach().cpu().numpy() if hasattr(out[p], "detach") else out[p], dtype=float)
                for p in names]
        shapes = {c.shape for c in cols}
        if len(shapes) != 1 or next(iter(shapes)) not in ((), (E,)):
            raise HelperInputError(
                "the values of the returned dict must all be numbers (a mean) or all arrays of shape (E,)",
                "estimator output", f"shapes {', '.join(f'{p}: {c.shape}' for p, c in zip(names, cols))}",
                f"Give each parameter one number, or one value per episode (E = {E})")
        out = np.stack(cols, axis=-1)
        given = "dict"
    try:
        arr = np.asarray(out, dtype=float)
    except (TypeError, ValueError) as exc:
        raise HelperInputError(f"the estimator's output is not an array of numbers ({exc})", "estimator output",
                               f"{given} {out!r:.80}", "Return a numpy array (or torch tensor) of floats") from None
    if arr.shape == (E, n):
        kind = "episodes"
    elif arr.shape == (n,) or (n == 1 and arr.shape == ()):
        kind, arr = "mean", arr.reshape(n)
    elif n == 1 and arr.shape == (E,):
        kind, arr = "episodes", arr.reshape(E, 1)
    else:
        raise HelperInputError(
            f"the estimator's output has shape {arr.shape}", "estimator output", f"{given} of shape {arr.shape}",
            f"Return one gradient per episode, shape (E, n) = ({E}, {n}), or their mean, shape (n,) = ({n},), "
            f"in the parameter order {', '.join(names)}")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[0]
        place = (f"episode {where[0]}, parameter {names[where[1]]!r}" if kind == "episodes"
                 else f"parameter {names[where[0]]!r}")
        raise HelperInputError(f"the estimator returned a non-finite value at {place}", "estimator output",
                               f"{arr[tuple(where)]}", "Check the estimator for a division by zero or log(0)")
    return kind, arr


def _batch_bounds(E: int, batches: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, E, batches + 1).round().astype(int)
    return list(itertools.pairwise(edges.tolist()))


# -- statistics -------------------------------------------------------------------
def _p_normal(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def _p_student(z: float, df: int) -> float:
    """Two-sided p-value of Student's t with ``df`` degrees of freedom (regularised incomplete beta)."""
    if not math.isfinite(z):
        return 0.0
    return float(mpmath.betainc(df / 2, 0.5, 0, df / (df + z * z), regularized=True))


def _agree(a, b):
    """Equal up to float64 rounding of the estimates (the one tolerance of this module)."""
    return np.isclose(a, b, rtol=1e-9, atol=1e-12)


def _zscores(units: np.ndarray, target: np.ndarray, floor=None):
    """Sample means, standard errors (the sample's, raised to ``floor`` where given) and z."""
    U = len(units)
    mean = units.mean(0)
    se = units.std(0, ddof=1) / math.sqrt(U)
    if floor is not None:
        se = np.maximum(se, floor)
    z = np.empty(len(target))
    for j in range(len(target)):
        d = mean[j] - target[j]
        if se[j] > 0:
            z[j] = d / se[j]
        else:  # no spread at all: equal (z = 0) or certainly different
            z[j] = 0.0 if _agree(mean[j], target[j]) else math.copysign(math.inf, d)
    return mean, se, z


def _exact_se_floor(found, moments_of, episodes):
    """sqrt(exact variance / episodes) of the first single-episode estimator of pgverify that the
    output equals on every sampled episode, and how to say so (None, None if there is none, or
    its variance is unknown).  ``moments_of(name, group)`` gives an estimator's exact Moments.

    Used as a floor under the sample's standard error: rare episodes that the sample missed
    make the sample's too small (a false alarm), while the exact one includes them.  A floor,
    not a replacement, because the output equals that estimator on the sampled episodes only.
    """
    for name, _sign, group, _d in found:
        if group is not None:
            continue
        mom = moments_of(name, None)
        if mom is None or mom.variance is None:
            continue
        var = np.array([float(x) for x in mom.variance])
        if mom.variance_error is not None:
            var = var + np.array(mom.variance_error)
        return np.sqrt(np.maximum(var, 0.0) / episodes), (
            f"the sample's, or sqrt(exact variance of {name} / episodes) where larger "
            f"(your output equals {name} on every sampled episode)")
    return None, None


# -- diagnosis ----------------------------------------------------------------------
def _exact_number(x):
    """A Fraction where ``x`` is rational (Fraction, int, sympy Rational), else a float."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, int) or getattr(x, "is_Rational", False):
        return Fraction(int(x.p), int(x.q)) if hasattr(x, "p") else Fraction(x)
    return float(x)


def _minus(a, b):
    return a - b if isinstance(a, Fraction) and isinstance(b, Fraction) else float(a) - float(b)


def _known_mean(name: str, group: int | None, case, res, mdp_exact, moments_of):
    """Exact mean of pgverify's estimator ``name`` and where it comes from (None if unknown).

    Unbiased estimators have the gradient as mean (theory); for the biased ones the closed forms
    come first (group mean: (G-1)/G of the policy family plus the rest; gamma dropped, no horizon:
    linear algebra), then the exact moments (``moments_of(name, group)``).  At a boundary point
    the theory does not hold and only the exact moments are used.
    """
    names = list(res.parameters)
    grad = [exact_value(res.gradient[p]) for p in names]
    boundary = at_boundary(mdp_exact)  # there the theory below does not hold: exact moments only
    if not boundary and (name in UNBIASED or (name == "no_discount_weighting" and float(mdp_exact.gamma) == 1.0)):
        return grad, "unbiased, so its mean is the gradient"
    if res.terms and not boundary:
        contribution = res.terms["policy"].contribution
        policy = [exact_or_float(contribution[p]["value"], contribution[p]["float"]) for p in names]
        if name == "group_mean":
            return ([_minus(g, po / group) for g, po in zip(grad, policy)],
                    f"(G-1)/G times the policy family plus the other families, G = {group}")
        if name == "no_discount_weighting" and (part := gamma_dropped_mean(case)) is not None:
            return ([_minus(_exact_number(x), _minus(po, g)) for x, g, po in zip(part, grad, policy)],
                    "linear algebra: undiscounted visits times grad pi times Q, plus the other families")
    mom = moments_of(name, group)
    if mom is not None and mom.mean is not None:
        how = {"enumeration": "enumeration of every trajectory"}.get(mom.how, mom.how)
        return [_exact_number(x) for x in mom.mean], how
    return None, "too many trajectories to enumerate, and no closed form"


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max(initial=0.0))


def _matches(kind, arr_units, bounds, batch_ep, mdp, J, V, E):
    """(name, sign, group, max difference) of pgverify's estimators that the output equals.

    The group estimators are tried only when no other one matches, and up to the first group size
    that matches (each try costs a pass over the episodes).
    """
    def matching(name, g):
        k = estimate(name, mdp, batch_ep, J=J, V=V, group=g or 8)
        ref = k if kind == "episodes" else np.stack([k[lo:hi].mean(0) for lo, hi in bounds])
        scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
        return [(name, sign, g, d) for sign in (1, -1)
                if (d := _difference(arr_units, sign * ref)) <= MATCH_RTOL * scale]

    found = [m for name in ESTIMATORS if not name.startswith("group") for m in matching(name, None)]
    sizes = sorted({g for g in (*GROUP_SIZES, *(hi - lo for lo, hi in bounds), E) if g >= 2 and E % g == 0})
    for g in sizes:
        if found:
            break
        found = [m for name in ("group_mean", "group_mean_loo") for m in matching(name, g)]
    return found


def _enumerated_mean(estimator, case, names, kind):
    """The user's estimator over every trajectory, weighted by p(tau) (float64), or a reason it can't be."""
    mdp_exact = tabulate(case, exact=True)
    with mpmath.workdps(60):
        got = enumerate_episodes(mdp_exact)
    if got is None:
        return None, None, None, (f"not available: more than {ENUMERATION_LIMIT} trajectories, "
                                  "or cycles without a horizon (infinitely many)")
    ep, w = got
    batch = batch_from_episodes(ep, mdp_exact, case)
    weights = np.array([float(x) for x in w])
    N = len(weights)
    if kind == "episodes":
        k2, g = _call(estimator, batch, names)
        if k2 == "mean" and N != 1:
            return None, None, N, "not available: the estimator returned a mean on the enumerated trajectories"
        g = g.reshape(N, len(names))
        note = "assuming each episode's value depends on that episode alone"
    else:
        if N > MEAN_ENUMERATION_LIMIT:
            return None, None, N, (f"not computed: {N} trajectories, and an estimator that returns a mean is "
                                   f"called on each alone (limit {MEAN_ENUMERATION_LIMIT})")
        rows = []
        for i in range(N):
            k2, gi = _call(estimator, batch.slice(i, i + 1), names)
            rows.append(gi.reshape(len(names)))
        g = np.stack(rows)
        note = "the estimator called on each trajectory alone, assuming its mean averages per-episode terms"
    terms = weights[:, None] * g
    mean = terms.sum(0)
    tol = float(N * np.finfo(float).eps * np.abs(terms).sum(0).max(initial=0.0))
    return mean, tol, N, note


def assert_unbiased(estimator: Callable, case, at: Mapping | None = None, episodes: int = 10_000,
                    seed: int | None = 0, alpha: float = ALPHA, *, batches: int = 20,
                    max_steps: int | None = None, allow_inconclusive: bool = False, group: int = 8,
                    stale: bool = False, expected: str | None = None):
    r"""Assert that ``estimator``'s expectation is the exact gradient, by sampling and a z-test.

    Parameters
    ----------
    estimator : callable
        ``estimator(episodes) -> gradient``, where ``episodes`` is an
        :class:`~pgverify.testing.EpisodeBatch` and the result is one gradient per episode
        (array-like of shape (E, n); shape (E,) is accepted when n = 1) or their mean (shape
        (n,)), in the case's parameter order, or a dict parameter name -> values.  numpy
        arrays, lists and torch tensors are accepted.
    case, at
        As in :func:`~pgverify.testing.exact_gradient`.
    episodes : int
        How many episodes to sample at the point.
    seed : int
        The sampler's seed (numpy's PCG64): the same seed gives the same episodes, on any
        machine, and the same episodes as ``pgverify check --seed`` for up to 100,000 episodes.
    alpha : float
        Family-wise false-alarm rate over the parameters (Holm 1979).  An unbiased estimator
        fails for a fraction alpha of seeds.  The default is ``pgverify check``'s, 1e-4
        (:data:`pgverify.montecarlo.check.ALPHA`): at 0.01 one correct test in a hundred failed
        by chance.  The price is power: with one parameter, a bias of 3.9 standard errors is
        caught with probability 1/2 (2.6 at 0.01), 5.2 with probability 0.9.
    batches : int
        For an estimator that returns a mean: how many batches it is called on (see the module
        docstring).
    max_steps : int, optional
        The sampler's step limit without a horizon (default: where gamma^t < 1e-12, at most
        10,000 steps).
    group, stale, expected
        Sequence cases only (``kind: sequence``): ``estimator`` then receives a
        :class:`~pgverify.testing.groups.GroupBatch` of groups of ``group`` completions and returns one
        update per group, ``episodes`` is the number of groups, and ``stale``/``expected`` are those
        of :func:`pgverify.testing.groups.assert_unbiased_groups`, which documents the test.
    allow_inconclusive : bool
        Return instead of raising :class:`SampleInconclusive` when some parameters could not
        be tested.  As in ``pgverify check``, a parameter whose per-episode estimates are
        carried by fewer than 50 effective episodes (n_eff = (sum d^2)^2 / sum d^4, d the
        deviations from the exact gradient) is not tested: a few rare, large values make the
        sample mean far from normal (one hit alone can give z = 6).  Estimators that return a
        mean are tested on batch means by Student's t, without this rule.

    Returns
    -------
    UnbiasedReport
        The z-scores and the diagnosis (also on success).

    Raises
    ------
    BiasDetected
        (an ``AssertionError``) when Holm's procedure rejects some parameter: the message lists the
        z-scores, the estimator of pgverify's that the output equals, if any, with its exact bias,
        and the estimator's exact mean over the enumerated trajectories where they are finite.
    SampleInconclusive
        (an ``AssertionError``) when no parameter is rejected but some could not be tested (see
        ``allow_inconclusive``); the message lists their n_eff.
    HelperInputError
        The estimator's output has the wrong shape, names or non-finite values.
    pgverify.CaseFileError
        ``at`` names a parameter the case does not have, or gives an invalid value.

    Examples
    --------
    REINFORCE (Williams 1992) on a one-step bandit, pi(go) = p, reward 1 for go: the score of
    p is 1/p after "go" and -1/(1-p) after "stop".

    >>> import numpy as np
    >>> coin = {"name": "coin", "parameters": {"p": "1/3"}, "states": ["S", "G"],
    ...         "terminal": ["G"], "actions": ["stop", "go"], "start": "S",
    ...         "policy": {"S": {"stop": "1 - p", "go": "p"}},
    ...         "transitions": {"S": {"stop": "G", "go": "G"}}, "rewards": {"S": {"go": 1}}}
    >>> def reinforce(ep):
    ...     p = ep.theta["p"]
    ...     go = ep.actions[:, 0] == ep.action_names[0].index("go")
    ...     score = np.where(go, 1 / p, -1 / (1 - p))
    ...     return (score * ep.rewards.sum(1))[:, None]
    >>> report = assert_unbiased(reinforce, coin, episodes=2000)
    >>> report.passed, report.match.name
    (True, 'reinforce')
    """
    t0 = time.perf_counter()
    if episodes < 2:
        raise HelperInputError("at least 2 episodes are needed for a standard error", "episodes", str(episodes),
                               "Use e.g. episodes=10_000")
    if not 0 < alpha < 1:
        raise HelperInputError("alpha must lie in (0, 1)", "alpha", str(alpha), "Use e.g. alpha=0.01")
    from ..sequence.model import SequenceCase

    if not isinstance(case, SequenceCase):
        case = resolve_case(case, at)
    elif at:
        case = case.to_case().at(at)
    seq = case if isinstance(case, SequenceCase) else case.sequence
    if seq is not None:  # a sequence case: groups of completions (pgverify.testing.groups)
        from .groups import assert_unbiased_groups

        return assert_unbiased_groups(estimator, seq, groups=episodes, group=group, seed=seed if seed is not None
                                      else 0, alpha=alpha, stale=stale, expected=expected,
                                      allow_inconclusive=allow_inconclusive)
    if stale or expected is not None:
        raise HelperInputError("stale and expected apply to sequence cases only", "stale/expected",
                               f"stale={stale}, expected={expected!r}", "Leave them out for an MDP case")
    res = exact_result(case)
    names = list(res.parameters)
    if not names:
        raise HelperInputError(f"case {res.case!r} has no parameters, so there is no gradient to test",
                               "case", res.case, "Declare the parameters the policy depends on")
    grad = np.array([res.gradient[p].float for p in names])
    mdp = tabulate(case)
    ep = sample(mdp, episodes, seed=seed, max_steps=max_steps)
    batch = batch_from_episodes(ep, mdp, case)
    kind, arr = _call(estimator, batch, names)
    if kind == "episodes":
        units, bounds = arr, []
        test = f"two-sided z per parameter over {episodes} episodes"
        pfun = _p_normal
    else:
        if episodes < 2 * batches or batches < 2:
            raise HelperInputError(
                f"an estimator that returns a mean is tested on batch means, and {episodes} episodes do not make "
                f"{batches} batches of at least 2", "batches", str(batches),
                "Return one gradient per episode, or use more episodes or fewer batches")
        bounds = _batch_bounds(episodes, batches)
        rows = []
        for lo, hi in bounds:
            k2, g = _call(estimator, batch.slice(lo, hi), names)
            if k2 != "mean":
                raise HelperInputError("the estimator returned a mean on all episodes but not on a batch",
                                       "estimator output", f"shape {g.shape}", "Return the same kind of output always")
            rows.append(g)
        units = np.stack(rows)
        test = (f"two-sided Student t ({batches - 1} degrees of freedom) per parameter over {batches} batch means "
                f"of about {episodes // batches} episodes (the estimator returns a mean)")
        pfun = lambda z: _p_student(z, batches - 1)
    # pgverify's estimators on the same episodes (for the standard error and the diagnosis)
    V = state_values(mdp)
    found = _matches(kind, units, bounds, ep, mdp, res.objective.float, V, episodes)
    mdp_exact = tabulate(case, exact=True) if found else None

    @functools.lru_cache(maxsize=None)
    def moments_of(name, group):  # one exact computation per estimator, for the floor and the diagnosis
        return exact_moments(mdp_exact, (name,), group=group or 8).get(name)

    floor, se_from = _exact_se_floor(found, moments_of, episodes) if kind == "episodes" else (None, None)
    se_from = se_from or "the sample's"
    mean, se, z = _zscores(units, grad, floor)
    p = np.array([pfun(x) for x in z])
    neff, inconclusive, constant_names = None, [], []
    if kind == "episodes":
        neff = effective_episodes(units, grad)
        # a sample with no spread at all cannot tell a bias from rare events it never saw
        constant = (units.std(0) == 0) & ~_agree(mean, grad) & (floor is None or np.asarray(floor) == 0)
        constant_names = [q for j, q in enumerate(names) if constant[j]]
        inconclusive = [q for j, q in enumerate(names) if not neff[j] >= NEFF_MIN or constant[j]]
        p = np.array([1.0 if q in inconclusive else p[j] for j, q in enumerate(names)])  # kept in Holm's count
    rejected = holm(list(p), alpha)
    test += f", Holm over {len(names)} parameter{'s' if len(names) != 1 else ''} at family-wise alpha = {alpha}"
    # diagnosis: the estimators of pgverify that the output equals, then the enumeration
    matches = []
    for name, sign, g, d in found:
        emean, how = _known_mean(name, g, case, res, mdp_exact, moments_of)
        bias = None
        if emean is not None:
            emean = [sign * x for x in emean]
            bias = [_minus(a, exact_value(res.gradient[q])) for a, q in zip(emean, names)]
        matches.append(Match(name, sign, g, d, emean, how, bias))
    if any(m.group for m in matches):
        emean, tol, N, note = None, None, None, "not computed: the estimator depends on its group, not one episode"
    elif any(m.exact_mean is not None for m in matches):
        emean, tol, N, note = None, None, None, ""  # the match's exact mean says it
    else:
        emean, tol, N, note = _enumerated_mean(estimator, case, names, kind)
    policy = (np.array([res.terms["policy"].contribution[q]["float"] for q in names]) if res.terms else None)
    report = UnbiasedReport(
        case=res.case, parameters=names, at=dict(res.at), episodes=episodes, seed=seed, alpha=alpha,
        units="episodes" if kind == "episodes" else "batch means", unit_count=len(units), test=test,
        gradient=grad, gradient_exact=[exact_value(res.gradient[q]) for q in names], sample_mean=mean, stderr=se,
        z=z, p=p, rejected=list(rejected), passed=not any(rejected), matches=matches, exact_mean=emean,
        exact_mean_tolerance=tol, exact_mean_note=note, trajectories=N, policy_family=policy, cut=ep.cut,
        seconds=time.perf_counter() - t0, effective_episodes=neff, inconclusive=inconclusive, stderr_from=se_from,
        constant=constant_names)
    bias = report.exact_bias
    if bias is not None and inconclusive:
        # an untested parameter whose exact bias is known and not 0 fails all the same: sampling was
        # inconclusive, the exact mean is not
        off = [j for j, q in enumerate(names) if q in inconclusive and not _agree(grad[j] + bias[j], grad[j])]
        if off:
            report.rejected = [r or j in off for j, r in enumerate(report.rejected)]
            report.passed = False
            report.decided_by_exact_bias = [names[j] for j in off]
    if not report.passed:
        raise BiasDetected(report)
    if inconclusive and not allow_inconclusive:
        raise SampleInconclusive(report)
    return report
