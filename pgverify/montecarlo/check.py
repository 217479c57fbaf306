"""Sampling meets the exact results: each estimator's sample mean against its own exact mean.

For every estimator and parameter, z = (sample mean - exact mean) / standard error.  The
family-wise false-alarm rate ``alpha`` (default 1%) over all estimators and parameters is
held by Holm's step-down procedure (Holm 1979) on two-sided normal p-values, so the
threshold is fixed in advance and cannot be tuned by eye.  An unbiased estimator's exact
mean is the exact gradient; a biased one's is its own exact mean, so the sampling confirms
the predicted bias as well.

Exact means and variances come from enumerating every trajectory where that is finite
(:mod:`pgverify.montecarlo.moments`); otherwise the means follow from the exact families
(unbiased estimators: the gradient; the own-return group mean: (G-1)/G times the policy
family plus the others) and the variance is only sampled, which is said.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .estimators import ESTIMATORS, UNBIASED, estimate
from .moments import exact_moments, gamma_dropped_mean, state_values
from .sampler import sample
from .tabular import tabulate

__all__ = ["monte_carlo", "MonteCarlo", "holm"]


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
    cut: int = 0
    max_steps: int = 0
    tail_bound: float = 0.0
    threshold: str = ""

    def to_dict(self) -> dict:
        return {"episodes": self.episodes, "seed": self.seed, "group": self.group, "alpha": self.alpha,
                "test": self.threshold, "cut": self.cut, "max_steps": self.max_steps, "tail_bound": self.tail_bound,
                "estimators": self.estimators, "consistent": self.consistent}


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


BATCH = 100_000  # episodes sampled at a time (a fixed size, so a seed always gives the same numbers)


def _sample_batches(mdp, episodes, seed, max_steps, progress):
    """Sample in fixed batches (seeds spawned from ``seed``), reporting progress(done, total)."""
    if episodes <= BATCH:
        ep = sample(mdp, episodes, seed=seed, max_steps=max_steps)
        if progress:
            progress(episodes, episodes)
        return ep
    seeds = np.random.SeedSequence(seed).spawn((episodes + BATCH - 1) // BATCH)
    parts, done = [], 0
    for k, ss in enumerate(seeds):
        n = min(BATCH, episodes - done)
        parts.append(sample(mdp, n, seed=int(ss.generate_state(1)[0]), max_steps=max_steps))
        done += n
        if progress:
            progress(done, episodes)
    # ragged layout: the flat arrays one after another (offsets follow from the lengths)
    return type(parts[0]).concatenate(parts, seed=seed)


def monte_carlo(case, result, *, episodes: int = 10_000, seed: int = 0, estimators=ESTIMATORS,
                group: int = 8, alpha: float = 0.01, max_steps: int | None = None, progress=None) -> MonteCarlo:
    """Sample ``episodes`` episodes and test every estimator against its exact mean.

    ``progress(done, total)``, if given, is called as batches of episodes are sampled (the CLI
    draws a progress bar with it; this function never prints).
    """
    episodes -= episodes % group
    mdp = tabulate(case)
    names = list(case.parameter_names)
    out = MonteCarlo(episodes, seed, group, alpha)
    ep = _sample_batches(mdp, episodes, seed, max_steps, progress)
    out.cut, out.tail_bound, out.max_steps = ep.cut, ep.tail_bound, ep.max_steps
    exact = exact_moments(tabulate(case, exact=True), estimators, group=group)
    grad = [result.gradient[p].float for p in names]
    policy = [result.terms["policy"].contribution[p]["float"] for p in names] if result.terms else grad
    V = state_values(mdp)
    J = result.objective.float
    tests = []
    for name in estimators:
        g = estimate(name, mdp, ep, J=J, V=V, group=group)
        if name.startswith("group"):
            units = g.reshape(-1, group, g.shape[1]).mean(1)  # groups are the independent units
        else:
            units = g
        mean = units.mean(0)
        se = units.std(0, ddof=1) / math.sqrt(len(units)) if len(units) > 1 else np.full(len(names), math.inf)
        out.traces[name] = _trace(units, group if name.startswith("group") else 1)
        mom = exact.get(name)
        if mom is not None and mom.mean is not None:
            emean = [float(x) for x in mom.mean]
            how = mom.how
        elif name in UNBIASED or (name == "no_discount_weighting" and mdp.gamma == 1):
            emean, how = grad, "theory (unbiased: the exact gradient)"
        elif name == "group_mean":
            emean = [gr - (1 / group) * po for gr, po in zip(grad, policy)]
            how = "theory ((G-1)/G times the policy family, plus the other families)"
        elif name == "no_discount_weighting" and (part := gamma_dropped_mean(case)) is not None:
            emean = [float(x) + gr - po for x, gr, po in zip(part, grad, policy)]
            how = "linear algebra (undiscounted visits times grad pi times Q, plus the other families)"
        else:
            emean, how = None, "unknown (sampled only)"
        evar = [float(x) for x in mom.variance] if mom is not None and mom.variance is not None else None
        z = {p: (float((mean[j] - emean[j]) / se[j]) if emean is not None and se[j] > 0 else
                 (0.0 if emean is not None and abs(mean[j] - emean[j]) < 1e-12 else None))
             for j, p in enumerate(names)}
        unbiased = bool(emean is not None and all(abs(a - b) <= 1e-12 * max(1.0, abs(b)) for a, b in zip(emean, grad)))
        entry = {
            "unbiased": unbiased,
            "exact_mean": dict(zip(names, emean)) if emean is not None else None,
            "bias": {p: emean[j] - grad[j] for j, p in enumerate(names)} if emean is not None else None,
            "exact_mean_from": how,
            "exact_variance": dict(zip(names, evar)) if evar is not None else None,
            "variance_from": mom.how if evar is not None else "sampled only",
            "sample_mean": {p: float(mean[j]) for j, p in enumerate(names)},
            "sample_variance": {p: float(units.var(0, ddof=1)[j] * (group if name.startswith("group") else 1))
                                for j, p in enumerate(names)},
            "stderr": {p: float(se[j]) for j, p in enumerate(names)},
            "z": z,
            "consistent": None,
        }
        out.estimators[name] = entry
        for p, zv in z.items():
            if zv is not None:
                tests.append((name, p, _p_two_sided(zv)))
    rejected = holm([t[2] for t in tests], alpha)
    bad = {(n, p) for (n, p, _), r in zip(tests, rejected) if r}
    for name, entry in out.estimators.items():
        tested = [p for p in names if entry["z"][p] is not None]
        entry["consistent"] = (not any((name, p) in bad for p in tested)) if tested else None
    out.consistent = not bad
    out.threshold = f"two-sided z, Holm over {len(tests)} tests, family-wise alpha = {alpha}"
    return out
