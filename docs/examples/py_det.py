import pgverify

case = pgverify.load_case("cases/deterministic_policy.yaml")
print(case.policy_form, case.actions)
print(case.mu)
print(case.P_of_a["S0"])
print(case.P["S0"])
print(case.r["S1"])
