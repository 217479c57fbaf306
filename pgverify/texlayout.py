"""LaTeX that compiles and fits the page: escaped names, and long formulas broken into lines.

Used by the LaTeX writer of :mod:`pgverify.report` (it formats, never computes).  Three things
made ``derive --format latex`` fail or run off the page (the hardening issue):

* names: a state name with an accent went into math mode raw (``V(Départ)``), which LaTeX
  refuses.  Names that are not plain identifiers are set as ``\\text{...}``, escaped, and
  characters that LaTeX's T1 encoding lacks are written as their code points ``<U+03B8>``;
* ``->`` printed as "-¿" in the default OT1 encoding: the preamble loads T1 and utf8;
* long equations (overfull boxes up to 1286 pt): a sum is broken between its terms, a product
  with a long sum between the sum's terms, and a long fraction is written as N/D with N and D
  broken on their own lines.

The width of a formula is estimated from its LaTeX text (:func:`width`, in characters of about
5.5 pt at 10 pt); :data:`LINE_CHARS` is what one line of the page holds with margins of 2 cm.
"""
from __future__ import annotations

import re

import sympy

__all__ = ["PREAMBLE", "LINE_CHARS", "tex_escape", "latex", "width", "broken_lines"]

#: What the document needs: T1 (so that < > | and accented letters print as themselves), utf8 input,
#: amsmath, longtable for tables across pages, and 2 cm margins.
PREAMBLE = [r"\documentclass{article}", r"\usepackage[T1]{fontenc}", r"\usepackage[utf8]{inputenc}",
            r"\usepackage[margin=2cm]{geometry}", r"\usepackage{amsmath}", r"\usepackage{array}",
            r"\usepackage{longtable}", r"\allowdisplaybreaks", r"\sloppy"]
#: characters of a formula that one displayed line holds (17 cm at about 5.5 pt a character, less a margin)
LINE_CHARS = 70

#: Latin Extended-A letters that the T1 encoding has no glyph for (the rest of U+0100..U+017F, and all of
#: Latin-1, print with T1 and utf8: checked with pdflatex, TeX Live 2022)
_T1_MISSING = {0x126, 0x127, 0x138, 0x13F, 0x140, 0x149, 0x166, 0x167, 0x17F}
_SPECIALS = (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
             ("$", r"\$"), ("{", r"\{"), ("}", r"\}"), ("^", r"\^{}"), ("~", r"\~{}"))
_LONG_RUN = re.compile(r"\S{12,}")
_BREAK_AFTER = re.compile(r"([*+/,=)_]|->)")


def _char(c: str) -> str:
    o = ord(c)
    if c in "\n\t" or (32 <= o < 127) or (0xA0 <= o < 0x100) or (0x100 <= o < 0x180 and o not in _T1_MISSING):
        return c
    return f"<U+{o:04X}>"


def tex_escape(text: str, breaks: bool = True) -> str:
    """``text`` for LaTeX's text mode: special characters escaped, characters T1 lacks as ``<U+XXXX>``,
    and (``breaks``) break points after operators in long runs without spaces (expressions printed
    as text in a paragraph; not in formulas, where a line does not break anyway)."""
    text = "".join(_char(c) for c in text)
    if breaks:
        text = _LONG_RUN.sub(lambda m: _BREAK_AFTER.sub(lambda b: b.group(1) + "\x00", m.group(0)), text)
    for a, b in _SPECIALS:
        text = text.replace(a, b)
    return text.replace("\x00", r"\allowbreak{}")


_PLAIN_NAME = re.compile(r"[A-Za-z]+[0-9]*(_[A-Za-z0-9]+)?\Z")


def latex(expr) -> str:
    """sympy's LaTeX of ``expr``, with every symbol whose name is not a plain identifier (``p``,
    ``theta``, ``S0``, ``theta_1``) set as escaped text (a state ``Départ`` becomes ``\\text{Départ}``)."""
    if not isinstance(expr, sympy.Basic):
        return tex_escape(str(expr))
    names = {s: r"\text{" + tex_escape(s.name, breaks=False) + "}" for s in expr.atoms(sympy.Symbol)
             if not _PLAIN_NAME.match(s.name)}
    return sympy.latex(expr, symbol_names=names) if names else sympy.latex(expr)


_COMMAND = re.compile(r"\\([A-Za-z]+|.)")
_ZERO_WIDTH = {"left", "right", "bigl", "bigr", "Bigl", "Bigr", "displaystyle", "limits", "mathrm", "operatorname",
               "mathit", "mathbf", "mathcal"}
_THIN = {",", ";", ":", "!", " "}


def _group(s: str, i: int) -> tuple[str, int]:
    """The brace group starting at s[i] == '{' (its content) and the index after it; else one token."""
    if i < len(s) and s[i] == "{":
        depth, j = 0, i
        while j < len(s):
            if s[j] == "{" and (j == 0 or s[j - 1] != "\\"):
                depth += 1
            elif s[j] == "}" and s[j - 1] != "\\":
                depth -= 1
                if depth == 0:
                    return s[i + 1:j], j + 1
            j += 1
        return s[i + 1:], len(s)
    if i < len(s) and s[i] == "\\":
        m = _COMMAND.match(s, i)
        return m.group(0), m.end()
    return s[i:i + 1], i + 1


def width(tex: str) -> float:
    """The rendered width of a LaTeX formula, estimated in characters (``\\frac`` counts its wider part,
    exponents and subscripts 0.7, operators with their spacing 2)."""
    w, i = 0.0, 0
    while i < len(tex):
        c = tex[i]
        if c == "\\":
            m = _COMMAND.match(tex, i)
            name = m.group(1)
            i = m.end()
            if name in ("frac", "dfrac", "tfrac"):
                a, i = _group(tex, i)
                b, i = _group(tex, i)
                w += max(width(a), width(b)) + 0.5
            elif name in ("text", "texttt", "mathrm", "operatorname"):
                a, i = _group(tex, i)
                w += len(re.sub(r"\\[A-Za-z]+(\{\})?|[{}\\]", "", a)) * 1.1
            elif name == "sqrt":
                a, i = _group(tex, i)
                w += width(a) + 1.5
            elif name in _ZERO_WIDTH or name in _THIN:
                continue
            elif name in ("quad",):
                w += 2
            elif name in ("log", "exp", "sin", "cos", "tanh"):
                w += len(name)
            else:
                w += 1.2
        elif c in "^_":
            a, i = _group(tex, i + 1)
            w += 0.7 * width(a)
        elif c in "{} ":
            i += 1
        elif c in "+-=<>":
            w += 2.2
            i += 1
        else:
            w += 1
            i += 1
    return w


def _pieces(expr) -> list[str]:
    """``expr``'s LaTeX cut where a line may break: between the terms of a sum, and inside a product
    between the terms of its (one) long sum.  Concatenated, the pieces are a LaTeX form of ``expr``."""
    if isinstance(expr, sympy.Add):
        out = []
        for k, term in enumerate(expr.as_ordered_terms()):
            neg = term.could_extract_minus_sign()
            body = -term if neg else term
            sub = _pieces(body) if width(latex(body)) > LINE_CHARS else [_wrapped(body)]
            sign = "- " if neg else ("+ " if k else "")
            out += [sign + sub[0], *sub[1:]]
        return out
    if isinstance(expr, sympy.Mul):
        num, den = sympy.fraction(expr)
        if den == 1:
            sums = [f for f in expr.args if isinstance(f, sympy.Add)]
            if sums:
                long_sum = max(sums, key=lambda f: width(latex(f)))
                rest = sympy.Mul(*[f for f in expr.args if f is not long_sum], evaluate=False)
                coeff = "" if rest == 1 else ("-" if rest == -1 else latex(rest) + " ")
                inner = _pieces(long_sum)
                return [coeff + r"\bigl(" + inner[0], *inner[1:-1], inner[-1] + r"\bigr)"] if len(inner) > 1 else \
                    [coeff + r"\bigl(" + inner[0] + r"\bigr)"]
    return [latex(expr)]


def _wrapped(term) -> str:
    """A term of a sum as sympy prints it inside the sum (a sum inside gets parentheses)."""
    return latex(term) if not isinstance(term, sympy.Add) else r"\left(" + latex(term) + r"\right)"


def _pack(pieces: list[str], budget: float) -> list[str]:
    lines, line, w = [], "", 0.0
    for p in pieces:
        pw = width(p)
        if line and w + pw > budget:
            lines.append(line)
            line, w = "", 0.0
        line += ("" if not line else " ") + p
        w += pw
    if line:
        lines.append(line)
    return lines


def broken_lines(lhs_tex: str, expr, counter: list) -> list[str]:
    """Lines of an ``align*`` for ``lhs = expr``: one line when it fits, else broken.

    A long fraction is written ``lhs = N_k / D_k`` with the numerator and the denominator on their
    own (broken) lines; ``counter`` numbers them across a document (a one-element list).
    """
    tex = latex(expr)
    if width(tex) + width(lhs_tex) + 3 <= LINE_CHARS:
        return [f"{lhs_tex} &= {tex}"]
    num, den = sympy.fraction(expr) if isinstance(expr, sympy.Mul) else (expr, sympy.Integer(1))
    if den != 1 and not num.is_number and not den.is_number:
        counter[0] += 1
        k = counter[0]
        n_name, d_name = rf"\mathcal{{N}}_{{{k}}}", rf"\mathcal{{D}}_{{{k}}}"
        return ([f"{lhs_tex} &= \\frac{{{n_name}}}{{{d_name}}}, \\quad\\text{{where}}"]
                + broken_lines(n_name, num, counter) + broken_lines(d_name, den, counter))
    lines = _pack(_pieces(expr), LINE_CHARS - 4)
    return [f"{lhs_tex} &= {lines[0]}"] + [f"&\\quad {line}" for line in lines[1:]]
