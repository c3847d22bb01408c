"""The jitted programs and the Python loop that optimise a batch of images, each its own problem.

Every image of a batch sits in the top-left corner of one canvas shape (H, W) and carries its own
targets, loss weights, starting image, step size and step count (`Batch`); the programs vmap
over the batch, so only the structural settings (`settings.ProgramKey`) and the canvas shape
compile. Each step takes a direction from the optimiser (optax's L-BFGS, or Adam's scaling),
evaluates the candidate image + step * direction projected into [0, 1], and keeps it on Armijo's
condition; an image whose step fails is retried with half its step from the Python loop (see
`run` for why not in `lax.while_loop`). An image whose loss turns NaN/inf stops there with its
last finite state; an image past its own step count stops too; the others go on.

Nothing here reads or writes files: `jaxstyle.optim` prepares the batch, `jaxstyle.optim.batch`
checkpoints it.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import lazy, losses, runtime
from jaxstyle.errors import JaxstyleError
from jaxstyle.optim.settings import ProgramKey

optax = lazy.module("optax")  # imported at first use (`jaxstyle.lazy`)

ARMIJO = 1e-4  # sufficient-decrease constant of the backtracking line search


class Batch(NamedTuple):
    """What each image of a batch brings, stacked along a leading axis B.

    valid: i32[B, 2] the (h, w) of each image inside the canvas. targets: `losses.CanvasTargets`.
    weights: `losses.LossWeights` of f32[B]; layer_weights: ({content layer: f32[B]}, {style layer:
    f32[B]}). stepsize: f32[B] the first step tried along each direction. steps: i32[B] each
    image's step count.
    """

    valid: jax.Array
    targets: losses.CanvasTargets
    weights: losses.LossWeights
    layer_weights: tuple[dict[str, jax.Array], dict[str, jax.Array]]
    stepsize: np.ndarray
    steps: np.ndarray


class State(NamedTuple):
    """Loop state of a batch: each image's current point, evaluated, and its next trial.

    image, grad: f32[B, H, W, 3] the accepted image and the gradient there; value: f32[B];
    parts: `losses.LossParts` of f32[B]. opt_state: optax state per image, after `direction` was
    taken. (The previous point, for L-BFGS's curvature check, is not kept: two whole images.)
    direction: f32[B, H, W, 3] and stepsize: f32[B], the trial to evaluate next; trials: i32[B]
    halvings so far along it. step: i32[B] accepted steps. failed: bool[B] stopped by a NaN/inf.
    """

    image: jax.Array
    opt_state: Any
    step: jax.Array
    value: jax.Array
    grad: jax.Array
    parts: losses.LossParts
    failed: jax.Array
    direction: jax.Array
    stepsize: jax.Array
    trials: jax.Array


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a callback receives after each step: per-image arrays over the batch's real images."""

    step: int
    steps: int
    total: Any
    content: Any
    style: Any
    tv: Any
    evaluations: int
    seconds: float
    image: Callable[[], list[np.ndarray]]  # fetches each image (cropped) only when called
    state: Any = None  # the loop `State` after this step, for checkpoints (read it in the callback)
    scale: int = 0  # index of the coarse-to-fine scale this step belongs to


class Resume(NamedTuple):
    """Where a checkpointed run stopped: scale index, steps done there, evaluations so far, and
    the flattened leaves of its loop `State` (NumPy arrays, in `jax.tree.leaves` order)."""

    scale: int
    step: int
    evaluations: int
    leaves: list


class StaleCheckpoint(JaxstyleError):
    """A `Resume` whose arrays do not fit the batch it was given to."""


class Outcome(NamedTuple):
    """The loop's end: its `State` and how many steps and evaluations the batch took."""

    state: State
    steps: int
    evaluations: int
    seconds: float


def make_optimizer(key: ProgramKey) -> optax.GradientTransformation:
    """The unsigned direction: L-BFGS's H g (optax.scale_by_lbfgs) or Adam's m / (sqrt(v) + eps)."""
    if key.optimizer == "adam":
        return optax.scale_by_adam()
    return optax.scale_by_lbfgs(memory_size=key.lbfgs_memory)


def vmap_unless_one(fn: Callable, in_axes: tuple | int = 0) -> Callable:
    """`jax.vmap(fn, in_axes)`, except that a batch of one runs `fn` on its one element.

    Same results; but XLA:CPU lowers a vmapped Gram product F^T F as a batched dot that first
    copies F transposed, which cost 8-9% of a 256 px evaluation for a batch of one.
    """
    vmapped = jax.vmap(fn, in_axes=in_axes)

    def call(*args):
        axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
        sizes = {x.shape[0] for a, ax in zip(args, axes) if ax is not None for x in jax.tree.leaves(a)}
        if sizes != {1}:
            return vmapped(*args)
        one = [a if ax is None else jax.tree.map(lambda x: x[0], a) for a, ax in zip(args, axes)]
        return jax.tree.map(lambda x: x[None], fn(*one))

    return call


class Programs(NamedTuple):
    targets: Callable
    init_opt: Callable
    direct: Callable
    direct_in_place: Callable  # `direct` reusing the given optimiser state's memory (which it consumes)
    evaluate: Callable
    select: Callable


@functools.lru_cache(maxsize=None)
def programs(key: ProgramKey, masked: bool = True) -> Programs:
    """The jitted programs of one `ProgramKey`, each vmapped over the batch; jit compiles each
    once per canvas shape and batch size. masked=False: every image fills the canvas, so the
    masks are left out (they cost about 4% of an evaluation) and `valid` is ignored."""
    optimizer = make_optimizer(key)
    layers = dict(content_layers=key.content_layers, style_layers=key.style_layers, pooling=key.pooling)

    def targets(params, content, valid, styles, style_valid, blend, masks):
        def one(content, valid, styles, style_valid, blend, masks):
            return losses.canvas_targets(params, content, styles, blend, masks, valid=valid if masked else None,
                                         style_valid=style_valid if masked else None, **layers)
        return vmap_unless_one(one)(content, valid, styles, style_valid, blend, masks)

    def direct(opt_state, image, grad, last_image, last_grad, step):
        """The step direction at each image and the optimiser state after it.

        optax's L-BFGS stores the curvature pair (s, y) between the previous image and this one.
        It needs s.y > 0 for a positive-definite inverse Hessian; projection into [0, 1] can break
        that, and then the memory starts afresh here instead of producing an ascent direction.
        """
        if key.optimizer == "lbfgs":
            curvature = jnp.vdot(image - last_image, grad - last_grad)
            restart = (step > 0) & ~(curvature > 0)
            opt_state = jax.tree.map(lambda new, kept: jnp.where(restart, new, kept),
                                     optimizer.init(image), opt_state)
        updates, opt_state = optimizer.update(grad, opt_state, image)
        return -updates, opt_state

    def evaluate(params, image, direction, stepsize, value, grad, valid, image_targets, weights, layer_weights):
        """The candidate image + stepsize * direction, projected into [0, 1], and evaluated there.

        Projecting before evaluating makes the loss, the gradient and the next curvature pair
        belong to the image actually kept. Returns ((value, parts), grad, image, accept): accept
        is Armijo's sufficient decrease along the projected step (Adam: a finite loss).
        """
        candidate = jnp.clip(image + stepsize * direction, 0.0, 1.0)
        content_w, style_w = layer_weights  # summed in the order of the key's layers
        loss = functools.partial(
            losses.total_loss, params, targets=image_targets, weights=weights, pooling=key.pooling,
            valid=valid if masked else None, content_layer_weights={n: content_w[n] for n in key.content_layers},
            style_layer_weights={n: style_w[n] for n in key.style_layers})
        (new_value, parts), new_grad = jax.value_and_grad(loss, has_aux=True)(candidate)
        accept = jnp.isfinite(new_value)
        if key.optimizer == "lbfgs":
            accept &= new_value <= value + ARMIJO * jnp.vdot(grad, candidate - image)
        return (new_value, parts), new_grad, candidate, accept

    def init_opt(image):
        state = optimizer.init(image)
        # optax initialises some fields as weakly typed scalars; the step returns them strongly
        # typed, which would compile the step a second time.
        return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(x)), state)

    def select(mask, new, old):
        """Per image: `new` where mask (bool[B]) holds, else `old`."""
        return jax.tree.map(lambda a, b: jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, old)

    jit = runtime.jit
    # Plain vmap for the optimiser: with `vmap_unless_one`'s indexing XLA copies L-BFGS's history
    # (2.4 GB of temporaries at 4096x3072 px and 5 pairs, against 0.6 GB).
    return Programs(
        targets=jit(targets),
        init_opt=jit(jax.vmap(init_opt)),
        direct=jit(jax.vmap(direct)),
        direct_in_place=jit(jax.vmap(direct), donate_argnums=0),
        evaluate=jit(vmap_unless_one(evaluate, in_axes=(None, 0, 0, 0, 0, 0, 0, 0, 0, 0))),
        select=jit(select),
    )


def initial_state(params, key: ProgramKey, start: jax.Array, batch: Batch, *, masked: bool = True,
                  evaluate: Callable | None = None) -> State:
    """The state at the starting images: one evaluation (a zero step), a fresh optimiser, the
    first directions. `evaluate`: instead of the programs' own (see `run`)."""
    p = programs(key, masked)
    zeros = jnp.zeros_like(start)
    b = start.shape[0]
    (value, parts), grad, image, _ = (evaluate or p.evaluate)(params, start, zeros, jnp.zeros(b, jnp.float32),
                                                jnp.full(b, jnp.inf, jnp.float32), zeros, batch.valid,
                                                batch.targets, batch.weights, batch.layer_weights)
    step = jnp.zeros(b, jnp.int32)
    direction, opt_state = p.direct_in_place(p.init_opt(image), image, grad, image, grad, step)
    return State(image, opt_state, step, value, grad, parts, ~jnp.isfinite(value), direction,
                 jnp.asarray(batch.stepsize, jnp.float32), jnp.zeros(b, jnp.int32))


def state_template(p: Programs, start: jax.Array) -> State:
    """The shapes and dtypes of the loop `State` for starting images f32[B, H, W, 3] (what a
    checkpoint must hold), without evaluating anything."""
    b = start.shape[0]
    image = jax.ShapeDtypeStruct(start.shape, jnp.float32)
    per_image = lambda dtype: jax.ShapeDtypeStruct((b,), dtype)  # noqa: E731
    value = per_image(jnp.float32)
    return State(image=image, opt_state=jax.eval_shape(p.init_opt, image), step=per_image(jnp.int32), value=value,
                 grad=image, parts=losses.LossParts(value, value, value, value), failed=per_image(jnp.bool_),
                 direction=image, stepsize=value, trials=per_image(jnp.int32))


def run(params, key: ProgramKey, start: jax.Array, batch: Batch, *, linesearch_steps: int,
        callback: Callable[[State, int, int, float], None] | None = None,
        resume: Resume | None = None, place: Callable | None = None, masked: bool = True,
        evaluate: Callable | None = None) -> Outcome:
    """The Python loop around the jitted programs: a line search per image, NaN guard, progress.

    Each batch evaluation is every image's own next trial: an image whose trial meets Armijo's
    condition accepts it and takes a new direction; one whose trial fails halves its step for the
    next evaluation (up to `linesearch_steps` times, then it takes the shortest step tried), so no
    image waits for another's line search, and each image follows the same trials as alone. The
    line search runs here rather than in a `lax.while_loop` because XLA:CPU runs convolutions
    inside loop bodies several times slower (measured 5x; jax issue #12868).

    Args:
      start: f32[B, H, W, 3] starting images (zero outside each image's valid part).
      callback: called with (state, step, evaluations, seconds) each time `step`, the fewest
        steps any unfinished image has taken, grows; so once per step for a batch of one.
      resume: continue from a checkpointed state instead of `start`.
      place: puts batched arrays on devices (e.g. sharded along the batch axis).
      masked: False when every image fills the canvas (see `programs`).
      evaluate: a function with the signature and results of `programs(...).evaluate` to use
        instead (the tiled evaluation of `jaxstyle.optim.tiled`).
    """
    p = programs(key, masked)
    evaluate = evaluate or p.evaluate
    place = place or (lambda tree: jax.tree.map(jnp.asarray, tree))
    t0 = time.perf_counter()
    if resume is None:
        state = initial_state(params, key, start, batch, masked=masked, evaluate=evaluate)
        reported, evaluations = 0, 1
    else:
        expected = state_template(p, start)
        leaves = [np.asarray(x) for x in resume.leaves]
        wanted = [(x.shape, x.dtype) for x in jax.tree.leaves(expected)]
        if [(x.shape, x.dtype) for x in leaves] != wanted:
            raise StaleCheckpoint(f"the checkpoint holds {len(leaves)} arrays that do not match this batch's "
                                  f"{len(wanted)} (another canvas, batch size or optimiser)")
        state = place(jax.tree.unflatten(jax.tree.structure(expected), leaves))
        reported, evaluations = resume.step, resume.evaluations
    steps = np.asarray(batch.steps)
    first_stepsize = np.asarray(batch.stepsize, np.float32)
    while True:
        step, failed = np.asarray(state.step), np.asarray(state.failed)
        active = (step < steps) & ~failed
        if not active.any():
            break
        (value, parts), grad, image, accept = evaluate(
            params, state.image, state.direction, state.stepsize, state.value, state.grad, batch.valid,
            batch.targets, batch.weights, batch.layer_weights)
        evaluations += 1
        trials = np.asarray(state.trials)
        last = trials >= linesearch_steps
        # Where no step gave a sufficient decrease, the shortest one tried is taken if finite.
        commit = active & (np.asarray(accept) | (last & np.isfinite(np.asarray(value))))
        retry = active & ~commit & ~last
        if commit.any():
            in_place = bool(commit.all())  # else `select` keeps the old state where no step was taken
            moved = state._replace(image=image, step=state.step + 1, value=value, grad=grad, parts=parts)
            last_image, last_grad, opt_state = state.image, state.grad, state.opt_state
            if in_place:  # the old direction is not kept: free it before the new one is made
                state = moved = moved._replace(direction=None, opt_state=None)
            direction, opt_state = (p.direct_in_place if in_place else p.direct)(
                opt_state, moved.image, moved.grad, last_image, last_grad, moved.step)
            del last_image, last_grad
            moved = moved._replace(direction=direction, opt_state=opt_state)
            state = moved if in_place else p.select(place(commit), moved, state)
        stepsize = np.asarray(state.stepsize)
        state = state._replace(
            stepsize=place(np.where(commit, first_stepsize, np.where(retry, stepsize / 2, stepsize)).astype(np.float32)),
            trials=place(np.where(commit, 0, np.where(retry, trials + 1, trials)).astype(np.int32)),
            # An image with no finite trial left stops with its last finite state.
            failed=place(failed | (active & ~commit & ~retry)))
        step = np.asarray(state.step)
        unfinished = (step < steps) & ~np.asarray(state.failed)
        progress = int(step[unfinished].min()) if unfinished.any() else int(steps.max(initial=0))
        if progress > reported:
            reported = progress
            if callback is not None:
                callback(state, progress, evaluations, time.perf_counter() - t0)
    return Outcome(state, int(steps.max(initial=0)), evaluations, time.perf_counter() - t0)
