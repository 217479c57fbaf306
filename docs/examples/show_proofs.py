import json, sys

d = json.load(sys.stdin)
print("mode:", d["mode"], "| proof:", d["proof"], "| tolerance:", d["tolerance"], "| verified:", d["verified"])
for c in d["comparisons"]:
    diff = c["difference"]
    shown = "below 1e-50" if 0 < diff < 1e-50 else diff  # rounding residue of 60-digit arithmetic
    print(" ", " vs ".join(c["engines"]), c["quantity"], c["ok"], c["proof"], shown)
