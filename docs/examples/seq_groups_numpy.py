import numpy as np

from pgverify.testing import BiasDetected, assert_unbiased

CASE = "cases/seq_length_bias.yaml"  # logits {A: x, eos: stop}; parameters (x, stop)


def scores(batch):
    """d log pi(o_t) / d(x, stop) of every token: one-hot of the token minus pi (softmax)."""
    idx = {t: i for i, t in enumerate(batch.vocabulary)}
    logits = np.zeros(len(batch.vocabulary))
    logits[idx["A"]], logits[idx["eos"]] = batch.theta["x"], batch.theta["stop"]
    pi = np.exp(logits) / np.exp(logits).sum()
    tok = np.where(batch.mask, batch.tokens, 0)
    s = np.stack([(tok == idx[t]) - pi[idx[t]] for t in ("A", "eos")], axis=-1)
    return s * batch.mask[..., None]  # (B groups, G, max_length, 2)


def rloo(batch):
    r = batch.rewards  # (B, G)
    G = r.shape[1]
    adv = r - (r.sum(1, keepdims=True) - r) / (G - 1)
    return np.einsum("bg,bgn->bn", adv, scores(batch).sum(2)) / G  # one update per group


def grpo(batch):
    r = batch.rewards
    adv = (r - r.mean(1, keepdims=True)) / (r.std(1, keepdims=True) + 1e-6)
    per_sequence = scores(batch).sum(2) / batch.lengths[..., None]  # GRPO's 1/|o|
    return np.einsum("bg,bgn->bn", adv, per_sequence) / r.shape[1]


print(assert_unbiased(rloo, CASE, episodes=4000, group=8).format())
try:
    assert_unbiased(grpo, CASE, episodes=4000, group=8)
except BiasDetected as failure:
    print(failure)
print(assert_unbiased(grpo, CASE, episodes=4000, group=8, expected="grpo+seq_mean").format())
