"""Optical flow between frames (OpenCV's DIS, no weights), warping by a flow, and Ruder et al.'s
consistency mask (Artistic style transfer for videos, GCPR 2016).

Convention: a flow f from frame a to frame b is f32[h, w, 2], (dx, dy) per pixel of a, such that
a[y, x] ~ b[y + dy, x + dx]. So `warp(b, f)` is b moved into a's pixels: to carry the previous
output O_{t-1} into frame t, take the flow from frame t to frame t-1 (the "backward" flow).
"""

from __future__ import annotations

import numpy as np

from jaxstyle import lazy

cv2 = lazy.module("cv2")  # OpenCV is loaded by the video code only (`jaxstyle.lazy`)

# Ruder et al.'s thresholds (Section 3.2): disocclusions and motion boundaries.
OCCLUSION_RATIO, OCCLUSION_OFFSET = 0.01, 0.5
BOUNDARY_RATIO, BOUNDARY_OFFSET = 0.01, 0.002


def _gray(image: np.ndarray) -> np.ndarray:
    """f32[h, w, 3] in [0, 1] -> u8[h, w] luma (ITU-R BT.601, as OpenCV's RGB2GRAY)."""
    pixels = np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)


METHODS = ("dis-ultrafast", "dis-fast", "dis-medium", "farneback")


def optical_flow(a: np.ndarray, b: np.ndarray, *, method: str = "dis-medium") -> np.ndarray:
    """The flow from frame a to frame b (both f32[h, w, 3] in [0, 1]): f32[h, w, 2], (dx, dy) with
    a[y, x] ~ b[y + dy, x + dx], on the luma. method: OpenCV's DIS (Kroeger et al. 2016) at its
    "ultrafast", "fast" or "medium" preset (the default), or Farneback's (OpenCV's defaults of the
    paper's polynomial expansion: 3 levels, window 15)."""
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(_gray(a), _gray(b), None, 0.5, 3, 15, 3, 5, 1.2, 0).astype(np.float32)
    presets = {"dis-ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "dis-fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "dis-medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    if method not in presets:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return cv2.DISOpticalFlow_create(presets[method]).calc(_gray(a), _gray(b), None).astype(np.float32)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """image f32[h, w, c] sampled at (x + dx, y + dy) of flow f32[h, w, 2]: out[y, x] = image[y + dy, x + dx],
    bilinear, the border pixels repeated outside the image. Returns f32[h, w, c]."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(np.asarray(image, np.float32), xs + flow[..., 0], ys + flow[..., 1],
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(np.shape(image))


def consistency_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Ruder et al.'s mask for frame t: f32[h, w], 1 where the previous frame's pixel is trusted, 0 at
    disocclusions and motion boundaries.

    Args:
      backward: w, the flow from frame t to frame t-1, f32[h, w, 2].
      forward: w', the flow from frame t-1 to frame t, f32[h, w, 2].

    With w~'(x) = w'(x + w(x)) (the forward flow carried into frame t), a pixel is dropped where
    |w + w~'|^2 > 0.01 (|w|^2 + |w~'|^2) + 0.5 (the two flows disagree: disoccluded) or where
    |grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002 (w = (u, v); a motion boundary).
    """
    back = np.asarray(backward, np.float32)
    carried = warp(forward, back)
    square = lambda f: np.sum(f * f, axis=-1)  # noqa: E731
    occluded = square(back + carried) > OCCLUSION_RATIO * (square(back) + square(carried)) + OCCLUSION_OFFSET
    du_dy, du_dx = np.gradient(back[..., 0])
    dv_dy, dv_dx = np.gradient(back[..., 1])
    boundary = du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2 > BOUNDARY_RATIO * square(back) + BOUNDARY_OFFSET
    return (~(occluded | boundary)).astype(np.float32)
