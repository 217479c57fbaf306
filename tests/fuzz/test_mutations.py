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
           "3/2", "1e9999", "0.3333333333333333333333", "nan", "inf", "-inf", "1_000", "0x10", "2**2**2**2",
           # huge and tiny exact numbers (issue 12): computed, or refused up front with the limit
           "exp(1000)", "1e-60", "1 - 1e-60", "1e5000", "2303", "-2304", "10**999", "1/10**999"]
TOKENS = ["exp(", ")", "(", "**", "*", "/", "-", "+", "{", "}", "[", "]", ":", ",", "- ", "&a ", "*a",
          "!!python/object:os.system ", "\t", "é", "pi", "a", "log(0)", "sqrt(-1)", "sigmoid(", "tanh(1e5)",
          "default", "softmax", "tabular", "deterministic", "null", "~", "'", '"', "#", "\\", "\u00a0",
          "-sqrt(a)", "sigmoid(1e-60*a)", "1e400*", "exp(1000)*"]

#: YAML structures that explode or recurse (the hardening issues): an alias bomb, deep nesting in flow
#: and block style, and aliases inside the node they name.  Each replaces a line's value or is added.
YAML_HOSTILE = [
    "x0: &l0 [a, a, a, a, a, a, a, a, a]\n" + "".join(
        f"x{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10)),
    "x: " + "[" * 3000 + "]" * 3000,
    "x: " + "{a: " * 1500 + "1" + "}" * 1500,
    "x:\n" + "".join(" " * (k + 1) + "a:\n" for k in range(300)) + " " * 301 + "1",
    "x: &r [1, *r]",
    "x: &r {a: *r}",
]


def mutate(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["delete", "duplicate", "swap", "number", "insert", "insert"])
        if rng.random() < 0.04:  # rarely: a YAML bomb (it always ends in exit 2, before any computing)
            kind = "yaml"
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
        elif kind == "yaml":
            hostile = rng.choice(YAML_HOSTILE)
            key, sep, _ = lines[i].partition(":")
            if sep and rng.random() < 0.5:  # the line's value replaced (its key kept)
                lines[i] = key + ":" + hostile.split(":", 1)[1]
            else:
                lines.insert(i, hostile)
        else:
            pos = rng.randint(0, len(lines[i]))
            lines[i] = lines[i][:pos] + rng.choice(TOKENS) + lines[i][pos:]
    return "\n".join(lines)


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


#: the outcomes a mutant can have; only the first three are allowed
OUTCOMES = ("exit 0", "exit 1", "exit 2", "traceback", "timeout", "memory")


def run_mutant(seed: int, folder: Path, time_limit: int = TIME_LIMIT) -> tuple[str, str, str]:
    """Make mutant ``seed`` and check it: (outcome, the source's name, the mutant's text and output).

    The outcome is one of :data:`OUTCOMES`: the exit status, or ``traceback`` (an exception escaped,
    an exit status other than 0/1/2, or a traceback printed), ``timeout`` (past ``time_limit``
    seconds, by SIGALRM), ``memory`` (a MemoryError, under the caller's address-space limit).
    """
    rng = random.Random(seed)
    source = rng.choice(SOURCES)
    text = mutate(source.read_text(encoding="utf-8"), rng)
    path = folder / f"mutant-{seed}.yaml"
    path.write_text(text, encoding="utf-8")
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(time_limit)
    try:
        result = CliRunner().invoke(main, ["check", str(path), "--no-mc"])
    except _Timeout:
        return "timeout", source.name, text
    except MemoryError:
        return "memory", source.name, text
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    exc = result.exception
    detail = f"{text}\n---\n{result.output}"
    if isinstance(exc, _Timeout):
        return "timeout", source.name, detail
    if isinstance(exc, MemoryError):
        return "memory", source.name, detail
    crashed = exc is not None and not isinstance(exc, SystemExit)
    if crashed or result.exit_code not in (0, 1, 2) or "Traceback" in result.output:
        return "traceback", source.name, f"{exc!r}\n{detail}"
    return f"exit {result.exit_code}", source.name, detail


def check_mutant(seed: int, tmp_path: Path) -> None:
    outcome, source, detail = run_mutant(seed, tmp_path)
    assert outcome in ("exit 0", "exit 1", "exit 2"), f"mutant {seed} of {source}: {outcome}\n{detail}"


@pytest.mark.parametrize("seed", range(MUTANTS))
def test_mutant_ends_cleanly(seed, tmp_path):
    check_mutant(seed, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(MUTANTS, MUTANTS + SLOW_MUTANTS))
def test_more_mutants_end_cleanly(seed, tmp_path):
    check_mutant(seed, tmp_path)
