"""Frame-to-frame coherence for the optimisation (Ruder et al., GCPR 2016): each frame after the first
starts from the previous output carried along the optical flow.

Built: the warped initialisation (`warped_init`, `stylize_frames`). Not built yet (it needs the solver
to take a per-task extra loss): Ruder et al.'s short-term temporal loss, sum_x c(x) |x - warp(O_{t-1})|^2 / D
with c the consistency mask (`flow.consistency_mask`), its long-term form over several earlier frames,
and multi-pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from jaxstyle import optim
from jaxstyle.io import image_io
from jaxstyle.video import flow as flows


def warped_init(previous_output: np.ndarray, previous_content: np.ndarray, content: np.ndarray) -> np.ndarray:
    """warp(O_{t-1}, w) with w the flow from I_t to I_{t-1}: f32[h, w, 3], the previous output moved
    into this frame's pixels. All three f32[h, w, 3] in [0, 1], at the output's shape; disoccluded
    pixels take what the warp puts there (their neighbours'), for the optimisation to repaint."""
    backward = flows.optical_flow(content, previous_content)
    return np.clip(flows.warp(previous_output, backward), 0.0, 1.0)


def as_saved(image: np.ndarray) -> np.ndarray:
    """f32[h, w, 3] rounded to 8 bits, as a PNG frame reads back: a resumed run starts where it stopped."""
    return image_io.to_uint8(image).astype(np.float32) / 255.0


def stylize_frames(params, frames: Iterable[np.ndarray], style, settings: optim.Settings, *, steps_next: int,
                   scratch: Path, previous: tuple[np.ndarray, np.ndarray] | None = None) -> Iterator[optim.Result]:
    """Yields one `optim.Result` per frame (f32[h, w, 3], any size; outputs at settings.size).

    The first frame (with `previous` None) runs `settings` as `stylize` does; every next one starts from
    `warped_init` of the previous output (8-bit, `as_saved`) and runs `steps_next` steps.

    previous: (the frame before the first, resized to the output's shape; its output) to continue a run.
    scratch: a folder for init.png: `Settings.init` takes a file, so the warped start goes through one.
    """
    init_path = Path(scratch) / "init.png"
    for content in frames:
        shape = image_io.longest_side_shape(content.shape[:2], settings.size)
        at = image_io.resize(content, shape)
        frame_settings = settings
        if previous is not None:
            image_io.save_image(init_path, warped_init(previous[1], previous[0], at))
            frame_settings = settings.replace(steps=steps_next, init=str(init_path))
        [result] = optim.solve(params, [optim.make_task(content, style, frame_settings)])
        yield result
        previous = (at, as_saved(result.image))
