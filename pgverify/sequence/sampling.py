r"""Monte Carlo check of the sequence estimators against their exact means.

Batches are sampled with numpy (seeded): a prompt x ~ rho, then G completions i.i.d. from
p_theta(.|x) (from p_theta_old under ``clip``).  Each estimator's update is computed per batch in
float64 from its definition (the advantages and aggregations written again here with numpy,
apart from the exact code's per-type coefficients), and the sample mean of every coordinate is
tested against the exact mean with the exact standard error sqrt(Var / batches):
z = (sample mean - exact mean) / standard error, two-sided normal p-values, Holm's step-down
procedure (Holm 1979) over every coordinate of every estimator at the family-wise level
``alpha``.  A coordinate whose exact variance is 0 is a constant: it is compared to rounding
(relative 1e-9 of the size of its terms) instead.
"""
from __future__ import annotations

import math

import numpy as np

from ..montecarlo.check import holm
from . import numbers as nb
from .estimators import _kl_grad, _kl_value, parse_estimator

__all__ = ["check", "DEFAULT_BATCHES", "DEFAULT_ALPHA"]

DEFAULT_BATCHES = 20_000
DEFAULT_ALPHA = 1e-4
_CHUNK = 2_000


def _f(x) -> float:
    return nb.as_float(x)


def _vec(v) -> np.ndarray:
    return np.array([_f(a) for a in v], dtype=float)


class _FloatPrompt:
    """One prompt's completions in float64 for one estimator."""

    def __init__(self, tb, x, spec):
        comps = tb.comps[x]
        beta = _f(tb.beta)
        self.w = np.array([_f(c.p_old if spec.clip else c.p) for c in comps])
        self.w = self.w / self.w.sum()
        self.L = np.array([c.L for c in comps], dtype=float)
        form = spec.kl_form
        kind = spec.kl.split("_")[0] if spec.kl and spec.kl != "kl_score" else None
        R = np.array([_f(c.R) for c in comps])
        if form == "reward":
            R = R - beta * np.array([sum(_f(_kl_value(kind, tk)) for tk in c.toks) for c in comps])
        self.R = R
        self.V = float(self.w @ R)
        per_len = self.L[:, None] if spec.aggregation == "seq_mean" else 1.0
        if spec.clip:
            eps = _f(tb.clip_epsilon)
            up, um = [], []
            for c in comps:
                a, b = np.zeros(tb.n), np.zeros(tb.n)
                for tk in c.toks:
                    rho = _f(tk.pi / tk.old)
                    term = rho * _vec(tk.s)
                    if rho <= 1 + eps:
                        a += term
                    if rho >= 1 - eps:
                        b += term
                up.append(a)
                um.append(b)
            self.Up, self.Um = np.array(up) / per_len, np.array(um) / per_len
        else:
            self.U = np.array([_vec(c.sigma) for c in comps]) / per_len
        self.v = None
        if form == "loss":
            self.v = np.array([sum((_vec(_kl_grad(kind, tk)) for tk in c.toks), np.zeros(tb.n)) for c in comps])
        elif form == "score":
            self.v = np.array([_f(tb.log_ratio(c)) * _vec(c.sigma) for c in comps])
        if self.v is not None:
            self.v = self.v / per_len


def _advantage(spec, r: np.ndarray, V: float, eps: float) -> np.ndarray:
    G = r.shape[1]
    a = spec.advantage
    if a == "reinforce":
        return r
    if a == "reinforce_baseline":
        return r - V
    if a == "rloo":
        return r - (r.sum(axis=1, keepdims=True) - r) / (G - 1)
    mean = r.mean(axis=1, keepdims=True)
    if a == "dr_grpo":
        return r - mean
    std = r.std(axis=1, ddof=0 if a == "grpo" else 1, keepdims=True)
    return (r - mean) / (std + eps)


def _updates(spec, fp: _FloatPrompt, idx: np.ndarray, G: int, max_length: int, beta: float, eps: float):
    """The update of each batch (rows of idx: the completions of a group)."""
    r = fp.R[idx]
    A = _advantage(spec, r, fp.V, eps)
    if spec.aggregation == "token_mean":
        c = 1.0 / fp.L[idx].sum(axis=1)
    elif spec.aggregation == "max_len":
        c = np.full(len(idx), 1.0 / (G * max_length))
    else:
        c = np.full(len(idx), 1.0 / G)
    if spec.clip:
        g = np.einsum("bg,bgn->bn", np.where(A > 0, A, 0.0), fp.Up[idx]) + \
            np.einsum("bg,bgn->bn", np.where(A < 0, A, 0.0), fp.Um[idx])
    else:
        g = np.einsum("bg,bgn->bn", A, fp.U[idx])
    if fp.v is not None:
        g = g - beta * fp.v[idx].sum(axis=1)
    return c[:, None] * g


def check(seq, result, *, tables, batches: int = DEFAULT_BATCHES, seed: int = 0, alpha: float = DEFAULT_ALPHA) -> dict:
    """Sample ``batches`` batches per estimator and test every coordinate against the exact mean.

    Fills ``result.estimators[name].monte_carlo`` and returns the summary (settings, the number of
    tests, the family-wise verdict).  Estimators that were not run, or whose variance was not
    computed, are ``inconclusive``.
    """
    G = result.group
    eps = float(result.eps)
    beta = _f(tables.beta)
    rho = np.array([_f(tables.rho[x]) for x in seq.prompts])
    rho = rho / rho.sum()
    tests = []  # (name, coordinate, p-value)
    per = {}
    for k, (name, er) in enumerate(result.estimators.items()):
        if er.status != "ok" or er.variance is None:
            er.monte_carlo = {"verdict": "inconclusive",
                              "reason": "not run" if er.status != "ok" else "no exact variance computed"}
            continue
        spec = parse_estimator(name)
        rng = np.random.default_rng([seed, k])
        fps = [_FloatPrompt(tables, x, spec) for x in seq.prompts]
        total = np.zeros(tables.n)
        scale = np.zeros(tables.n)
        done = 0
        while done < batches:
            b = min(_CHUNK, batches - done)
            which = rng.choice(len(fps), size=b, p=rho)
            for j, fp in enumerate(fps):
                m = int((which == j).sum())
                if m == 0:
                    continue
                idx = rng.choice(len(fp.w), size=(m, G), p=fp.w)
                g = _updates(spec, fp, idx, G, seq.max_length, beta, eps)
                total += g.sum(axis=0)
                scale = np.maximum(scale, np.abs(g).max(axis=0))
            done += b
        mean = total / batches
        exact = _vec(er.mean)
        var = np.maximum(_vec(er.variance), 0.0)
        se = np.sqrt(var / batches)
        z = np.zeros(tables.n)
        constants_differ = []
        for i in range(tables.n):
            diff = mean[i] - exact[i]
            if se[i] > 0:
                z[i] = diff / se[i]
                tests.append((name, i, math.erfc(abs(z[i]) / math.sqrt(2))))
            elif abs(diff) > 1e-9 * max(scale[i], abs(exact[i]), 1e-300):
                constants_differ.append(i)
        per[name] = {"batches": batches, "sample_mean": mean.tolist(), "z": z.tolist(),
                     "zero_variance": int((se == 0).sum()), "constants_differ": constants_differ}
    rejected = holm([p for _, _, p in tests], alpha) if tests else []
    bad = {}
    for (name, i, _), rej in zip(tests, rejected):
        if rej:
            bad.setdefault(name, []).append(i)
    names = seq.parameter_names
    for name, d in per.items():
        er = result.estimators[name]
        differ = sorted(set(bad.get(name, [])) | set(d["constants_differ"]))
        if differ:
            d["verdict"] = "DIFFERS"
            d["reason"] = "sample mean differs from the exact mean at " + ", ".join(names[i] for i in differ)
        elif d["zero_variance"] == tables.n:
            d["verdict"] = "consistent"
            d["reason"] = ("every coordinate has exact variance 0 (the update is the same for every batch), so no "
                           "statistical test applies: the sample mean equals the exact mean to float64 rounding "
                           "(within 1e-9 of the largest sampled update)")
        else:
            d["verdict"] = "consistent"
            d["reason"] = ""
        er.monte_carlo = d
    return {"batches": batches, "seed": seed, "alpha": alpha, "tests": len(tests),
            "test": "two-sided z with the exact standard error, Holm (1979) over every coordinate and estimator",
            "consistent": not any(er.monte_carlo and er.monte_carlo.get("verdict") == "DIFFERS"
                                  for er in result.estimators.values())}
