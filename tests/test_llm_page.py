"""docs/llm-estimators.md is generated from pgverify's output (docs/make_llm_page.py); it must be current.

The console blocks are run and compared by tests/test_docs.py (the page is one of its PAGES); here
the rest of the page (text, tables of exact means, shown files) is regenerated with the blocks taken
from the page, and a few of the claims the page makes are checked against the engine directly.
"""
import runpy

import flint

from .conftest import ROOT

PAGE = ROOT / "docs" / "llm-estimators.md"


def _generator():
    return runpy.run_path(str(ROOT / "docs" / "make_llm_page.py"))


def test_llm_page_is_current():
    gen = _generator()
    gen["page_text"].__globals__["RUN_COMMANDS"] = False
    expected = gen["page_text"]()
    assert PAGE.read_text(encoding="utf-8") == expected, \
        "docs/llm-estimators.md is stale: run python docs/make_llm_page.py"


def test_llm_page_is_a_page_of_the_docs_test():
    from .test_docs import PAGES

    assert PAGE in PAGES


def _mean(path, name, group=8):
    import pgverify
    from pgverify.sequence import analyse

    res = analyse(pgverify.load_sequence_case(ROOT / path), [name], group=group, variance=False, jacobian=False)
    return res.objective, res.estimators[name]


def test_k3_loss_moves_theta_the_wrong_way_on_the_kl_case():
    # the claim of the page's section 3: opposite signs, certified (the balls exclude 0)
    obj, est = _mean("cases/seq_kl_wrong_way.yaml", "rloo+k3_loss")
    assert est.mean[0] == flint.fmpq(-1, 30)
    assert obj.gradient[0] > 0 and est.kl_part["target"][0] > 0 and est.kl_part["expected"][0] < 0


def test_one_token_k3_loss_is_the_forward_kl_gradient():
    # Tang & Munos (2025): k3 as a loss gives the gradient of KL(pi_ref || pi); for the logit u of A
    # it is pi(A) - pi_ref(A) = 1/2 - 4/5, and the update is minus beta = 1 times it
    obj, est = _mean("docs/examples/seq_one_token.yaml", "reinforce+k3_loss", group=1)
    assert est.kl_part["expected"][0] == -(flint.fmpq(1, 2) - flint.fmpq(4, 5))
    _, k1 = _mean("docs/examples/seq_one_token.yaml", "reinforce+k1_loss", group=1)
    assert k1.kl_part["expected"][0] == 0  # Schulman (2020) k1: E[grad log pi] = 0


def test_the_page_shows_the_findings():
    page = PAGE.read_text(encoding="utf-8")
    assert "| `rloo+k3_loss` | -1/30 | -1… | -61/750 |" in page
    assert "| `reinforce+k3_loss` | 3/10 | 1… | 3/10 |" in page
    assert "| `dr_grpo` | 7/216 | 7/216 | 1 |" in page
    assert "/work/shared" not in page


def test_readme_shows_the_real_output_of_pgverify_estimators():
    import re
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"```\n\$ pgverify estimators docs/examples/seq_five_lines.yaml --no-mc\n(.*?)\n\.\.\.\n```", readme, re.S)
    assert m, "the README's example of pgverify estimators is missing"
    import os

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # a pipe without COLUMNS: lines as rendered
    out = subprocess.run([sys.executable, "-m", "pgverify.cli", "estimators", "docs/examples/seq_five_lines.yaml",
                          "--no-mc"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    got = [line.rstrip() for line in out.stdout.split("\n")]
    shown = m.group(1).split("\n")
    assert got[: len(shown)] == shown
