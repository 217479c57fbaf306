import pgverify

for text in ["0.1", "1e-3", "0.30000000000000004", "2**-2", "sigmoid(0)", "sqrt(8)"]:
    print(repr(text), "->", pgverify.parse_expression(text))
try:
    pgverify.parse_expression("__import__('os').system('echo hi')")
except pgverify.ExpressionError as exc:
    print(exc)
