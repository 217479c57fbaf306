import pgverify

case = pgverify.load_case("docs/examples/rewards_demo.yaml")
for s in case.nonterminal:
    for a in case.actions[s]:
        print(s, a, case.r[s][a])
