"""docs/why-no-reward-gradient.md is generated from pgverify's output; it must be current."""
import runpy

from .conftest import ROOT


def test_worked_page_is_current():
    generator = runpy.run_path(str(ROOT / "docs" / "make_worked_page.py"))
    expected = generator["page_text"]()
    page = (ROOT / "docs" / "why-no-reward-gradient.md").read_text(encoding="utf-8")
    assert page == expected, "docs/why-no-reward-gradient.md is stale: run python docs/make_worked_page.py"


def test_worked_page_shows_the_three_fates():
    page = (ROOT / "docs" / "why-no-reward-gradient.md").read_text(encoding="utf-8")
    assert "| policy | remains | p: 8 |" in page  # short corridor
    assert "| reward | vanishes in expectation | t1: 0; t2: 0 |" in page  # entropy bonus
    assert "| policy | vanishes pointwise | k: 0; c: 0 |" in page  # deterministic policy
    assert "Equal to the dynamics + reward families: True (proof: symbolic)" in page
