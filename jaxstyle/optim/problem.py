"""The optimisation problem: tasks, their preparation at each scale, and `solve` for one batch.

A `Task` is one image to paint: its content, style image(s), optional region masks and
`Settings`. `solve` optimises tasks that share a program (`Settings.batch_key`) as one batch,
each image padded into one canvas and masked to its own pixels (see `jaxstyle.optim.solver`),
so images of different shapes, styles, weights, seeds and step counts share compiled programs.
`check_size` and `check_memory` refuse, before any work, an image too small for conv5_1 or a
batch that would not fit in memory."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import color, losses, vgg
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io
from jaxstyle.optim import solver, tiled
from jaxstyle.optim.settings import INITS, MIN_SIDE, ProgramKey, Settings
from jaxstyle.optim.solver import Progress, Resume
from jaxstyle.runtime import available_memory_bytes


@dataclasses.dataclass(frozen=True)
class Task:
    """One image to paint, as arrays (no file is read past this point).

    content: f32[h, w, 3] RGB in [0, 1], any size (resized to settings.size).
    styles: one or more f32[h', w', 3] style images, blended by settings.style_blend.
    masks: None, or one map f32[h'', w''] in [0, 1] per style image: the region of the content
      that style paints (spatial control, guided Gram matrices).
    init: the starting image f32[h_i, w_i, 3] (any size), or None: settings.init decides
      (`make_task` loads it when settings.init names a file).
    temporal: a video frame's temporal term (`Temporal`), or None.
    """

    content: np.ndarray
    styles: tuple[np.ndarray, ...]
    settings: Settings = Settings()
    masks: tuple[np.ndarray, ...] | None = None
    init: np.ndarray | None = None
    temporal: Temporal | None = None

    def group(self) -> tuple:
        """Tasks with equal groups can share a batch."""
        return self.settings.batch_key(), len(self.styles), self.masks is not None, self.temporal is not None


class Temporal(NamedTuple):
    """Ruder et al.'s temporal term of one video frame: weight x sum_k mask_k (x_k - target_k)^2
    (`losses.temporal_loss`).

    target: f32[h, w, 3] the earlier output(s) warped into this frame, in [0, 1]. mask: f32[h, w] >= 0,
    each pixel's weight (1 where one warp is trusted, 0 where none; several warps combined by
    `video.temporal.one_target` add up). Both any size (resized with the content at each scale).
    weight: gamma, beside alpha and beta as they stand in `Settings`.
    """

    target: np.ndarray
    mask: np.ndarray
    weight: float


def make_task(content: np.ndarray, style, settings: Settings = Settings(), *, masks=None,
              init: np.ndarray | None = None, temporal: Temporal | None = None) -> Task:
    """A `Task` from one style image or a list; loads settings.init when it names an image file.

    init: a starting image f32[h, w, 3] given as an array, which then replaces settings.init.
    temporal: a video frame's temporal term (see `Temporal`)."""
    styles = tuple(_as_list(style))
    if settings.style_blend is not None and len(settings.style_blend) != len(styles):
        raise JaxstyleError(f"style_blend has {len(settings.style_blend)} weights for {len(styles)} style images")
    if masks is not None:
        masks = tuple(np.asarray(m, np.float32) for m in masks)
        if len(masks) != len(styles):
            raise JaxstyleError(f"got {len(masks)} masks for {len(styles)} style images; give one mask per style")
    if init is not None:
        init = np.asarray(init, np.float32)
    elif settings.init not in INITS:
        init = image_io.load_image(settings.init)
    if temporal is not None:
        temporal = Temporal(np.asarray(temporal.target, np.float32), np.asarray(temporal.mask, np.float32),
                            float(temporal.weight))
        if (temporal.target.ndim != 3 or temporal.mask.shape != temporal.target.shape[:2] or temporal.weight < 0
                or np.any(temporal.mask < 0)):
            raise JaxstyleError(f"a temporal term needs a target [h, w, 3], a mask [h, w] >= 0 and a weight >= 0; got "
                                f"{temporal.target.shape}, {temporal.mask.shape}, {temporal.weight}")
    return Task(np.asarray(content, np.float32), styles, settings, masks, init, temporal)


@dataclasses.dataclass(frozen=True)
class Result:
    """image: f32[h, w, 3] (or [B, h, w, 3]); final losses at that image; cost of the run.

    failure: None, or why the image stopped early (its loss became NaN/inf; the image is the
    last finite one). temporal: the unweighted temporal term of a video frame (0 without one).
    """

    image: np.ndarray
    total: Any
    content: Any
    style: Any
    tv: Any
    steps: int
    evaluations: int
    seconds: float
    failure: Any = None
    temporal: Any = 0.0

    def item(self, k: int) -> "Result":
        """The k-th image of a stacked result, with its own losses."""
        failure = None if self.failure is None else self.failure[k]
        return dataclasses.replace(self, image=self.image[k], total=self.total[k], content=self.content[k],
                                   style=self.style[k], tv=self.tv[k], failure=failure,
                                   temporal=self.temporal[k])


class NonFiniteLoss(JaxstyleError):
    """The loss became NaN/inf; `.result` holds the last finite image."""

    def __init__(self, message: str, result: Result):
        super().__init__(message)
        self.result = result


def scale_sizes(settings: Settings) -> list[int]:
    """Longest sides of the coarse-to-fine scales, coarsest first, ending at settings.size."""
    return [settings.size // 2 ** k for k in reversed(range(settings.scales))]


def _as_list(images) -> list[np.ndarray]:
    return [images] if isinstance(images, np.ndarray) and images.ndim == 3 else list(images)


# --- one scale of one task --------------------------------------------------------------------------


class Prepared(NamedTuple):
    """A task at one scale, before padding.

    content: f32[h, w, 3] as transferred (gray luminance in "luminance" mode).
    styles: S images f32[h_s, w_s, 3] at style_scale x the content's size.
    masks: {style layer: f32[S, h_l, w_l]} or None.
    temporal: (target f32[h, w, 3], mask f32[h, w]) as transferred, or None.
    """

    content: np.ndarray
    styles: list[np.ndarray]
    masks: dict[str, np.ndarray] | None
    temporal: tuple[np.ndarray, np.ndarray] | None = None


def prepare(task: Task, size: int) -> Prepared:
    """Resizes and colour-prepares one task's inputs for the scale whose longest side is `size`
    (the paper: the style at the content's size)."""
    s = task.settings
    content = image_io.resize_longest(task.content, size)
    shape = content.shape[:2]
    check_size(shape)
    style_shape = tuple(max(1, round(side * s.style_scale)) for side in shape)
    check_size(style_shape)
    styles = [image_io.resize(style, style_shape) for style in task.styles]
    content, styles = color.prepare_colors(s.preserve_colors, content, styles)
    masks = None
    if task.masks is not None:
        full = jnp.asarray(np.stack([_resize_mask(m, shape) for m in task.masks]))
        masks = {name: np.asarray(jax.image.resize(full, (len(styles), *vgg.feature_hw(shape, name)), "linear"))
                 for name in s.style_layers}
    temporal = None
    if task.temporal is not None:
        target = image_io.resize(task.temporal.target, shape)
        if s.preserve_colors == "luminance":  # the image optimised is gray: its luminance
            target = np.repeat(color.to_yiq(target)[..., :1], 3, axis=-1)
        temporal = (target, np.maximum(_resize_mask(task.temporal.mask, shape), 0.0))
    return Prepared(content, styles, masks, temporal)


def _resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask, np.float32)
    if mask.ndim == 3:
        mask = mask.mean(axis=-1)
    return image_io.resize(np.repeat(mask[..., None], 3, axis=-1), shape)[..., 0]


def initial_image(task: Task, prepared: Prepared) -> np.ndarray:
    """The starting image, f32[h, w, 3]: seeded white noise, the content, the style, or task.init."""
    s, shape = task.settings, prepared.content.shape
    if task.init is not None:
        return image_io.resize(task.init, shape[:2])
    if s.init == "noise":
        return np.random.default_rng(s.seed).random(shape, dtype=np.float32)
    if s.init == "content":
        return prepared.content
    if s.init == "style":
        return image_io.resize(prepared.styles[0], shape[:2])
    raise JaxstyleError(f"init {s.init!r} names a file: build the task with make_task, which loads it")


def _pad(images: Sequence[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Stacks arrays [h, w, ...] into zeros of [len, *shape], each in the top-left corner."""
    out = np.zeros((len(images), *shape), np.float32)
    for k, x in enumerate(images):
        out[(k, *(slice(0, n) for n in x.shape))] = x
    return out


def _weights(task: Task) -> tuple[losses.LossWeights, tuple[dict, dict]]:
    """(alpha, beta, TV, temporal) and ({layer: weight} of content, of style), as float32 for stacking."""
    s = task.settings
    as_f32 = lambda tree: jax.tree.map(np.float32, tree)  # noqa: E731
    weights = s.loss_weights()._replace(temporal=0.0 if task.temporal is None else task.temporal.weight)
    return as_f32(weights), as_f32(s.layer_weights())


def _stack(trees):
    return jax.tree.map(lambda *xs: np.stack(xs), *trees)


# --- batches ------------------------------------------------------------------------------------------


def solve(params, tasks: Sequence[Task], *, callback: Callable[[Progress], None] | None = None,
          resume: Resume | None = None, place: Callable | None = None, pad_to: int = 0,
          on_tile: Callable[[str], None] | None = None) -> list[Result]:
    """Optimises tasks of one group (`Task.group`) as one batch, coarse-to-fine over their scales.

    Each image is padded into the batch's canvas (the largest height and width among its images)
    and masked to its own pixels, so it comes out as it would alone.

    Args:
      params: VGG-19 params (`jaxstyle.io.weights.load_params`).
      callback: called with a `Progress` after every step.
      resume: continue from a checkpoint taken from `Progress.state` of the same tasks.
      place: puts batched arrays on devices, e.g. sharded along the batch axis.
      pad_to: fill the batch up to this many images with copies of the last task (their results
        are dropped), e.g. to a multiple of the device count.
      on_tile: where a scale is evaluated in tiles (`tile_for`), called with "content tile k/n" (or
        style, while the targets are computed; then pass 1, pass 2 of each evaluation) as each tile starts.

    Returns:
      One `Result` per task, in order; a task whose loss became NaN/inf has `failure` set and
      its last finite image.
    """
    tasks = list(tasks)
    if not tasks:
        return []
    if len({t.group() for t in tasks}) != 1:
        raise JaxstyleError("these tasks differ in layers, pooling, optimiser, scales, line search, number of "
                            "styles or masks, so they cannot share a batch; use stylize_many, which plans batches")
    real = len(tasks)
    tasks += [tasks[-1]] * max(0, pad_to - real)
    first = tasks[0].settings
    key, levels = first.program_key(), first.scales
    finals = [final_shape(t) for t in tasks]
    for shape in finals:
        check_size(shape)
    check_memory(_canvas(finals), first, batch=len(tasks))
    place = place or (lambda tree: jax.tree.map(jnp.asarray, tree))
    previous, stopped = None, np.zeros(len(tasks), bool)
    steps = evaluations = 0
    seconds = 0.0
    for level in range(levels):
        if resume is not None and level < resume.scale:
            continue  # the checkpointed state already holds this scale's result
        prepared = [prepare(t, t.settings.size // 2 ** (levels - 1 - level)) for t in tasks]
        shapes = [p.content.shape[:2] for p in prepared]
        if previous is None:
            starts = [initial_image(t, p) for t, p in zip(tasks, prepared)]
        else:
            starts = [image_io.resize(image, shape) for image, shape in zip(previous, shapes)]
        level_resume = resume if resume is not None and level == resume.scale else None
        tile = tile_for(shapes[0], first, batch=len(tasks))
        if tile:
            batch, start, masked = _tiled_batch(params, tiled_key(key, shapes[0]), tasks[0], prepared[0], starts[0],
                                                stopped, tile, on_tile)
        else:
            batch, start, masked = _batch(params, key, tasks, prepared, starts, stopped, place)

        def on_step(state, step, n_evaluations, elapsed, level=level, shapes=shapes):
            if callback is not None:
                callback(Progress(
                    step=step, steps=int(batch.steps.max()), total=np.asarray(state.value)[:real],
                    content=np.asarray(state.parts.content)[:real], style=np.asarray(state.parts.style)[:real],
                    tv=np.asarray(state.parts.tv)[:real], evaluations=evaluations + n_evaluations,
                    seconds=seconds + elapsed, image=lambda: _crop(state.image, shapes[:real]), state=state,
                    scale=level))

        level_key = tiled_key(key, shapes[0]) if tile else key
        out = solver.run(params, level_key, start, batch, linesearch_steps=first.linesearch_steps,
                         callback=on_step, resume=level_resume, place=place, masked=masked,
                         evaluate=tiled.evaluator(level_key, tile=tile, on_tile=on_tile) if tile else None)
        previous = _crop(out.state.image, shapes)
        stopped |= np.asarray(out.state.failed)
        steps, evaluations, seconds = steps + out.steps, evaluations + out.evaluations, seconds + out.seconds
    state = out.state
    results = []
    for k, (task, image) in enumerate(zip(tasks[:real], previous)):
        original = image_io.resize(task.content, image.shape[:2])
        failure = None
        if stopped[k]:
            failure = (f"the loss became NaN/inf at step {int(np.asarray(state.step)[k]) + 1}; lower "
                       f"--style-weight (beta) or --tv-weight (or --learning-rate with Adam)")
        results.append(Result(color.finish_colors(task.settings.preserve_colors, image, original),
                              *(np.asarray(x)[k] for x in (state.value, *state.parts[:3])), steps=steps,
                              evaluations=evaluations, seconds=seconds, failure=failure,
                              temporal=np.asarray(state.parts.temporal)[k]))
    return results


def _canvas(shapes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    return max(h for h, _ in shapes), max(w for _, w in shapes)


def _crop(images, shapes) -> list[np.ndarray]:
    images = np.asarray(images)
    return [images[k, :h, :w] for k, (h, w) in enumerate(shapes)]


def _batch(params, key: ProgramKey, tasks, prepared, starts, stopped, place):
    """(the padded, placed `solver.Batch` of one scale, its starting images, whether any image is
    smaller than the canvas so that the programs must mask)."""
    shapes = [p.content.shape[:2] for p in prepared]
    canvas = _canvas(shapes)
    style_shapes = [p.styles[0].shape[:2] for p in prepared]
    style_canvas = _canvas(style_shapes)
    n_styles = len(prepared[0].styles)
    styles = np.stack([_pad(p.styles, (*style_canvas, 3)) for p in prepared])
    style_valid = np.asarray([[shape] * n_styles for shape in style_shapes], np.int32)
    blends = np.asarray([t.settings.style_blend or [1.0 / n_styles] * n_styles for t in tasks], np.float32)
    masks = None
    if prepared[0].masks is not None:
        masks = {name: np.stack([_pad(list(p.masks[name]), vgg.feature_hw(canvas, name)).reshape(
                     n_styles, *vgg.feature_hw(canvas, name)) for p in prepared])
                 for name in prepared[0].masks}
    valid = place(np.asarray(shapes, np.int32))
    masked = len({*shapes, canvas}) > 1 or len({*style_shapes, style_canvas}) > 1
    targets = solver.programs(key, masked).targets(params, place(_pad([p.content for p in prepared], (*canvas, 3))),
                                           valid, place(styles), place(style_valid), place(blends), place(masks))
    if prepared[0].temporal is not None:
        targets = targets._replace(temporal=place(_pad([p.temporal[0] for p in prepared], (*canvas, 3))),
                                   temporal_mask=place(_pad([p.temporal[1] for p in prepared], canvas)))
    weights, layer_weights = place(_stack([_weights(t) for t in tasks]))
    batch = solver.Batch(
        valid=valid, targets=targets, weights=weights, layer_weights=layer_weights,
        stepsize=np.asarray([t.settings.initial_stepsize() for t in tasks], np.float32),
        steps=np.where(stopped, 0, [t.settings.steps for t in tasks]).astype(np.int32))
    return batch, place(_pad(starts, (*canvas, 3))), masked


def _tiled_batch(params, key: ProgramKey, task: Task, prepared: Prepared, start: np.ndarray, stopped, tile: int,
                 on_tile: Callable[[str], None] | None = None):
    """`_batch` for one image evaluated in tiles: its targets computed in tiles, nothing padded."""
    if prepared.masks is not None or prepared.temporal is not None:
        what = "--mask" if prepared.masks is not None else "a video frame's temporal term"
        raise JaxstyleError(f"{what} is not evaluated in tiles: lower --size so one pass fits in memory")
    n_styles = len(prepared.styles)
    blend = np.asarray(task.settings.style_blend or [1.0 / n_styles] * n_styles, np.float32)
    targets = tiled.make_targets(params, prepared.content, prepared.styles, blend, key, tile=tile, on_tile=on_tile)
    weights, layer_weights = _stack([_weights(task)])
    shape = np.asarray([prepared.content.shape[:2]], np.int32)
    batch = solver.Batch(valid=shape, targets=targets, weights=weights, layer_weights=layer_weights,
                         stepsize=np.asarray([task.settings.initial_stepsize()], np.float32),
                         steps=np.where(stopped[:1], 0, [task.settings.steps]).astype(np.int32))
    return batch, jnp.asarray(start[None]), False


def final_shape(task: Task) -> tuple[int, int]:
    """(h, w) of the task's output."""
    return image_io.longest_side_shape(task.content.shape[:2], task.settings.size)


# --- before any work: a size conv5_1 can take, memory that fits --------------------------------------


def check_size(shape: Sequence[int]) -> None:
    if min(shape) < MIN_SIDE:
        raise JaxstyleError(
            f"image of {shape[1]}x{shape[0]} px is too small: conv5_1 needs both sides >= {MIN_SIDE} px; "
            f"use a larger --size or a less elongated image")


def estimate_memory_bytes(shape: Sequence[int], settings: Settings, *, batch: int = 1) -> int:
    """A rough peak-memory estimate of one optimisation at image shape (h, w).

    Counts the activations up to the deepest layer, with a 25% margin, plus the process's own
    600 MB (runtime, weights, optimiser state). Measured peaks with the default layers:
    2.6-2.7 GB at 1024x768 (estimate 2.9) and 8.2-8.5 GB at 2048x1536 (estimate 9.7).
    """
    h, w = shape
    deepest = max(vgg.LAYER_NAMES.index(n) for n in (*settings.content_layers, *settings.style_layers))
    floats = 0
    for name in vgg.LAYER_NAMES[: deepest + 1]:
        if name.startswith("pool"):
            h, w = h // 2, w // 2
        else:
            floats += 2 * h * w * vgg.CHANNELS[name]
    return int(batch * 1.25 * 4 * floats + 600e6)


# Tiled runs (`jaxstyle.optim.tiled`) keep the optimiser's history smaller: at 8192x6144 each L-BFGS
# pair is 2 x 604 MB. Departure from the untiled default of 10 pairs (the paper names no optimiser).
# L-BFGS pairs of a tiled run (a departure from 10: each pair is two whole images, 2 x 604 MB at
# 8192x6144): 5, and 3 above 4096x4096 px (an 8192 px run then peaked at 17.4 GB, docs/benchmarks.md).
TILED_LBFGS_MEMORY = 5
LARGE_LBFGS_MEMORY, LARGE_PIXELS = 3, 4096 * 4096
DEFAULT_TILE = 512
# One pass above this estimate is tiled (about 1400x1050 px with the default layers): a tiled
# evaluation costs little more per pixel, and memory then grows with the picture only through
# the whole-image arrays the loop keeps.
TILE_ABOVE_BYTES = 4 * 2**30


def tile_for(shape: Sequence[int], settings: Settings, *, batch: int = 1) -> int:
    """The tile side an image of shape (h, w) is evaluated in, or 0 for one pass: settings.tile
    when given and smaller than the image; else `DEFAULT_TILE` when one pass would need more than
    `TILE_ABOVE_BYTES` or the memory available (CPU). Only a batch of one image is tiled."""
    if batch != 1:
        return 0
    if settings.tile:
        return settings.tile if max(shape) > settings.tile else 0
    untiled = estimate_memory_bytes(shape, settings)
    fits = jax.default_backend() != "cpu" or untiled <= min(TILE_ABOVE_BYTES, available_memory_bytes())
    return 0 if fits or max(shape) <= DEFAULT_TILE else DEFAULT_TILE


def tiled_lbfgs_memory(shape: Sequence[int], lbfgs_memory: int) -> int:
    """The L-BFGS pairs a tiled run of an image of shape (h, w) keeps (at most `lbfgs_memory`)."""
    return min(lbfgs_memory, LARGE_LBFGS_MEMORY if shape[0] * shape[1] > LARGE_PIXELS else TILED_LBFGS_MEMORY)


def tiled_key(key: ProgramKey, shape: Sequence[int]) -> ProgramKey:
    return key._replace(lbfgs_memory=tiled_lbfgs_memory(shape, key.lbfgs_memory))


def estimate_tiled_bytes(shape: Sequence[int], settings: Settings, tile: int) -> int:
    """A rough peak-memory estimate of a tiled optimisation at image shape (h, w): one tile's
    programs (`estimate_memory_bytes` of its canvas), the whole-image arrays the loop keeps (image,
    gradient, the previous pair, direction, candidate, its gradient, TV's, the optimiser's history)
    and the content's features."""
    h, w = shape
    halo = vgg.tile_halo([*settings.content_layers, *settings.style_layers])
    canvas = (min(h, tile + 2 * halo), min(w, tile + 2 * halo))
    # The optimiser's state: L-BFGS's pairs and its copies of the image and step (Adam: 2 moments).
    optimiser = 2 * tiled_lbfgs_memory(shape, settings.lbfgs_memory) + 2 if settings.optimizer == "lbfgs" else 2
    image = 4 * 3 * h * w
    content = sum(4 * vgg.CHANNELS.get(n, 0) * np.prod(vgg.feature_hw(shape, n)) for n in settings.content_layers)
    # 10 whole-image arrays besides: the loop's image, gradient and direction, the previous point
    # during a step, the candidate and its gradient, the direction program's temporaries (measured
    # at 4096x3072: 5.0 GiB peak, 5.4 estimated; at 8192x6144 the estimate is low: 16.2 against 13.5).
    return int(estimate_memory_bytes(canvas, settings) + (10 + optimiser) * image + content)


def check_memory(shape: Sequence[int], settings: Settings, *, batch: int = 1) -> int:
    """Returns the estimate (tiled where `tile_for` tiles); raises JaxstyleError when it exceeds
    the memory available now."""
    tile = tile_for(shape, settings, batch=batch)
    need = estimate_tiled_bytes(shape, settings, tile) if tile else estimate_memory_bytes(shape, settings, batch=batch)
    if jax.default_backend() == "cpu" and need > available_memory_bytes():
        how = f" in {tile} px tiles" if tile else ""
        hint = "lower --size" if batch == 1 else "lower --size or the batch (one image alone is tiled)"
        if tile:  # the tiles' programs are fixed; the rest grows with the pixels
            side = tile + 2 * vgg.tile_halo([*settings.content_layers, *settings.style_layers])
            fixed = estimate_memory_bytes((side, side), settings)
            scale = math.sqrt(max(0.0, available_memory_bytes() - fixed) / max(1, need - fixed))
            hint = f"--size {int(scale * max(shape)) // 16 * 16} or less would fit"
        raise JaxstyleError(
            f"{shape[1]}x{shape[0]} px x {batch} image(s) needs about {need / 2**30:.1f} GiB{how} but only "
            f"{available_memory_bytes() / 2**30:.1f} GiB is available; {hint}")
    return need
