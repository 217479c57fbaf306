import sympy
import pgverify

# 1. From a file
case = pgverify.load_case("cases/short_corridor.yaml")
print(case)
print(case.parameters, case.point)

# 2. From a dict: numbers, strings in the expression language, or sympy expressions
p = sympy.Symbol("p")                     # matched to the declared parameter p by name
coin = pgverify.Case.from_dict({
    "name": "coin",
    "parameters": {"p": 0.25},             # a float is read as the decimal it prints: 1/4
    "states": ["S", "G"], "terminal": ["G"], "actions": ["stop", "go"],
    "start": "S",
    "policy": {"S": {"stop": 1 - p, "go": p}},
    "transitions": {"S": {"stop": "G", "go": "G"}},
    "rewards": {"S": {"go": "3*p"}},
})
res = pgverify.check(coin)
print(res.objective.expression, res.objective.value, res.gradient["p"].value, res.verified, res.proof)

# 3. The same case at another point (validated again)
half = coin.at({"p": "1/2"})
print(half.point, coin.point)
print(pgverify.check(half).objective.value)

# 4. Problems come back as one CaseFileError with structured fields
try:
    coin.at({"p": 2})
except pgverify.CaseFileError as exc:
    print(exc)
    first = exc.problems[0]
    print(first.key, first.line, first.given, first.message)
