r"""``assert_unbiased`` on a sequence case: a user's LLM policy-gradient loss against the exact gradient.

pgverify samples batches the way GRPO-style trainers do (a prompt x ~ rho, then a group of G
completions drawn i.i.d. from p_theta(.|x), or from p_theta_old with ``stale=True``), hands them
to the user's estimator as a :class:`GroupBatch` (many groups at once, as arrays), and tests, per
parameter, the mean of the returned per-group updates against the exact target:

.. math::

    z_i = \frac{\bar g_i - t_i}{s_i / \sqrt{N}},

with N groups, s_i the sample standard deviation of the per-group updates, two-sided normal
p-values and Holm's step-down procedure (Holm 1979) at family-wise level ``alpha`` (default
:data:`pgverify.montecarlo.check.ALPHA` = 1e-4, as ``pgverify check``).  The target t is the
exact gradient of the case's objective, E[R] - beta KL(p_theta || p_ref)
(:func:`pgverify.sequence.objective.objective`), or with ``expected=NAME`` the exact expected
update of pgverify's estimator NAME (to pin what a loss computes, biased or not).  As in
``pgverify check``, a parameter whose deviations are carried by fewer than
:data:`~pgverify.montecarlo.check.NEFF_MIN` effective groups is not tested (inconclusive).

Diagnosis: the user's per-group updates are compared, on the same groups, with every estimator
pgverify knows (:func:`pgverify.sequence.estimators.parse_estimator` names) and with its
negative; a match is named with its exact mean and bias
(:func:`pgverify.sequence.estimators.analyse`).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError
from ..montecarlo.check import ALPHA, NEFF_MIN, effective_episodes, holm
from ..sequence import numbers as nb
from ..sequence.estimators import ADVANTAGES, AGGREGATIONS, DEFAULT_EPS, KL_TERMS, analyse, parse_estimator
from ..sequence.objective import SequenceTables, has_kl, objective
from ..sequence.sampling import _FloatPrompt, _updates
from .gradient import HelperInputError

__all__ = ["GroupBatch", "GroupReport", "assert_unbiased_groups"]

#: Relative tolerance of a match with one of pgverify's estimators (float32 implementations pass).
MATCH_RTOL = 1e-5
#: Groups handed to the estimator per call.
CHUNK = 2_000


@dataclass(frozen=True)
class GroupBatch:
    """B groups of G completions, as arrays (B groups, G completions, up to ``max_length`` tokens).

    Attributes
    ----------
    prompts : ndarray of int, shape (B,)
        Index of each group's prompt in ``prompt_names``.
    tokens : ndarray of int, shape (B, G, max_length)
        Token indices into ``vocabulary``; -1 after the completion's end.
    lengths : ndarray of int, shape (B, G)
        |o|, the number of tokens of each completion (the end token included when written).
    rewards : ndarray of float, shape (B, G)
        R(x, o) of each completion.
    ref_logprobs, old_logprobs : ndarray of float, shape (B, G, max_length), or None
        log pi_ref and log pi_theta_old of each token (0 after the end); None when the case has no
        reference / no stale point.
    theta : dict
        Parameter name -> value (float) at the point.
    """

    prompts: np.ndarray
    prompt_names: tuple
    tokens: np.ndarray
    lengths: np.ndarray
    rewards: np.ndarray
    ref_logprobs: np.ndarray | None
    old_logprobs: np.ndarray | None
    vocabulary: tuple
    eos: int
    max_length: int
    beta: float
    theta: dict
    parameters: tuple

    @property
    def mask(self) -> np.ndarray:
        """True where a token exists, shape (B, G, max_length)."""
        return self.tokens >= 0

    def completion(self, b: int, g: int) -> tuple:
        """The token names of completion g of group b."""
        return tuple(self.vocabulary[t] for t in self.tokens[b, g] if t >= 0)


@dataclass
class GroupReport:
    """What :func:`assert_unbiased_groups` found; ``format()`` is the failure message."""

    case: str
    parameters: list
    groups: int
    group: int
    seed: int
    alpha: float
    target_name: str  # "the gradient of J" or "the expected update of NAME"
    target: np.ndarray
    target_exact: list  # exact texts
    sample_mean: np.ndarray
    stderr: np.ndarray
    z: np.ndarray
    p: np.ndarray
    rejected: list
    inconclusive: list
    effective_groups: np.ndarray
    passed: bool
    matches: list = field(default_factory=list)  # (name, sign, exact mean texts, exact bias texts, bias floats)

    def format(self) -> str:
        head = ("the estimator's mean differs from " + self.target_name if not self.passed else
                "the sample cannot test every parameter" if self.inconclusive else
                "the estimator's mean is consistent with " + self.target_name)
        lines = [f"assert_unbiased: {head} of {self.case!r}",
                 f"  {self.groups} groups of {self.group}, seed {self.seed}; two-sided z with the sample's standard "
                 f"error, Holm (1979) over {len(self.parameters)} parameters at alpha {self.alpha:g}"]
        lines.append(f"  {'parameter':<16} {'target':>12} {'sample mean':>12} {'stderr':>10} {'z':>8}  verdict")
        for i, name in enumerate(self.parameters):
            verdict = ("REJECTED" if i in self.rejected else "inconclusive" if i in self.inconclusive else "ok")
            lines.append(f"  {name:<16} {self.target[i]:>12.6g} {self.sample_mean[i]:>12.6g} {self.stderr[i]:>10.3g} "
                         f"{self.z[i]:>8.2f}  {verdict}")
        if self.inconclusive:
            lines.append(f"  inconclusive: fewer than {NEFF_MIN} effective groups carry the deviations of "
                         + ", ".join(f"{self.parameters[i]} (n_eff {self.effective_groups[i]:.0f})"
                                     for i in self.inconclusive))
        for name, sign, mean, bias, bias_f in self.matches:
            label = name if sign > 0 else f"minus {name}"
            lines.append(f"  your estimator equals pgverify's {label} on every group; its exact mean is "
                         f"[{', '.join(mean)}] and its exact bias against the gradient of J is "
                         f"[{', '.join(f'{b:.6g}' for b in bias_f)}]")
        if not self.matches:
            lines.append("  your estimator equals none of pgverify's sequence estimators on these groups")
        return "\n".join(lines)


def _known_names(seq, stale: bool) -> list[str]:
    kls = [None] + (list(KL_TERMS) if has_kl(seq) else [])
    out = []
    for adv, agg, kl in itertools.product(ADVANTAGES, AGGREGATIONS, kls):
        if stale and kl is not None and not kl.endswith("_loss"):
            continue
        name = "+".join([adv, agg] + ([kl] if kl else []) + (["clip"] if stale else []))
        out.append(name)
    return out


def _as_updates(value, B: int, params) -> np.ndarray:
    n = len(params)
    if isinstance(value, dict):
        unknown = [k for k in value if k not in params]
        if unknown:
            raise HelperInputError("the estimator's dict names unknown parameters", "estimator output",
                                   ", ".join(map(str, unknown)), f"Use the case's parameters: {', '.join(params)}")
        value = np.stack([np.asarray(_numpy(value.get(p, np.zeros(B))), dtype=float).reshape(B) for p in params],
                         axis=1)
    arr = np.asarray(_numpy(value), dtype=float)
    if arr.shape == (B,) and n == 1:
        arr = arr[:, None]
    if arr.shape != (B, n):
        raise HelperInputError("the estimator must return one update per group", "estimator output",
                               f"shape {arr.shape}", f"Return an array of shape (B, n) = ({B}, {n}): one row per "
                               "group of the GroupBatch, in the case's parameter order")
    if not np.all(np.isfinite(arr)):
        raise HelperInputError("the estimator returned non-finite values", "estimator output",
                               f"{int((~np.isfinite(arr)).sum())} non-finite entries", "Check for log(0) or 0/0")
    return arr


def _numpy(x):
    if hasattr(x, "detach"):  # a torch tensor
        return x.detach().cpu().numpy()
    return x


def assert_unbiased_groups(estimator, seq, *, groups: int = 20_000, group: int = 8, seed: int = 0,
                           alpha: float = ALPHA, stale: bool = False, expected: str | None = None,
                           eps=None, allow_inconclusive: bool = False) -> GroupReport:
    r"""Assert that a per-group estimator's mean is the exact gradient of a sequence case's objective.

    Parameters
    ----------
    estimator : callable
        ``estimator(batch) -> updates``: ``batch`` a :class:`GroupBatch` of B groups, the result one
        update (the ascent direction, e.g. minus the gradient of a loss) per group, shape (B, n) in the
        case's parameter order (numpy, lists or torch tensors), or a dict parameter name -> (B,).
    seq : SequenceCase
    groups : int
        How many groups to sample in all (the test's units).
    group : int
        G, the completions of one group.
    stale : bool
        Sample from theta_old (the case's ``stale`` point) and fill ``old_logprobs``, for clipped
        surrogates; the target stays the gradient at theta.
    expected : str, optional
        Test against the exact expected update of pgverify's estimator of that name instead of the
        gradient (e.g. ``"grpo+seq_mean"``: pins what a GRPO loss computes).
    eps
        GRPO's eps for ``expected`` and the diagnosis (default that of :func:`pgverify.sequence.analyse`).

    Raises
    ------
    pgverify.testing.BiasDetected
        When Holm's procedure rejects some parameter (the message names the matching estimator).
    pgverify.testing.SampleInconclusive
        When nothing is rejected but some parameter could not be tested (unless ``allow_inconclusive``).
    """
    from .unbiased import BiasDetected, SampleInconclusive

    if not callable(estimator):
        raise HelperInputError("the estimator must be callable", "estimator", repr(estimator)[:60],
                               "Pass a function batch -> updates")
    if groups < 100 or group < 1:
        raise UsageError(f"assert_unbiased on a sequence case needs at least 100 groups of at least 1 completion "
                         f"(given groups={groups}, group={group})")
    if stale and (seq.old_point is None or seq.clip_epsilon is None):
        raise UsageError(f"stale=True needs the case's 'stale' point and 'clip' ({seq.name!r} has none)")
    kw = {} if eps is None else {"eps": eps}
    tb = SequenceTables(seq)
    obj = objective(seq, tb)
    if expected is None:
        target_exact, target_name = obj.gradient, "the gradient of J"
    else:
        res = analyse(seq, [expected], group=group, variance=False, jacobian=False, **kw).estimators[expected]
        if res.status != "ok":
            raise UsageError(f"pgverify cannot compute the expected update of {expected!r}: {res.reason}")
        target_exact, target_name = res.mean, f"the expected update of {expected}"
    target = np.array([nb.as_float(a) for a in target_exact])
    params = tuple(seq.parameter_names)
    n, L = len(params), seq.max_length
    vocab = tuple(seq.vocabulary)
    tok_index = {t: i for i, t in enumerate(vocab)}
    # per prompt: the completions as arrays
    per = []
    for x in seq.prompts:
        comps = tb.comps[x]
        w = np.array([nb.as_float(c.p_old if stale else c.p) for c in comps])
        toks = np.full((len(comps), L), -1, dtype=np.int64)
        ref = np.zeros((len(comps), L)) if seq.reference is not None else None
        old = np.zeros((len(comps), L)) if stale else None
        for k, c in enumerate(comps):
            for t, tk in enumerate(c.toks):
                toks[k, t] = tok_index[c.tokens[t]]
                if ref is not None:
                    ref[k, t] = math.log(nb.as_float(tk.ref))
                if old is not None:
                    old[k, t] = math.log(nb.as_float(tk.old))
        per.append({"w": w / w.sum(), "tokens": toks, "lengths": np.array([c.L for c in comps]),
                    "rewards": np.array([nb.as_float(c.R) for c in comps]), "ref": ref, "old": old})
    rho = np.array([nb.as_float(tb.rho[x]) for x in seq.prompts])
    rho = rho / rho.sum()
    rng = np.random.default_rng(seed)
    theta = {p: float(seq.point[s]) for p, s in zip(params, seq.parameters)}
    known = _known_names(seq, stale)
    specs = {nm: parse_estimator(nm) for nm in known}
    fps = {nm: [_FloatPrompt(tb, x, specs[nm]) for x in seq.prompts] for nm in known}
    beta = nb.as_float(tb.beta)
    geps = float(nb.as_float(DEFAULT_EPS if eps is None else _eps(eps)))
    still = {(nm, s) for nm in known for s in (1, -1)}
    units = np.empty((groups, n))
    done = 0
    while done < groups:
        B = min(CHUNK, groups - done)
        which = rng.choice(len(per), size=B, p=rho)
        idx = np.empty((B, group), dtype=np.int64)
        for j, d in enumerate(per):
            m = which == j
            if m.any():
                idx[m] = rng.choice(len(d["w"]), size=(int(m.sum()), group), p=d["w"])
        pick = lambda key: None if per[0][key] is None else np.stack(  # noqa: E731
            [per[which[b]][key][idx[b]] for b in range(B)])
        batch = GroupBatch(which, tuple(seq.prompts), pick("tokens"), pick("lengths"), pick("rewards"),
                           pick("ref"), pick("old"), vocab, tok_index[seq.eos], L, beta, dict(theta), params)
        out = _as_updates(estimator(batch), B, params)
        units[done:done + B] = out
        # diagnosis on the same groups
        for nm in {k for k, _ in still}:
            mine = np.empty((B, n))
            for j, fp in enumerate(fps[nm]):
                m = which == j
                if m.any():
                    mine[m] = _updates(specs[nm], fp, idx[m], group, L, beta, geps)
            scale = MATCH_RTOL * max(1.0, float(np.abs(mine).max()))
            for s in (1, -1):
                if (nm, s) in still and float(np.abs(out - s * mine).max()) > scale:
                    still.discard((nm, s))
        done += B
    mean = units.mean(axis=0)
    sd = units.std(axis=0, ddof=1)
    se = sd / math.sqrt(groups)
    neff = effective_episodes(units, target)
    z = np.zeros(n)
    p = np.ones(n)
    tested, inconclusive = [], []
    for i in range(n):
        if se[i] == 0:
            z[i] = 0.0 if abs(mean[i] - target[i]) <= 1e-9 * max(1.0, abs(target[i])) else math.inf
            p[i] = 1.0 if z[i] == 0 else 0.0
            tested.append(i)
        elif neff[i] < NEFF_MIN:
            inconclusive.append(i)
        else:
            z[i] = (mean[i] - target[i]) / se[i]
            p[i] = math.erfc(abs(z[i]) / math.sqrt(2))
            tested.append(i)
    rej = holm([p[i] for i in tested], alpha) if tested else []
    rejected = [i for i, r in zip(tested, rej) if r]
    matches = []
    for nm, s in sorted(still, key=lambda t: (known.index(t[0]), -t[1])):
        r = analyse(seq, [nm], group=group, variance=False, jacobian=False, **kw).estimators[nm]
        if r.status == "ok":
            mean_t = [nb.as_text(s * a) for a in r.mean]
            bias = [s * a - g for a, g in zip(r.mean, obj.gradient)]
            matches.append((nm, s, mean_t, [nb.as_text(b) for b in bias], [nb.as_float(b) for b in bias]))
        if len(matches) >= 3:
            break
    report = GroupReport(seq.name, list(params), groups, group, seed, alpha, target_name, target,
                         [nb.as_text(a) for a in target_exact], mean, se, z, p, rejected, inconclusive, neff,
                         not rejected, matches)
    if rejected:
        raise BiasDetected(report)
    if inconclusive and not allow_inconclusive:
        raise SampleInconclusive(report)
    return report


def _eps(eps):
    from ..sequence.estimators import _parse_eps

    import flint

    return flint.fmpq(eps) if isinstance(eps, int) else (eps if isinstance(eps, flint.fmpq) else _parse_eps(eps))
