"""Convergence plots of the estimators (matplotlib, an optional extra: ``pip install 'pgverify[plot]'``).

Draws, for each estimator, its running mean with a band of +- z standard errors (z from the
test's per-test threshold; the exact standard error sqrt(Var / k) after k episodes where the
exact variance is known, else the running sample's) against its exact mean and the exact gradient, as the number of
episodes grows.  It only draws what :func:`pgverify.montecarlo.check.monte_carlo` computed.
"""
from __future__ import annotations

import math

from ..errors import UsageError

__all__ = ["plot_convergence"]


def plot_convergence(result, path, parameter: str | None = None) -> None:
    """Write the convergence plot of ``result.monte_carlo`` to ``path`` (PNG or SVG by its suffix)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'pgverify[plot]' (or pip install matplotlib)") from None
    mc = result.monte_carlo
    if mc is None:
        raise UsageError("--plot needs the Monte Carlo checks (leave out --no-mc)")
    names = list(result.parameters)
    p = parameter or names[0]
    j = names.index(p)
    n_tests = max(1, sum(1 for e in mc.estimators.values() for v in e["z"].values() if v is not None))
    z = _normal_quantile(1 - mc.alpha / (2 * n_tests))  # the Bonferroni band, wider than Holm's first step
    ests = list(mc.estimators)
    cols = min(3, len(ests))
    rows = math.ceil(len(ests) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    grad = result.gradient[p].float
    for ax, name in zip(axes.flat, ests):
        counts, mean, se = mc.traces[name]
        entry = mc.estimators[name]
        if entry.get("stderr_from") == "exact variance":  # the exact SE after k episodes: sqrt(Var / k)
            se_j = entry["stderr"][p] * (mc.episodes / counts) ** 0.5
            band = f"+- {z:.2f} exact SE"
        else:
            se_j, band = se[:, j], f"+- {z:.2f} sample SE"
        ax.plot(counts, mean[:, j], color="C0", label="running mean")
        ax.fill_between(counts, mean[:, j] - z * se_j, mean[:, j] + z * se_j, color="C0", alpha=0.2, label=band)
        exact = mc.estimators[name]["exact_mean"]
        if exact is not None:
            ax.axhline(exact[p], color="C1", label="its exact mean")
        ax.axhline(grad, color="k", linestyle="--", linewidth=0.8, label="exact gradient")
        ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("episodes", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(ests):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{result.case}: dJ/d{p}, {mc.episodes} episodes, seed {mc.seed}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _normal_quantile(q: float) -> float:
    """Inverse of the standard normal CDF (bisection on erfc; exact enough for a plot band)."""
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(mid / math.sqrt(2)) > 1 - q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
