"""The paper's losses (Gatys et al. 2016, eqs. 1-5) over VGG-19 features.

Features of one layer are f32[h, w, N]: M = h * w positions, N filters. All losses
return f32 scalars.
"""

from __future__ import annotations

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
    """What the generated image is pulled towards; computed once per content/style pair.

    content: {layer: f32[h, w, N]} features P^l of the content image.
    style: {layer: f32[S, N, N]} Gram matrices A^l of S style images, each rescaled to the
      content's number of positions at that layer.
    blend: f32[S] weight of each style image in the style loss.
    masks: f32[S, h, w] the region of the content each style paints (values in [0, 1]), or
      None for styles that cover the whole image.
    """

    content: dict[str, jax.Array]
    style: dict[str, jax.Array]
    blend: jax.Array
    masks: jax.Array | None = None


class LossWeights(NamedTuple):
    """Scalar weights of the total loss; arrays, so `jax.vmap` can sweep them.

    content: alpha. style: beta. tv: total-variation weight (0 in the paper).
    """

    content: jax.Array | float
    style: jax.Array | float
    tv: jax.Array | float = 0.0


@jax.custom_jvp
def gram(f: jax.Array) -> jax.Array:
    """G_ij = sum_k F_ik F_jk over positions k. f32[h, w, N] -> f32[N, N] (not normalised)."""
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


def guided_gram(f: jax.Array, mask: jax.Array) -> jax.Array:
    """Gram matrix of the positions a mask selects, rescaled to the full number of positions.

    G_ij = M / sum_k m_k^2 * sum_k m_k^2 F_ik F_jk (Gatys et al. 2017, spatial control), so a
    mask of ones gives `gram(f)` and a masked Gram compares with a whole style image's Gram.

    Args:
      f: f32[h, w, N] features. mask: f32[h, w] in [0, 1].
    """
    weight = jnp.square(mask)
    total = jnp.maximum(jnp.sum(weight), 1e-8)
    flat = (f * weight[..., None]).reshape(-1, f.shape[-1])
    return (flat.T @ f.reshape(-1, f.shape[-1])) * (mask.size / total)


def content_loss(f: jax.Array, p: jax.Array) -> jax.Array:
    """1/2 sum_ij (F_ij - P_ij)^2 for features f, p: f32[h, w, N] (eq. 1)."""
    return 0.5 * jnp.sum(jnp.square(f - p))


def style_layer_loss(f: jax.Array, a: jax.Array) -> jax.Array:
    """E_l = 1/(4 N^2 M^2) sum_ij (G_ij - A_ij)^2 (eq. 4).

    Args:
      f: f32[h, w, N] features of the generated image.
      a: f32[N, N] Gram matrix of the style image at the same layer.
    """
    return _style_term(f, a[None], jnp.ones(1, f.dtype), None)


def total_variation(image: jax.Array) -> jax.Array:
    """Sum of squared differences between neighbouring pixels. f32[h, w, C] -> scalar."""
    dy = image[1:, :, :] - image[:-1, :, :]
    dx = image[:, 1:, :] - image[:, :-1, :]
    return jnp.sum(jnp.square(dy)) + jnp.sum(jnp.square(dx))


def equal_weights(layers: Iterable[str]) -> dict[str, float]:
    """{layer: 1/len(layers)}: the paper's w_l = 1/5 over its five style layers."""
    layers = tuple(layers)
    return {name: 1.0 / len(layers) for name in layers}


def style_grams(
    params: Mapping,
    style: jax.Array,
    content_hw: tuple[int, int],
    *,
    style_layers: Iterable[str] = STYLE_LAYERS,
    pooling: str = "avg",
) -> dict[str, jax.Array]:
    """Gram matrices A^l of one style image, rescaled to the content's number of positions.

    A style of another size than the content has its Grams multiplied by M_content / M_style,
    so that E_l compares like with like.

    Args:
      style: f32[h_s, w_s, 3] RGB in [0, 1]. content_hw: (h, w) of the content image.

    Returns: {layer: f32[N, N]}.
    """
    a = vgg.features(params, style, layers=style_layers, pooling=pooling)
    grams = {}
    for name, f in a.items():
        h, w = vgg.feature_hw(content_hw, name)
        grams[name] = gram(f) * ((h * w) / (f.shape[0] * f.shape[1]))
    return grams


def make_targets(
    params: Mapping,
    content: jax.Array,
    styles: Sequence[jax.Array],
    *,
    blend: Sequence[float] | None = None,
    masks: jax.Array | None = None,
    content_layers: Iterable[str] = CONTENT_LAYERS,
    style_layers: Iterable[str] = STYLE_LAYERS,
    pooling: str = "avg",
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
    p = vgg.features(params, content, layers=content_layers, pooling=pooling)
    grams = [style_grams(params, style, content.shape[:2], style_layers=style_layers, pooling=pooling)
             for style in styles]
    return assemble_targets(p, grams, blend=blend, masks=masks)


def assemble_targets(
    content_features: Mapping[str, jax.Array],
    grams: Sequence[Mapping[str, jax.Array]],
    *,
    blend: Sequence[float] | None = None,
    masks: jax.Array | None = None,
) -> Targets:
    """`Targets` from content features ({layer: f32[h, w, N]}) and one `style_grams` per style."""
    blend = jnp.full(len(grams), 1.0 / len(grams)) if blend is None else jnp.asarray(blend, jnp.float32)
    return Targets(
        content=dict(content_features),
        style={name: jnp.stack([g[name] for g in grams]) for name in grams[0]},
        blend=blend,
        masks=None if masks is None else jnp.asarray(masks, jnp.float32),
    )


class LossParts(NamedTuple):
    """The unweighted terms of the total loss, each a scalar."""

    content: jax.Array
    style: jax.Array
    tv: jax.Array


def _style_term(f: jax.Array, grams: jax.Array, blend: jax.Array, masks: jax.Array | None) -> jax.Array:
    """sum_s blend_s E(G_s(x), A_s) at one layer. f: f32[h, w, N]; grams: f32[S, N, N]."""
    h, w, n = f.shape
    if masks is None:
        g = gram(f)[None]
    else:
        layer_masks = jax.image.resize(masks, (masks.shape[0], h, w), "linear")
        g = jax.vmap(guided_gram, in_axes=(None, 0))(f, layer_masks)
    # A Python float: 4 N^2 M^2 overflows int32 at ordinary sizes (4e13 at 256x192, conv1_1).
    norm = 4.0 * float(n) ** 2 * float(h * w) ** 2
    return jnp.sum(blend * jnp.sum(jnp.square(g - grams), axis=(1, 2))) / norm


def loss_parts(
    params: Mapping,
    image: jax.Array,
    targets: Targets,
    *,
    content_layer_weights: Mapping[str, float],
    style_layer_weights: Mapping[str, float],
    pooling: str = "avg",
) -> LossParts:
    """L_content = sum_l c_l 1/2 ||F^l - P^l||^2, L_style = sum_l w_l sum_s b_s E_l,s, and TV.

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
    ls = sum((w * _style_term(f[n], targets.style[n], targets.blend, targets.masks)
              for n, w in style_layer_weights.items()), zero)
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


# --- one image inside a canvas: the form the batched solver optimises -----------------------------


class ImageTargets(NamedTuple):
    """One image's targets inside a canvas of (H, W) px; the solver stacks them along a batch axis.

    content: {layer: f32[h, w, N]} features P^l of the content image, zero outside it.
    style: {layer: f32[S, N, N]} Gram matrices of S style images per position, A^l / M^l_style.
    blend: f32[S] weight of each style image (0 for a style slot the image does not use).
    masks: {layer: f32[S, h, w]} the region each style paints at that layer (zero outside the
      image), or None: each style covers the whole image.
    """

    content: dict[str, jax.Array]
    style: dict[str, jax.Array]
    blend: jax.Array
    masks: dict[str, jax.Array] | None = None


class ImageWeights(NamedTuple):
    """One image's loss weights: alpha, beta, TV (scalars) and per-layer weights f32[L]."""

    content: jax.Array
    style: jax.Array
    tv: jax.Array
    content_layers: jax.Array
    style_layers: jax.Array


def gram_per_position(f: jax.Array, valid: jax.Array | None, pools: int) -> jax.Array:
    """G / M over the image's own positions. f: f32[h, w, N], zero outside the image -> f32[N, N].
    valid: i32[2], the image's (h, w) before `pools` poolings, or None: it fills the canvas."""
    if valid is None:  # the image fills its canvas
        return gram(f) / float(f.shape[0] * f.shape[1])
    positions = (valid[0] >> pools) * (valid[1] >> pools)
    return gram(f) / jnp.maximum(positions, 1).astype(f.dtype)


def masked_total_variation(image: jax.Array, valid: jax.Array) -> jax.Array:
    """`total_variation` of the image in the top-left valid = (h, w) of a canvas f32[H, W, C]
    (valid None: the whole canvas)."""
    if valid is None:
        return total_variation(image)
    rows = jnp.arange(image.shape[0])[:, None, None]
    cols = jnp.arange(image.shape[1])[None, :, None]
    inside_y = (rows[1:] < valid[0]) & (cols < valid[1])
    inside_x = (rows < valid[0]) & (cols[:, 1:] < valid[1])
    dy = jnp.where(inside_y, image[1:] - image[:-1], 0.0)
    dx = jnp.where(inside_x, image[:, 1:] - image[:, :-1], 0.0)
    return jnp.sum(jnp.square(dy)) + jnp.sum(jnp.square(dx))


def _pools_before(layer: str) -> int:
    return sum(1 for name in vgg.LAYER_NAMES[: vgg.LAYER_NAMES.index(layer) + 1] if name.startswith("pool"))


def image_targets(
    params: Mapping, content: jax.Array, valid: jax.Array, styles: jax.Array, style_valid: jax.Array,
    blend: jax.Array, masks: dict[str, jax.Array] | None, *, content_layers: Sequence[str],
    style_layers: Sequence[str], pooling: str = "avg", masked: bool = True,
) -> ImageTargets:
    """Targets of one image from its canvases.

    Args:
      content: f32[H, W, 3], the content in the top-left valid = i32[2] (h, w).
      styles: f32[S, Hs, Ws, 3], each style in the top-left style_valid[s] = (h_s, w_s).
      blend: f32[S]. masks: {layer: f32[S, h_l, w_l]} or None (see `ImageTargets`).
      masked: False when every image fills its canvas (valid and style_valid are then ignored).
    """

    def grams(f, v):
        return {n: gram_per_position(f[n], v if masked else None, _pools_before(n)) for n in style_layers}

    def features(x, v, layers):
        return vgg.features(params, x, layers=layers, pooling=pooling, valid=v if masked else None)

    p = features(content, valid, content_layers)
    f = jax.vmap(lambda x, v: features(x, v, style_layers))(styles, style_valid)
    return ImageTargets(dict(p), jax.vmap(grams)(f, style_valid), blend, masks)


def _masked_style_term(f, valid, pools, grams, blend, masks):
    """sum_s blend_s E_l,s = 1/(4 N^2) sum_s blend_s ||G_s/M - A_s/M_s||^2 at one layer.

    The same number as `_style_term`'s 1/(4 N^2 M^2) ||G - A||^2 with A rescaled to M positions.
    """
    n = f.shape[-1]
    if masks is None:
        g = gram_per_position(f, valid, pools)[None]
    else:
        weight = jnp.square(masks)  # [S, h, w], zero outside the image

        def guided(m):
            flat = (f * m[..., None]).reshape(-1, n)
            return flat.T @ f.reshape(-1, n) / jnp.maximum(jnp.sum(m), 1e-8)

        g = jax.vmap(guided)(weight)
    return jnp.sum(blend * jnp.sum(jnp.square(g - grams), axis=(1, 2))) / (4.0 * float(n) ** 2)


def image_loss(
    params: Mapping, image: jax.Array, valid: jax.Array, targets: ImageTargets, weights: ImageWeights, *,
    content_layers: Sequence[str], style_layers: Sequence[str], pooling: str = "avg",
) -> tuple[jax.Array, LossParts]:
    """alpha L_content + beta L_style + tv L_tv of the image in the top-left valid = (h, w) of a
    canvas f32[H, W, 3], and the unweighted parts: equal to `total_loss` of that image alone."""
    layers = tuple(dict.fromkeys([*content_layers, *style_layers]))
    f = vgg.features(params, image, layers=layers, pooling=pooling, valid=valid)
    zero = jnp.zeros((), image.dtype)
    lc = sum((weights.content_layers[i] * content_loss(f[n], targets.content[n])
              for i, n in enumerate(content_layers)), zero)
    ls = sum((weights.style_layers[i] * _masked_style_term(
        f[n], valid, _pools_before(n), targets.style[n], targets.blend,
        None if targets.masks is None else targets.masks[n]) for i, n in enumerate(style_layers)), zero)
    parts = LossParts(content=lc, style=ls, tv=masked_total_variation(image, valid))
    total = weights.content * parts.content + weights.style * parts.style + weights.tv * parts.tv
    return total, parts
