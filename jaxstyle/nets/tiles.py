"""Fast networks at any size: one image run tile by tile, with thumbnail instance normalisation.

Chen et al. 2022 ("Towards Ultra-Resolution Neural Style Transfer via Thumbnail Instance
Normalization"): every instance norm's statistics are taken once, on a thumbnail of the whole image
(its longest side `THUMBNAIL` px, or the image itself when smaller), and every tile is normalised with
them, so the tiles agree. Each tile runs in a window `halo` px wider on each side than the tile (the
network's receptive radius, rounded up to the downsampling grid), so its interior is exactly what the
whole image would give with the same statistics: no seam.

Windows start on the grid of the network's downsampling (every `align` px) and have one shape, so one
program serves every tile; a window that would cross the image edge is moved inside it, so the network
pads it there as it pads the whole image. Departure from the untiled run: a side cut into several tiles
that is not a multiple of `align` is first reflect-extended to one (at most align - 1 px, cropped off
again), so that the downsamplings halve it exactly (on an odd side, the whole-image network's
upsampling maps its pixels unevenly, which windows cannot repeat). A side within one window is run whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import runtime
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io
from jaxstyle.nets import layers

THUMBNAIL = 1024  # px, the longest side of the image the statistics are taken from (Chen et al.: 1024)
DEFAULT_TILE = 512  # px, the tile side when tiling switches on by itself: ~0.5 GB per window at width 16
ALIGN = 4  # the encoder-decoders' two stride-2 convolutions


class TileProgress(NamedTuple):
    """Where a tiled run is: `tile` of `tiles` done (1-based), in image `image` of `images` (0-based)."""

    image: int
    images: int
    tile: int
    tiles: int


def round_tile(tile: int, align: int = ALIGN) -> int:
    """`tile` rounded up to a multiple of `align` (at least `align`)."""
    return max(align, -(-tile // align) * align)


def halo_for(radius: int, align: int = ALIGN) -> int:
    """The margin of each window: the receptive `radius` rounded up to a multiple of `align`."""
    return -(-radius // align) * align


def axis_tiles(side: int, *, tile: int, halo: int, align: int = ALIGN) -> list[tuple[int, int, int]]:
    """Along one axis of `side` px: (window start, tile start, tile end) of each tile. One window of the
    whole side when it is at most tile + 2 halo; else windows of that length over the side extended to
    a multiple of `align`, each at least `halo` px beyond its tile on both sides or ending at the edge."""
    window = tile + 2 * halo
    if side <= window:
        return [(0, 0, side)]
    side = -(-side // align) * align
    return [(min(max(start - halo, 0), side - window), start, min(start + tile, side))
            for start in range(0, side, tile)]


def window_shape(hw: tuple[int, int], *, tile: int, halo: int) -> tuple[int, int]:
    """(h, w) of the windows of an image of `hw` px."""
    return tuple(min(n, tile + 2 * halo) for n in hw)


def thumbnail_shape(hw: tuple[int, int], thumbnail: int = THUMBNAIL) -> tuple[int, int]:
    """(h, w) of the thumbnail the statistics are taken from: the image itself when not larger."""
    return image_io.longest_side_shape(hw, thumbnail) if max(hw) > thumbnail else tuple(hw)


def _reflect_indices(start: int, length: int, side: int) -> np.ndarray:
    """Indices start..start+length-1 into an axis of `side`, those past its end reflected (as np.pad's)."""
    i = np.arange(start, start + length)
    return np.clip(np.where(i < side, i, 2 * (side - 1) - i), 0, side - 1)


def apply_tiled(stats_fn: Callable[[np.ndarray], Any], tile_fn: Callable[[Any, np.ndarray], Any],
                image: np.ndarray, *, tile: int, halo: int, align: int = ALIGN, thumbnail: int = THUMBNAIL,
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The network on `image` f32[h, w, 3], tile by tile, with its thumbnail's instance-norm statistics.

    Args:
      stats_fn: thumbnail f32[h', w', 3] -> the statistics (a pytree).
      tile_fn: (statistics, windows f32[1, h'', w'', 3]) -> f32[1, h'', w'', 3].
      image: the full-size image.
      tile: tile side in px, a multiple of `align`.
      halo: margin in px, a multiple of `align`, at least the network's receptive radius.
      thumbnail: longest side of the thumbnail.
      progress: called with (tiles done, tiles) after each tile.

    Returns:
      f32[h, w, 3].
    """
    h, w = image.shape[:2]
    small = image_io.resize_longest(image, thumbnail) if max(h, w) > thumbnail else image
    stats = stats_fn(np.asarray(small, np.float32))
    del small
    win_h, win_w = window_shape((h, w), tile=tile, halo=halo)
    rows, cols = (axis_tiles(n, tile=tile, halo=halo, align=align) for n in (h, w))
    out = np.empty((h, w, 3), np.float32)
    for k, ((wy, y0, y1), (wx, x0, x1)) in enumerate((r, c) for r in rows for c in cols):
        window = image[np.ix_(_reflect_indices(wy, win_h, h), _reflect_indices(wx, win_w, w))]
        result = np.asarray(tile_fn(stats, window[None]))[0]
        y1, x1 = min(y1, h), min(x1, w)
        out[y0:y1, x0:x1] = result[y0 - wy:y1 - wy, x0 - wx:x1 - wx]
        if progress is not None:
            progress(k + 1, len(rows) * len(cols))
    return out


def apply_each(stats_fn, tile_fn, images: Sequence[np.ndarray], *, size: int | None, tile: int, halo: int,
               thumbnail: int = THUMBNAIL, progress: Callable[[TileProgress], None] | None = None):
    """Yields (output, input) f32[h, w, 3] for each of `images`, resized so its longest side is `size`
    (if given) and run by `apply_tiled`, one image at a time (only one full-size input is held)."""
    for k, image in enumerate(images):
        photo = np.asarray(image_io.resize_longest(image, size) if size else image, np.float32)
        report = None if progress is None else (
            lambda done, total, k=k: progress(TileProgress(k, len(images), done, total)))
        yield apply_tiled(stats_fn, tile_fn, photo, tile=tile, halo=halo, thumbnail=thumbnail, progress=report), photo


def memory_bytes(stats_forward, tile_forward, args: tuple, shapes: Sequence[tuple[int, int]], *, tile: int,
                 halo: int, thumbnail: int = THUMBNAIL) -> tuple[int, int]:
    """(estimated peak bytes, largest convolution block) of tiled runs over images of `shapes` (h, w):
    the larger program (the thumbnail's `stats_forward(*args, f32[h, w, 3])` or a window's
    `tile_forward(*args, stats, f32[1, h, w, 3])`), plus what `layers.memory_bytes` counts besides."""
    hw = max(shapes, key=lambda shape: shape[0] * shape[1])
    thumb = jax.ShapeDtypeStruct((*thumbnail_shape(hw, thumbnail), 3), jnp.float32)
    window = jax.ShapeDtypeStruct((1, *window_shape(hw, tile=tile, halo=halo), 3), jnp.float32)
    stats = stats_forward.eval_shape(*args, thumb)  # a jitted function: its static arguments stay static
    program = max(layers.compiled_bytes(stats_forward, *args, thumb),
                  layers.compiled_bytes(tile_forward, *args, stats, window))
    pixels = [h * w for h, w in shapes]
    held = layers.HELD_BYTES_PER_PIXEL * sum(pixels) + layers.RESIZE_BYTES_PER_PIXEL * max(pixels)
    block = layers.CONV_BLOCK_BYTES_PER_PIXEL * max(math.prod(thumb.shape[:2]), math.prod(window.shape[1:3]))
    return program + held + layers.RUNTIME_BYTES, block


def check_memory(stats_forward, tile_forward, args: tuple, shapes: Sequence[tuple[int, int]], *, tile: int,
                 halo: int, thumbnail: int = THUMBNAIL) -> int | None:
    """Raises JaxstyleError when even tiled runs over images of `shapes` would not fit in memory (the
    full-size images alone, or a window's program); the message names the largest --size that would.
    Returns the estimate (`memory_bytes`); None off the CPU backend (and for no images)."""
    if jax.default_backend() != "cpu" or not shapes:
        return None
    available, limit = runtime.available_memory_bytes(), runtime.memory_and_swap_bytes()
    need, block = memory_bytes(stats_forward, tile_forward, args, shapes, tile=tile, halo=halo, thumbnail=thumbnail)
    if need <= available and block <= limit:
        return need
    h, w = max(shapes, key=lambda shape: shape[0] * shape[1])
    pixels = [a * b for a, b in shapes]
    per_pixels = layers.HELD_BYTES_PER_PIXEL * sum(pixels) + layers.RESIZE_BYTES_PER_PIXEL * max(pixels)
    fixed = need - per_pixels  # the programs and the runtime: they do not grow past a window's size
    size = int(math.sqrt(max(0, available - fixed) / per_pixels) * max(max(s) for s in shapes)) // 8 * 8
    advice = f"--size {size} or less would fit" if size >= 8 and block <= limit else "free some memory first"
    raise JaxstyleError(f"{len(shapes)} image(s) of up to {w}x{h} px need about {need / 2**30:.1f} GiB of memory "
                        f"even in {tile} px tiles but only {available / 2**30:.1f} GiB is available; {advice}")


def plan(forward, stats_forward, tile_forward, args: tuple, shapes: Sequence[tuple[int, int]], *,
         batch_size: int, tile: int | None, halo: int, thumbnail: int = THUMBNAIL) -> tuple[int, int | None]:
    """(tile side, 0 for the whole images at once; the estimated peak bytes) of a run over images of
    `shapes` (h, w). `tile`: None tiles (`DEFAULT_TILE`) only what would not fit whole (`layers.fits_in_memory`,
    of `forward(*args, f32[n, h, w, 3])` `batch_size` at a time), 0 never, N in N px tiles. Raises
    JaxstyleError, before any work, for a run that would not fit as planned.
    """
    if tile is not None and tile < 0:
        raise JaxstyleError(f"tile must be at least 0 (0: never tile), got {tile}")
    if tile is None:
        tile = 0 if layers.fits_in_memory(forward, args, shapes, batch_size=batch_size) else DEFAULT_TILE
    if tile == 0:
        return 0, layers.check_memory(forward, args, shapes, batch_size=batch_size)
    tile = round_tile(tile)
    return tile, check_memory(stats_forward, tile_forward, args, shapes, tile=tile, halo=halo, thumbnail=thumbnail)
