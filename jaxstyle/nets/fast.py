"""Stylising with a trained fast network: one forward pass per picture.

    from jaxstyle import load_image
    from jaxstyle.nets import fast
    model = fast.load_model(fast.DEFAULT_MODEL)   # the bundled paintings, or a file from `jaxstyle train`
    [out] = fast.apply(model, [load_image("photo.jpg")], size=512, style_index=model.styles.index("the_scream"))

Images are grouped by shape and run as batches, so each shape compiles once; an image too large to run
whole runs in tiles, with the instance-norm statistics of its thumbnail (`tiles`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import color, runtime
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io
from jaxstyle.nets import layers, tiles, transform
from jaxstyle.nets.model_file import FastModel, style_weights  # noqa: F401 - the API
from jaxstyle.nets.model_file import load as load_model

__all__ = ["FastModel", "apply", "check_memory", "load_model", "style_weights", "DEFAULT_MODEL"]

# Three paintings in one network, shipped inside the package (`make model` retrains it).
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "data" / "paintings.msgpack"


@functools.partial(runtime.jit, static_argnums=0)
def _forward(config: transform.NetworkConfig, params, weights, strength, images):
    """f32[S] style weights, f32[] strength, f32[n, h, w, 3] -> f32[n, h, w, 3]: every image in the same style."""
    return transform.transform_batch(config, params, images, jnp.broadcast_to(weights, (len(images), len(weights))),
                                     strength)


@functools.partial(runtime.jit, static_argnums=0)
def _thumbnail_stats(config: transform.NetworkConfig, params, weights, strength, image):
    """f32[S], f32[] (unused: the statistics come before the output), a thumbnail f32[h, w, 3] -> its
    instance-norm statistics (`transform.norm_stats`)."""
    return transform.norm_stats(config, params, image, weights)


@functools.partial(runtime.jit, static_argnums=0)
def _forward_tiles(config: transform.NetworkConfig, params, weights, strength, stats, windows):
    """f32[S], f32[] strength, one image's statistics, its windows f32[n, h, w, 3] -> f32[n, h, w, 3]."""
    return jax.vmap(lambda x: transform.transform(config, params, x, weights, stats=stats, strength=strength))(windows)


def _program(model: FastModel, style_index: int | None, mix: Sequence[float] | None, strength: float = 1.0):
    """(the jitted forward pass, its arguments before the images)."""
    if not 0.0 <= strength <= 1.0:
        raise JaxstyleError(f"strength must be in [0, 1] (0: the photo, 1: the full style), got {strength}")
    params = jax.device_put(model.params)  # not jnp.asarray: that compiles a conversion per shape, ~0.2 s at first
    return _forward, (model.config, params, style_weights(model, style_index=style_index, mix=mix),
                      np.float32(strength))


def _plan(model: FastModel, images: Sequence[np.ndarray], *, style_index, mix, size, batch_size, tile,
          thumbnail, strength: float = 1.0) -> tuple[int, int | None, tuple]:
    """(`tiles.plan`'s tile side and estimate, the forward's arguments before the images)."""
    forward, args = _program(model, style_index, mix, strength)
    chosen, need = tiles.plan(forward, _thumbnail_stats, _forward_tiles, args, layers.sized_shapes(images, size),
                              batch_size=batch_size, tile=tile, halo=tiles.halo_for(transform.radius(model.config)),
                              thumbnail=thumbnail)
    return chosen, need, args


def apply(model: FastModel, images: Sequence[np.ndarray], *, style_index: int | None = None,
          mix: Sequence[float] | None = None, size: int | None = None, batch_size: int = 4,
          preserve_colors: str = "none", tile: int | None = None, thumbnail: int = tiles.THUMBNAIL,
          progress: Callable[[tiles.TileProgress], None] | None = None, strength: float = 1.0) -> list[np.ndarray]:
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
      tile: None: each image whole when all fit in memory, else in `tiles.DEFAULT_TILE` px tiles;
        0: whole; N: in N px tiles (rounded up to a multiple of 4), one image and one tile at a time,
        the instance norms with the statistics of a thumbnail (`tiles`).
      thumbnail: longest side of that thumbnail, in px.
      progress: called after each tile of a tiled run.
      strength: in [0, 1]: 0 the photo, 1 the full style (a model with an identity start scales its
        residual; an older model blends its output with the photo).

    Returns:
      f32[h', w', 3] per image, in the order given; (h', w') = the (resized) input's shape.

    Raises:
      JaxstyleError: a bad style choice, or (before any image is resized) sizes that would not fit in
        memory, even tiled where `tile` allows it (`check_memory`).
    """
    color.prepare_colors(preserve_colors, np.zeros((1, 1, 3), np.float32), [])  # validates the mode
    tile, _, args = _plan(model, images, style_index=style_index, mix=mix, size=size, batch_size=batch_size,
                          tile=tile, thumbnail=thumbnail, strength=strength)
    if tile:
        return [_finish_colors(preserve_colors, result, photo) for result, photo in tiles.apply_each(
            functools.partial(_thumbnail_stats, *args), functools.partial(_forward_tiles, *args), images,
            size=size, tile=tile, halo=tiles.halo_for(transform.radius(model.config)), thumbnail=thumbnail,
            progress=progress)]
    inputs = [np.asarray(image_io.resize_longest(im, size) if size else im, np.float32) for im in images]
    results = layers.map_by_shape(functools.partial(_forward, *args), inputs, batch_size=batch_size)
    return [_finish_colors(preserve_colors, result, photo) for result, photo in zip(results, inputs)]


def check_memory(model: FastModel, images: Sequence[np.ndarray], *, style_index: int | None = None,
                 mix: Sequence[float] | None = None, size: int | None = None, batch_size: int = 4,
                 tile: int | None = None, thumbnail: int = tiles.THUMBNAIL, strength: float = 1.0) -> int | None:
    """Raises JaxstyleError if `apply` with these arguments would not fit in memory, even tiled where
    `tile` allows it, or a bad strength, before any work (`tiles.plan`); returns the estimated peak
    bytes (None off the CPU backend)."""
    return _plan(model, images, style_index=style_index, mix=mix, size=size, batch_size=batch_size, tile=tile,
                 thumbnail=thumbnail, strength=strength)[1]


def _finish_colors(mode: str, result: np.ndarray, photo: np.ndarray) -> np.ndarray:
    if mode == "histogram":
        return color.match_color_histogram(result, photo)
    return color.finish_colors(mode, result, photo)
