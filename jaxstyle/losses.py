"""The paper's losses (Gatys et al. 2016, eqs. 1-5) over VGG-19 features.

Features of one layer are f32[h, w, N]: M = h * w positions, N filters. All losses
return f32 scalars.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxstyle import vgg

CONTENT_LAYERS: tuple[str, ...] = ("conv4_2",)
STYLE_LAYERS: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


class Targets(NamedTuple):
    """What the generated image is pulled towards; computed once per content/style pair.

    content: {layer: f32[h, w, N]} features P^l of the content image.
    style: {layer: f32[N, N]} Gram matrices A^l of the style image.
    """

    content: dict[str, jax.Array]
    style: dict[str, jax.Array]


class LossWeights(NamedTuple):
    """Scalar weights of the total loss; arrays, so `jax.vmap` can sweep them.

    content: alpha. style: beta. tv: total-variation weight (0 in the paper).
    """

    content: jax.Array | float
    style: jax.Array | float
    tv: jax.Array | float = 0.0


def gram(f: jax.Array) -> jax.Array:
    """G_ij = sum_k F_ik F_jk over positions k. f32[h, w, N] -> f32[N, N] (not normalised)."""
    flat = f.reshape(-1, f.shape[-1])
    return flat.T @ flat


def content_loss(f: jax.Array, p: jax.Array) -> jax.Array:
    """1/2 sum_ij (F_ij - P_ij)^2 for features f, p: f32[h, w, N] (eq. 1)."""
    return 0.5 * jnp.sum(jnp.square(f - p))


def style_layer_loss(f: jax.Array, a: jax.Array) -> jax.Array:
    """E_l = 1/(4 N^2 M^2) sum_ij (G_ij - A_ij)^2 (eq. 4).

    Args:
      f: f32[h, w, N] features of the generated image.
      a: f32[N, N] Gram matrix of the style image at the same layer.
    """
    h, w, n = f.shape
    # A Python float: 4 N^2 M^2 overflows int32 at ordinary sizes (4e13 at 256x192, conv1_1).
    norm = 4.0 * float(n) ** 2 * float(h * w) ** 2
    return jnp.sum(jnp.square(gram(f) - a)) / norm


def total_variation(image: jax.Array) -> jax.Array:
    """Sum of squared differences between neighbouring pixels. f32[h, w, C] -> scalar."""
    dy = image[1:, :, :] - image[:-1, :, :]
    dx = image[:, 1:, :] - image[:, :-1, :]
    return jnp.sum(jnp.square(dy)) + jnp.sum(jnp.square(dx))


def equal_weights(layers: Iterable[str]) -> dict[str, float]:
    """{layer: 1/len(layers)}: the paper's w_l = 1/5 over its five style layers."""
    layers = tuple(layers)
    return {name: 1.0 / len(layers) for name in layers}


def make_targets(
    params: Mapping,
    content: jax.Array,
    style: jax.Array,
    *,
    content_layers: Iterable[str] = CONTENT_LAYERS,
    style_layers: Iterable[str] = STYLE_LAYERS,
    pooling: str = "avg",
) -> Targets:
    """Content features and style Grams, computed once before optimisation.

    Args:
      content: f32[h, w, 3] RGB in [0, 1].
      style: f32[h', w', 3] RGB in [0, 1] (the paper resizes it to the content's size first).
    """
    content_layers, style_layers = tuple(content_layers), tuple(style_layers)
    p = vgg.features(params, content, layers=content_layers, pooling=pooling)
    a = vgg.features(params, style, layers=style_layers, pooling=pooling)
    return Targets(content=p, style={name: gram(a[name]) for name in style_layers})


class LossParts(NamedTuple):
    """The unweighted terms of the total loss, each a scalar."""

    content: jax.Array
    style: jax.Array
    tv: jax.Array


def loss_parts(
    params: Mapping,
    image: jax.Array,
    targets: Targets,
    *,
    content_layer_weights: Mapping[str, float],
    style_layer_weights: Mapping[str, float],
    pooling: str = "avg",
) -> LossParts:
    """L_content = sum_l c_l 1/2 ||F^l - P^l||^2, L_style = sum_l w_l E_l, and TV of one image.

    Args:
      image: f32[h, w, 3] RGB in [0, 1].
      targets: from `make_targets` with the same layers and pooling.
      content_layer_weights / style_layer_weights: {layer: weight}; their keys select
        the layers, which must be present in `targets`.
    """
    layers = tuple(dict.fromkeys([*content_layer_weights, *style_layer_weights]))
    f = vgg.features(params, image, layers=layers, pooling=pooling)
    zero = jnp.zeros((), image.dtype)
    lc = sum((w * content_loss(f[n], targets.content[n]) for n, w in content_layer_weights.items()), zero)
    ls = sum((w * style_layer_loss(f[n], targets.style[n]) for n, w in style_layer_weights.items()), zero)
    return LossParts(content=lc, style=ls, tv=total_variation(image))


def total_loss(
    params: Mapping,
    image: jax.Array,
    targets: Targets,
    weights: LossWeights,
    *,
    content_layer_weights: Mapping[str, float],
    style_layer_weights: Mapping[str, float],
    pooling: str = "avg",
) -> tuple[jax.Array, LossParts]:
    """alpha L_content + beta L_style + tv L_tv (eq. 7), and the unweighted parts."""
    parts = loss_parts(
        params, image, targets, content_layer_weights=content_layer_weights,
        style_layer_weights=style_layer_weights, pooling=pooling,
    )
    total = weights.content * parts.content + weights.style * parts.style + weights.tv * parts.tv
    return total, parts
