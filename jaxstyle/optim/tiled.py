"""The paper's loss and its gradient on an image too large for one pass, exactly, tile by tile.

A Gram matrix is a sum over positions, so it adds up over tiles. The image's rows and columns
are cut at multiples of `ALIGN` (the pooling grid of the deepest layer) into tile interiors that
partition every layer's positions. Each tile is run on a crop of the image: its interior plus a
halo at least the receptive-field radius of the deepest layer, clipped to the image, so that its
interior features equal the whole image's (where the crop meets the image border, its zero
padding is the image's). Every crop sits in the top-left corner of one canvas shape and is
masked to its own size (`vgg.features`' valid), so each program compiles once.

One evaluation is two passes over the tiles:
  1. the forward pass of each crop, accumulating each style layer's Gram matrix over the tiles'
     interiors: G^l = sum_t G^l_t, hence the style loss of the whole image;
  2. the forward and backward pass of each crop through a loss whose style part is linear in
     the tile's Gram, <dE/dG^l, G^l_t>, with dE/dG^l from pass 1 held fixed, plus the content
     loss of the tile's interior (local). The gradients of the crops, added up where they lie,
     are the gradient of the whole image's loss (dE/dX = sum_t dE/dG : dG_t/dX): not an
     approximation. The total-variation term is local too; it is computed on the host in bands.

Styles are single images or blends; spatial masks (`--mask`) are not tiled.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import losses, runtime, vgg
from jaxstyle.optim import solver
from jaxstyle.optim.settings import ProgramKey

ALIGN = 16  # 2^4: the pooling grid of conv5_1, four 2x2 poolings deep


class Tile(NamedTuple):
    """One tile: its crop (y0, y1, x0, x1) of the image in pixels, and its interior in the crop's
    coordinates (i32[4]: top, bottom, left, right)."""

    crop: tuple[int, int, int, int]
    interior: np.ndarray


class Plan(NamedTuple):
    """The tiles of an image shape and the canvas (h, w) every crop is placed in."""

    shape: tuple[int, int]
    tiles: tuple[Tile, ...]
    canvas: tuple[int, int]


def plan(shape: tuple[int, int], tile: int, halo: int) -> Plan:
    """Tiles of side `tile` (a multiple of `ALIGN`; the last row and column take the rest) with
    `halo` pixels of context on each side, for an image of shape (h, w)."""
    if tile % ALIGN or tile <= 0:
        raise ValueError(f"tile must be a positive multiple of {ALIGN}, got {tile}")

    def cuts(n: int) -> list[tuple[int, int]]:
        starts = list(range(0, n, tile))
        if len(starts) > 1 and n - starts[-1] < ALIGN:  # a sliver joins the tile before it
            starts.pop()
        return [(a, b) for a, b in zip(starts, [*starts[1:], n])]

    tiles = []
    for y0, y1 in cuts(shape[0]):
        for x0, x1 in cuts(shape[1]):
            crop = (max(0, y0 - halo), min(shape[0], y1 + halo), max(0, x0 - halo), min(shape[1], x1 + halo))
            interior = np.asarray([y0 - crop[0], y1 - crop[0], x0 - crop[2], x1 - crop[2]], np.int32)
            tiles.append(Tile(crop, interior))
    canvas = (max(t.crop[1] - t.crop[0] for t in tiles), max(t.crop[3] - t.crop[2] for t in tiles))
    return Plan(tuple(shape), tuple(tiles), canvas)


def _interior_mask(interior: jax.Array, hw: tuple[int, int], pools: int) -> jax.Array:
    """f32[h, w]: 1 at the positions (after `pools` poolings) of a crop's interior i32[4]."""
    rows, cols = jnp.arange(hw[0]), jnp.arange(hw[1])
    inside_rows = (rows >= interior[0] >> pools) & (rows < interior[1] >> pools)
    inside_cols = (cols >= interior[2] >> pools) & (cols < interior[3] >> pools)
    return (inside_rows[:, None] & inside_cols[None, :]).astype(jnp.float32)


class Targets(NamedTuple):
    """What a tiled image is pulled towards.

    content: {layer: f32[h_l, w_l, N]} the content's features over the whole image (host memory).
    style: {layer: f32[S, N, N]} Gram matrices per position A^l / M^l_style of S styles.
    blend: f32[S] the weight of each style.
    """

    content: dict[str, np.ndarray]
    style: dict[str, np.ndarray]
    blend: np.ndarray


class Programs(NamedTuple):
    """The jitted per-crop programs of one set of layers (each compiles once per canvas shape).

    features(params, crop, valid, interior) -> ({content layer: interior features, zero elsewhere},
      {style layer: unnormalised Gram of the interior}).
    surrogate(params, crop, valid, interior, content, content_weights, dgram) -> ((value, content
      part), gradient f32[h, w, 3] of the crop): value = sum_l a_l 1/2 ||F^l - P^l||^2 over the
      interior + sum_l <dgram^l, G^l_t>; the content part is the same sum without the weights.
    """

    features: Callable
    surrogate: Callable


@functools.lru_cache(maxsize=None)
def programs(content_layers: tuple[str, ...], style_layers: tuple[str, ...], pooling: str) -> Programs:
    """The `Programs` of these layers and pooling."""
    layers = tuple(dict.fromkeys([*content_layers, *style_layers]))

    def interior_features(params, crop, valid, interior):
        f = vgg.features(params, crop, layers=layers, pooling=pooling, valid=valid)
        return {n: x * _interior_mask(interior, x.shape[:2], vgg.pools_before(n))[..., None] for n, x in f.items()}

    def features(params, crop, valid, interior):
        f = interior_features(params, crop, valid, interior)
        return {n: f[n] for n in content_layers}, {n: losses.gram(f[n]) for n in style_layers}

    def surrogate(crop, params, valid, interior, content, content_weights, dgram):
        f = interior_features(params, crop, valid, interior)
        zero = jnp.zeros((), crop.dtype)
        inside = {n: _interior_mask(interior, f[n].shape[:2], vgg.pools_before(n))[..., None] for n in content_layers}
        parts = {n: losses.content_loss(f[n], content[n] * inside[n]) for n in content_layers}
        lc = sum((content_weights[n] * parts[n] for n in content_layers), zero)
        ls = sum((jnp.vdot(dgram[n], losses.gram(f[n])) for n in style_layers), zero)
        return lc + ls, sum(parts.values(), zero)

    gradient = jax.value_and_grad(surrogate, has_aux=True)
    return Programs(runtime.jit(features),
                    runtime.jit(lambda params, crop, *rest: gradient(crop, params, *rest)))


def _crop(image: np.ndarray, tile: Tile, canvas: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The tile's crop of image f32[H, W, C] in the top-left corner of a zero canvas, and its valid (h, w)."""
    y0, y1, x0, x1 = tile.crop
    out = np.zeros((*canvas, image.shape[-1]), np.float32)
    out[: y1 - y0, : x1 - x0] = image[y0:y1, x0:x1]
    return out, np.asarray([y1 - y0, x1 - x0], np.int32)


def _feature_window(tile: Tile, layer: str) -> tuple[slice, slice]:
    """The rows and columns of the tile's crop among the whole image's features at `layer`
    (crops start on the pooling grid, so this is exact)."""
    p = vgg.pools_before(layer)
    y0, y1, x0, x1 = tile.crop
    return slice(y0 >> p, y1 >> p), slice(x0 >> p, x1 >> p)


def accumulate(params, image: np.ndarray, the_plan: Plan, progs: Programs, *, content: bool = True,
               on_tile: Callable[[str], None] | None = None,
               label: str = "pass 1") -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Pass 1 over an image f32[H, W, 3]: ({content layer: f32[h_l, w_l, N]} the whole image's
    features, assembled from the tiles' interiors (empty unless `content`); {style layer:
    f32[N, N]} the whole image's unnormalised Grams, summed over the tiles). on_tile gets
    "LABEL tile k/n"."""
    assembled: dict[str, np.ndarray] = {}
    grams: dict[str, np.ndarray] = {}
    for k, tile in enumerate(the_plan.tiles, 1):
        if on_tile is not None:
            on_tile(f"{label} tile {k}/{len(the_plan.tiles)}")
        crop, valid = _crop(image, tile, the_plan.canvas)
        f, g = progs.features(params, crop, valid, tile.interior)
        for n, x in (f.items() if content else ()):
            p = vgg.pools_before(n)
            top, bottom, left, right = (int(v) >> p for v in tile.interior)
            rows, cols = _feature_window(tile, n)
            if n not in assembled:
                assembled[n] = np.zeros((*vgg.feature_hw(the_plan.shape, n), x.shape[-1]), np.float32)
            assembled[n][rows.start + top: rows.start + bottom, cols.start + left: cols.start + right] = \
                np.asarray(x)[top:bottom, left:right]
        for n, x in g.items():
            grams[n] = grams.get(n, 0.0) + np.asarray(x, np.float64)
    return assembled, {n: g.astype(np.float32) for n, g in grams.items()}


def make_targets(params, content: np.ndarray, styles: Sequence[np.ndarray], blend: np.ndarray, key: ProgramKey,
                 *, tile: int, on_tile: Callable[[str], None] | None = None) -> Targets:
    """The content's features and each style's Grams per position, each computed in tiles; on_tile
    gets "content tile k/n", "style tile k/n"."""
    progs = programs(key.content_layers, key.style_layers, key.pooling)
    halo = vgg.tile_halo([*key.content_layers, *key.style_layers])
    p, _ = accumulate(params, content, plan(content.shape[:2], tile, halo), progs, on_tile=on_tile, label="content")
    grams = []
    for style in styles:
        _, g = accumulate(params, style, plan(style.shape[:2], tile, halo), progs, content=False, on_tile=on_tile,
                          label="style")
        grams.append({n: x / math.prod(vgg.feature_hw(style.shape[:2], n)) for n, x in g.items()})
    return Targets(p, {n: np.stack([g[n] for g in grams]) for n in key.style_layers},
                   np.asarray(blend, np.float32))


def total_variation(image: np.ndarray, grad: np.ndarray, scale: float, band: int = 256) -> float:
    """`losses.total_variation` of f32[H, W, 3], adding `scale` times its gradient into `grad`
    f32[H, W, 3], in bands of rows (no whole-image temporaries)."""
    value, scale = 0.0, np.float32(2 * scale)
    for y0 in range(0, image.shape[0], band):
        rows = image[y0: y0 + band + 1]  # one row more: the pairs across the band's lower edge
        dy = rows[1:] - rows[:-1]
        dx = image[y0: y0 + band, 1:] - image[y0: y0 + band, :-1]
        value += float(np.sum(np.square(dy), dtype=np.float64) + np.sum(np.square(dx), dtype=np.float64))
        if scale:
            dy *= scale
            dx *= scale
            grad[y0 + 1: y0 + 1 + len(dy)] += dy
            grad[y0: y0 + len(dy)] -= dy
            grad[y0: y0 + band, 1:] += dx
            grad[y0: y0 + band, :-1] -= dx
    return value


def loss_and_grad(params, image: np.ndarray, targets: Targets, key: ProgramKey, weights: losses.LossWeights,
                  layer_weights: tuple[Mapping[str, float], Mapping[str, float]], *, tile: int,
                  on_tile: Callable[[str], None] | None = None) -> tuple[float, losses.LossParts, np.ndarray]:
    """The whole image's loss (`losses.total_loss`), its parts and its gradient f32[H, W, 3], in tiles.

    on_tile: called with "pass 1 tile k/n" (or pass 2) as each tile starts, for progress bars."""
    progs = programs(key.content_layers, key.style_layers, key.pooling)
    the_plan = plan(image.shape[:2], tile, vgg.tile_halo([*key.content_layers, *key.style_layers]))
    content_w, style_w = layer_weights
    _, grams = accumulate(params, image, the_plan, progs, content=False, on_tile=on_tile)
    style_loss, dgram = 0.0, {}
    for n in key.style_layers:
        m = math.prod(vgg.feature_hw(image.shape[:2], n))
        channels = grams[n].shape[0]
        diff = grams[n][None].astype(np.float64) / m - targets.style[n]  # [S, N, N]
        style_loss += float(style_w[n]) * float(np.sum(targets.blend * np.sum(np.square(diff), axis=(1, 2)))) \
            / (4.0 * channels ** 2)
        # dE/dG of sum_s b_s 1/(4 N^2) ||G/M - A_s||^2, times beta w_l: held fixed in pass 2.
        dgram[n] = (float(weights.style) * float(style_w[n])
                    * np.tensordot(targets.blend, diff, axes=1) / (2.0 * channels ** 2 * m)).astype(np.float32)
    content_weights = {n: np.float32(float(weights.content) * float(content_w[n])) for n in key.content_layers}
    grad = np.zeros_like(image)
    content_loss = 0.0
    for k, t in enumerate(the_plan.tiles, 1):
        if on_tile is not None:
            on_tile(f"pass 2 tile {k}/{len(the_plan.tiles)}")
        crop, valid = _crop(image, t, the_plan.canvas)
        windows = {n: _feature_window(t, n) for n in key.content_layers}
        content = {n: _pad_to(targets.content[n][rows, cols], vgg.feature_hw(the_plan.canvas, n))
                   for n, (rows, cols) in windows.items()}
        (_, lc), g = progs.surrogate(params, crop, valid, t.interior, content, content_weights, dgram)
        content_loss += float(lc)
        y0, y1, x0, x1 = t.crop
        grad[y0:y1, x0:x1] += np.asarray(g)[: y1 - y0, : x1 - x0]
    tv = total_variation(image, grad, float(weights.tv))
    # No temporal term in tiles: `problem._tiled_batch` refuses one.
    parts = losses.LossParts(np.float32(content_loss), np.float32(style_loss), np.float32(tv), np.float32(0))
    total = float(weights.content) * content_loss + float(weights.style) * style_loss + float(weights.tv) * tv
    return total, parts, grad


def _pad_to(x: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    out = np.zeros((*hw, x.shape[-1]), np.float32)
    out[: x.shape[0], : x.shape[1]] = x
    return out


def evaluator(key: ProgramKey, *, tile: int, on_tile: Callable[[str], None] | None = None) -> Callable:
    """A drop-in for `solver.programs(key).evaluate` on a batch of one image whose `targets` are
    tiled `Targets`: the candidate image + stepsize * direction, projected into [0, 1], evaluated
    in tiles of side `tile`, and Armijo's condition (Adam: a finite loss); `on_tile` as in `loss_and_grad`."""

    def evaluate(params, image, direction, stepsize, value, grad, valid, targets, weights, layer_weights):
        # np.asarray(x)[0], not x[0]: a view of the buffer instead of a jitted copy of it.
        image, direction, grad = (np.asarray(x)[0] for x in (image, direction, grad))
        candidate = direction * np.float32(np.asarray(stepsize)[0])  # in place: no whole-image temporaries
        candidate += image
        np.clip(candidate, 0.0, 1.0, out=candidate)
        one = lambda tree: jax.tree.map(lambda x: float(np.asarray(x)[0]), tree)  # noqa: E731
        total, parts, new_grad = loss_and_grad(params, candidate, targets, key, one(weights), one(layer_weights),
                                               tile=tile, on_tile=on_tile)
        accept = bool(np.isfinite(total))
        if key.optimizer == "lbfgs":
            accept &= total <= float(np.asarray(value)[0]) + solver.ARMIJO * float(
                np.vdot(grad.astype(np.float64), (candidate - image).astype(np.float64)))
        batched = lambda x: np.asarray(x, np.float32)[None]  # noqa: E731
        return ((batched(total), losses.LossParts(*map(batched, parts))), new_grad[None], candidate[None],
                np.asarray([accept]))

    return evaluate
