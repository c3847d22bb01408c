"""Blocks of docs/benchmarks.md that a benchmark script owns, replaced in place on each run.

A block lies between `<!-- NAME:begin -->` and `<!-- NAME:end -->`, each on a line of its own; a run
replaces what lies between them and leaves the rest of the doc (notes, other blocks) as it was.
(benchmarks/bench.py keeps its own markers, one block per CPU kind.)
"""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_block(text: str, name: str, lines: list[str]) -> str:
    """`text` with block `name` holding `lines` (leading and trailing blank lines dropped).

    A block not in `text` yet is appended at its end. Raises ValueError if the markers are not one
    begin followed by one end, rather than guess which part of the doc is the block.
    """
    begin, end = markers(name)
    body = "\n".join(lines).strip("\n")
    block = f"{begin}\n{body}\n{end}" if body else f"{begin}\n{end}"
    if begin not in text and end not in text:
        return text.rstrip("\n") + "\n\n" + block + "\n"
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"the doc's markers of block {name!r} are not one {begin} followed by one {end}")
    return text[: text.index(begin)] + block + text[text.index(end) + len(end):]


def write_block(name: str, lines: list[str], doc: Path = DOC) -> None:
    """Replaces block `name` of `doc` (docs/benchmarks.md) by `lines`, or appends it if it is new."""
    previous = doc.read_text() if doc.exists() else "# Benchmarks\n"
    doc.write_text(replace_block(previous, name, lines))
    print(f"wrote block {name} of {doc}")
