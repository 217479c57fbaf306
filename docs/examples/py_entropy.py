import pgverify

case = pgverify.load_case("cases/entropy_bonus.yaml")
print(case.pi["S"]["a"])
print(case.r_written["S"]["a"]["done"])
print(case.r["S"]["a"]["done"])
