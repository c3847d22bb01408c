"""What an optimisation needs before it starts: a size conv5_1 can take, and memory that fits."""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax

from jaxstyle import vgg
from jaxstyle.errors import JaxstyleError
from jaxstyle.optim.settings import MIN_SIDE, Settings


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
