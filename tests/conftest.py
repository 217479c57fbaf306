from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "cases"
CASE_FILES = sorted(CASES.glob("*.yaml"))


@pytest.fixture
def cases_dir():
    return CASES
