"""Packing any list of tasks into batches that share a compiled program, and solving them all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxstyle import runtime
from jaxstyle.errors import JaxstyleError
from jaxstyle.optim.problem import Result, Task, final_shape, solve
from jaxstyle.optim.solver import Progress


def plan(tasks: Sequence[Task], *, batch_size: int = 8, devices: int = 1) -> list[list[int]]:
    """Packs tasks into batches: lists of task indices, each list one `solve` call (see `plan_shapes`)."""
    return plan_shapes([(t.group(), final_shape(t)) for t in tasks], batch_size=batch_size, devices=devices)


def plan_shapes(items: Sequence[tuple[Any, tuple[int, int]]], *, batch_size: int = 8,
                devices: int = 1) -> list[list[int]]:
    """Batches of item indices from each item's (group, output shape (h, w)); deterministic.

    Items of one group are sorted by aspect ratio, then cut into the fewest batches of at most
    batch_size (rounded up to a multiple of `devices`), of nearly equal sizes: similar shapes
    share a canvas, and only a batch's rounding up to the device count is padding.
    """
    if batch_size < 1:
        raise JaxstyleError(f"batch size must be at least 1, got {batch_size}")
    per_batch = runtime.round_up(batch_size, devices)
    groups: dict[Any, list[int]] = {}
    for i, (group, _) in enumerate(items):
        groups.setdefault(group, []).append(i)
    batches = []
    for members in groups.values():
        members = sorted(members, key=lambda i: (items[i][1][0] / items[i][1][1], items[i][1][0] * items[i][1][1], i))
        count = -(-len(members) // per_batch)
        bounds = np.linspace(0, len(members), count + 1).round().astype(int)
        batches += [members[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return batches


def solve_all(params, tasks: Sequence[Task], *, batch_size: int = 8, devices: int = 1,
              callback: Callable[[Progress], None] | None = None, place: Callable | None = None) -> list[Result]:
    """`plan`s the tasks into batches and `solve`s each; one `Result` per task, in order."""
    results: list[Result | None] = [None] * len(tasks)
    for indices in plan(tasks, batch_size=batch_size, devices=devices):
        for i, result in zip(indices, solve(params, [tasks[i] for i in indices], callback=callback, place=place,
                                            pad_to=runtime.round_up(len(indices), devices))):
            results[i] = result
    return results
