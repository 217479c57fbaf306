"""Sampling meets the exact results: each estimator's sample mean against its own exact mean.

For every estimator and parameter, z = (sample mean - exact mean) / standard error.  The
family-wise false-alarm rate ``alpha`` (default :data:`ALPHA`, 1e-4) over all estimators and
parameters is held by Holm's step-down procedure (Holm 1979) on two-sided normal p-values, so the
threshold is fixed in advance and cannot be tuned by eye.  Estimators that are the same function
of the episode on the case (:mod:`pgverify.montecarlo.identical`, decided on its structure and
exact values) are tested once, and :func:`power` states what bias the threshold still catches.  An unbiased estimator's exact
mean is the exact gradient; a biased one's is its own exact mean, so the sampling confirms
the predicted bias as well.

Exact means and variances come from enumerating every trajectory where that is finite
(:mod:`pgverify.montecarlo.moments`), else from exact linear recursions, else from the same
recursions in float64 with certified error bounds (:mod:`pgverify.montecarlo.certified`).
Where a variance is known the standard error is the exact one, sqrt(Var / episodes), not the
sample's: on large cases rare, large values (FrozenLake's goal) are often missing from the
sample, whose standard error then comes out far too small and gives false alarms.  A
certified float64 variance is used at its upper bound.  Where no variance is known the sample
standard error is used, and ``stderr_from`` says so.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from statistics import NormalDist

import numpy as np

from .estimators import ESTIMATORS, UNBIASED, estimate
from .certified import certified_moments
from .identical import identical_estimators
from .moments import Moments, exact_moments, gamma_dropped_mean, state_values
from .recursive import at_boundary, recursive_moments
from .sampler import sample, step_limit
from .sparse import sample_sparse, sparse_state_values, sparse_tabulate
from .tabular import tabulate

__all__ = ["monte_carlo", "MonteCarlo", "holm", "power"]


@dataclass
class MonteCarlo:
    episodes: int
    seed: int
    group: int
    alpha: float
    estimators: dict = field(default_factory=dict)  # name -> dict of the JSON fields
    #: name -> (episode counts, running means (k, n), running standard errors (k, n)) for plots
    traces: dict = field(default_factory=dict)
    consistent: bool = True
    inconclusive: int = 0  # tests left out: too few effective episodes
    #: estimators whose certified float64 mean contradicts the exact gradient (an internal error)
    disagreements: list = field(default_factory=list)
    cut: int = 0
    max_steps: int = 0
    tail_bound: float = 0.0
    threshold: str = ""
    requested: object = None  # the episodes asked for: a number, or "auto"
    stopped: str = ""  # why sampling stopped
    budget: float | None = None  # seconds ("auto" only)
    moments: str = ""  # where the exact moments came from, or why there are none
    #: groups of estimators identical per episode on this case, each tested once (see identical.py)
    identical: list = field(default_factory=list)
    tests: int = 0  # distinct tests in Holm's count
    power: dict = field(default_factory=dict)  # see power()
    batch: int = 0  # episodes sampled at a time (fixed --episodes)

    def to_dict(self) -> dict:
        return {"episodes": self.episodes, "episodes_requested": self.requested, "stopped": self.stopped,
                "budget": self.budget, "seed": self.seed, "group": self.group, "alpha": self.alpha,
                "test": self.threshold, "cut": self.cut, "max_steps": self.max_steps, "tail_bound": self.tail_bound,
                "moments": self.moments, "inconclusive": self.inconclusive, "estimators": self.estimators,
                "consistent": self.consistent, "identical": self.identical, "tests": self.tests,
                "power": self.power, "batch": self.batch}


def _p_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def _trace(units: np.ndarray, per_unit: int):
    """Running mean and standard error at about 60 log-spaced numbers of units."""
    k = len(units)
    counts = np.unique(np.geomspace(min(10, k), k, num=60).astype(int)) if k >= 2 else np.array([k])
    csum = np.cumsum(units, axis=0)
    csq = np.cumsum(units * units, axis=0)
    n = counts[:, None].astype(float)
    mean = csum[counts - 1] / n
    var = np.maximum(csq[counts - 1] / n - mean * mean, 0) * n / np.maximum(n - 1, 1)
    return counts * per_unit, mean, np.sqrt(var / n)


def holm(pvalues: list[float], alpha: float) -> list[bool]:
    """Holm (1979): which hypotheses are rejected at family-wise error rate alpha."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = [False] * len(pvalues)
    m = len(pvalues)
    for k, i in enumerate(order):
        if pvalues[i] <= alpha / (m - k):
            rejected[i] = True
        else:
            break
    return rejected


#: a test counts only when at least this many effective episodes carry its variance (see monte_carlo)
NEFF_MIN = 50

#: biases, in standard errors, at which :func:`power` states the probability of detection
POWER_BIASES = (3.0, 5.0, 8.0)
#: detection probabilities for which :func:`power` states the bias needed
POWER_LEVELS = (0.5, 0.9, 0.99)


def power(alpha: float, tests: int) -> dict:
    r"""The power that remains: how large a bias Holm's procedure catches at ``alpha`` over ``tests``.

    A test whose estimator's mean is off by k standard errors has z ~ N(k, 1) (the normal
    distribution the z-test assumes).  Holm's step-down procedure (Holm 1979) rejects a hypothesis
    whenever its p-value is below its first threshold alpha / m, whatever the other tests do, so
    the test is rejected at least when |z| > z_c = Phi^-1(1 - alpha / (2 m)), with probability

    .. math:: P(k) = \Phi(k - z_c) + \Phi(-k - z_c),

    a lower bound on the power (exact for Bonferroni).  The bias needed for a probability q is
    k_q = z_c + Phi^-1(q), at which P(k_q) >= q.  The standard error is per test,
    sqrt(variance / episodes): the bias in the estimator's own units shrinks as 1/sqrt(episodes).

    Examples
    --------
    >>> pw = power(1e-4, 1)
    >>> round(pw["threshold_z"], 2)
    3.89
    >>> round(pw["bias_for_probability"]["0.5"], 2)
    3.89
    """
    N = NormalDist()
    m = max(int(tests), 1)
    zc = N.inv_cdf(1 - alpha / (2 * m))
    return {
        "threshold_z": zc,
        "detected": {f"{k:g}": N.cdf(k - zc) + N.cdf(-k - zc) for k in POWER_BIASES},
        "bias_for_probability": {f"{q:g}": zc + N.inv_cdf(q) for q in POWER_LEVELS},
        "method": (f"normal distribution: a bias of k standard errors gives z ~ N(k, 1), and Holm rejects the test "
                   f"at least when |z| > {zc:.3g} = Phi^-1(1 - alpha / (2 x {m} tests)), its first threshold; "
                   "detected = Phi(k - z_c) + Phi(-k - z_c), a lower bound"),
    }


def _term_scales(mdp, longest: int) -> np.ndarray:
    """Per parameter, a rough bound on the size of the terms an estimate sums (L steps of a score
    times a return of at most L max|r|): the scale of its float64 rounding when they cancel.
    ``mdp`` is the sparse table (:class:`~pgverify.montecarlo.sparse.SparseMDP`)."""
    L = float(max(int(longest), 1))
    rmax = mdp.max_abs_reward()
    n = mdp.n
    score = mdp.x.max_abs(n) + mdp.p.max_abs(n) + mdp.drho.max_abs(n)
    return L * L * rmax * score + L * mdp.q.max_abs(n) + L * L * rmax * np.abs(mdp.dgamma)


def _z(mean: float, exact: float, se: float, exact_err: float, column: np.ndarray, scale: float = 0.0) -> float:
    """(mean - exact) / se, with the difference reduced by the exact mean's certified error bound;
    with se = 0 (an exact variance of 0: a constant) 0 when they agree to rounding (relative to the
    size ``scale`` of the terms that cancel, or of the values), else infinite."""
    diff = mean - exact
    diff = math.copysign(max(abs(diff) - exact_err, 0.0), diff)
    if se > 0:
        return float(diff / se)
    scale = max(abs(exact), float(np.abs(column).max(initial=0.0)), scale, 1e-300)
    return 0.0 if abs(diff) <= 1e-9 * scale else math.copysign(math.inf, diff)


def effective_episodes(units: np.ndarray, target) -> np.ndarray:
    """Per parameter, n_eff = (sum d^2)^2 / sum d^4 with d = units - target: about how many of the
    units carry the variance (infinite when every d is 0).  d is scaled by its largest value first,
    so that d^4 neither overflows nor underflows."""
    d = units - np.asarray(target, dtype=float)[None, :]
    top = np.abs(d).max(axis=0, initial=0.0)
    d /= np.where(top > 0, top, 1.0)[None, :]
    d *= d  # d^2, in place: this runs over every episode and parameter of every estimator
    s2, s4 = d.sum(0), np.einsum("ij,ij->j", d, d)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(s4 > 0, s2 * s2 / np.where(s4 > 0, s4, 1.0), math.inf)


BATCH = 100_000  # episodes sampled at a time (a fixed size, so a seed always gives the same numbers)


def _sample_batches(mdp, episodes, seed, max_steps, progress):
    """Sample in fixed batches (seeds spawned from ``seed``), reporting progress(done, total)."""
    sample_ = sample_sparse if hasattr(mdp, "tr_key") else sample
    if episodes <= BATCH:
        ep = sample_(mdp, episodes, seed=seed, max_steps=max_steps)
        if progress:
            progress(episodes, episodes)
        return ep
    seeds = np.random.SeedSequence(seed).spawn((episodes + BATCH - 1) // BATCH)
    parts, done = [], 0
    for k, ss in enumerate(seeds):
        n = min(BATCH, episodes - done)
        parts.append(sample_(mdp, n, seed=int(ss.generate_state(1)[0]), max_steps=max_steps))
        done += n
        if progress:
            progress(done, episodes)
    # ragged layout: the flat arrays one after another (offsets follow from the lengths)
    return type(parts[0]).concatenate(parts, seed=seed)




#: the dense exact moment routes (tabulate(exact=True): states x actions x states x parameters
#: object arrays, times the horizon) run up to this much work; beyond it the sparse certified
#: recursions (sparsemoments.py), and beyond their budget the exact mean of an unbiased estimator is
#: the exact gradient and the standard error the sample's
MOMENTS_DENSE_LIMIT = 5e6
#: episodes x parameters per chunk of estimates (32 MB of float64)
CHUNK = 2**22
#: transitions per chunk of estimates (the sparse scores expand to about A entries each)
CHUNK_TRANSITIONS = 2**20
#: the default family-wise false-alarm rate of ``pgverify check``'s sampling tests (Holm): a correct case
#: fails by chance in at most one run of 10,000 (at 0.01 one correct run in a hundred exited 1)
ALPHA = 1e-4
#: the first batch of --episodes auto (today's fixed default, so its first batch draws the same)
AUTO_FIRST = 10_000
#: the most transitions one auto batch may hold (about 0.3 GB of flat arrays)
AUTO_TRANSITIONS = 20_000_000
#: episodes of the pilot that sizes the first auto batch (drawn with their own seed, not used in tests)
AUTO_PILOT = 64


def _first_auto_batch(mdp, seed, max_steps, group, left) -> int:
    """The first batch of --episodes auto: :data:`AUTO_FIRST` episodes, fewer when a pilot of
    :data:`AUTO_PILOT` episodes (its own seed, spawned from ``seed``; discarded) shows that they
    would not fit the time left or :data:`AUTO_TRANSITIONS` (CliffWalking's uniform policy: about
    3,000 steps an episode)."""
    pilot_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
    t = time.perf_counter()
    pilot = sample_sparse(mdp, AUTO_PILOT, seed=pilot_seed, max_steps=max_steps)
    per_episode = (time.perf_counter() - t) / AUTO_PILOT
    mean_len = max(float(np.mean(pilot.lengths)) if len(pilot.lengths) else 1.0, 1.0)
    # sampling is about a third of an episode's cost (estimators and statistics follow)
    fit = min(AUTO_TRANSITIONS / mean_len, max(left, 0.0) / max(3 * per_episode, 1e-9))
    size = int(min(AUTO_FIRST, max(fit, 16 * group)))
    return size - size % group


def fixed_batch(mdp, episodes: int, seed: int, max_steps, group: int) -> int:
    """Episodes sampled at a time for a fixed ``--episodes``: :data:`BATCH`, or fewer when a batch
    could hold more than :data:`AUTO_TRANSITIONS` / 2 transitions (a batch is sampled whole: about
    40 bytes a transition, and the episodes of a batch are processed in chunks after it).

    Only when the longest possible episodes (the horizon or the step limit) could exceed that does a
    pilot of :data:`AUTO_PILOT` episodes (its own seed, spawned from ``seed``; discarded) measure the
    mean length, and the batch is AUTO_TRANSITIONS / (2 x mean length) episodes (whole groups, at
    least one).  So the memory of a run does not grow with ``episodes`` (``--episodes 1000000000``
    samples batch after batch; it allocated until MemoryError when the batches were not sized), and a
    seed gives the same numbers for the same case and ``episodes``.  The two-state softmax
    (263 steps an episode, never ending) samples about 38,000 episodes at a time instead of 100,000
    (0.9 GB)."""
    first = min(BATCH, episodes)
    limit = step_limit(mdp.horizon, mdp.gamma, max_steps)
    if first * limit <= AUTO_TRANSITIONS // 2:
        return BATCH
    pilot_seed = int(np.random.SeedSequence([seed, 2]).generate_state(1)[0])
    pilot = sample_sparse(mdp, AUTO_PILOT, seed=pilot_seed, max_steps=max_steps)
    mean_len = max(float(np.mean(pilot.lengths)) if len(pilot.lengths) else 1.0, 1.0)
    size = int(min(BATCH, AUTO_TRANSITIONS / (2 * mean_len)))
    return max(group, size - size % group)


def dense_work(case) -> float:
    """states x actions x states x parameters x (horizon or 1): the size of the dense moment routes."""
    A = max((len(case.actions[s]) for s in case.nonterminal), default=1)
    S = len(case.states)
    return float(S) * A * S * max(len(case.parameters), 1) * (case.horizon or 1)


class _Stats:
    """Running per-parameter statistics of one estimator's units (episodes, or group means), fed in
    chunks: count, mean and sum of squared deviations (Chan et al.'s pairwise update), the largest
    |unit|, the sums of d^2 and d^4 for n_eff (d = unit - exact mean, scaled by the largest |d|
    so far), and the running means at the trace's counts.  No (episodes x parameters) array is kept."""

    def __init__(self, n, target, checkpoints):
        self.k = 0
        self.mean = np.zeros(n)
        self.m2 = np.zeros(n)
        self.top = np.zeros(n)
        self.nonzero = np.zeros(n)  # units != 0, per parameter
        self.target = None if target is None else np.asarray(target, dtype=float)
        self.scale = np.zeros(n)
        self.s2 = np.zeros(n)
        self.s4 = np.zeros(n)
        self.checkpoints = checkpoints  # sorted unit counts at which to record the running mean
        self.csum = np.zeros(n)
        self.csq = np.zeros(n)
        self.trace = []  # (count, mean, stderr)

    def add(self, u: np.ndarray):
        kc = len(u)
        if not kc:
            return
        mc = u.mean(0)
        m2c = ((u - mc) ** 2).sum(0)
        k = self.k
        delta = mc - self.mean
        tot = k + kc
        self.mean = self.mean + delta * (kc / tot)
        self.m2 = self.m2 + m2c + delta * delta * (k * kc / tot)
        self.top = np.maximum(self.top, np.abs(u).max(0))
        self.nonzero += np.count_nonzero(u, axis=0)
        if self.target is not None:
            d = u - self.target[None, :]
            dtop = np.abs(d).max(0)
            new = np.maximum(self.scale, dtop)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(new > 0, self.scale / np.where(new > 0, new, 1), 0.0)
            self.s2 *= ratio**2
            self.s4 *= ratio**4
            d /= np.where(new > 0, new, 1.0)[None, :]
            d *= d
            self.s2 += d.sum(0)
            self.s4 += np.einsum("ij,ij->j", d, d)
            self.scale = new
        # the running means at the checkpoints inside this chunk
        cps = [c for c in self.checkpoints if k < c <= tot]
        ends = [c - k for c in cps]
        bounds = [0] + ends + ([kc] if not ends or ends[-1] < kc else [])
        s1, s2 = self.csum, self.csq
        uu = u * u
        for a_, b_ in zip(bounds[:-1], bounds[1:]):
            s1 = s1 + u[a_:b_].sum(0)
            s2 = s2 + uu[a_:b_].sum(0)
            c = k + b_
            if c in cps:
                m = s1 / c
                var = np.maximum(s2 / c - m * m, 0) * c / max(c - 1, 1)
                self.trace.append((c, m, np.sqrt(var / c)))
        self.csum, self.csq = s1, s2
        self.k = tot

    def sample_var(self):
        return self.m2 / (self.k - 1) if self.k > 1 else np.full(len(self.mean), math.nan)

    def neff(self):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.where(self.s4 > 0, self.s2 * self.s2 / np.where(self.s4 > 0, self.s4, 1.0), math.inf)


def _checkpoints(total_units: int | None) -> list:
    if total_units is not None:
        k = total_units
        return list(np.unique(np.geomspace(min(10, k), k, num=60).astype(int))) if k >= 2 else [k]
    return list(np.unique(np.geomspace(10, 1e10, num=300).astype(int)))


def _cut_moments(tab, mdp, exact, estimators, group, max_steps) -> dict:
    """Exact moments of the estimators that have none on a continuing discounted task, on the episodes
    as sampled: cut at L = step_limit(...) steps.  Such an estimator sums undiscounted terms (REINFORCE's
    summed score, the gamma-dropped weights) over an episode that never ends, so its moments are
    infinite; but every sampled episode is cut at L steps, where the estimator is a finite sum whose
    mean and variance are those of the same case with horizon L: backward induction over L steps, in
    exact rationals (:mod:`pgverify.montecarlo.recursive`) where the point is rational, else in float64
    with certified bounds (:mod:`pgverify.montecarlo.certified`; 60-digit numbers took 3.4 s on the
    two-state softmax, 263 steps, against 0.5 s).  Its mean is the gradient of the return of the first
    L steps, which the sample estimates; it differs from the gradient by the cut's share.
    Returns name -> Moments (none when the recursion is over its budget)."""
    short = [nm for nm in estimators if (m := exact.get(nm)) is not None and m.mean is None
             and m.how.startswith("none: the estimator sums infinitely many terms")]
    if not short or tab.horizon is not None or not mdp.gamma < 1:
        return {}
    L = step_limit(None, mdp.gamma, max_steps)
    cut = replace(tab, horizon=L)
    rational = all(isinstance(x, Fraction) for arr in (tab.rho0, tab.pi, tab.P, tab.r, tab.dlog_rho0, tab.dlog_pi,
                                                        tab.dlog_P, tab.dr, tab.dgamma) for x in arr.flat)
    if rational and isinstance(tab.gamma, Fraction):
        rec = recursive_moments(cut, short, J=Fraction(0), V=None, group=group)
    else:
        rec = certified_moments(cut, short, J=Fraction(0), V=None, group=group)
    if rec is None:
        return {}
    out = {}
    for nm in short:
        got = rec.get(nm, (None, None, ""))
        if got[0] is not None:
            out[nm] = Moments(got[0], got[1], f"{got[2]} over the {L} steps at which episodes are cut (the uncut "
                                              "estimator sums infinitely many terms; these are the moments of the "
                                              "sampled, cut one)", *got[3:])
    return out


def _exact_means(case, result, mdp, estimators, group, small, max_steps=None, sparse_route=True):
    """name -> (exact moments, exact mean list or None, how, mean error array, disagrees), the
    description of the moments' route, and the exact tables with their values (tab, V, J) or None.

    ``small``: the dense routes; else, with ``sparse_route``, the certified recursions over the sparse
    tables (:mod:`pgverify.montecarlo.sparsemoments`) within their budget."""
    names = list(case.parameter_names)
    grad = [result.gradient[p].float for p in names]
    policy = [result.terms["policy"].contribution[p]["float"] for p in names] if result.terms else grad
    exact_tables = None
    cut_names = set()
    if small:
        import mpmath

        tab = tabulate(case, exact=True)
        exact = exact_moments(tab, estimators, group=group)
        with mpmath.workdps(60):
            cut_moments = _cut_moments(tab, mdp, exact, estimators, group, max_steps)
            exact.update(cut_moments)
            cut_names = set(cut_moments)
            V = state_values(tab)
            V0 = V[0] if tab.horizon is not None else V
            J = sum((tab.rho0[s] * V0[s] for s in range(len(V0))), tab.pi.flat[0] * 0 if tab.pi.size else Fraction(0))
        exact_tables = (tab, V, J, step_limit(None, mdp.gamma, max_steps) if cut_names else None, cut_names)
        moments = "exact moments from the dense tables (enumeration, exact recursions or certified float64)"
    elif sparse_route and (sparse := _sparse_exact(mdp, estimators, group, result)) is not None:
        exact = sparse
        moments = ("certified float64 moments from the recursions over the sparse tables (the dense tables are "
                   f"over their budget: states x actions x states x parameters x horizon = {dense_work(case):.2e} "
                   f"> {MOMENTS_DENSE_LIMIT:.0e})")
    else:
        exact = {}
        moments = (f"none from the moment recursions: the case is over their budget (states x actions x states x "
                   f"parameters x horizon = {dense_work(case):.2e} > {MOMENTS_DENSE_LIMIT:.0e}"
                   + (f"; over the sparse tables: {_sparse_over(mdp, estimators)}" if sparse_route else "")
                   + "); the unbiased estimators' exact mean is the exact gradient and their standard error the "
                   "sample's")
    boundary = mdp.boundary
    out = {}
    for name in estimators:
        mom = exact.get(name)
        certified = mom is not None and mom.mean_error is not None
        disagrees = False
        mean_err = np.zeros(len(names))
        # a certified float64 mean of an unbiased estimator is checked against the exact gradient below, except
        # on cut episodes (_cut_moments), whose mean is the gradient of the first L steps' return
        if mom is not None and mom.mean is not None and (name in cut_names or not (certified and name in UNBIASED
                                                                                   and not boundary)):
            emean = [float(x) for x in mom.mean]
            how = mom.how
            if certified:
                mean_err = np.array(mom.mean_error, dtype=float)
        elif boundary:
            emean, how = None, ("unknown: at this point a start, action or transition probability is 0 but its "
                                "derivative is not, so the score-function estimators can be biased, and their "
                                "exact moments are out of reach")
        elif name in UNBIASED or (name == "no_discount_weighting" and mdp.gamma == 1):
            emean, how = grad, "theory (unbiased: the exact gradient)"
            if certified and mom.mean is not None:
                disagrees = any(abs(float(m) - g) > e + 2**-52 * abs(g)
                                for m, g, e in zip(mom.mean, grad, mom.mean_error))
                how += ("; the float64 recursion's mean DIFFERS from it beyond its certified bound" if disagrees
                        else "; the float64 recursion's mean agrees within its certified bound")
        elif name == "group_mean":
            emean = [gr - (1 / group) * po for gr, po in zip(grad, policy)]
            how = "theory ((G-1)/G times the policy family, plus the other families)"
        elif name == "no_discount_weighting" and small and (part := gamma_dropped_mean(case)) is not None:
            emean = [float(x) + gr - po for x, gr, po in zip(part, grad, policy)]
            how = "linear algebra (undiscounted visits times grad pi times Q, plus the other families)"
        else:
            emean, how = None, "unknown (sampled only)" + ("" if small else " (over the exact budget)")
        out[name] = (mom, emean, how, mean_err, disagrees)
    return out, moments, exact_tables


def _sparse_exact(mdp, estimators, group, result):
    """name -> Moments from the certified sparse recursions (the baselines the sampled estimators use),
    or None over their budget."""
    from .moments import Moments
    from .sparsemoments import sparse_moments

    rec = sparse_moments(mdp, estimators, J=result.objective.float, V=sparse_state_values(mdp), group=group)
    if rec is None:
        return None
    return {name: Moments(*rec[name]) if name in rec else Moments(None, None, "sampled only") for name in estimators}


def _sparse_over(mdp, estimators) -> str:
    from .sparsemoments import SPARSE_MEMORY_LIMIT, SPARSE_WORK_LIMIT, sparse_moments_work

    work, memory = sparse_moments_work(mdp, estimators)
    return (f"work {work:.2e} (limit {SPARSE_WORK_LIMIT:.0e}), memory {memory / 1e6:.0f} MB (limit "
            f"{SPARSE_MEMORY_LIMIT / 1e6:.0f} MB)")


def _cut_matters(mdp, cut: int, tail_bound: float) -> bool:
    """Whether cut episodes can bias the estimates beyond rounding: any cut, except the default cut
    of a discounted task, where gamma^L < 1e-12 leaves out at most ``tail_bound`` of a return."""
    if not cut:
        return False
    return not (mdp.gamma < 1 and tail_bound <= 1e-9 * max(1.0, mdp.max_abs_reward()))


def monte_carlo(case, result, *, episodes=10_000, seed: int = 0, estimators=ESTIMATORS,
                group: int = 8, alpha: float = ALPHA, max_steps: int | None = None, budget: float = 5.0,
                started: float | None = None,
                progress=None) -> MonteCarlo:
    """Sample episodes and test every estimator against its exact mean.

    ``episodes`` is a number, or ``"auto"``: sample in growing batches (the first of
    :data:`AUTO_FIRST` episodes, or fewer when a pilot shows that they would not fit the budget, each next one as large as all before it, sized to the time left)
    until no test is inconclusive for lack of effective episodes, or until ``budget`` seconds (counted
    from ``started``, a ``time.perf_counter()`` reading, when given: check passes its own start) of
    sampling are spent.  The stopping rule looks only at the effective numbers of episodes (and
    at cut episodes), never at a sample mean or a z-score: the number of episodes is not chosen
    by how far the estimates are from their exact means, so Holm's threshold, fixed in advance,
    keeps its meaning.  (n_eff is a function of the sizes of the per-episode deviations, so it is
    not independent of the sample mean; the same rule already decides which tests count at a fixed
    number of episodes.)  ``stopped`` says why sampling ended; the seeds of the batches after the
    first are spawned from ``seed`` (numpy SeedSequence), and the number of batches depends on the
    machine's speed through the budget: ``episodes`` in the result, given back as a number, does
    not redraw the same episodes beyond the first batch.

    ``max_steps`` caps an episode without a horizon (default: where gamma^L < 1e-12, at most
    10,000 steps).  Episodes cut by it leave out the rest of their episode, so the estimates can be
    biased by an unknown amount: every test is then inconclusive, with that reason, and never
    fails (except for a discounted task's default cut, which leaves out less than 1e-12 of a
    return, as before).

    A z-test needs the sample mean to be nearly normal.  When a parameter's estimates are
    carried by a few rare, large values (FrozenLake 8x8: the goal, reached in a few episodes
    per thousand), it is not: one hit can give z = 6 by itself.  So each test also reports
    its effective number of episodes, n_eff = (sum d^2)^2 / sum d^4 with d the per-episode
    (per-group) deviations from the exact mean -- about the number of episodes that carry the
    variance -- and a test with n_eff < :data:`NEFF_MIN` is *inconclusive*: it is reported,
    kept in Holm's count with p = 1, and neither passes nor fails: the estimator's
    ``consistent`` is None when all its tests are inconclusive, and the overall ``consistent``
    says that no conclusive test failed (``inconclusive`` counts the others; the exact engines
    alone decide ``verified`` then).  What remains of the problem, stated: for Poisson-like
    hits (mean lambda per sample, n_eff about the number of hits) the chance of at least 50
    hits together with z beyond Holm's first threshold (4.5 with about 1,500 tests) is at
    most 3.7e-5 per test (the supremum, at lambda just below 26.7; scipy.stats.poisson), 5.5
    times the normal 6.8e-6.  n_eff is about episodes / kurtosis of the deviations: about
    episodes / 3 for normal estimates (so below about 150 episodes every test is inconclusive),
    and far fewer for heavy-tailed ones, not only for rare events.  On the short corridor (Sutton
    & Barto 2018, Example 13.1: episode lengths are geometric and REINFORCE-type estimates grow as
    the square of the length) 10,000 episodes give n_eff from 9 to 263 (per estimator, the median
    over 40 seeds is 100 for the group estimators and 131-263 for the others; the smallest, 9,
    for a group estimator), and 4 of 40 runs at a fixed ``episodes=10_000`` have an inconclusive
    test; with ``"auto"`` (the default of ``pgverify check``) none of 40 had, after at most
    40,000 episodes (measured 2026-12-03, ``tests/montecarlo/test_identical_and_power.py``
    holds the figures' test).

    Sampling and the estimators run on the sparse tables of
    :func:`~pgverify.montecarlo.sparse.sparse_tabulate`, in chunks of episodes (no episodes x
    parameters array beyond :data:`CHUNK` entries).  The exact moments come from the dense routes
    of :mod:`pgverify.montecarlo.moments` up to :data:`MOMENTS_DENSE_LIMIT`, beyond it from the
    certified recursions over the sparse tables (:mod:`pgverify.montecarlo.sparsemoments`, within
    their own budget); beyond both an unbiased estimator's exact mean is the exact gradient and its
    standard error the sample's (``stderr_from``: "sample"), and ``moments`` says so.

    ``progress(done, total)``, if given, is called as batches of episodes are sampled (``total``
    None in auto mode; the CLI draws a progress bar with it; this function never prints).
    """

    auto = episodes == "auto"
    t_start = time.perf_counter()
    if not auto:
        episodes = int(episodes)
        episodes -= episodes % group
    mdp = sparse_tabulate(case)
    names = list(case.parameter_names)
    n = len(names)
    out = MonteCarlo(0, seed, group, alpha, requested=episodes, budget=budget if auto else None)
    small = dense_work(case) <= MOMENTS_DENSE_LIMIT
    means, out.moments, exact_tables = _exact_means(case, result, mdp, estimators, group, small, max_steps)
    tab, V_exact, J_exact, cut_at, cut_names = exact_tables if exact_tables is not None else (None,) * 4 + (set(),)
    out.identical = identical_estimators(case, mdp, estimators, tab=tab, V=V_exact, J=J_exact)
    # in a group that holds for every parameter, a member without exact moments takes its representative's
    # (the estimators are the same function of the episode); per-parameter groups only share the test
    rep_of = {}  # (estimator, parameter) -> the estimator whose test decides it
    for grp in out.identical:
        members = grp["estimators"]
        rank = sorted(members, key=lambda nm: (means[nm][0] is None or means[nm][0].variance is None,
                                               means[nm][1] is None, members.index(nm)))
        grp["tested"] = rank[0]
        for nm in members:
            for p in grp["parameters"]:
                rep_of[(nm, p)] = rank[0]
        if len(grp["parameters"]) == n:
            best = means[rank[0]]
            for nm in members:
                mine = means[nm]
                if nm != rank[0] and (mine[1] is None or ((mine[0] is None or mine[0].variance is None)
                                                          and best[0] is not None and best[0].variance is not None)):
                    means[nm] = (best[0], best[1], f"{rank[0]}'s, the same estimator on this case ({grp['why']}): "
                                 f"{best[2]}", best[3], best[4])
    grad = [result.gradient[p].float for p in names]
    V = sparse_state_values(mdp)
    J = result.objective.float
    # With no exact variance the standard error is the sample's, which misses rare, large values; a
    # baseline hides that from n_eff (its zero-mean noise is well sampled while the signal, carried by
    # rare returns, is not: FrozenLake 8x8, z = 18 at n_eff = 690 without this).  So such a test also
    # needs the baseline-free estimator of the same returns to have NEFF_MIN effective episodes.
    companion = {"constant_baseline": "reward_to_go", "value_baseline": "reward_to_go",
                 "group_mean": "reinforce", "group_mean_loo": "reinforce"}
    companion = {k: v for k, v in companion.items() if k in estimators and not (means[k][0] is not None
                                                                                and means[k][0].variance is not None)}
    extra = sorted({v for v in companion.values() if v not in estimators})
    if extra:
        more, _, _ = _exact_means(case, result, mdp, extra, group, False, sparse_route=False)
        means.update(more)
    run = list(estimators) + extra
    stats = {}
    for name in run:
        grouped = name.startswith("group")
        total_units = None if auto else episodes // (group if grouped else 1)
        stats[name] = _Stats(n, means[name][1], _checkpoints(total_units))

    longest = 0
    cut = 0
    tail = 0.0
    limit = 0

    def process(ep):
        nonlocal longest, cut, tail, limit
        longest = max(longest, ep.longest)
        cut += ep.cut
        tail = max(tail, ep.tail_bound)
        limit = ep.max_steps
        E = len(ep.lengths)
        step = max(group, (CHUNK // max(n, 1)) // group * group)
        off = ep.offsets
        e0 = 0
        while e0 < E:
            # at most `step` episodes and about CHUNK_TRANSITIONS transitions (whole groups, at least one)
            e1 = int(np.searchsorted(off, off[e0] + CHUNK_TRANSITIONS, side="right")) - 1
            e1 = min(E, e0 + step, max(e1 - (e1 - e0) % group, e0 + group))
            part = ep.take(np.arange(e0, e1)) if (e0 or e1 < E) else ep
            e0 = e1
            for name in run:
                g = estimate(name, mdp, part, J=J, V=V, group=group)
                units = g.reshape(-1, group, n).mean(1) if name.startswith("group") else g
                stats[name].add(units)

    sampled_se = {nm for nm in run if not (means[nm][0] is not None and means[nm][0].variance is not None)}

    def neff_of(name):
        ne = stats[name].neff()
        if name in sampled_se:
            # the sample's standard error: also count the units that are not 0 (a sample that holds none of
            # the rare values has all-equal deviations, whose n_eff is the whole sample), here and in the
            # baseline-free companion (FrozenLake 8x8: reward-to-go is 0 in all 86,000 episodes at a
            # parameter whose exact variance is 5.9e-7, and the value baseline's noise looked normal)
            ne = np.minimum(ne, stats[name].nonzero)
            if name in companion:
                ne = np.minimum(ne, np.minimum(stats[companion[name]].neff(), stats[companion[name]].nonzero))
        return ne

    drawn = 0
    if not auto:
        batch = fixed_batch(mdp, episodes, seed, max_steps, group)
        out.batch = batch
        if episodes <= batch:
            process(sample_sparse(mdp, episodes, seed=seed, max_steps=max_steps))
            if progress:
                progress(episodes, episodes)
        else:  # the batches of _sample_batches (the same seeds), processed one at a time
            # the children one at a time (the same seeds as spawn(count) at once: SeedSequence numbers its
            # children in order), so that a billion episodes do not first build millions of seed objects
            root = np.random.SeedSequence(seed)
            while drawn < episodes:
                ss = root.spawn(1)[0]
                k = min(batch, episodes - drawn)
                process(sample_sparse(mdp, k, seed=int(ss.generate_state(1)[0]), max_steps=max_steps))
                drawn += k
                if progress:
                    progress(drawn, episodes)
        drawn = episodes
        out.stopped = "the requested number of episodes"
    else:
        spawner = np.random.SeedSequence(seed)
        t0 = started if started is not None else time.perf_counter()
        size, batch_seed = _first_auto_batch(mdp, seed, max_steps, group, budget - (time.perf_counter() - t0)), seed
        while True:
            tb = time.perf_counter()
            ep = sample_sparse(mdp, size, seed=batch_seed, max_steps=max_steps)
            mean_len = max(float(np.mean(ep.lengths)) if len(ep.lengths) else 1.0, 1.0)
            process(ep)
            drawn += size
            del ep
            if progress:
                progress(drawn, None)
            per_episode = (time.perf_counter() - tb) / size
            if _cut_matters(mdp, cut, tail):
                out.stopped = (f"episodes were cut at {limit} steps: more episodes cannot make the tests conclusive "
                               "(raise --max-steps)")
                break
            short = [nm for nm in estimators if means[nm][1] is not None
                     and np.any(neff_of(nm) < NEFF_MIN)]
            if not short:
                out.stopped = "every test is conclusive"
                break
            left = budget - (time.perf_counter() - t0)
            size = int(min(drawn, left / max(per_episode, 1e-9) * 0.9, AUTO_TRANSITIONS / mean_len))
            size -= size % group
            if left <= 0 or size < group:
                out.stopped = (f"the time budget of {budget:g} s is spent ({len(short)} estimators still have "
                               "tests with too few effective episodes)")
                break
            batch_seed = int(spawner.spawn(1)[0].generate_state(1)[0])
    out.episodes = drawn
    out.cut, out.tail_bound, out.max_steps = cut, tail, limit
    cut_reason = None
    if _cut_matters(mdp, cut, tail):
        cut_reason = (f"{cut} of {drawn} episodes were cut at {limit} steps before they ended (--max-steps): their "
                      "estimates leave out the rest of the episode, so the sample mean can be biased")
    scales = _term_scales(mdp, longest)
    tests = []
    for name in estimators:
        st = stats[name]
        mom, emean, how, mean_err, disagrees = means[name]
        grouped = name.startswith("group")
        out.traces[name] = (np.array([c for c, _, _ in st.trace]) * (group if grouped else 1),
                            np.array([m for _, m, _ in st.trace]).reshape(-1, n),
                            np.array([e for _, _, e in st.trace]).reshape(-1, n))
        evar = [float(x) for x in mom.variance] if mom is not None and mom.variance is not None else None
        var_err = list(mom.variance_error) if evar is not None and mom.variance_error is not None else None
        n_units = st.k
        mean = st.mean
        sample_var = st.sample_var()
        sample_se = np.sqrt(sample_var / n_units) if n_units > 1 else np.full(n, math.inf)
        if evar is not None:
            per_unit = np.array(evar) + (np.array(var_err) if var_err is not None else 0.0)
            if grouped:
                per_unit = per_unit / group
            se = np.sqrt(np.maximum(per_unit, 0.0) / max(n_units, 1))
            se_from = "exact variance"
        else:
            se, se_from = sample_se, "sample"
        z = {p: _z(mean[j], emean[j], se[j], mean_err[j], np.array([st.top[j]]), scales[j])
             if emean is not None else None for j, p in enumerate(names)}
        neff = neff_of(name) if emean is not None else np.full(n, math.nan)
        if evar is not None:
            neff = np.where(np.array(evar) == 0, math.inf, neff)
        if name in cut_names:  # an unbiased estimator on cut episodes: its bias is the cut's share (see _cut_moments)
            unbiased = name in UNBIASED
        else:
            unbiased = bool(emean is not None and all(abs(a - b) <= 1e-12 * max(1.0, abs(b)) for a, b in zip(emean, grad)))
        few = [p for j, p in enumerate(names) if z[p] is not None and not neff[j] >= NEFF_MIN]
        reasons = {}
        if few:
            reasons["effective_episodes"] = (f"fewer than {NEFF_MIN} effective episodes carry the variance (rare "
                                             "events): sample more episodes to test them")
        # a sample that overflowed float64 (a reward of exp(710)) or a z that is not a number decides
        # nothing: inconclusive, with the reason, never a silent pass (an infinite z from an exact
        # variance of 0 and a deviation is a real verdict and stays)
        broken = [p for j, p in enumerate(names) if z[p] is not None
                  and (not math.isfinite(float(mean[j])) or not math.isfinite(float(sample_var[j]))
                       or (isinstance(z[p], float) and math.isnan(z[p])))]
        if broken:
            reasons["not_finite"] = ("the sample is not finite in float64 (an overflow, e.g. a reward beyond "
                                     "1e308): sampling cannot test it")
        inconclusive = sorted(set(few) | set(broken), key=names.index)
        if cut_reason and emean is not None:
            inconclusive = [p for p in names if z[p] is not None]
            reasons["cut"] = cut_reason
        entry = {
            "unbiased": unbiased,
            "exact_mean": dict(zip(names, emean)) if emean is not None else None,
            "bias": {p: emean[j] - grad[j] for j, p in enumerate(names)} if emean is not None else None,
            "exact_mean_from": how,
            "exact_moments_cut_at": cut_at if name in cut_names else None,
            "exact_variance": dict(zip(names, evar)) if evar is not None else None,
            "exact_variance_error": dict(zip(names, var_err)) if var_err is not None else None,
            "variance_from": mom.how if mom is not None and (evar is not None or mom.how.startswith(("none",
                                                                                                    "sampled")))
            else "sampled only",
            "sample_mean": {p: float(mean[j]) for j, p in enumerate(names)},
            "sample_variance": {p: float(sample_var[j] * (group if grouped else 1)) for j, p in enumerate(names)},
            "stderr": {p: float(se[j]) for j, p in enumerate(names)},
            "stderr_from": se_from,
            "sample_stderr": {p: float(sample_se[j]) for j, p in enumerate(names)},
            "z": z,
            "effective_episodes": {p: float(neff[j]) for j, p in enumerate(names)},
            "inconclusive": inconclusive,
            "inconclusive_reasons": reasons if inconclusive else {},
            "consistent": None,
        }
        if disagrees:
            out.disagreements.append(name)
        out.estimators[name] = entry
    # one test per distinct (estimator, parameter): a member of a group of identical estimators is decided by
    # its group's tested estimator (an inconclusive test stays in Holm's count, with p = 1)
    pairs = 0
    for name, entry in out.estimators.items():
        for p in names:
            if entry["z"][p] is None:
                continue
            pairs += 1
            if rep_of.get((name, p), name) == name:
                tests.append((name, p, 1.0 if p in entry["inconclusive"] else _p_two_sided(entry["z"][p])))
    rejected = holm([t[2] for t in tests], alpha)
    bad = {(nm, p) for (nm, p, _), r in zip(tests, rejected) if r}
    pvalue = {(nm, p): pv for nm, p, pv in tests}
    for name, entry in out.estimators.items():
        same = {p: rep_of[(name, p)] for p in names if rep_of.get((name, p), name) != name}
        entry["same_as"] = same
        for p, r in same.items():  # the member's verdict is its group's test, inconclusive or not
            if entry["z"][p] is None or out.estimators[r]["z"][p] is None:
                continue
            theirs = out.estimators[r]
            if p in theirs["inconclusive"] and p not in entry["inconclusive"]:
                entry["inconclusive"] = sorted(entry["inconclusive"] + [p], key=names.index)
                for k, v in theirs["inconclusive_reasons"].items():
                    entry["inconclusive_reasons"].setdefault(k, v)
            elif p not in theirs["inconclusive"] and p in entry["inconclusive"]:
                entry["inconclusive"] = [q for q in entry["inconclusive"] if q != p]
        if not entry["inconclusive"]:
            entry["inconclusive_reasons"] = {}

        def decider(p, name=name):
            return rep_of.get((name, p), name), p

        tested = [p for p in names if entry["z"][p] is not None and p not in entry["inconclusive"]]
        entry["rejected"] = [p for p in tested if decider(p) in bad]
        entry["consistent"] = (not entry["rejected"]) if tested else None
        if name in out.disagreements:
            entry["consistent"] = False
        # the parameter a one-row summary shows: the rejected one with the smallest p-value, else the tested
        # one with the smallest p-value, else an inconclusive one, else the first
        if entry["rejected"] or tested:
            entry["shown_parameter"] = min(entry["rejected"] or tested, key=lambda p: pvalue.get(decider(p), 1.0))
        else:
            entry["shown_parameter"] = (entry["inconclusive"] or names or [None])[0]
    out.consistent = not bad and not out.disagreements
    out.tests = len(tests)
    out.inconclusive = sum(1 for nm, p, _ in tests if p in out.estimators[nm]["inconclusive"])
    out.power = power(alpha, len(tests))
    out.threshold = f"two-sided z, Holm over {len(tests)} test{'' if len(tests) == 1 else 's'}"
    if pairs != len(tests):
        out.threshold += f" ({pairs} estimator-parameter pairs: identical estimators are tested once)"
    out.threshold += f", family-wise alpha = {alpha}"
    if out.inconclusive:
        why = "; ".join(sorted({r for e in out.estimators.values() for r in e["inconclusive_reasons"].values()}))
        out.threshold += f"; {out.inconclusive} inconclusive ({why})"
    out.seconds = time.perf_counter() - t_start
    return out
