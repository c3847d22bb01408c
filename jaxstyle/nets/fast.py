"""Stylising with a trained fast network: one forward pass per picture.

    from jaxstyle import load_image
    from jaxstyle.nets import fast
    model = fast.load_model("models/starry_night.msgpack")
    [out] = fast.apply(model, [load_image("photo.jpg")], size=512)      # f32[h, w, 3]

Images are grouped by shape and run as batches, so each shape compiles once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import numpy as np

from jaxstyle import color
from jaxstyle.io import image_io
from jaxstyle.nets import layers, transform
from jaxstyle.nets.model_file import FastModel, style_weights  # noqa: F401 - the API
from jaxstyle.nets.model_file import load as load_model

__all__ = ["FastModel", "apply", "load_model", "style_weights", "DEFAULT_MODEL"]

DEFAULT_MODEL = "models/starry_night.msgpack"


@functools.partial(jax.jit, static_argnums=0)
def _forward(config: transform.NetworkConfig, params, images, weights):
    return transform.transform_batch(config, params, images, weights)


def apply(model: FastModel, images: Sequence[np.ndarray], *, style_index: int | None = None,
          mix: Sequence[float] | None = None, size: int | None = None, batch_size: int = 4,
          preserve_colors: str = "none") -> list[np.ndarray]:
    """Paints each image with the model's style (or a mix of its styles).

    Args:
      model: from `load_model` or `training.train(...).model`.
      images: f32[h, w, 3] RGB in [0, 1], any sizes.
      style_index: index of the style to paint (default 0); or
      mix: one non-negative weight per style, normalised to sum 1 (Dumoulin et al.'s
        interpolation of the conditional instance norm's scales and shifts).
      size: if given, each image is first resized so its longest side is `size`.
      batch_size: images per forward pass; a shape with fewer images runs them all at once.
      preserve_colors: "none", "luminance" (keep the photo's colours under the painted
        luminance) or "histogram" (match the result's colour mean and covariance to the photo's).

    Returns:
      f32[h', w', 3] per image, in the order given; (h', w') = the (resized) input's shape.
    """
    color.prepare_colors(preserve_colors, np.zeros((1, 1, 3), np.float32), [])  # validates the mode
    weights = style_weights(model, style_index=style_index, mix=mix)
    inputs = [np.asarray(image_io.resize_longest(im, size) if size else im, np.float32) for im in images]
    params = jax.tree.map(jax.numpy.asarray, model.params)
    results = layers.map_by_shape(
        lambda batch: _forward(model.config, params, batch, np.tile(weights, (len(batch), 1))), inputs,
        batch_size=batch_size)
    return [_finish_colors(preserve_colors, result, photo) for result, photo in zip(results, inputs)]


def _finish_colors(mode: str, result: np.ndarray, photo: np.ndarray) -> np.ndarray:
    if mode == "histogram":
        return color.match_color_histogram(result, photo)
    return color.finish_colors(mode, result, photo)
