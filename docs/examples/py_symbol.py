import sympy
import pgverify

q = sympy.Symbol("q")                       # a plain symbol: matched to the parameter 'q' by name
pi = sympy.Symbol("pi")                     # the special name pi of a reward, also by name
coin = {
    "name": "coin", "parameters": {"q": "1/2"},
    "states": ["S", "G"], "terminal": ["G"], "actions": ["stop", "go"], "start": "S",
    "policy": {"S": {"stop": 1 - q, "go": q}},
    "transitions": {"S": {"stop": "G", "go": "G"}},
    "rewards": {"S": {"go": 1 - sympy.log(pi)}},
}
case = pgverify.Case.from_dict(coin)
print(case.pi["S"], case.r["S"]["go"], case.symbol("q").is_real)
print(pgverify.check(case).gradient["q"].value)

coin["rewards"] = {"S": {"go": 2 * sympy.Symbol("bonus")}}   # a name that is not declared
try:
    pgverify.Case.from_dict(coin)
except pgverify.CaseFileError as exc:
    print(exc)
