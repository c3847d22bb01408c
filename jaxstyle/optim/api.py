"""The public optimisation API: one image, a batch of contents, any images, an alpha/beta sweep.

`stylize` is a batch of one, `stylize_batch` a batch of same-size contents, `stylize_many` any
contents packed into batches that share a compiled program (`plan`, `solve_all`), `sweep` one
content with K weight sets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxstyle import runtime
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io
from jaxstyle.optim.problem import NonFiniteLoss, Result, Task, final_shape, make_task, solve
from jaxstyle.optim.settings import Settings
from jaxstyle.optim.solver import Progress, Resume


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


def stylize(params, content: np.ndarray, style, settings: Settings = Settings(), *, masks=None,
            callback: Callable[[Progress], None] | None = None) -> Result:
    """Paints one content image in the style of one or more style images.

    Args:
      params: VGG-19 params (`jaxstyle.io.weights.load_params`).
      content: f32[h, w, 3] RGB in [0, 1], any size (resized to settings.size).
      style: f32[h', w', 3] RGB in [0, 1], or a list of them blended by settings.style_blend
        (each resized to style_scale x the content's size; the paper: the content's size).
      settings: see `Settings`.
      masks: None, or one map f32[h'', w''] in [0, 1] per style image: the region of the content
        that style paints (spatial control, guided Gram matrices).
      callback: called with a `Progress` after every step.

    Returns:
      A `Result` whose image is f32[H, W, 3] with max(H, W) == settings.size.

    Raises:
      NonFiniteLoss: the loss became NaN/inf; its `.result` holds the last finite image.
    """
    result = solve(params, [make_task(content, style, settings, masks=masks)], callback=callback)[0]
    if result.failure:
        raise NonFiniteLoss(result.failure, result)
    return result


def _stacked(results: list[Result]) -> Result:
    shapes = {r.image.shape for r in results}
    if len(shapes) != 1:
        raise JaxstyleError(f"the images came out in different shapes {sorted(shapes)}; use stylize_many")
    failures = [r.failure for r in results]
    first = results[0]
    return Result(np.stack([r.image for r in results]), *(np.stack([getattr(r, n) for r in results])
                                                           for n in ("total", "content", "style", "tv")),
                  steps=first.steps, evaluations=first.evaluations, seconds=first.seconds,
                  failure=failures if any(failures) else None, temporal=np.stack([r.temporal for r in results]))


def stylize_batch(params, contents: Sequence[np.ndarray], style, settings: Settings = Settings(),
                  *, masks=None, callback: Callable[[Progress], None] | None = None,
                  resume: Resume | None = None, place: Callable | None = None) -> Result:
    """Stylises same-size content images against one style in one vmapped, compiled program.

    Returns:
      A `Result` with image f32[B, H, W, 3], per-image losses f32[B] and, where an image's loss
      became NaN/inf, `failure` a list of B messages (None for the images that finished).
    """
    tasks = [make_task(c, style, settings, masks=masks) for c in contents]
    shapes = {image_io.longest_side_shape(c.shape[:2], settings.size) for c in contents}
    if len(shapes) != 1:
        raise JaxstyleError(f"stylize_batch needs content images of one size, got {sorted(shapes)}; "
                            f"use stylize_many, which packs any sizes into batches")
    return _stacked(solve(params, tasks, callback=callback, resume=resume, place=place))


def stylize_many(params, contents: Sequence[np.ndarray], style, settings: Settings = Settings(),
                 *, batch_size: int = 8, callback: Callable[[Progress], None] | None = None) -> list[Result]:
    """Stylises content images of any sizes in full batches (see `plan`); one `Result` each, in order."""
    tasks = [make_task(c, style, settings) for c in contents]
    return solve_all(params, tasks, batch_size=batch_size, callback=callback)


def sweep(params, content: np.ndarray, style, ratios: Sequence[float], settings: Settings = Settings(), *,
          masks=None, callback: Callable[[Progress], None] | None = None) -> Result:
    """One batch for K values of alpha/beta, one content/style pair.

    beta stays settings.style_weight; alpha = ratio * beta for each ratio.

    Returns:
      A `Result` with image f32[K, H, W, 3] and per-ratio losses f32[K].
    """
    ratios = np.asarray(ratios, np.float32)
    if ratios.ndim != 1 or len(ratios) == 0 or not np.all(np.isfinite(ratios)) or np.any(ratios < 0):
        raise JaxstyleError(f"ratios must be a non-empty list of finite numbers >= 0, got {ratios.tolist()}")
    tasks = [make_task(content, style, settings.replace(content_weight=float(r) * settings.style_weight),
                       masks=masks) for r in ratios]
    return _stacked(solve(params, tasks, callback=callback))
