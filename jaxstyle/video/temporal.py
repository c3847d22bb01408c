"""Frame-to-frame coherence for the optimisation (Ruder et al., Artistic style transfer for videos, GCPR 2016).

Each frame after the first starts from the previous output carried along the optical flow
(`warped_init`) and, with a temporal weight gamma > 0, is pulled towards it where the flow is trusted:
gamma x sum_k c_k (x_k - w_k)^2 (`losses.temporal_loss`, a sum where Ruder et al. take a mean; c the
consistency mask of `flow.consistency_mask`).

Long-term (Ruder et al.'s J, e.g. 1, 10, 20, 40): frame i is pulled towards each earlier output i - j,
warped by the flow between the two frames, with c_long,j = max(c_j - sum_{k in J, k < j} c_k, 0), so
each pixel follows the nearest earlier frame it can be traced to. Those masks never overlap for 0/1
masks, so sum_j c_long,j (x - w_j)^2 is one term C (x - W)^2 with C = sum_j c_long,j and
W = sum_j c_long,j w_j / C, up to a constant: the same gradient, one target (`combined_target`).

Multi-pass (Ruder et al.'s Section 3.3, `passes` > 0), batched: the frames are taken in windows of
`window`; once a window's frames are painted one after another as above, each pass optimises all of
them at once, as one vmapped batch of the solver, every frame from its current output and held to both
its neighbours' current outputs (the one before the window held fixed), so that the start of a scene
learns from its end. Ruder et al. sweep frame by frame, alternating forward and backward, and start each
frame halfway between its output and its warped neighbour; a batched pass (Jacobi's order instead of
Gauss-Seidel's) costs one batch evaluation per step for the whole window, and holds each frame to its own
current output too (weight 1, as their halfway start does), without which Jacobi's averaging of a chain
oscillates from pass to pass instead of settling.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from jaxstyle import optim
from jaxstyle.io import image_io
from jaxstyle.video import flow as flows

SHORT_TERM = (1,)


def warped_init(previous_output: np.ndarray, previous_content: np.ndarray, content: np.ndarray) -> np.ndarray:
    """warp(O_{t-1}, w) with w the flow from I_t to I_{t-1}: f32[h, w, 3], the previous output moved
    into this frame's pixels. All three f32[h, w, 3] in [0, 1], at the output's shape; disoccluded
    pixels take what the warp puts there (their neighbours'), for the optimisation to repaint."""
    backward = flows.optical_flow(content, previous_content)
    return np.clip(flows.warp(previous_output, backward), 0.0, 1.0)


def flow_and_mask(content: np.ndarray, other_content: np.ndarray, *,
                  method: str = "dis-medium") -> tuple[np.ndarray, np.ndarray]:
    """(the flow from this frame to the other f32[h, w, 2], Ruder et al.'s mask of this frame f32[h, w]):
    the flows both ways between the two frames (f32[h, w, 3] in [0, 1] at the output's shape)."""
    backward = flows.optical_flow(content, other_content, method=method)
    return backward, flows.consistency_mask(backward, flows.optical_flow(other_content, content, method=method))


# A network's frames are blended with a cheaper flow than the optimisation's (and than the warping error's
# dis-medium, so the metric does not grade the blend with the very flow it was made with).
SMOOTH_FLOW = "dis-fast"


def smoothed(outputs: Iterable[np.ndarray], contents: Iterable[np.ndarray], strength: float, *,
             previous: tuple[np.ndarray, np.ndarray] | None = None) -> Iterator[np.ndarray]:
    """A network's frames made steadier: R_t = O_t + s c_t (warp(R_{t-1}) - O_t), each result rounded to
    8 bits as saved (`as_saved`).

    O_t the network's output for frame I_t, R_{t-1} the previous result carried along the flow from I_t to
    I_{t-1} (`SMOOTH_FLOW`), c_t Ruder et al.'s mask (0 at disocclusions and motion boundaries, where O_t
    is kept), s = `strength` in [0, 1) (0: the outputs as they are). Unlike a plain blend with the previous
    frame, what moves is blended with itself, so moving things leave no ghost. All f32[h, w, 3] in [0, 1];
    `previous`: (R_{t-1}, I_{t-1}) before the first output (a resumed run), else None.
    """
    if not 0.0 <= strength < 1.0:
        raise ValueError(f"smoothing strength must be in [0, 1), got {strength}")
    for output, content in zip(outputs, contents, strict=True):
        result = output
        if previous is not None and strength > 0:
            backward, mask = flow_and_mask(content, previous[1], method=SMOOTH_FLOW)
            carried = np.clip(flows.warp(previous[0], backward), 0.0, 1.0)
            result = output + (strength * mask)[..., None] * (carried - output)
        result = as_saved(result)
        previous = (result, content)
        yield result


def warped_with_mask(earlier_output: np.ndarray, earlier_content: np.ndarray,
                     content: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the earlier output warped into this frame f32[h, w, 3], its mask f32[h, w]; see `flow_and_mask`)."""
    backward, mask = flow_and_mask(content, earlier_content)
    return np.clip(flows.warp(earlier_output, backward), 0.0, 1.0), mask


def one_target(warped: Sequence[np.ndarray], weights: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """sum_j c_j |x - w_j|^2 = C |x - W|^2 + const: (W f32[h, w, 3], C f32[h, w]) with C = sum_j c_j and
    W = sum_j c_j w_j / C (the first w where C is 0), for outputs w_j warped into this frame with
    weights c_j f32[h, w]."""
    total = np.sum(weights, axis=0)
    target = np.einsum("jhw,jhwc->hwc", np.asarray(weights), np.asarray(warped))
    target = np.where(total[..., None] > 0, target / np.maximum(total, 1e-8)[..., None], warped[0])
    return target.astype(np.float32), total.astype(np.float32)


def combined_target(warped: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One target (W, C; `one_target`) for the long-term term of earlier outputs warped into this frame,
    nearest first, with their masks c_j: c_long,j = max(c_j - sum_{k<j} c_k, 0)."""
    covered, long = np.zeros_like(masks[0]), []
    for c in masks:
        long.append(np.maximum(c - covered, 0.0))
        covered = covered + c
    return one_target(warped, long)


def as_saved(image: np.ndarray) -> np.ndarray:
    """f32[h, w, 3] rounded to 8 bits, as a saved frame reads back (`FramesFolder`): a resumed run starts where it stopped."""
    return image_io.to_uint8(image).astype(np.float32) / 255.0


def refine_window(params, contents: Sequence[np.ndarray], outputs: Sequence[np.ndarray], style,
                  settings: optim.Settings, *, passes: int, steps: int, temporal_weight: float,
                  before: tuple[np.ndarray, np.ndarray] | None = None) -> list[optim.Result]:
    """Batched multi-pass over one window (see the module doc): `passes` solves of all its frames at once.

    contents, outputs: the window's frames and their current outputs, f32[h, w, 3] at the output's shape.
    before: (frame, output) just before the window, held fixed, or None.
    Returns the last pass's `optim.Result`s, one per frame.
    """
    n = len(contents)
    links = []  # per frame: [(neighbour index, or -1 for `before`; flow to it; mask)]
    for i, content in enumerate(contents):
        near = [(j, contents[j]) for j in (i - 1, i + 1) if 0 <= j < n]
        if i == 0 and before is not None:
            near.insert(0, (-1, before[0]))
        links.append([(j, *flow_and_mask(content, other)) for j, other in near])
    results = None
    for _ in range(passes):
        tasks = []
        for i, content in enumerate(contents):
            source = lambda j: before[1] if j < 0 else outputs[j]  # noqa: E731
            warped = [outputs[i], *(np.clip(flows.warp(source(j), flow), 0.0, 1.0) for j, flow, _ in links[i])]
            target, weight = one_target(warped, [np.ones(content.shape[:2], np.float32),
                                                 *(m for _, _, m in links[i])])
            tasks.append(optim.make_task(content, style, settings.replace(steps=steps), init=outputs[i],
                                         temporal=optim.Temporal(target, weight, temporal_weight)))
        results = optim.solve(params, tasks)
        outputs = [as_saved(r.image) for r in results]
    return results


def stylize_frames(params, frames: Iterable[np.ndarray], style, settings: optim.Settings, *, steps_next: int,
                   temporal_weight: float = 0.0, long_term: Sequence[int] = SHORT_TERM, passes: int = 0,
                   window: int = 8, history: Sequence[tuple[np.ndarray, np.ndarray]] = ()) -> Iterator[optim.Result]:
    """Yields one `optim.Result` per frame (f32[h, w, 3], any size; outputs at settings.size).

    The first frame (with no `history`) runs `settings` as `stylize` does; every next one starts from
    `warped_init` of the previous output (8-bit, `as_saved`) and runs `steps_next` steps, with the
    temporal term of weight `temporal_weight` towards the outputs `long_term` frames back (1: the
    previous one only, Ruder et al.'s short-term loss).

    passes: with passes > 0, every `window` frames are refined by `refine_window` (`steps_next` steps
      a pass) before they are yielded, all of a window at once.
    history: (frame at the output's shape, its output as saved) of the frames just before the first,
      oldest first, to continue a run (at least max(long_term) of them where the clip has them).
    """
    if passes > 0:
        yield from _windows(params, frames, style, settings, steps_next=steps_next, temporal_weight=temporal_weight,
                            long_term=long_term, passes=passes, window=window, history=history)
        return
    long_term = sorted(set(long_term))
    if not long_term or long_term[0] < 1:
        raise ValueError(f"long_term must hold frame distances >= 1, got {long_term}")
    history = list(history)[-long_term[-1]:]
    for content in frames:
        shape = image_io.longest_side_shape(content.shape[:2], settings.size)
        at = image_io.resize(content, shape)
        if not history:
            task = optim.make_task(content, style, settings)
        else:
            temporal, init = None, None
            if temporal_weight > 0:
                pairs = [warped_with_mask(history[-j][1], history[-j][0], at) for j in long_term if j <= len(history)]
                target, mask = combined_target([w for w, _ in pairs], [c for _, c in pairs])
                temporal = optim.Temporal(target, mask, temporal_weight)
                init = pairs[0][0] if long_term[0] == 1 else None
            if init is None:
                init = warped_init(history[-1][1], history[-1][0], at)
            task = optim.make_task(content, style, settings.replace(steps=steps_next), init=init, temporal=temporal)
        [result] = optim.solve(params, [task])
        yield result
        history = (history + [(at, as_saved(result.image))])[-long_term[-1]:]


def _windows(params, frames, style, settings, *, steps_next, temporal_weight, long_term, passes, window, history):
    """`stylize_frames` with multi-pass: each window painted one frame after another, then refined."""
    frames, history = iter(frames), list(history)
    while chunk := list(itertools.islice(frames, window)):
        shape = image_io.longest_side_shape(chunk[0].shape[:2], settings.size)
        contents = [image_io.resize(f, shape) for f in chunk]
        first_pass = [as_saved(r.image) for r in stylize_frames(
            params, chunk, style, settings, steps_next=steps_next, temporal_weight=temporal_weight,
            long_term=long_term, history=history)]
        results = refine_window(params, contents, first_pass, style, settings, passes=passes, steps=steps_next,
                                temporal_weight=temporal_weight, before=history[-1] if history else None)
        yield from results
        history = (history + [(c, as_saved(r.image)) for c, r in zip(contents, results)])[-max(long_term):]
