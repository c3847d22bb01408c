"""Frame-to-frame coherence for the optimisation (Ruder et al., GCPR 2016): each frame after the first
starts from the previous output carried along the optical flow.

Built: the warped initialisation. Not built yet (it needs the solver to take a per-task extra loss):
Ruder et al.'s short-term temporal loss, sum_x c(x) |x - warp(O_{t-1})|^2 / D with c the consistency
mask (`flow.consistency_mask`), its long-term form over several earlier frames, and multi-pass.
"""

from __future__ import annotations

import numpy as np

from jaxstyle.video import flow as flows


def warped_init(previous_output: np.ndarray, previous_content: np.ndarray, content: np.ndarray) -> np.ndarray:
    """warp(O_{t-1}, w) with w the flow from I_t to I_{t-1}: f32[h, w, 3], the previous output moved
    into this frame's pixels. All three f32[h, w, 3] in [0, 1], at the output's shape; disoccluded
    pixels take what the warp puts there (their neighbours'), for the optimisation to repaint."""
    backward = flows.optical_flow(content, previous_content)
    return np.clip(flows.warp(previous_output, backward), 0.0, 1.0)
