"""Tables and lines that stay readable in a narrow terminal (80 columns) and a wide one.

The rules, for every table the command line prints:

- a number or a name is never broken across lines: cells do not wrap (rich's ``no_wrap``);
- when a table is wider than the terminal, columns are left out in a documented order (each
  table's ``drop`` order, least needed first), and a line under the table names them and says
  where they are (``--json``);
- a name that is still too long is cut in the middle with an explicit ellipsis, keeping as much
  of its start and end as needed to tell it from every other name of the column (and shown whole
  whenever it fits);
- when even the table's kept columns do not fit, each row is printed as a block of
  ``label value`` items instead, wrapped between items, never inside one;
- a long list of ``name = value`` items is summarised (the first ones, then how many more).

Renderers only: nothing here computes a result.
"""
from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "fit_table", "shorten_names", "summarise_items", "wrap_document", "wrap_items", "wrap_text"]

ELLIPSIS = "…"


@dataclass
class Column:
    """One column: its header (may hold a line break), its cells (plain text, or rich markup when
    ``markup``), its justification, and whether it holds names (which may be shortened)."""

    header: str
    cells: list
    justify: str = "left"
    names: bool = False
    markup: bool = False


def _plain(cell: str, markup: bool) -> str:
    return Text.from_markup(cell).plain if markup else cell


def shorten_names(names, width: int) -> dict:
    """name -> how to show it in at most ``width`` characters: whole when it fits, else a start and an
    end around an ellipsis.  The cut is the same for every long name of the column: in the middle when
    that keeps them apart, else moved towards the end or the start until it does (names that differ
    only in the middle keep that part); when no cut of that width tells every name apart, all are shown
    whole (the column is then wider, and the table may be stacked).

    >>> shorten_names(["theta_state_12_left", "theta_state_12_right", "p"], 12)
    {'theta_state_12_left': 'theta_…_left', 'theta_state_12_right': 'theta_…right', 'p': 'p'}
    >>> shorten_names(["w_aaaaaa_left_bbbbbb", "w_aaaaaa_right_bbbbbb"], 12)
    {'w_aaaaaa_left_bbbbbb': 'w_aaaaaa_l…b', 'w_aaaaaa_right_bbbbbb': 'w_aaaaaa_r…b'}
    """
    names = list(dict.fromkeys(names))
    width = max(int(width), 3)
    long = [nm for nm in names if len(nm) > width]
    out = {nm: nm for nm in names}
    if not long:
        return out
    keep = width - 1
    middle = (keep + 1) // 2
    # the head's length: the middle first, then longer heads, then shorter ones
    for head in [middle] + list(range(middle + 1, keep + 1)) + list(range(middle - 1, -1, -1)):
        cut = {nm: nm[:head] + ELLIPSIS + nm[len(nm) - (keep - head):] if keep - head else nm[:head] + ELLIPSIS
               for nm in long}
        shown = list(cut.values()) + [nm for nm in names if nm not in cut]
        if len(set(shown)) == len(shown):
            out.update(cut)
            return out
    return out


def _table(title, columns, widths, box_style) -> Table:
    table = Table(title=title, box=box_style, title_justify="left", pad_edge=False, expand=False, show_edge=False,
                  padding=(0, 1, 0, 0))
    for col, w in zip(columns, widths):
        table.add_column(col.header, justify=col.justify, no_wrap=True, overflow="ignore", min_width=w)
    for k in range(len(columns[0].cells) if columns else 0):
        row = []
        for col in columns:
            cell = col.cells[k]
            row.append(Text.from_markup(cell) if col.markup else Text(cell))
        table.add_row(*row)
    return table


def _width(console: Console, table: Table) -> int:
    """The table's natural width (rich clamps a measurement to the console's width: measure wider)."""
    return Measurement.get(console, console.options.update_width(10**6), table).maximum


def fit_table(console: Console, title: str | None, columns: list, drop: tuple = (), *,
              min_name: int = 12, what_dropped: str = "--json has them") -> list:
    """Print ``columns`` as a table no wider than the console, and return the headers left out.

    ``drop`` lists headers (``\\n`` read as a space) in the order they are left out while the table is
    too wide; name columns are then shortened (:func:`shorten_names`, to no less than ``min_name``);
    if it is still too wide, every row is printed as a block of items (:func:`wrap_items`).
    """
    width = console.width
    key = {c.header.replace("\n", " "): c for c in columns}
    kept = list(columns)
    dropped = []
    box_style = box.SIMPLE_HEAD

    def natural(col):
        cells = [_plain(c, col.markup) for c in col.cells]
        return max([len(c) for c in cells] + [max(len(w) for w in col.header.split("\n"))])

    def attempt(cols):
        return _table(title, cols, [natural(c) for c in cols], box_style)

    def shortened(cols):
        """The columns with their names cut (to no less than min_name) by what the table is over."""
        over = _width(console, attempt(cols)) - width
        out = []
        for col in cols:
            nat = natural(col)
            if col.names and over > 0 and min(nat - over, nat) < nat:
                target = max(min_name, nat - over)
                short = shorten_names([_plain(c, col.markup) for c in col.cells], target)
                col = Column(col.header, [short[_plain(c, col.markup)] for c in col.cells], col.justify, True)
            out.append(col)
        return out

    table = attempt(kept)
    for name in (None,) + tuple(drop):
        if name is not None:
            col = key.get(name)
            if col is None or col not in kept:
                continue
            kept.remove(col)
            dropped.append(name)
            table = attempt(kept)
        if _width(console, table) <= width:
            break
        # before leaving out the next column, see whether shorter names make the table fit
        cut = shortened(kept)
        if _width(console, attempt(cut)) <= width:
            kept, table = cut, attempt(cut)
            break
    if _width(console, table) > width:
        _stacked(console, title, kept, dropped)
        return dropped
    console.print(table)
    return dropped


def _stacked(console: Console, title, columns, dropped):
    """Each row as a block: the first column, then ``header value`` items wrapped between items."""
    if title:
        for line in wrap_text(title, console.width):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    first, rest = columns[0], columns[1:]
    names = shorten_names([_plain(c, first.markup) for c in first.cells], console.width)
    for k in range(len(first.cells)):
        items = [f"{col.header.replace(chr(10), ' ')} {_plain(col.cells[k], col.markup)}" for col in rest]
        lines = wrap_items(items, console.width - 2, sep="; ")
        console.print(names[_plain(first.cells[k], first.markup)], markup=False, highlight=False, soft_wrap=True)
        for line in lines:
            console.print("  " + line, markup=False, highlight=False, soft_wrap=True)


def wrap_items(items, width: int, sep: str = ", ") -> list:
    """Join ``items`` with ``sep`` into lines of at most ``width`` characters, breaking only between
    items (an item longer than the width gets a line of its own, whole)."""
    lines, cur = [], ""
    for it in items:
        cand = it if not cur else cur + sep + it
        if len(cand) + (len(sep.rstrip()) if it is not items[-1] else 0) <= width or not cur:
            cur = cand
        else:
            lines.append(cur + sep.rstrip())
            cur = it
    if cur:
        lines.append(cur)
    return lines


def wrap_text(text: str, width: int, indent: str = "") -> list:
    """Words of ``text`` in lines of at most ``width`` characters, breaking only at spaces (a word
    longer than the width stays whole, and a no-break space of ``text`` joins what it separates);
    continuation lines start with ``indent``."""
    import textwrap

    if len(text) <= width:
        return [text.replace("\u00a0", " ")]
    lead = text[: len(text) - len(text.lstrip(" "))]
    # an operator stays with the term after it ("- 95", not "-" at the end of a line): a no-break space
    glued = text.replace(" - ", " -\u00a0").replace(" + ", " +\u00a0")
    lines = textwrap.wrap(glued, width=max(width, 1), initial_indent="", subsequent_indent=lead + indent,
                          break_long_words=False, break_on_hyphens=False, drop_whitespace=True) or [glued]
    return [ln.replace("\u00a0", " ") for ln in lines]


def summarise_items(items, width: int, lines: int = 2, what: str = "items") -> str:
    """``items`` joined by commas, or as many as fit in ``lines`` lines of ``width`` followed by how many
    more there are (``... and 37 more {what}``)."""
    text = ", ".join(items)
    if len(text) <= width * lines:
        return text
    budget = width * lines
    shown = []
    for k, it in enumerate(items):
        tail = f", ... and {len(items) - k - 1} more {what}"
        if len(", ".join(shown + [it])) + len(tail) > budget and shown:
            break
        shown.append(it)
    return ", ".join(shown) + f", ... and {len(items) - len(shown)} more {what}"


def wrap_document(text: str, width: int) -> str:
    """A plain-text document (``pgverify derive --format text``) wrapped to ``width``: prose and
    indented formulas at spaces (:func:`wrap_text`; a formula's continuation lines are indented four
    more spaces and start with its operator), never inside a word or number; headings' underlines
    and the rows of a table (a block with a ``----  ----`` rule) are kept as they are."""
    import re

    rule = re.compile(r"^ *-+( {2,}-+)+ *$")
    out = []
    blocks = text.split("\n\n")
    for block in blocks:
        lines = block.split("\n")
        if any(rule.match(ln) for ln in lines):
            out.append(block)
            continue
        wrapped = []
        for ln in lines:
            if set(ln.strip()) <= {"=", "-"}:
                wrapped.append(ln)
            else:
                wrapped.extend(wrap_text(ln.rstrip(), width, indent="    " if ln.startswith(" ") else ""))
        out.append("\n".join(wrapped))
    return "\n\n".join(out)
