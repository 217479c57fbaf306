"""A mutation fuzzer over the case files of cases/ and docs/examples/: lines deleted, duplicated and
swapped, numbers replaced by hostile ones, tokens inserted.  Every mutant must end with exit status 0,
1 or 2 and no traceback, within a time limit (the hardening issue: no traceback, no hang).

The default run checks MUTANTS mutants (seeded: the same ones every run); ``pytest -m slow`` checks
SLOW_MUTANTS more.  A failing mutant is printed whole, with its seed, so it can be replayed.
"""
from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from pgverify.cli import main

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "cases").glob("*.yaml")) + sorted((ROOT / "docs" / "examples").glob("*.yaml"))
#: small cases only: FrozenLake 4x4's 44 parameters make each run slower without new paths
SOURCES = [p for p in SOURCES if p.stat().st_size < 4000]
MUTANTS = 120
SLOW_MUTANTS = 1500
TIME_LIMIT = 30  # seconds per mutant

NUMBERS = ["0", "-1", "2", "1/0", "0/0", "1e308", "1e-308", "1e400", "99999999999999999999", "-0.5", "1.5",
           "3/2", "1e9999", "0.3333333333333333333333", "nan", "inf", "-inf", "1_000", "0x10", "2**2**2**2"]
TOKENS = ["exp(", ")", "(", "**", "*", "/", "-", "+", "{", "}", "[", "]", ":", ",", "- ", "&a ", "*a",
          "!!python/object:os.system ", "\t", "é", "pi", "a", "log(0)", "sqrt(-1)", "sigmoid(", "tanh(1e5)",
          "default", "softmax", "tabular", "deterministic", "null", "~", "'", '"', "#", "\\", "\u00a0"]


def mutate(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["delete", "duplicate", "swap", "number", "insert", "insert"])
        if not lines:
            break
        i = rng.randrange(len(lines))
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "number":
            import re

            nums = list(re.finditer(r"-?[0-9]+(?:[./][0-9]+)?", lines[i]))
            if nums:
                m = rng.choice(nums)
                lines[i] = lines[i][:m.start()] + rng.choice(NUMBERS) + lines[i][m.end():]
        else:
            pos = rng.randint(0, len(lines[i]))
            lines[i] = lines[i][:pos] + rng.choice(TOKENS) + lines[i][pos:]
    return "\n".join(lines)


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def check_mutant(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    source = rng.choice(SOURCES)
    text = mutate(source.read_text(encoding="utf-8"), rng)
    path = tmp_path / f"mutant-{seed}.yaml"
    path.write_text(text, encoding="utf-8")
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_LIMIT)
    try:
        result = CliRunner().invoke(main, ["check", str(path), "--no-mc"])
    except _Timeout:
        pytest.fail(f"mutant {seed} of {source.name} ran past {TIME_LIMIT} s:\n{text}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    if isinstance(result.exception, _Timeout):
        pytest.fail(f"mutant {seed} of {source.name} ran past {TIME_LIMIT} s:\n{text}")
    assert not crashed and result.exit_code in (0, 1, 2) and "Traceback" not in result.output, (
        f"mutant {seed} of {source.name}: exit {result.exit_code}, {result.exception!r}\n{text}\n---\n{result.output}")


@pytest.mark.parametrize("seed", range(MUTANTS))
def test_mutant_ends_cleanly(seed, tmp_path):
    check_mutant(seed, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(MUTANTS, MUTANTS + SLOW_MUTANTS))
def test_more_mutants_end_cleanly(seed, tmp_path):
    check_mutant(seed, tmp_path)
