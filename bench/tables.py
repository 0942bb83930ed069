"""The benchmarks' shared table printer: a machine line, aligned columns, sections, notes."""

from __future__ import annotations

from collections.abc import Sequence


def fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def print_table(machine: Sequence[str], head: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]],
                notes: Sequence[str], right: set[int]) -> None:
    """``rows`` are (section, cells); a blank line separates sections."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *(cells for _, cells in rows), strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    rule = "-" * len(line(head))
    print()
    for m in machine:
        print(m)
    print(rule)
    print(line(head))
    print(rule)
    last = None
    for section, cells in rows:
        if last is not None and section != last:
            print()
        print(line(cells))
        last = section
    print(rule)
    for note in notes:
        print(f"note: {note}")
