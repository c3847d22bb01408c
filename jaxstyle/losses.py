"""The paper's losses (Gatys et al. 2016, eqs. 1-5 and 7) over VGG-19 features.

Features of one layer are f32[h, w, N]: M = h * w positions, N filters. Like `vgg.features`, the
losses take an optional valid = i32[2] (h0, w0): the image fills only the top-left h0 x w0 of a
larger canvas, its features are zero outside it and M counts its own positions; valid=None means
the image fills its canvas. All losses return f32 scalars.

One implementation compares Gram matrices per position (G / M with A / M_style, which is eq. 4's
1/(4 N^2 M^2) ||G - A||^2 with A rescaled to M positions): `CanvasTargets` from `canvas_targets`,
scored by `loss_parts` / `total_loss`. `Targets` from `make_targets` keep the paper's
unnormalised Grams for the whole-image API; `loss_parts` takes them too and divides by M.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxstyle import vgg

CONTENT_LAYERS: tuple[str, ...] = ("conv4_2",)
STYLE_LAYERS: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


# Cumulative style-layer sets of the paper's Fig. 1 and Fig. 4 (rows A-E).
STYLE_PRESETS: dict[str, tuple[str, ...]] = {
    f"upto-{last}": STYLE_LAYERS[: i + 1] for i, last in enumerate(STYLE_LAYERS)
}


class Targets(NamedTuple):
    """What an image that fills its canvas is pulled towards; computed once per content/style pair.

    content: {layer: f32[h, w, N]} features P^l of the content image.
    style: {layer: f32[S, N, N]} Gram matrices A^l of S style images, each rescaled to the
      content's number of positions at that layer (A^l M^l / M^l_style).
    blend: f32[S] weight of each style image in the style loss.
    masks: f32[S, h, w] the region of the content each style paints (values in [0, 1]), or
      None for styles that cover the whole image.
    """

    content: dict[str, jax.Array]
    style: dict[str, jax.Array]
    blend: jax.Array
    masks: jax.Array | None = None


class CanvasTargets(NamedTuple):
    """`Targets` as the loss compares them, for an image in the top-left corner of its canvas (or
    filling it); the solver stacks them along a batch axis.

    content: {layer: f32[h, w, N]} features P^l of the content image, zero outside it.
    style: {layer: f32[S, N, N]} Gram matrices per position A^l / M^l_style of S style images.
    blend: f32[S] weight of each style image (0 for a style slot the image does not use).
    masks: {layer: f32[S, h, w]} the region each style paints at that layer (zero outside the
      image), or None: each style covers the whole image.
    temporal: f32[H, W, 3] the previous video frame's output carried into this frame (Ruder et al.
      2016), or None: no temporal term. temporal_mask: f32[H, W] >= 0, each pixel's weight (1 where
      the warp is trusted; zero outside the image).
    """

    content: dict[str, jax.Array]
    style: dict[str, jax.Array]
    blend: jax.Array
    masks: dict[str, jax.Array] | None = None
    temporal: jax.Array | None = None
    temporal_mask: jax.Array | None = None


class LossWeights(NamedTuple):
    """Scalar weights of the total loss; arrays, so `jax.vmap` can sweep them.

    content: alpha. style: beta. tv: total-variation weight (0 in the paper). temporal: Ruder et
    al.'s gamma, for video frames whose targets carry a temporal term.
    """

    content: jax.Array | float
    style: jax.Array | float
    tv: jax.Array | float = 0.0
    temporal: jax.Array | float = 0.0


class LossParts(NamedTuple):
    """The unweighted terms of the total loss, each a scalar (temporal: 0 without a temporal target)."""

    content: jax.Array
    style: jax.Array
    tv: jax.Array
    temporal: jax.Array


@jax.custom_jvp
def gram(f: jax.Array) -> jax.Array:
    """G_ij = sum_k F_ik F_jk over positions k (eq. 3). f32[h, w, N] -> f32[N, N] (not normalised)."""
    flat = f.reshape(-1, f.shape[-1])
    return flat.T @ flat


@gram.defjvp
def _gram_jvp(primals, tangents):
    # dG = F^T dF + (F^T dF)^T. Written so, its transpose is one product F (C + C^T) where
    # plain autodiff makes two [M, N] ones: at 1024 px that saves 350 MB of peak memory.
    (f,), (df,) = primals, tangents
    flat = f.reshape(-1, f.shape[-1])
    half = flat.T @ df.reshape(flat.shape)
    return flat.T @ flat, half + half.T


def _weighted_gram(f: jax.Array, weight: jax.Array) -> jax.Array:
    """sum_k w_k F_ik F_jk / sum_k w_k: the Gram matrix per position of weighted positions.
    f: f32[h, w, N], weight: f32[h, w] -> f32[N, N]."""
    n = f.shape[-1]
    flat = (f * weight[..., None]).reshape(-1, n)
    return flat.T @ f.reshape(-1, n) / jnp.maximum(jnp.sum(weight), 1e-8)


def guided_gram(f: jax.Array, mask: jax.Array) -> jax.Array:
    """Gram matrix of the positions a mask selects, rescaled to the full number of positions.

    G_ij = M / sum_k m_k^2 * sum_k m_k^2 F_ik F_jk (Gatys et al. 2017, spatial control), so a
    mask of ones gives `gram(f)` and a masked Gram compares with a whole style image's Gram.

    Args:
      f: f32[h, w, N] features. mask: f32[h, w] in [0, 1].
    """
    return _weighted_gram(f, jnp.square(mask)) * mask.size


def _positions(f: jax.Array, valid: jax.Array | None, layer: str):
    """M^l: the image's number of positions at a layer (f: its features there, in the canvas)."""
    if valid is None:
        return float(f.shape[0] * f.shape[1])
    h, w = vgg.feature_hw(valid, layer)
    return jnp.maximum(h * w, 1).astype(f.dtype)


def content_loss(f: jax.Array, p: jax.Array) -> jax.Array:
    """1/2 sum_ij (F_ij - P_ij)^2 for features f, p: f32[h, w, N] (eq. 1)."""
    return 0.5 * jnp.sum(jnp.square(f - p))


def style_loss(f: jax.Array, grams: jax.Array, blend: jax.Array, masks: jax.Array | None = None, *,
               positions) -> jax.Array:
    """sum_s blend_s E_l,s at one layer, E = 1/(4 N^2) ||G / M - A_s / M_s||^2 (eq. 4 per position).

    Args:
      f: f32[h, w, N] features of the generated image, zero outside it.
      grams: f32[S, N, N] style Grams per position, A_s / M_s. blend: f32[S].
      masks: f32[S, h, w] each style's region (guided Grams, zero outside the image), or None.
      positions: M, the image's number of positions at this layer.
    """
    if masks is None:
        g = (gram(f) / positions)[None]
    else:
        g = jax.vmap(_weighted_gram, in_axes=(None, 0))(f, jnp.square(masks))
    return jnp.sum(blend * jnp.sum(jnp.square(g - grams), axis=(1, 2))) / (4.0 * float(f.shape[-1]) ** 2)


def style_layer_loss(f: jax.Array, a: jax.Array) -> jax.Array:
    """E_l = 1/(4 N^2 M^2) sum_ij (G_ij - A_ij)^2 (eq. 4).

    Args:
      f: f32[h, w, N] features of the generated image.
      a: f32[N, N] Gram matrix of the style image at the same layer.
    """
    m = float(f.shape[0] * f.shape[1])
    return style_loss(f, a[None] / m, jnp.ones(1, f.dtype), positions=m)


def total_variation(image: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """Sum of squared differences between neighbouring pixels. f32[H, W, C] -> scalar.

    valid: (h, w) of the image in the canvas's top-left corner; pairs outside it are left out."""
    dy = image[1:, :, :] - image[:-1, :, :]
    dx = image[:, 1:, :] - image[:, :-1, :]
    if valid is not None:
        rows = jnp.arange(image.shape[0])[:, None, None]
        cols = jnp.arange(image.shape[1])[None, :, None]
        dy = jnp.where((rows[1:] < valid[0]) & (cols < valid[1]), dy, 0.0)
        dx = jnp.where((rows < valid[0]) & (cols[:, 1:] < valid[1]), dx, 0.0)
    return jnp.sum(jnp.square(dy)) + jnp.sum(jnp.square(dx))


def temporal_loss(image: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """Ruder et al.'s short-term temporal loss, sum_k c_k (x_k - w_k)^2 (summed over pixels and channels).

    Departure from Ruder et al. (a mean, 1/D): a sum like the content loss's (eq. 1), so that gamma keeps
    its balance with alpha at any image size.

    Args:
      image, target: f32[H, W, 3] in [0, 1]; target is the previous frame's output warped into this one.
      mask: f32[H, W] c, the consistency of the warp (zero outside the image in a canvas).
    """
    return jnp.sum(mask[..., None] * jnp.square(image - target))


def equal_weights(layers: Iterable[str]) -> dict[str, float]:
    """{layer: 1/len(layers)}: the paper's w_l = 1/5 over its five style layers."""
    layers = tuple(layers)
    return {name: 1.0 / len(layers) for name in layers}


def _grams(params: Mapping, image: jax.Array, valid: jax.Array | None, layers: Iterable[str],
           pooling: str) -> dict[str, jax.Array]:
    """{layer: f32[N, N]} Gram matrices per position, G^l / M^l, of one image."""
    f = vgg.features(params, image, layers=layers, pooling=pooling, valid=valid)
    return {name: gram(x) / _positions(x, valid, name) for name, x in f.items()}


def canvas_targets(
    params: Mapping, content: jax.Array, styles: jax.Array, blend: jax.Array,
    masks: dict[str, jax.Array] | None = None, *, valid: jax.Array | None = None,
    style_valid: jax.Array | None = None, content_layers: Sequence[str] = CONTENT_LAYERS,
    style_layers: Sequence[str] = STYLE_LAYERS, pooling: str = "avg",
) -> CanvasTargets:
    """Targets of one image from its canvases.

    Args:
      content: f32[H, W, 3], the content in the top-left valid = i32[2] (h, w) (None: all of it).
      styles: f32[S, Hs, Ws, 3], style s in the top-left style_valid[s] = (h_s, w_s) (None: all).
      blend: f32[S]. masks: {layer: f32[S, h_l, w_l]} or None (see `CanvasTargets`).
    """
    p = vgg.features(params, content, layers=content_layers, pooling=pooling, valid=valid)
    grams = jax.vmap(lambda x, v: _grams(params, x, v, style_layers, pooling),
                     in_axes=(0, None if style_valid is None else 0))(styles, style_valid)
    return CanvasTargets(dict(p), grams, blend, masks)


def style_grams(params: Mapping, style: jax.Array, content_hw: tuple[int, int], *,
                style_layers: Iterable[str] = STYLE_LAYERS, pooling: str = "avg") -> dict[str, jax.Array]:
    """Gram matrices A^l of one style image, rescaled to the content's number of positions.

    A style of another size than the content has its Grams multiplied by M_content / M_style,
    so that E_l compares like with like.

    Args:
      style: f32[h_s, w_s, 3] RGB in [0, 1]. content_hw: (h, w) of the content image.

    Returns: {layer: f32[N, N]}.
    """
    grams = _grams(params, style, None, style_layers, pooling)
    return {name: g * float(math.prod(vgg.feature_hw(content_hw, name))) for name, g in grams.items()}


# Jitted for `make_targets` and the fast networks' style targets, mostly called eagerly: one program
# each, not hundreds of small ones.
_features = jax.jit(vgg.features, static_argnames=("layers", "pooling"))
style_grams_jit = jax.jit(style_grams, static_argnums=2, static_argnames=("style_layers", "pooling"))


def make_targets(
    params: Mapping, content: jax.Array, styles: Sequence[jax.Array], *, blend: Sequence[float] | None = None,
    masks: jax.Array | None = None, content_layers: Iterable[str] = CONTENT_LAYERS,
    style_layers: Iterable[str] = STYLE_LAYERS, pooling: str = "avg",
) -> Targets:
    """Content features and style Grams, computed once before optimisation.

    Args:
      content: f32[h, w, 3] RGB in [0, 1].
      styles: S style images f32[h_s, w_s, 3], or one such image (the paper resizes its one
        style image to the content's size); see `style_grams` for other sizes.
      blend: S weights (default: 1/S each).
      masks: f32[S, h, w] regions of the content per style, or None.
    """
    if hasattr(styles, "ndim") and styles.ndim == 3:
        styles = [styles]
    style_layers = tuple(style_layers)
    p = _features(params, content, layers=tuple(content_layers), pooling=pooling)
    grams = [style_grams_jit(params, style, content.shape[:2], style_layers=style_layers, pooling=pooling)
             for style in styles]
    blend = jnp.full(len(grams), 1.0 / len(grams)) if blend is None else jnp.asarray(blend, jnp.float32)
    return Targets(dict(p), {name: jnp.stack([g[name] for g in grams]) for name in style_layers}, blend,
                   None if masks is None else jnp.asarray(masks, jnp.float32))


def loss_parts(
    params: Mapping, image: jax.Array, targets: Targets | CanvasTargets, *,
    content_layer_weights: Mapping[str, float], style_layer_weights: Mapping[str, float], pooling: str = "avg",
    valid: jax.Array | None = None,
) -> LossParts:
    """L_content = sum_l c_l 1/2 ||F^l - P^l||^2, L_style = sum_l w_l sum_s b_s E_l,s, and TV.

    Args:
      image: f32[H, W, 3] RGB in [0, 1]; the image is its top-left valid = i32[2] (h, w), or all
        of it when valid is None (as `Targets` require).
      targets: from `make_targets` or `canvas_targets`, with the same layers and pooling.
      content_layer_weights / style_layer_weights: {layer: weight}; their keys select
        the layers (and the order of the sums), which must be present in `targets`.
    """
    layers = tuple(dict.fromkeys([*content_layer_weights, *style_layer_weights]))
    f = vgg.features(params, image, layers=layers, pooling=pooling, valid=valid)
    m = {name: _positions(f[name], valid, name) for name in style_layer_weights}
    if isinstance(targets, Targets):  # unnormalised Grams, masks at the image's size
        masks = None if targets.masks is None else {
            name: jax.image.resize(targets.masks, (len(targets.masks), *f[name].shape[:2]), "linear")
            for name in style_layer_weights}
        targets = CanvasTargets(targets.content, {name: targets.style[name] / m[name] for name in m},
                                targets.blend, masks)
    zero = jnp.zeros((), image.dtype)
    lc = sum((w * content_loss(f[n], targets.content[n]) for n, w in content_layer_weights.items()), zero)
    ls = sum((w * style_loss(f[n], targets.style[n], targets.blend,
                             None if targets.masks is None else targets.masks[n], positions=m[n])
              for n, w in style_layer_weights.items()), zero)
    lt = zero
    if targets.temporal is not None:
        lt = temporal_loss(image, targets.temporal, targets.temporal_mask)
    return LossParts(content=lc, style=ls, tv=total_variation(image, valid), temporal=lt)


def total_loss(
    params: Mapping, image: jax.Array, targets: Targets | CanvasTargets, weights: LossWeights, *,
    content_layer_weights: Mapping[str, float], style_layer_weights: Mapping[str, float], pooling: str = "avg",
    valid: jax.Array | None = None,
) -> tuple[jax.Array, LossParts]:
    """alpha L_content + beta L_style + tv L_tv (eq. 7) + gamma L_temporal (Ruder et al.; 0 without a
    temporal target), and the unweighted parts (see `loss_parts`)."""
    parts = loss_parts(params, image, targets, content_layer_weights=content_layer_weights,
                       style_layer_weights=style_layer_weights, pooling=pooling, valid=valid)
    total = (weights.content * parts.content + weights.style * parts.style + weights.tv * parts.tv
             + weights.temporal * parts.temporal)
    return total, parts
