"""An independent brute force for the tests: every ordered group of G completions, the update of
each computed from the estimators' definitions, with sympy's own derivatives for the scores."""
from __future__ import annotations

import itertools

import flint
import numpy as np
import sympy

from pgverify.sequence import numbers as nb


def _q(x):
    x = sympy.nsimplify(x)
    assert x.is_Rational, x
    return flint.fmpq(int(x.p), int(x.q))


def completion_table(seq, point=None):
    """Per prompt: list of dicts (o, p, sigma, token scores, token pi/ref/old) from sympy."""
    point = seq.point if point is None else point
    out = {}
    for x in seq.prompts:
        rows = []
        for o in seq.completions(x):
            toks = []
            for t in range(len(o)):
                e = seq.policy[(x, o[:t])][o[t]]
                s = np.array([_q(sympy.diff(sympy.log(e), th).xreplace(point)) for th in seq.parameters], dtype=object)
                pi = _q(e.xreplace(point))
                ref = _q(seq.reference[(x, o[:t])][o[t]]) if seq.reference else None
                old = _q(e.xreplace(seq.old_point)) if seq.old_point else None
                toks.append({"s": s, "pi": pi, "ref": ref, "old": old})
            p = flint.fmpq(1)
            for tk in toks:
                p *= tk["pi"]
            p_old = None
            if seq.old_point:
                p_old = flint.fmpq(1)
                for tk in toks:
                    p_old *= tk["old"]
            rows.append({"o": o, "p": p, "p_old": p_old, "sigma": sum((tk["s"] for tk in toks[1:]), toks[0]["s"]),
                         "toks": toks, "R": _q(seq.reward[(x, o)]), "L": len(o)})
        out[x] = rows
    return out


def advantages(adv, r, V, eps):
    G = len(r)
    mean = sum(r, flint.fmpq(0)) / G
    if adv == "reinforce":
        return list(r)
    if adv == "reinforce_baseline":
        return [ri - V for ri in r]
    if adv == "rloo":
        return [ri - (sum(r, flint.fmpq(0)) - ri) / (G - 1) for ri in r]
    if adv == "dr_grpo":
        return [ri - mean for ri in r]
    ss = sum(((ri - mean) ** 2 for ri in r), flint.fmpq(0))
    std = nb.sqrt(ss / G if adv == "grpo" else ss / (G - 1))
    return [(ri - mean) / (std + eps) for ri in r]


def brute_moments(seq, advantage, aggregation, G, *, eps=flint.fmpq(1, 10**6), kl=None, clip=False, table=None):
    """(mean, second moment) of one batch over every ordered group; kl in (None, 'k1_loss',
    'k3_loss'); clip: samples from theta_old, the clipped surrogate's gradient per token."""
    tab = table or completion_table(seq)
    n = len(seq.parameters)
    beta = _q(seq.beta)
    e_clip = _q(seq.clip_epsilon) if clip else None
    mean, second = nb.zeros(n), nb.zeros(n)
    with nb.working_precision():
        for x in seq.prompts:
            rows = tab[x]
            w = [rw["p_old"] if clip else rw["p"] for rw in rows]
            V = sum((wi * rw["R"] for wi, rw in zip(w, rows)), flint.fmpq(0))
            m_x, s_x = nb.zeros(n), nb.zeros(n)
            for grp in itertools.product(range(len(rows)), repeat=G):
                P = flint.fmpq(1)
                for i in grp:
                    P *= w[i]
                if P == 0:
                    continue
                r = [rows[i]["R"] for i in grp]
                A = advantages(advantage, r, V, eps)
                lens = [rows[i]["L"] for i in grp]
                g = nb.zeros(n)
                for j, i in enumerate(grp):
                    rw = rows[i]
                    for tk in rw["toks"]:
                        if clip:
                            rho = tk["pi"] / tk["old"]
                            unclipped = (A[j] > 0 and rho <= 1 + e_clip) or (A[j] < 0 and rho >= 1 - e_clip)
                            term = A[j] * rho * tk["s"] if unclipped else nb.zeros(n)
                        else:
                            term = A[j] * tk["s"]
                        if kl == "k1_loss":
                            term = term - beta * tk["s"]
                        elif kl == "k3_loss":
                            term = term - beta * (1 - tk["ref"] / tk["pi"]) * tk["s"]
                        if aggregation == "sum":
                            g = g + term / G
                        elif aggregation == "seq_mean":
                            g = g + term / (G * rw["L"])
                        elif aggregation == "token_mean":
                            g = g + term / sum(lens)
                        else:
                            g = g + term / (G * seq.max_length)
                m_x = m_x + P * g
                s_x = s_x + P * g * g
            rx = _q(seq.prompt_probs[x])
            mean = mean + rx * m_x
            second = second + rx * s_x
    return mean, second
