"""Every command shown in the user docs prints exactly what the docs show.

The pages are ``docs/case-format.md`` and ``docs/notation.md``. Their conventions:

* A fenced ```` ```console ```` block is a terminal session in the repository root. A line that
  starts with ``$ `` is a command. A command goes on over the next lines while it has an unclosed
  double quote (``python3 -c "..."``). Every other line is the expected output of the command above
  it, standard output and standard error together. The commands of one block run in order in one
  bash shell, so ``$ echo $?`` prints the exit status of the command before it.
* In a command, ``pgverify`` runs ``sys.executable -m pgverify.cli`` and ``python`` / ``python3``
  run ``sys.executable``, the interpreter that runs the tests. As ``-m`` runs in the repository
  root, it imports the checkout's ``pgverify`` (the editable install points there as well).
* ``<!-- file: PATH -->`` on the line before a ```` ```yaml ```` or ```` ```python ```` block: the
  block is the whole of the file PATH (a path from the repository root).
* ``<!-- excerpt: PATH -->``: the block is an excerpt of PATH. Each of its lines, other than
  ``...``, is a line of PATH, in the same order. Comments (`` # ...``) and blank lines do not count.
* ``<!-- requires: MODULE -->`` before a ```` ```console ```` block: the block needs an optional extra
  (``torch``); without the module it is skipped, as the page says, and not run.

The output must be identical to the documented one up to trailing whitespace at the end of lines and
of the output. Summaries are printed with ``COLUMNS=100``. The only other difference allowed is the
run time on the last line of a summary (``mode: symbolic; 0.18 s``), which changes from run to run.
So a changed message, line number, hint or value breaks this test until the docs show the new text.

All blocks run in parallel, once per test session; this takes about 10 s on two idle cores
(about 18 s of CPU time in all, mostly the 0.4 s that each ``pgverify`` needs to import sympy).
"""
from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "docs" / "case-format.md", ROOT / "docs" / "notation.md", ROOT / "docs" / "export.md",
         ROOT / "docs" / "testing.md", ROOT / "docs" / "importers.md"]
EXAMPLES = ROOT / "docs" / "examples"

FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```$", re.S | re.M)
TAG = re.compile(r"<!-- (file|excerpt|requires): (\S+) -->\n$")
SECONDS = re.compile(r"^(mode: [^;\n]+); [0-9]+(?:\.[0-9]+)? s$", re.M)
MARKER = "@@@ pgverify doc test: end of command @@@"

# Runs before each block: the commands the docs use, bound to the running interpreter.
PRELUDE = """\
pgverify() { "$PGVERIFY_DOC_PYTHON" -m pgverify.cli "$@"; }
python() { "$PGVERIFY_DOC_PYTHON" "$@"; }
python3() { "$PGVERIFY_DOC_PYTHON" "$@"; }
"""


@dataclass
class Command:
    text: str
    expected: str


@dataclass
class Block:
    page: str
    line: int
    lang: str
    body: str
    tag: tuple[str, str] | None  # ("file" | "excerpt", path) from the comment before the fence

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    def commands(self) -> list[Command]:
        lines = self.body.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        out: list[Command] = []
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                raise AssertionError(f"{self.id}: output before the first command: {lines[i]!r}")
            cmd = lines[i][2:]
            i += 1
            while cmd.count('"') % 2 == 1 and i < len(lines):
                cmd += "\n" + lines[i]
                i += 1
            expected = []
            while i < len(lines) and not lines[i].startswith("$ "):
                expected.append(lines[i])
                i += 1
            out.append(Command(cmd, "\n".join(expected)))
        return out


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()]
        tag = TAG.search(before[before.rfind("\n", 0, len(before) - 1) + 1:])
        out.append(Block(page.name, before.count("\n") + 1, m.group(1), m.group(2),
                         (tag.group(1), tag.group(2)) if tag else None))
    return out


ALL = [b for page in PAGES for b in blocks(page)]
CONSOLE = [b for b in ALL if b.lang == "console"]
TAGGED = [b for b in ALL if b.tag and b.tag[0] in ("file", "excerpt")]


def missing_module(block: Block) -> str | None:
    """The optional module a console block requires and this environment lacks, or None."""
    import importlib.util

    if block.tag and block.tag[0] == "requires" and importlib.util.find_spec(block.tag[1]) is None:
        return block.tag[1]
    return None


def normalise(text: str) -> str:
    text = SECONDS.sub(r"\1; <seconds> s", text)
    return "\n".join(line.rstrip() for line in text.rstrip().split("\n"))


def environment() -> dict:
    env = dict(os.environ)
    for var in ("FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "PY_COLORS",
                "LINES", "JUPYTER_COLUMNS", "JUPYTER_LINES", "PYTHONSTARTUP", "PYTHONWARNINGS"):
        env.pop(var, None)
    env.update(COLUMNS="100", NO_COLOR="1", TERM="dumb", LC_ALL="C", LANGUAGE="C",
               PYTHONIOENCODING="utf-8", PYTHONUTF8="1", PYTHONUNBUFFERED="1",
               PGVERIFY_DOC_PYTHON=sys.executable)
    return env


def run_block(block: Block) -> list[str]:
    """Run the block's commands in one bash shell; return each command's output."""
    script = PRELUDE
    for cmd in block.commands():
        script += f"{{ {cmd.text}\n}} 2>&1\n__status=$?\nprintf '\\n%s\\n' '{MARKER}'\n(exit $__status)\n"
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], cwd=ROOT, env=environment(),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=120)
    parts = proc.stdout.decode("utf-8", "replace").split(f"\n{MARKER}\n")
    return parts[: len(block.commands())]


@pytest.fixture(scope="module")
def outputs():
    """Run every console block once, in parallel: block id -> the outputs of its commands."""
    runnable = [b for b in CONSOLE if missing_module(b) is None]
    order = sorted(runnable, key=lambda b: -len(b.commands()))  # long blocks first: less waiting at the end
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        return dict(zip((b.id for b in order), pool.map(run_block, order)))


def test_the_pages_have_commands():
    for page in PAGES:
        assert sum(b.page == page.name for b in CONSOLE) >= 2, f"no console blocks found in {page.name}"
    # a block of commands under another fence would escape this test
    for b in ALL:
        if b.lang != "console":
            assert not b.body.startswith("$ "), f"{b.id}: commands must be in a ```console block"


@pytest.mark.parametrize("block", CONSOLE, ids=[b.id for b in CONSOLE])
def test_command_output_is_documented(block, outputs):
    if missing_module(block):
        pytest.skip(f"{block.id} needs {missing_module(block)} (an optional extra: pip install 'pgverify[{missing_module(block)}]')")
    got = outputs[block.id]
    commands = block.commands()
    assert len(got) == len(commands), f"{block.id}: the shell stopped early:\n{''.join(got)}"
    failures = []
    for cmd, out in zip(commands, got):
        # a page must never teach a crash (an --update run once recorded one and nobody noticed)
        assert "Traceback (most recent call last)" not in cmd.expected, f"{block.id}: the page shows a traceback"
        assert "Traceback (most recent call last)" not in out, f"{block.id}: $ {cmd.text} crashed:\n{out}"
        want, have = normalise(cmd.expected), normalise(out)
        if want != have:
            diff = "\n".join(difflib.unified_diff(want.split("\n"), have.split("\n"), "documented", "printed",
                                                  lineterm=""))
            failures.append(f"$ {cmd.text}\n{diff}")
    assert not failures, f"{block.id}: output differs from the docs\n\n" + "\n\n".join(failures)


def _content_lines(text: str) -> list[str]:
    lines = (re.sub(r"(^|\s)#.*$", "", line).rstrip() for line in text.split("\n"))
    return [line for line in lines if line.strip()]


@pytest.mark.parametrize("block", TAGGED, ids=[b.id for b in TAGGED])
def test_shown_file_is_the_file(block):
    kind, path = block.tag
    text = (ROOT / path).read_text(encoding="utf-8")
    if kind == "file":
        assert block.body == text, f"{block.id}: the block is not the content of {path}"
        return
    lines = iter(_content_lines(text))
    for want in _content_lines(block.body):
        if want == "...":
            continue
        assert any(line == want for line in lines), f"{block.id}: {want!r} is not (in order) in {path}"


def test_every_example_file_is_used():
    text = "".join(page.read_text(encoding="utf-8") for page in PAGES)
    unused = [p.name for p in sorted(EXAMPLES.iterdir()) if f"docs/examples/{p.name}" not in text]
    assert not unused, f"files in docs/examples that no page uses: {unused}"


def update_pages() -> None:
    """Rewrite every console block's output with what the commands print now.

    Run ``python tests/test_docs.py --update`` after an intended change of output, then read
    the diff of docs/ before committing it.
    """
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        matches = list(FENCE.finditer(text))
        for m in reversed(matches):
            if m.group(1) != "console":
                continue
            block = Block(page.name, text[: m.start()].count("\n") + 1, "console", m.group(2), None)
            printed = run_block(block)
            body = ""
            for cmd, out in zip(block.commands(), printed):
                if "Traceback (most recent call last)" in out:
                    sys.exit(f"{block.id}: $ {cmd.text} crashed; nothing written:\n{out}")
                out = "\n".join(line.rstrip() for line in out.rstrip("\n").split("\n"))
                body += f"$ {cmd.text}\n" + (out + "\n" if out else "")
            text = text[: m.start(2)] + body + text[m.end(2):]
        page.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        update_pages()
    else:
        print("usage: python tests/test_docs.py --update")
