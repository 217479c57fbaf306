"""Test a GRPO loss written in PyTorch against pgverify's exact numbers (docs/llm-estimators.md).

The loss is GRPO's as trainers write it: group-normalised advantages (r - mean) / (std + eps), each
completion's token log-probabilities averaged over its length (1/|o|), the mean over the group.
assert_unbiased hands it batches of groups (a GroupBatch: prompts, tokens, lengths, rewards as
arrays) and compares the mean of minus the loss's gradient with pgverify's exact targets.
"""
import numpy as np
import torch

from pgverify.testing import BiasDetected, GroupBatch, assert_unbiased

CASE = "cases/seq_length_bias.yaml"  # logits {A: x, eos: stop}; the right answer is 'A eos'


def grpo_update(batch: GroupBatch):
    """One update per group: minus the gradient of that group's GRPO loss, shape (B, 2)."""
    idx = {t: i for i, t in enumerate(batch.vocabulary)}
    tokens = torch.as_tensor(np.where(batch.mask, batch.tokens, 0))
    mask = torch.as_tensor(batch.mask, dtype=torch.float64)
    r = torch.as_tensor(batch.rewards)
    adv = (r - r.mean(1, keepdim=True)) / (r.std(1, unbiased=False, keepdim=True) + 1e-6)
    lengths = torch.as_tensor(batch.lengths, dtype=torch.float64)

    def losses(theta):  # one loss per group
        logits = torch.zeros(len(batch.vocabulary), dtype=torch.float64)
        logits = logits.index_put((torch.tensor([idx["A"], idx["eos"]]),), theta)
        logp = torch.log_softmax(logits, 0)
        per_sequence = (logp[tokens] * mask).sum(2) / lengths  # the 1/|o| of GRPO
        return -(adv * per_sequence).mean(1)

    theta = torch.tensor([batch.theta["x"], batch.theta["stop"]], dtype=torch.float64)
    return -torch.autograd.functional.jacobian(losses, theta, vectorize=True)


# 1. Is it an unbiased estimate of grad J?  No: the message says which estimator it is, and its exact bias.
try:
    assert_unbiased(grpo_update, CASE, episodes=4000, group=8)
except BiasDetected as exc:
    print(exc)

# 2. Is it GRPO as pgverify defines it?  Pin it with expected=: the test passes.
report = assert_unbiased(grpo_update, CASE, episodes=4000, group=8, expected="grpo+seq_mean")
print()
print(f"expected='grpo+seq_mean': passed = {report.passed}")
for name, exact, mean, z in zip(report.parameters, report.target_exact, report.sample_mean, report.z):
    print(f"  {name:5} exact {exact}  sample mean {mean:.6f}  z {z:+.2f}")
