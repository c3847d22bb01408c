"""The paper's normalised VGG-19: each filter rescaled so its mean activation is one.

Gatys et al. (2016, section 2) rescale VGG-19 "so that the mean activation of each
convolutional filter over images and positions equals one". With ``m_l[c]`` the mean
of conv layer ``l``'s ReLU output channel ``c`` in the original network (``m_0 = 1``
for the image), the rescaled layer is::

    kernel'_l[:, :, i, o] = kernel_l[:, :, i, o] * m_{l-1}[i] / m_l[o]
    bias'_l[o]            = bias_l[o] / m_l[o]

ReLU and both poolings commute with a positive per-channel scale, so every layer of
the new network computes the original's output divided by ``m_l`` per channel (on
any image), and its mean over the measuring images is one. The network sees the
same things; only how its layers weigh against each other in the losses changes.

    path, report = normalize_file("weights/vgg19.h5", "weights/vgg19_normalized.h5")
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from PIL import Image, UnidentifiedImageError

from jaxstyle import vgg
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io, weights
from jaxstyle.io.files import file_sha256

# Named rather than globbed, so adding an image to jaxstyle/data never silently
# changes the normalised weights.
BUNDLED_IMAGES: tuple[str, ...] = ("tubingen.jpg", "starry_night.jpg", "the_scream.jpg", "shipwreck.jpg")


@functools.partial(jax.jit, static_argnames="pooling")
def _spatial_means(params: Mapping, image: jax.Array, *, pooling: str) -> dict[str, jax.Array]:
    """Per-channel mean over positions of every conv layer's ReLU output, for one image.

    Args:
      params: the VGG-19 pytree.
      image: f32[h, w, 3], RGB in [0, 1].
      pooling: "avg" or "max".

    Returns:
      ``{conv name: f32[C_l]}`` for the 16 convolutions.
    """
    acts = vgg.features(params, image, layers=vgg.CONV_NAMES, pooling=pooling)
    # Rows, then columns: each float32 sum then has at most one side's length of terms.
    return {name: act.mean(axis=0).mean(axis=0) for name, act in acts.items()}


def mean_activations(
    params: Mapping, images: Sequence[np.ndarray], *, pooling: str = "avg"
) -> dict[str, np.ndarray]:
    """The mean of each conv filter's ReLU output over images and positions.

    Each image's mean over its positions is taken first and the images are then
    averaged, so every image counts the same whatever its size. The forward pass is
    compiled once per image shape.

    Args:
      params: the VGG-19 pytree (see ``jaxstyle.vgg``).
      images: one or more f32[h, w, 3], RGB in [0, 1]; sizes may differ, each side
        at least ``vgg.MIN_SIDE``.
      pooling: "avg" or "max", the pooling the means are measured with.

    Returns:
      ``{conv name: f64[C_l]}`` for the 16 convolutions, in network order; every
      value is >= 0 and 0 exactly where the filter never fires on these images.
    """
    if not images:
        raise ValueError("mean_activations needs at least one image")
    params = jax.device_put(params)
    per_image = [_spatial_means(params, np.asarray(image, np.float32), pooling=pooling) for image in images]
    return {
        name: np.mean([np.asarray(means[name], np.float64) for means in per_image], axis=0)
        for name in vgg.CONV_NAMES
    }


def divisors(means: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What each filter's output is divided by: its mean, or 1 where the mean is 0.

    A filter with mean 0 never fires on the measuring images (ReLU output is >= 0),
    so no scale can bring its mean to one; it keeps its scale, and its output
    stays exactly as in the original network.

    Args:
      means: ``{conv name: [C_l]}`` as from ``mean_activations``.

    Returns:
      ``{conv name: f64[C_l]}``, every value > 0.

    Raises:
      ValueError: a conv layer is missing, or its means are not a vector of finite
        values >= 0.
    """
    out = {}
    for name in vgg.CONV_NAMES:
        mean = np.asarray(means[name], np.float64)
        if mean.ndim != 1 or not np.all(np.isfinite(mean)) or np.any(mean < 0):
            raise ValueError(f"means[{name!r}] must be a vector of finite values >= 0")
        out[name] = np.where(mean > 0, mean, 1.0)
    return out


def normalize_params(params: Mapping, means: Mapping[str, np.ndarray]) -> dict:
    """Rescales VGG-19 so each filter's mean activation over the measured images is one.

    Layer ``l``'s output channel ``o`` is divided by ``d_l[o]`` (``divisors(means)``)
    and its input channel ``i`` multiplied back by ``d_{l-1}[i]`` (1 for the image).

    Args:
      params: the VGG-19 pytree: ``{"conv1_1": {"kernel": [3, 3, Cin, Cout], "bias":
        [Cout]}, ..., "input": ...}``.
      means: ``{conv name: [C_l]}`` from ``mean_activations(params, ...)``.

    Returns:
      A new pytree of the same structure and dtypes; ``params["input"]`` and any
      other non-conv entry are passed through unchanged. ``params`` is not modified.
    """
    scale = divisors(means)
    new = dict(params)
    previous = np.ones(3, np.float64)
    for name, _, _ in vgg.CONV_LAYERS:
        kernel, bias = np.asarray(params[name]["kernel"]), np.asarray(params[name]["bias"])
        d = scale[name]
        if d.shape != bias.shape:
            raise ValueError(f"means[{name!r}] has {d.size} values for {bias.size} filters")
        new[name] = {
            "kernel": (kernel.astype(np.float64) * previous[:, None] / d).astype(kernel.dtype),
            "bias": (bias.astype(np.float64) / d).astype(bias.dtype),
        }
        previous = d
    return new


def image_files(folder: str | os.PathLike) -> list[Path]:
    """Every file directly in ``folder`` that Pillow recognises as an image, sorted by name.

    Raises:
      JaxstyleError: ``folder`` is not a folder, or holds no such file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise JaxstyleError(f"{folder} is not a folder; give a folder of images.")
    files = [path for path in sorted(folder.iterdir()) if path.is_file() and _is_image(path)]
    if not files:
        raise JaxstyleError(f"{folder} holds no image Pillow can read; add PNG or JPEG files to it.")
    return files


def _is_image(path: Path) -> bool:
    """Whether Pillow recognises the file's header (nothing is decoded yet)."""
    try:
        with Image.open(path):
            return True
    except Image.DecompressionBombError:
        return True  # An image all the same: load_image says it is too large.
    except (UnidentifiedImageError, OSError):
        return False


def normalize_file(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    images: Sequence[str | os.PathLike] | None = None,
    size: int = 256,
    pooling: str = "avg",
) -> tuple[Path, dict[str, Any]]:
    """Writes the normalised copy of a jaxstyle-vgg19 weights file.

    The output keeps the source's input convention, ``source_format`` and
    ``source_sha256``, and records how it was made in the attributes
    ``normalized`` (True), ``normalized_from_sha256`` (of ``source``),
    ``normalization_images`` (JSON list of file names), ``normalization_size`` and
    ``normalization_pooling``.

    Args:
      source: a jaxstyle-vgg19 h5 file that is not itself normalised.
      output: where to write; must differ from ``source``.
      images: image files to measure the means on; ``None`` means the images
        bundled with jaxstyle (``BUNDLED_IMAGES``).
      size: each image is resized so its longest side is ``size`` pixels.
      pooling: "avg" (the paper's) or "max", the pooling the means are measured with.

    Returns:
      ``(output, report)``; report holds ``layers`` (16), ``images`` (names),
      ``size``, ``pooling``, ``dead_filters`` (filters with mean 0, kept at
      factor 1) and ``dead_per_layer``, ``min_factor`` / ``max_factor`` (over all
      filters, of what their output is multiplied by: 1 / mean) and ``seconds``.

    Raises:
      JaxstyleError: the source is missing, damaged or already normalised, the output
        is the source, an image cannot be read or is under ``vgg.MIN_SIDE`` px on a side
        at ``size``, or ``pooling`` is unknown.
    """
    start = time.perf_counter()
    source, output = Path(source), Path(output)
    if pooling not in vgg.POOLINGS:
        raise JaxstyleError(f"unknown pooling {pooling!r}; use one of {', '.join(vgg.POOLINGS)}.")
    params = weights.load_params(source)
    attrs = weights.read_attrs(source)
    if attrs.get("normalized"):
        raise JaxstyleError(
            f"{source} is already normalised (its normalized attribute is true); "
            "normalise the original weights instead."
        )
    if output.resolve() == source.resolve():
        raise JaxstyleError(f"the output {output} is the source weights file; choose another output path.")
    paths = [Path(p) for p in images] if images is not None else [image_io.data_path(n) for n in BUNDLED_IMAGES]
    if not paths:
        raise JaxstyleError("no images to measure the mean activations on; give at least one image.")

    pixels = [image_io.load_image(path, size=size) for path in paths]
    for path, image in zip(paths, pixels):
        if min(image.shape[:2]) < vgg.MIN_SIDE:
            raise JaxstyleError(
                f"{path.name} is only {image.shape[1]}x{image.shape[0]} px at size {size}, too small for "
                f"conv5_1; give a size that makes each side at least {vgg.MIN_SIDE} px."
            )
    means = mean_activations(params, pixels, pooling=pooling)
    new = normalize_params(params, means)
    weights.save_h5(
        output,
        {name: (new[name]["kernel"], new[name]["bias"]) for name in vgg.CONV_NAMES},
        source_format=attrs.get("source_format", "unknown"),
        source_sha256=attrs.get("source_sha256", "unknown"),
        input_convention=attrs["input_convention"],
        extra_attrs={
            **({"source": attrs["source"]} if "source" in attrs else {}),
            "normalized": True,
            "normalized_from_sha256": file_sha256(source),
            "normalization_images": json.dumps([path.name for path in paths]),
            "normalization_size": size,
            "normalization_pooling": pooling,
        },
    )
    factors = np.concatenate([1.0 / d for d in divisors(means).values()])
    dead = {name: int(np.sum(np.asarray(mean) == 0)) for name, mean in means.items()}
    report = {
        "layers": len(means),
        "images": [path.name for path in paths],
        "size": size,
        "pooling": pooling,
        "dead_filters": sum(dead.values()),
        "dead_per_layer": dead,
        "min_factor": float(factors.min()),
        "max_factor": float(factors.max()),
        "seconds": time.perf_counter() - start,
    }
    return output, report
