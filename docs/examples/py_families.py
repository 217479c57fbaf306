import pgverify

res = pgverify.check("docs/examples/all_families.yaml")
print("J =", res.objective.expression, "=", res.objective.value)
print("dJ/dp =", res.gradient["p"].expression, "=", res.gradient["p"].value)
for name, engine in res.engines.items():
    parts = {f: str(res.algebra.at_point(x[0])[0]) for f, x in engine.families.items()}
    print(name, parts)
