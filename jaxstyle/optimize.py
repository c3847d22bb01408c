"""Optimising the pixels: jitted optax directions and value_and_grad evaluations, batched by vmap.

Each step takes a direction from the optimiser (optax's L-BFGS, or Adam), which updates its
memory in place (the state is donated), then evaluates the candidate image + step * direction,
projected into [0, 1], and accepts it on Armijo's condition; the rare rejection is retried
with half the step from the Python loop (see `_run` for why not in `lax.while_loop`). The
programs work on one image; `stylize_batch` vmaps them over content images (each with its own
optimiser state and step size) and `sweep` over loss weights. Each distinct (program settings,
image size, batch) compiles once per process; the persistent compilation cache
(`enable_compilation_cache`) keeps it across processes.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxstyle import color, image_io, losses, vgg
from jaxstyle.errors import JaxstyleError

INITS = ("noise", "content", "style")
OPTIMIZERS = ("lbfgs", "adam")
MIN_SIDE = 32  # conv5_1 sits behind four 2x2 poolings: 32 px leaves it 2x2 positions.


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything that decides the picture. Defaults are the paper's unless a comment says otherwise.

    content_weight / style_weight are the paper's alpha / beta (alpha/beta = 1e-3, Fig. 3).
    Layer weights of None mean equal weights summing to one (the paper's w_l = 1/5).
    init is "noise", "content", "style", or the path of an image file.
    """

    size: int = 256  # longest side in px; the paper shows 512 (see README: CPU time).
    steps: int = 80
    optimizer: str = "lbfgs"
    content_weight: float = 1e-3
    style_weight: float = 1.0
    tv_weight: float = 0.0
    content_layers: tuple[str, ...] = losses.CONTENT_LAYERS
    style_layers: tuple[str, ...] = losses.STYLE_LAYERS
    content_layer_weights: tuple[float, ...] | None = None
    style_layer_weights: tuple[float, ...] | None = None
    pooling: str = "avg"
    style_blend: tuple[float, ...] | None = None  # one weight per style image; None: 1/S each.
    style_scale: float = 1.0  # style image size relative to the content's (the paper: 1).
    preserve_colors: str = "none"  # "luminance" or "histogram" (Gatys et al. 2016/2017).
    scales: int = 1  # coarse-to-fine: optimise at size / 2^(scales-1), ..., size; steps per scale.
    # Departure: the paper starts from white noise; the content image reaches a good
    # picture in far fewer steps (the paper's Fig. 6 shows both work).
    init: str = "content"
    seed: int = 0
    learning_rate: float = 0.02  # Adam only, for pixels in [0, 1].
    lbfgs_memory: int = 10
    linesearch_steps: int = 10  # most halvings of an L-BFGS step that fails Armijo's condition.

    def __post_init__(self):
        if isinstance(self.style_layers, str):  # a preset name, e.g. "upto-conv3_1"
            if self.style_layers not in losses.STYLE_PRESETS:
                raise JaxstyleError(f"unknown style-layer preset {self.style_layers!r}; "
                                    f"choose from {', '.join(losses.STYLE_PRESETS)} or list layers")
            object.__setattr__(self, "style_layers", losses.STYLE_PRESETS[self.style_layers])
        for name in ("content_layers", "style_layers", "content_layer_weights", "style_layer_weights",
                     "style_blend"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        validate(self)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Settings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise JaxstyleError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def layer_weights(self) -> tuple[dict[str, float], dict[str, float]]:
        """({content layer: weight}, {style layer: weight})."""
        return (_weights_for(self.content_layers, self.content_layer_weights),
                _weights_for(self.style_layers, self.style_layer_weights))

    def loss_weights(self) -> losses.LossWeights:
        return losses.LossWeights(content=self.content_weight, style=self.style_weight, tv=self.tv_weight)


def _weights_for(layers: tuple[str, ...], weights: tuple[float, ...] | None) -> dict[str, float]:
    if weights is None:
        return losses.equal_weights(layers) if layers else {}
    return dict(zip(layers, weights))


def validate(settings: Settings) -> None:
    """Raises JaxstyleError naming the first setting that cannot work."""
    s = settings
    problems = []
    if s.optimizer not in OPTIMIZERS:
        problems.append(f"optimizer must be one of {OPTIMIZERS}, got {s.optimizer!r}")
    if s.pooling not in vgg.POOLINGS:
        problems.append(f"pooling must be one of {vgg.POOLINGS}, got {s.pooling!r}")
    if s.steps < 0:
        problems.append(f"steps must be >= 0, got {s.steps}")
    if s.size < MIN_SIDE:
        problems.append(f"size must be at least {MIN_SIDE} px, got {s.size}")
    for name in ("content_weight", "style_weight", "tv_weight", "learning_rate"):
        value = getattr(s, name)
        if not (np.isfinite(value) and value >= 0):
            problems.append(f"{name} must be a finite number >= 0, got {value}")
    if not s.content_layers and not s.style_layers:
        problems.append("give at least one content or style layer")
    for kind in ("content", "style"):
        layers, weights = getattr(s, f"{kind}_layers"), getattr(s, f"{kind}_layer_weights")
        bad = [n for n in layers if n not in vgg.LAYER_NAMES]
        if bad:
            problems.append(f"unknown {kind} layer(s) {bad}; choose from {', '.join(vgg.LAYER_NAMES)}")
        if weights is not None and len(weights) != len(layers):
            problems.append(f"{kind}_layer_weights has {len(weights)} values for {len(layers)} layers")
    if s.preserve_colors not in color.PRESERVE_COLORS:
        problems.append(f"preserve_colors must be one of {color.PRESERVE_COLORS}, got {s.preserve_colors!r}")
    if not (np.isfinite(s.style_scale) and s.style_scale > 0):
        problems.append(f"style_scale must be a number > 0, got {s.style_scale}")
    if s.scales < 1 or s.size // 2 ** (s.scales - 1) < MIN_SIDE:
        problems.append(f"scales must be >= 1 and leave the coarsest size >= {MIN_SIDE} px, got {s.scales} "
                        f"at size {s.size}")
    if s.style_blend is not None and (not s.style_blend or min(s.style_blend) < 0):
        problems.append(f"style_blend needs one weight >= 0 per style image, got {s.style_blend}")
    if s.init not in INITS and not Path(s.init).is_file():
        problems.append(f"init must be one of {INITS} or an image file, got {s.init!r}")
    if problems:
        raise JaxstyleError("; ".join(problems))


class State(NamedTuple):
    """Loop state of one image, with the loss and gradient already evaluated there.

    image: f32[h, w, 3] in [0, 1]. opt_state: optax state. step: i32[].
    value: f32[] total loss at image. grad: f32[h, w, 3]. parts: its unweighted terms.
    """

    image: jax.Array
    opt_state: Any
    step: jax.Array
    value: jax.Array
    grad: jax.Array
    parts: losses.LossParts


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a callback receives after each step (for a batch: the per-image arrays)."""

    step: int
    steps: int
    total: Any
    content: Any
    style: Any
    tv: Any
    evaluations: int
    seconds: float
    image: Callable[[], np.ndarray]  # fetches the current image(s) only when called
    state: Any = None  # the loop `State` after this step, for checkpoints; read it in the callback (the
    # next step reuses its optimiser buffers)
    scale: int = 0  # index of the coarse-to-fine scale this step belongs to


class Resume(NamedTuple):
    """Where a checkpointed run stopped: scale index, steps done there, evaluations so far, and
    the flattened leaves of its loop `State` (NumPy arrays, in `jax.tree.leaves` order)."""

    scale: int
    step: int
    evaluations: int
    leaves: list


@dataclasses.dataclass(frozen=True)
class Result:
    """image: f32[h, w, 3] (or [B, h, w, 3]); final losses at that image; cost of the run."""

    image: np.ndarray
    total: Any
    content: Any
    style: Any
    tv: Any
    steps: int
    evaluations: int
    seconds: float

    def item(self, k: int) -> "Result":
        """The k-th image of a batched result, with its own losses."""
        return dataclasses.replace(self, image=self.image[k], total=self.total[k], content=self.content[k],
                                   style=self.style[k], tv=self.tv[k])


class NonFiniteLoss(JaxstyleError):
    """The loss became NaN/inf; `.result` holds the last finite image."""

    def __init__(self, message: str, result: Result):
        super().__init__(message)
        self.result = result


def make_optimizer(settings: Settings) -> optax.GradientTransformation:
    """The update direction: L-BFGS's (optax.scale_by_lbfgs) or Adam's, signed to be added."""
    if settings.optimizer == "adam":
        return optax.adam(settings.learning_rate)
    return optax.chain(optax.scale_by_lbfgs(memory_size=settings.lbfgs_memory), optax.scale(-1.0))


def _loss_fn(settings: Settings) -> Callable:
    content_lw, style_lw = settings.layer_weights()
    return functools.partial(
        losses.total_loss, content_layer_weights=content_lw, style_layer_weights=style_lw,
        pooling=settings.pooling)


def _evaluate(params, image, targets, weights, *, settings: Settings):
    """(value, parts), grad of the total loss at one image: one VGG-19 forward + backward."""
    loss = _loss_fn(settings)
    return jax.value_and_grad(lambda x: loss(params, x, targets, weights), has_aux=True)(image)


def _init_state(params, image, targets, weights, *, settings: Settings) -> State:
    (value, parts), grad = _evaluate(params, image, targets, weights, settings=settings)
    opt_state = make_optimizer(settings).init(image)
    state = State(image, opt_state, jnp.zeros((), jnp.int32), value, grad, parts)
    # optax initialises some fields as weakly typed scalars; the step returns them strongly
    # typed, which would compile the step a second time.
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(x)), state)


_ARMIJO = 1e-4  # sufficient-decrease constant of the backtracking line search


def _direct(opt_state, image, grad, *, settings: Settings):
    """The step direction at the current image (f32[h, w, 3]) and the optimiser state after it.

    optax's L-BFGS stores the curvature pair (s, y) between the previous image and this one.
    It needs s.y > 0 for a positive-definite inverse Hessian; projection into [0, 1] can break
    that, and then the memory starts afresh here instead of producing an ascent direction.
    """
    optimizer = make_optimizer(settings)
    if settings.optimizer == "lbfgs":
        lbfgs = opt_state[0]
        curvature = jnp.vdot(image - lbfgs.params, grad - lbfgs.updates)
        restart = (lbfgs.count > 0) & ~(curvature > 0)
        fresh = optimizer.init(image)
        opt_state = jax.tree.map(lambda new, kept: jnp.where(restart, new, kept), fresh, opt_state)
    return optimizer.update(grad, opt_state, image)


def _evaluate_step(params, image, direction, stepsize, value, grad, targets, weights, *, settings: Settings):
    """The candidate image + stepsize * direction, projected into [0, 1], and evaluated there.

    Projecting before evaluating makes the loss, the gradient and the next curvature pair
    belong to the image actually kept. Returns ((value, parts), grad, image, accept): accept
    is Armijo's sufficient decrease along the projected step (Adam: a finite loss).
    """
    candidate = jnp.clip(image + stepsize * direction, 0.0, 1.0)
    (new_value, parts), new_grad = _evaluate(params, candidate, targets, weights, settings=settings)
    accept = jnp.isfinite(new_value)
    if settings.optimizer == "lbfgs":
        accept &= new_value <= value + _ARMIJO * jnp.vdot(grad, candidate - image)
    return (new_value, parts), new_grad, candidate, accept


# in_axes for (image-like, params, targets, weights) in each batching mode.
_AXES = {
    "single": None,
    "contents": (0, None, 0, None),
    "weights": (0, None, None, 0),
}


def _program_key(settings: Settings) -> Settings:
    """The settings with every field that does not change the compiled step set to a constant,
    so that runs differing only in steps, seed, init, size, loss weights etc. share programs."""
    return settings.replace(size=MIN_SIDE, steps=0, scales=1, init="content", seed=0, preserve_colors="none",
                            style_scale=1.0, content_weight=0.0, style_weight=0.0, tv_weight=0.0,
                            linesearch_steps=0, style_blend=None)


@functools.lru_cache(maxsize=None)
def _programs(settings: Settings, mode: str):
    """(init, direct, evaluate) jitted for a batching mode; cached so each compiles once per shape.

    `direct` donates the optimiser state, so L-BFGS's memory is updated in place and is never
    part of the (much larger) evaluation program.
    """
    init = functools.partial(_init_state, settings=settings)
    direct = functools.partial(_direct, settings=settings)
    evaluate = functools.partial(_evaluate_step, settings=settings)
    axes = _AXES[mode]
    if axes is not None:
        image, params, targets, weights = axes
        init = jax.vmap(init, in_axes=(params, image, targets, weights))
        direct = jax.vmap(direct)
        evaluate = jax.vmap(evaluate, in_axes=(params, image, image, image, image, image, targets, weights))
    return jax.jit(init), jax.jit(direct, donate_argnums=0), jax.jit(evaluate)


def check_size(shape: Sequence[int]) -> None:
    if min(shape) < MIN_SIDE:
        raise JaxstyleError(
            f"image of {shape[1]}x{shape[0]} px is too small: conv5_1 needs both sides >= {MIN_SIDE} px; "
            f"use a larger --size or a less elongated image")


def scale_sizes(settings: Settings) -> list[int]:
    """Longest sides of the coarse-to-fine scales, coarsest first, ending at settings.size."""
    return [settings.size // 2 ** k for k in reversed(range(settings.scales))]


def _as_list(images) -> list[np.ndarray]:
    return [images] if isinstance(images, np.ndarray) and images.ndim == 3 else list(images)


class Problem(NamedTuple):
    """One content image's optimisation problem at one scale, ready for the jitted loop.

    content: f32[h, w, 3] as transferred (gray luminance in "luminance" mode).
    styles: S images f32[h_s, w_s, 3] at style_scale x the content's size.
    masks: f32[S, h, w] or None.
    """

    content: np.ndarray
    styles: list[np.ndarray]
    masks: np.ndarray | None


def make_problem(content: np.ndarray, styles, settings: Settings, *, size: int | None = None,
                 masks=None) -> Problem:
    """Resizes and colour-prepares the inputs for one scale (the paper: style at the content's size).

    Args:
      content: f32[h, w, 3] RGB in [0, 1]. styles: one f32[h', w', 3] image or a list of them.
      size: longest side (default settings.size).
      masks: None or one f32[h'', w''] map per style (resized to the content).
    """
    styles = _as_list(styles)
    if settings.style_blend is not None and len(settings.style_blend) != len(styles):
        raise JaxstyleError(f"style_blend has {len(settings.style_blend)} weights for {len(styles)} style images")
    content = image_io.resize_longest(content, size or settings.size)
    shape = content.shape[:2]
    check_size(shape)
    style_shape = tuple(max(1, round(side * settings.style_scale)) for side in shape)
    check_size(style_shape)
    styles = [image_io.resize(style, style_shape) for style in styles]
    content, styles = color.prepare_colors(settings.preserve_colors, content, styles)
    if masks is not None:
        masks = list(masks)
        if len(masks) != len(styles):
            raise JaxstyleError(f"got {len(masks)} masks for {len(styles)} style images; give one mask per style")
        masks = np.stack([_resize_mask(m, shape) for m in masks])
    return Problem(content, styles, masks)


def _resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask, np.float32)
    if mask.ndim == 3:
        mask = mask.mean(axis=-1)
    return image_io.resize(np.repeat(mask[..., None], 3, axis=-1), shape)[..., 0]


def initial_image(problem: Problem, settings: Settings) -> np.ndarray:
    """The starting image, f32[h, w, 3]: seeded white noise, the content, the style, or a file."""
    shape = problem.content.shape
    if settings.init == "noise":
        return np.random.default_rng(settings.seed).random(shape, dtype=np.float32)
    if settings.init == "content":
        return problem.content
    if settings.init == "style":
        return image_io.resize(problem.styles[0], shape[:2])
    return image_io.resize(image_io.load_image(settings.init), shape[:2])


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
            floats += 2 * h * w * dict((n, c) for n, _, c in vgg.CONV_LAYERS)[name]
    return int(batch * 1.25 * 4 * floats + 600e6)


def available_memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def check_memory(shape: Sequence[int], settings: Settings, *, batch: int = 1) -> int:
    """Returns the estimate; raises JaxstyleError when it exceeds the memory available now."""
    need = estimate_memory_bytes(shape, settings, batch=batch)
    if jax.default_backend() == "cpu" and need > available_memory_bytes():
        raise JaxstyleError(
            f"{shape[1]}x{shape[0]} px x {batch} image(s) needs about {need / 2**30:.1f} GiB but only "
            f"{available_memory_bytes() / 2**30:.1f} GiB is available; lower --size or the batch")
    return need


def _raise_non_finite(value, step: int, image, evaluations: int, seconds: float):
    result = Result(np.asarray(image), value, None, None, None, step, evaluations, seconds)
    raise NonFiniteLoss(
        f"the loss became {value} at step {step}; the last finite image is kept. Lower "
        f"--style-weight (beta) or --tv-weight (or --learning-rate with Adam)", result)


def _run(params, targets, weights, start, settings: Settings, mode: str,
         callback: Callable[[Progress], None] | None, *, scale: int = 0, resume: Resume | None = None,
         place: Callable | None = None) -> Result:
    """The Python loop around the jitted step: line search, progress, NaN guard.

    Each step evaluates one candidate; where Armijo's condition fails (rare after the first
    steps) the step is halved and evaluated again, up to settings.linesearch_steps times. The
    line search runs here rather than in a `lax.while_loop` because XLA:CPU runs convolutions
    inside loop bodies several times slower (measured 5x; jax issue #12868).

    `place` puts batched arrays on devices (sharding); `resume` continues a checkpointed state.
    """
    init, direct, evaluate = _programs(_program_key(settings), mode)
    weights = jax.tree.map(jnp.asarray, weights)
    place = place or (lambda tree: jax.tree.map(jnp.asarray, tree))
    start = place(np.asarray(start))
    if mode == "contents":
        targets = place(targets)
    t0 = time.perf_counter()
    if resume is None:
        state = init(params, start, targets, weights)
        first, evaluations = 0, 1
    else:
        structure = jax.tree.structure(jax.eval_shape(init, params, start, targets, weights))
        state = place(jax.tree.unflatten(structure, [np.asarray(x) for x in resume.leaves]))
        first, evaluations = resume.step, resume.evaluations
    if not np.all(np.isfinite(np.asarray(state.value))):
        _raise_non_finite(np.asarray(state.value), 0, start, evaluations, time.perf_counter() - t0)
    batch_shape = np.shape(state.value)
    for i in range(first, settings.steps):
        direction, opt_state = direct(state.opt_state, state.image, state.grad)
        stepsize = np.ones(batch_shape, np.float32)
        for _ in range(settings.linesearch_steps + 1):
            (value, parts), grad, image, accept = evaluate(
                params, state.image, direction, stepsize, state.value, state.grad, targets, weights)
            evaluations += 1
            accept = np.asarray(accept)
            if accept.all():
                break
            # Halve the step where it failed; where it held, the same step is evaluated again.
            stepsize = np.where(accept, stepsize, stepsize / 2).astype(np.float32)
        if not accept.all() and not np.all(np.isfinite(np.asarray(value))):
            _raise_non_finite(np.asarray(value), i, state.image, evaluations, time.perf_counter() - t0)
        # Where no step gave a sufficient decrease, the shortest one tried is taken.
        state = State(image, opt_state, state.step + 1, value, grad, parts)
        if callback is not None:
            callback(Progress(
                step=i + 1, steps=settings.steps, total=np.asarray(state.value),
                content=np.asarray(state.parts.content), style=np.asarray(state.parts.style),
                tv=np.asarray(state.parts.tv), evaluations=evaluations, seconds=time.perf_counter() - t0,
                image=functools.partial(np.asarray, state.image), state=state, scale=scale))
    parts = jax.tree.map(np.asarray, state.parts)
    return Result(np.asarray(state.image), np.asarray(state.value), parts.content, parts.style, parts.tv,
                  settings.steps, evaluations, time.perf_counter() - t0)


def _targets(params, problem: Problem, settings: Settings) -> losses.Targets:
    """The problem's `losses.make_targets`, one jitted forward pass per image: compiled as one
    program, the passes over content and styles kept their buffers side by side (1.6 GB at 1024 px)."""
    content_program, style_program = _targets_programs(settings)
    features = content_program(params, jnp.asarray(problem.content))
    grams = [style_program(params, jnp.asarray(style), problem.content.shape[:2]) for style in problem.styles]
    return losses.assemble_targets(features, grams, blend=settings.style_blend, masks=problem.masks)


@functools.lru_cache(maxsize=None)
def _targets_programs(settings: Settings):
    def content_features(params, content):
        return vgg.features(params, content, layers=settings.content_layers, pooling=settings.pooling)

    def style_grams(params, style, content_hw):
        return losses.style_grams(params, style, content_hw, style_layers=settings.style_layers,
                                  pooling=settings.pooling)

    return jax.jit(content_features), jax.jit(style_grams, static_argnums=2)


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _solve(params, contents: list[np.ndarray], styles, settings: Settings, *, mode: str, masks=None,
           weights: losses.LossWeights | None = None, callback=None, resume: Resume | None = None,
           place: Callable | None = None) -> Result:
    """Coarse-to-fine over settings' scales; each scale runs the jitted loop in one batching mode.

    mode "single": one content. "contents": B same-size contents, vmapped. "weights": one content,
    vmapped over the leading axis of `weights`.
    """
    weights = settings.loss_weights() if weights is None else weights
    batch = len(np.atleast_1d(weights.content)) if mode == "weights" else len(contents)
    final_shape = image_io.longest_side_shape(contents[0].shape[:2], settings.size)
    check_size(final_shape)
    check_memory(final_shape, settings, batch=batch)
    previous, steps, evaluations, seconds = None, 0, 0, 0.0
    for level, size in enumerate(scale_sizes(settings)):
        if resume is not None and level < resume.scale:
            continue  # the checkpointed state already holds this scale's result
        problems = [make_problem(c, styles, settings, size=size, masks=masks) for c in contents]
        shape = problems[0].content.shape[:2]
        if previous is None:
            starts = [initial_image(pr, settings) for pr in problems] * (batch if mode == "weights" else 1)
        else:
            starts = [image_io.resize(image, shape) for image in previous]
        targets = [_targets(params, pr, settings) for pr in problems]
        run = functools.partial(_run, settings=settings, mode=mode, callback=callback, scale=level,
                                resume=resume if resume is not None and level == resume.scale else None,
                                place=place)
        if mode == "single":
            result = run(params, targets[0], weights, starts[0])
        elif mode == "contents":
            result = run(params, _stack(targets), weights, np.stack(starts))
        else:
            result = run(params, targets[0], weights, np.stack(starts))
        previous = [result.image] if mode == "single" else list(result.image)
        steps, evaluations, seconds = steps + result.steps, evaluations + result.evaluations, seconds + result.seconds
    finished = [color.finish_colors(settings.preserve_colors, image,
                                    image_io.resize(contents[0 if mode == "weights" else i], image.shape[:2]))
                for i, image in enumerate(previous)]
    image = finished[0] if mode == "single" else np.stack(finished)
    return dataclasses.replace(result, image=image, steps=steps, evaluations=evaluations, seconds=seconds)


def stylize(params, content: np.ndarray, style, settings: Settings = Settings(), *, masks=None,
            callback: Callable[[Progress], None] | None = None) -> Result:
    """Paints one content image in the style of one or more style images.

    Args:
      params: VGG-19 params (`jaxstyle.weights.load_params`).
      content: f32[h, w, 3] RGB in [0, 1], any size (resized to settings.size).
      style: f32[h', w', 3] RGB in [0, 1], or a list of them blended by settings.style_blend
        (each resized to style_scale x the content's size; the paper: the content's size).
      settings: see `Settings`.
      masks: None, or one map f32[h'', w''] in [0, 1] per style image: the region of the content
        that style paints (spatial control, guided Gram matrices).
      callback: called with a `Progress` after every step.

    Returns:
      A `Result` whose image is f32[H, W, 3] with max(H, W) == settings.size.
    """
    return _solve(params, [content], style, settings, mode="single", masks=masks, callback=callback)


def stylize_batch(params, contents: Sequence[np.ndarray], style, settings: Settings = Settings(),
                  *, masks=None, callback: Callable[[Progress], None] | None = None,
                  resume: Resume | None = None, place: Callable | None = None) -> Result:
    """Stylises same-size content images against one style in one vmapped, compiled program.

    Args:
      contents: B images f32[h, w, 3] that resize to one shape at settings.size.
      style, masks: as for `stylize`, shared by all contents.
      resume: continue from a checkpoint taken from `Progress.state` (see `jaxstyle.batch`).
      place: puts batched arrays on devices, e.g. sharded along the batch axis.

    Returns:
      A `Result` with image f32[B, H, W, 3] and per-image losses f32[B].
    """
    shapes = {image_io.longest_side_shape(c.shape[:2], settings.size) for c in contents}
    if len(shapes) != 1:
        raise JaxstyleError(f"stylize_batch needs content images of one size, got {sorted(shapes)}; "
                            f"use stylize_many to group them")
    return _solve(params, list(contents), style, settings, mode="contents", masks=masks, callback=callback,
                  resume=resume, place=place)


def stylize_many(params, contents: Sequence[np.ndarray], style, settings: Settings = Settings(),
                 *, batch_size: int | None = None,
                 callback: Callable[[Progress], None] | None = None) -> list[Result]:
    """Stylises content images of any sizes: vmapped batches, one compile per size.

    Returns one single-image `Result` per content, in the input order.
    """
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(contents):
        groups.setdefault(image_io.longest_side_shape(c.shape[:2], settings.size), []).append(i)
    results: list[Result | None] = [None] * len(contents)
    for indices in groups.values():
        size = batch_size or len(indices)
        for start in range(0, len(indices), size):
            chunk = indices[start:start + size]
            batch = stylize_batch(params, [contents[i] for i in chunk], style, settings, callback=callback)
            for j, i in enumerate(chunk):
                results[i] = batch.item(j)
    return results


def sweep(params, content: np.ndarray, style, ratios: Sequence[float], settings: Settings = Settings(), *,
          masks=None, callback: Callable[[Progress], None] | None = None) -> Result:
    """One compiled program for K values of alpha/beta (vmapped loss weights), one content/style pair.

    beta stays settings.style_weight; alpha = ratio * beta for each ratio.

    Returns:
      A `Result` with image f32[K, H, W, 3] and per-ratio losses f32[K].
    """
    ratios = np.asarray(ratios, np.float32)
    if ratios.ndim != 1 or len(ratios) == 0 or not np.all(np.isfinite(ratios)) or np.any(ratios < 0):
        raise JaxstyleError(f"ratios must be a non-empty list of finite numbers >= 0, got {ratios.tolist()}")
    k = len(ratios)
    weights = losses.LossWeights(content=ratios * np.float32(settings.style_weight),
                                 style=np.full(k, settings.style_weight, np.float32),
                                 tv=np.full(k, settings.tv_weight, np.float32))
    return _solve(params, [content], style, settings, mode="weights", masks=masks, weights=weights,
                  callback=callback)


def enable_compilation_cache(path: str | os.PathLike | None = None) -> None:
    """Keeps compiled programs on disk so a new process skips the compile (per image size)."""
    path = path or os.environ.get("JAX_COMPILATION_CACHE_DIR") or Path.home() / ".cache" / "jaxstyle" / "jit"
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
