"""pgverify derive: the derivation in text, Markdown and LaTeX, with each family's fate."""
import shutil
import subprocess

import pytest
from click.testing import CliRunner

import pgverify
from pgverify.cli import main
from pgverify.derivation import derive
from pgverify.report import render

from .conftest import CASE_FILES, CASES


@pytest.fixture(scope="module")
def derivations():
    return {p.stem: derive(pgverify.load_case(p)) for p in CASE_FILES}


@pytest.mark.parametrize("fmt", ["text", "markdown", "latex"])
@pytest.mark.parametrize("name", [p.stem for p in CASE_FILES])
def test_renders_every_case(derivations, name, fmt):
    d = derivations[name]
    out = render(d, fmt)
    for section in ("The objective through the Bellman recursion", "The differentiated recursion",
                    "The trajectory view", "The occupancy form", "agreement of the three engines"):
        assert section in out
    for family, fate in d.fates.items():
        assert fate in out
    assert "verified: True" in out
    if fmt == "markdown":
        assert "$" in out and "\\begin{document}" not in out
    if fmt == "latex":
        assert out.startswith("\\documentclass") and out.rstrip().endswith("\\end{document}")


def test_the_three_textbook_cases(derivations):
    assert derivations["short_corridor"].fates == {
        "start": "vanishes pointwise", "policy": "remains", "dynamics": "vanishes pointwise",
        "reward": "vanishes pointwise"}
    assert derivations["entropy_bonus"].fates["reward"] == "vanishes in expectation"
    text = render(derivations["entropy_bonus"], "text")
    assert "Yet its contribution to grad J is identically zero" in text and "grad sum_a pi(a|s)" in text
    det = derivations["deterministic_policy"]
    assert det.fates["policy"] == "vanishes pointwise"
    assert det.fates["dynamics"] == det.fates["reward"] == "remains"
    text = render(det, "text")
    assert "The policy is deterministic: pi has no score function" in text
    assert "Equal to the dynamics + reward families: True (proof: symbolic)" in text


def test_trajectory_table_is_exact(derivations):
    rows = derivations["deterministic_policy"].trajectories
    assert [r.path for r in rows] == ["S0 -> S1 -> fail", "S0 -> S1 -> goal", "S0 -> fail"]
    assert sum(r.p for r in rows).simplify() == 1  # the probabilities of all trajectories add up to 1
    assert str(rows[2].R) == "-1/8"  # one step with a = k = 1/2: reward -a^2/2


def test_latex_parses(derivations):
    pylatexenc = pytest.importorskip("pylatexenc.latexwalker")
    for d in derivations.values():
        walker = pylatexenc.LatexWalker(render(d, "latex"), tolerant_parsing=False)
        nodes, _, _ = walker.get_latex_nodes()
        assert any(getattr(n, "environmentname", None) == "document" for n in nodes)


@pytest.mark.skipif(shutil.which("pdflatex") is None,
                    reason="pdflatex is not installed (apt-get install texlive-latex-base; .ci/run does)")
@pytest.mark.parametrize("name", [p.stem for p in CASE_FILES])
def test_latex_compiles(derivations, name, tmp_path):
    tex = tmp_path / f"{name}.tex"
    tex.write_text(render(derivations[name], "latex"))
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / f"{name}.pdf").exists()
    assert _overfull(tmp_path / f"{name}.log") <= OVERFULL_TOLERANCE_PT


#: the widest overfull box allowed in a compiled derivation (pt); the hardening issue saw 1286 pt
OVERFULL_TOLERANCE_PT = 5.0


def _overfull(log) -> float:
    import re

    text = log.read_text(errors="replace")
    return max((float(x) for x in re.findall(r"Overfull \\[hv]box \(([0-9.]+)pt too", text)), default=0.0)


ACCENTED = """name: café-corridor
description: États accentués, "quotes" & a -> arrow, 100% sure_ok, θ and 中
parameters: {p: 1/2}
states: [Départ, Milieu_é, Fin]
terminal: [Fin]
actions: [gauche, droite]
start: Départ
discount: 9/10
policy:
  Départ: {gauche: 1 - p, droite: p}
  Milieu_é: {gauche: 1 - p, droite: p}
transitions:
  Départ: {gauche: Départ, droite: Milieu_é}
  Milieu_é: {gauche: Départ, droite: Fin}
rewards:
  default: -1
"""
#: the deterministic case with rewards -sqrt(a): gradients of about 1500 characters of LaTeX
LONG = (CASES / "deterministic_policy.yaml").read_text().replace("default: -a**2/2", "default: -sqrt(a)")


def test_latex_escapes_names_and_sets_the_preamble(tmp_path):
    """An accented state name went into math mode raw (LaTeX refuses it), and without T1 '->' printed
    as '-¿': names that are not plain identifiers are \\text{...}, characters T1 lacks are code points."""
    path = tmp_path / "cafe.yaml"
    path.write_text(ACCENTED, encoding="utf-8")
    out = render(derive(pgverify.load_case(path)), "latex")
    assert "\\usepackage[T1]{fontenc}" in out and "\\usepackage[utf8]{inputenc}" in out
    assert "V{\\left(\\text{Départ} \\right)}" in out and "\\text{Milieu\\_é}" in out
    assert "<U+03B8>" in out and "<U+4E2D>" in out and "θ" not in out and "中" not in out
    assert "\\& a -> arrow, 100\\% sure\\_ok" in out


def test_long_formulas_are_broken_into_lines():
    """A sum of 40 terms: every line of the align fits the page's estimated width, and the numerator and
    the denominator of a long fraction get their own lines (N_1, D_1)."""
    import sympy

    from pgverify.texlayout import LINE_CHARS, broken_lines, width

    x, y = sympy.symbols("x y")
    long_sum = sum(sympy.Integer(k) * x**k * sympy.exp(k * y) for k in range(1, 41))
    lines = broken_lines("J", long_sum, [0])
    assert len(lines) > 5 and all(width(line) <= LINE_CHARS + 8 for line in lines)
    lines = broken_lines("J", long_sum / (1 + long_sum), [0])
    assert lines[0] == "J &= \\frac{\\mathcal{N}_{1}}{\\mathcal{D}_{1}}, \\quad\\text{where}"
    assert any(line.startswith("\\mathcal{D}_{1} &=") for line in lines)
    assert broken_lines("J", x + y, [0]) == ["J &= x + y"]


@pytest.mark.skipif(shutil.which("pdflatex") is None,
                    reason="pdflatex is not installed (apt-get install texlive-latex-base; .ci/run does)")
@pytest.mark.parametrize("text", [ACCENTED, LONG], ids=["accented-names", "long-formulas"])
def test_hostile_latex_compiles_within_the_page(text, tmp_path):
    path = tmp_path / "case.yaml"
    path.write_text(text, encoding="utf-8")
    tex = tmp_path / "case.tex"
    tex.write_text(render(derive(pgverify.load_case(path)), "latex"), encoding="utf-8")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert _overfull(tmp_path / "case.log") <= OVERFULL_TOLERANCE_PT


def test_cli_derive_writes_the_file_whole(tmp_path):
    out = tmp_path / "d.md"
    result = CliRunner().invoke(main, ["derive", str(CASES / "short_corridor.yaml"), "--format", "markdown",
                                       "-o", str(out)])
    assert result.exit_code == 0 and result.stdout == ""
    assert out.read_text().startswith("\n# The policy gradient of short-corridor")
    assert [p.name for p in tmp_path.iterdir()] == ["d.md"]  # no temporary file left behind


def test_cli_derive_bad_input(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\n")
    out = tmp_path / "d.txt"
    result = CliRunner().invoke(main, ["derive", str(bad), "-o", str(out)])
    assert result.exit_code == 2 and "the field 'states' is required" in result.stderr
    assert not out.exists()
    result = CliRunner().invoke(main, ["derive", str(CASES / "short_corridor.yaml"), "--format", "pdf"])
    assert result.exit_code == 2


@pytest.mark.parametrize("name", [p.stem for p in CASE_FILES])
def test_causality_and_baseline_identities_hold_exactly(derivations, name):
    tb = derivations[name].identities
    assert tb.steps >= 1
    assert tb.causal_terms_zero() and tb.baselines_zero()


def test_identity_tables_are_not_trivially_zero(derivations):
    """The t' >= t terms carry the policy family: with the horizon covered (finite-horizon chain,
    T = H = 3), their sum is exactly the policy family's contribution."""
    import sympy

    d = derivations["finite_horizon_chain"]
    tb = d.identities
    assert tb.steps == 3 and tb.exact
    total = sum(vec[0] for vec in tb.causality.values())
    assert total != 0
    assert total == sympy.Rational(d.result.terms["policy"].contribution["q"]["value"])
    assert derivations["two_state_softmax"].identities.causality[(0, 0)] == [sympy.Rational(1, 8), sympy.Rational(3, 8)]
