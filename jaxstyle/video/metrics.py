"""The temporal warping error of Lai et al. (Learning blind video temporal consistency, ECCV 2018).

For each t >= 1, with the flows measured on the ORIGINAL frames I (so a method cannot lower its own
error by blurring the flow away):

    E_t = sum_x M_t(x) |O_t(x) - warp(O_{t-1}, w_t)(x)|^2 / sum_x M_t(x)

w_t the flow from I_t to I_{t-1}, M_t Ruder et al.'s consistency mask (`flow.consistency_mask`),
|.|^2 the squared RGB distance of [0, 1] pixels (summed over the 3 channels, as Lai et al.'s
code does); the clip's error is the mean of E_t over t. A static clip scores 0.

A frame whose mask keeps under `MIN_KEPT` of its pixels (a scene cut: nothing in it can be traced back)
has no E_t and is left out of the mean. Lai et al. do not say; without it, the few pixels that the flow
happens to match across a cut weigh as much as a whole frame (on bikes.mp4's cut at frame 30, 4 pixels
of 27904 gave E_t = 0.94, 40x the clip's mean and more than all its other frames together).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from jaxstyle.video import flow as flows

MIN_KEPT = 0.01


def frame_error(previous: np.ndarray, current: np.ndarray, previous_original: np.ndarray,
                current_original: np.ndarray, *, method: str = "dis-medium") -> float:
    """E_t for one pair of outputs f32[h, w, 3] and their originals f32[h, w, 3] (same shape), the flow
    by `method` (`flow.METHODS`); NaN if the mask keeps under `MIN_KEPT` of the pixels (a cut)."""
    backward = flows.optical_flow(current_original, previous_original, method=method)
    forward = flows.optical_flow(previous_original, current_original, method=method)
    mask = flows.consistency_mask(backward, forward)
    kept = float(mask.sum())
    if kept == 0 or kept < MIN_KEPT * mask.size:
        return float("nan")
    difference = np.asarray(current, np.float32) - flows.warp(previous, backward)
    return float(np.sum(mask * np.sum(difference * difference, axis=-1)) / kept)


def frame_errors(outputs: Iterable[np.ndarray], originals: Iterable[np.ndarray], *,
                 method: str = "dis-medium") -> Iterator[float]:
    """E_1, E_2, ... of a clip, frame by frame (outputs and originals in step, equal shapes)."""
    previous = None
    for output, original in zip(outputs, originals, strict=True):
        if previous is not None:
            yield frame_error(previous[0], output, previous[1], original, method=method)
        previous = (output, original)


def warping_error(outputs: Iterable[np.ndarray], originals: Iterable[np.ndarray], *,
                  method: str = "dis-medium") -> float:
    """The clip's warping error: the mean of E_t over the frames t >= 1 that are not cuts (`MIN_KEPT`)."""
    errors = [e for e in frame_errors(outputs, originals, method=method) if np.isfinite(e)]
    return float(np.mean(errors)) if errors else float("nan")
