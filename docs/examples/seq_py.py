import pgverify

# 1. The file as a sequence case, and as the MDP that every engine reads
seq = pgverify.load_sequence_case("cases/seq_kl_reference.yaml")
print(seq)
print(seq.completions("p1")[:4], len(seq.completions("p1")))
print(seq.policy[("p1", ("A",))]["B"], seq.reference[("p1", ())]["A"], seq.reward[("p2", ("A", "B", "eos"))])
case = pgverify.load_case("cases/seq_kl_reference.yaml")
print(case.states[:4], case.P["p1:A"]["B"], case.sequence.beta)

# 2. From a dict (kind may be left out)
coin = pgverify.SequenceCase.from_dict({
    "name": "coin", "parameters": {"w": 0}, "vocabulary": ["A"], "max_length": 1,
    "logits": {"A": "w"}, "reward": {"A": 1},
})
res = pgverify.check(coin.to_case())
print(res.objective.value, res.gradient["w"].value)
