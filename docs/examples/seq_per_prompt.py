"""The expected update of each estimator on each prompt of cases/seq_difficulty_bias.yaml alone.

The case's data with all the weight on one prompt (a prompt of probability 0 is allowed) gives that
prompt's exact expected update; rloo's is the gradient of the prompt's success rate q_x.
"""
import yaml

import pgverify
from pgverify.sequence import analyse
from pgverify.sequence.numbers import as_text, working_precision

data = yaml.safe_load(open("cases/seq_difficulty_bias.yaml"))
names = ["rloo", "dr_grpo", "grpo", "grpo_sample_std", "grpo+seq_mean"]
for prompt in data["prompts"]:
    one = dict(data, prompts={x: int(x == prompt) for x in data["prompts"]})
    res = analyse(pgverify.SequenceCase.from_dict(one), names, variance=False, jacobian=False)
    print(f"prompt {prompt}: success rate E[R|x] = {res.objective.expected_reward}")
    for name, est in res.estimators.items():
        print(f"  {name:16} d/dw: {as_text(est.mean[0])}")
    rloo = res.estimators["rloo"].mean[0]
    with working_precision():
        weight = res.estimators["grpo"].mean[0] / rloo
    print(f"  weight of the prompt in grpo (grpo / rloo): {as_text(weight)}")
