"""The building blocks shared by jaxstyle's trainable networks, as flax (linen) modules.

linen rather than nnx: a linen module's parameters are a plain pytree, like VGG-19's, so
`jax.jit`, `jax.vmap`, sharding and flax's msgpack serialisation apply to them directly,
with no split/merge of stateful objects around every transformation.

Every module takes one image, f32[h, w, C]; batches are `jax.vmap` at the edge. Any h, w >= 1
works: each upsampling resizes back to the exact size that its matching downsampling started
from, so odd sides come out unchanged. `map_by_shape` applies a network to images of any shapes;
`check_memory` refuses, before any image is resized or computed, a run that would not fit in memory.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import runtime
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io


class IntConfig:
    """A frozen dataclass of integers (an architecture) that goes to and from a model file's JSON.

    A field missing from a file written before it existed takes its value in `BEFORE`."""

    BEFORE: dict[str, int] = {"identity": 0}

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        return cls(**{f.name: int(data[f.name] if f.name in data or f.name not in cls.BEFORE else cls.BEFORE[f.name])
                      for f in dataclasses.fields(cls)})


# How far from 0 and 1 a photo is clipped before its logit (0.26 of an 8-bit level).
IDENTITY_EPS = 1e-3


def image_output(image: jax.Array, last: jax.Array, *, identity: bool, strength: jax.Array | float = 1.0) -> jax.Array:
    """A generator's output f32[h, w, 3] in [0, 1] from its input `image` and last convolution `last`.

    identity: the photo plus a residual in logit space, sigmoid(logit(image) + strength * last);
      with the last convolution zero-initialised, a fresh network returns the photo (up to the
      clip at `IDENTITY_EPS`), and strength scales the painting from 0 (the photo) to 1.
    else: sigmoid(last), blended with the photo by strength ((1 - s) image + s out: exact at 0 and 1).
    """
    if identity:
        x = jnp.clip(image, IDENTITY_EPS, 1 - IDENTITY_EPS)
        return nn.sigmoid(jnp.log(x) - jnp.log1p(-x) + strength * last)
    return (1 - strength) * image + strength * nn.sigmoid(last)


class _ConvParams(nn.Module):
    """A convolution's parameters, under the names flax's `nn.Conv` gives them (so model files written
    before `ReflectConv` computed its own convolution still load): kernel f32[k, k, Cin, C], bias f32[C]."""

    shape: tuple[int, int, int, int]
    zero_init: bool = False

    @nn.compact
    def __call__(self) -> tuple[jax.Array, jax.Array]:
        init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
        return self.param("kernel", init, self.shape), self.param("bias", nn.initializers.zeros, self.shape[-1:])


def _conv(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
    """The valid convolution of f32[h, w, Cin] by f32[k, k, Cin, C]: f32[(h - k) // stride + 1, ..., C]."""
    h, w = ((n - kernel.shape[0]) // stride + 1 for n in x.shape[:2])
    # One extra zero row/column, cropped off again: XLA:CPU runs convolutions that have
    # some padding 1.5-5x faster than unpadded ("VALID") ones (docs/fast_benchmarks.md).
    y = jax.lax.conv_general_dilated(x[None], kernel, (stride, stride), ((0, 1), (0, 1)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))[0]
    return y[:h, :w]


def space_to_depth_kernel(kernel: jax.Array, r: int) -> jax.Array:
    """The kernel f32[k, k, Cin, C] of a stride-1 convolution, as one over the image's r x r blocks:
    f32[kk, kk, r * r * Cin, r * r * C], kk = ceil((k + r - 1) / r), channels ordered (row, column, channel)
    within a block; block offsets that the k x k window does not reach are zero."""
    k = kernel.shape[0]
    kk = -(-(k + r - 1) // r)
    # Tap of the output's block position p from the input's block U, position s: r U + s - p (+ r - 1 into
    # the kernel padded by r - 1 zeros before and what kk blocks need after).
    tap = (r * np.arange(kk)[:, None, None] + np.arange(r)[None, :, None] - np.arange(r)[None, None, :]) + r - 1
    padded = jnp.pad(kernel, ((r - 1, r * kk - k),) * 2 + ((0, 0),) * 2)
    blocks = padded[tap[:, :, :, None, None, None], tap[None, None, None]]  # [U, s, p, V, t, q, Cin, C]
    cin, cout = kernel.shape[2:]
    return blocks.transpose(0, 3, 1, 4, 6, 2, 5, 7).reshape(kk, kk, r * r * cin, r * r * cout)


def space_to_depth_conv(x: jax.Array, kernel: jax.Array, r: int) -> jax.Array:
    """`_conv(x, kernel)` (stride 1) computed on the image's r x r blocks as channels: the same sums in
    another order. f32[h, w, Cin], f32[k, k, Cin, C] -> f32[h - k + 1, w - k + 1, C]."""
    k, cout = kernel.shape[0], kernel.shape[-1]
    h, w = (n - k + 1 for n in x.shape[:2])
    kk = -(-(k + r - 1) // r)
    ho, wo = -(-h // r), -(-w // r)
    x = jnp.pad(x, ((0, r * (ho + kk - 1) - x.shape[0]), (0, r * (wo + kk - 1) - x.shape[1]), (0, 0)))
    x = x.reshape(ho + kk - 1, r, wo + kk - 1, r, -1).transpose(0, 2, 1, 3, 4).reshape(ho + kk - 1, wo + kk - 1, -1)
    y = _conv(x, space_to_depth_kernel(kernel, r))
    return y.reshape(ho, wo, r, r, cout).transpose(0, 2, 1, 3, 4).reshape(ho * r, wo * r, cout)[:h, :w]


def space_to_depth_factor(kernel: int, stride: int, in_channels: int) -> int:
    """r for `space_to_depth_conv`, 1 for a plain convolution. On XLA:CPU's default kernels a large
    window over few channels (a generator's first and last layers) runs 1.5-4x faster on 2 x 2 blocks
    (docs/fast_benchmarks.md); with 32 or more input channels it is slower, and off the CPU unmeasured."""
    if jax.default_backend() == "cpu" and stride == 1 and kernel >= 7 and in_channels <= 16:
        return 2
    return 1


class ReflectConv(nn.Module):
    """k x k convolution with reflect padding (k // 2), optional stride. f32[h, w, Cin] -> [h', w', C]."""

    features: int
    kernel: int
    stride: int = 1
    zero_init: bool = False  # a generator's last layer under an identity start

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        pad = self.kernel // 2
        # Reflect padding needs pad < side; tiny inputs fall back to edge replication.
        mode = "reflect" if min(x.shape[:2]) > pad else "edge"
        x = jnp.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode=mode)
        kernel, bias = _ConvParams((self.kernel, self.kernel, x.shape[-1], self.features), self.zero_init,
                                   name="Conv_0")()
        r = space_to_depth_factor(self.kernel, self.stride, x.shape[-1])
        y = space_to_depth_conv(x, kernel, r) if r > 1 else _conv(x, kernel, self.stride)
        return y + bias[None, None, :]


# The flax collection of every instance norm's statistics {"mean", "var"}: f32[1, 1, C] each. Applied with
# mutable=[NORM_STATS], a network returns the statistics it took from its input (a thumbnail of the whole
# image); applied with {"params": ..., NORM_STATS: those}, it normalises with them instead of its input's
# (every tile of the image alike: Chen et al. 2022, "Thumbnail Instance Normalization"). Without the
# collection, the statistics are the input's own, as always.
NORM_STATS = "norm_stats"


class ConditionalInstanceNorm(nn.Module):
    """Instance normalisation whose scale and shift are a mix of per-style parameters.

    y = (x - mean_hw) / sqrt(var_hw + eps) * (w @ gamma) + (w @ beta), with gamma, beta of
    shape [S, C] and w: f32[S] the style weights (one-hot for one style, a convex mix to
    interpolate styles, Dumoulin et al. 2017 sec. 3). mean_hw, var_hw: f32[1, 1, C], x's own, or
    given in the `NORM_STATS` collection.
    """

    num_styles: int
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array, style_weights: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        gamma = self.param("scale", nn.initializers.ones, (self.num_styles, channels))
        beta = self.param("shift", nn.initializers.zeros, (self.num_styles, channels))
        if self.has_variable(NORM_STATS, "mean"):  # fixed statistics, e.g. a thumbnail's (`NORM_STATS`)
            mean, var = self.get_variable(NORM_STATS, "mean"), self.get_variable(NORM_STATS, "var")
        else:
            mean = jnp.mean(x, axis=(0, 1), keepdims=True)
            var = jnp.mean(jnp.square(x - mean), axis=(0, 1), keepdims=True)
            if self.is_mutable_collection(NORM_STATS):
                self.put_variable(NORM_STATS, "mean", mean)
                self.put_variable(NORM_STATS, "var", var)
        normed = (x - mean) * jax.lax.rsqrt(var + self.epsilon)
        return normed * (style_weights @ gamma).reshape(1, 1, -1) + (style_weights @ beta).reshape(1, 1, -1)


class ConvNormRelu(nn.Module):
    """ReflectConv, conditional instance norm, then ReLU (none when `relu` is False).

    The convolution keeps its bias, as in Johnson et al.'s code, although the norm removes it.
    """

    features: int
    kernel: int
    num_styles: int
    stride: int = 1
    relu: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, style_weights: jax.Array) -> jax.Array:
        x = ReflectConv(self.features, self.kernel, self.stride)(x)
        x = ConditionalInstanceNorm(self.num_styles)(x, style_weights)
        return nn.relu(x) if self.relu else x


class ResidualBlock(nn.Module):
    """x + norm(conv(relu(norm(conv(x))))), two 3x3 convolutions (Johnson et al., supp. fig. 1)."""

    num_styles: int

    @nn.compact
    def __call__(self, x: jax.Array, style_weights: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        y = ConvNormRelu(channels, 3, self.num_styles)(x, style_weights)
        y = ConvNormRelu(channels, 3, self.num_styles, relu=False)(y, style_weights)
        return x + y


def upsample_to(x: jax.Array, hw: tuple[int, int]) -> jax.Array:
    """Nearest-neighbour resize of f32[h, w, C] to (hw[0], hw[1]) (2x, less one where a side was odd)."""
    return jax.image.resize(x, (*hw, x.shape[-1]), method="nearest")


def receptive_radius(layers: Sequence[tuple[str, int]]) -> int:
    """How far, in input px, the input pixels that one output pixel depends on can lie from it.

    `layers` in order, each ("conv", k): a k x k convolution; ("down", k): a k x k stride-2 one; ("up", 2): a
    2x nearest upsampling (a residual block is its two convolutions: the skip reaches less far).
    Taken back from the output: a convolution adds k // 2 px of its own grid; a stride-2 one doubles the
    reach and adds k // 2; an upsampling halves it and adds 1 for the rounding down of nearest's index.
    """
    reach = 0.0
    for kind, k in reversed(layers):
        if kind == "conv":
            reach += k // 2
        elif kind == "down":
            reach = 2 * reach + k // 2
        elif kind == "up":
            reach = reach / k + 1
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
    return math.ceil(reach)


def encoder_decoder_layers(outer_kernel: int, residual_blocks: int) -> list[tuple[str, int]]:
    """`receptive_radius`'s layers of `TransformNet` and `ResnetGenerator`: an outer_kernel conv, two 3x3
    stride-2 convs, residual blocks of two 3x3 convs, two (upsampling, 3x3 conv), an outer_kernel conv."""
    return [("conv", outer_kernel), ("down", 3), ("down", 3), *[("conv", 3)] * (2 * residual_blocks),
            ("up", 2), ("conv", 3), ("up", 2), ("conv", 3), ("conv", outer_kernel)]


def map_by_shape(forward: Callable[[np.ndarray], Any], images: Sequence[np.ndarray], *,
                 batch_size: int) -> list[np.ndarray]:
    """Runs `forward` (f32[n, h, w, 3] -> f32[n, h', w', 3]) over images grouped by shape.

    Each shape runs `batch_size` images at a time (all of them if fewer); a short last chunk
    is filled up with copies of its last image, so every shape compiles exactly once.
    Returns the outputs as NumPy arrays, in the order of `images`.
    """
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(i)
    outputs: list[np.ndarray | None] = [None] * len(images)
    for indices in by_shape.values():
        padded = min(batch_size, len(indices))
        for start in range(0, len(indices), padded):
            chunk = indices[start:start + padded]
            batch = np.stack([images[i] for i in chunk] + [images[chunk[-1]]] * (padded - len(chunk)))
            result = np.asarray(forward(batch))
            for k, i in enumerate(chunk):
                outputs[i] = result[k]
    return outputs


# --- memory: checked before any image is resized or computed ---------------------------------------------

# Besides the largest program, a run holds in NumPy every resized input and its output (24 B/px) and, while
# the largest image is resized, transient copies of it (12 B/px); the runtime works in ~0.1 GB of its own.
HELD_BYTES_PER_PIXEL, RESIZE_BYTES_PER_PIXEL, RUNTIME_BYTES = 24, 12, 128 * 2**20
# XLA:CPU's Eigen convolutions also ask for packing buffers that XLA's figures leave out, as one allocation
# per convolution (strace, committed starry_night model): 973 B/px of the batch at the 9x9 input conv at
# 2048 and 4096 px, 2113 B/px at the 9x9 output conv at 4600 px (not at 4096 px). An allocation larger
# than memory and swap in all is refused and XLA aborts (std::bad_alloc, no Python error).
CONV_BLOCK_BYTES_PER_PIXEL = 2113


def sized_shapes(images: Sequence[np.ndarray], size: int | None) -> list[tuple[int, int]]:
    """(h, w) of each image f32[h, w, 3] once resized so its longest side is `size` (None: as it is)."""
    return [image_io.longest_side_shape(im.shape[:2], size) if size else tuple(im.shape[:2]) for im in images]


def batch_shapes(shapes: Sequence[tuple[int, int]], *, batch_size: int) -> list[tuple[int, int, int]]:
    """The batch shapes (n, h, w) that `map_by_shape` runs for images of these (h, w): one per distinct shape."""
    counts = collections.Counter(tuple(shape) for shape in shapes)
    return [(min(batch_size, n), h, w) for (h, w), n in counts.items()]


def program_bytes(forward, args: tuple, batch: tuple[int, int, int]) -> int:
    """XLA's own peak for the jitted `forward(*args, images f32[n, h, w, 3])`, batch = (n, h, w): its
    arguments, outputs and temporaries (`memory_analysis` of the compiled program).

    The program compiled here is the one the run then takes from JAX's cache, so the check adds no
    compile; on 2 CPU cores a compile takes ~1 s whatever the shape, 64 px or 20000 px.
    """
    return compiled_bytes(forward, *args, jax.ShapeDtypeStruct((*batch, 3), jnp.float32))


_COMPILED_BYTES: dict[tuple, int] = {}


def compiled_bytes(forward, *args) -> int:
    """XLA's peak for the jitted `forward(*args)` (arrays or `jax.ShapeDtypeStruct`s): arguments, outputs and
    temporaries. Kept per program and argument shapes: a video checks each batch of frames, and lowering
    again costs ~30 ms a batch."""
    leaves, tree = jax.tree.flatten(args)
    key = (forward, tree, tuple((np.shape(x), str(x.dtype)) if hasattr(x, "dtype") else x for x in leaves))
    if key not in _COMPILED_BYTES:
        stats = forward.lower(*args).compile().memory_analysis()
        _COMPILED_BYTES[key] = stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
    return _COMPILED_BYTES[key]


def memory_bytes(forward, args: tuple, shapes: Sequence[tuple[int, int]], *, batch_size: int) -> int:
    """Estimated peak memory of `map_by_shape(functools.partial(forward, *args), images, batch_size=...)`
    over images resized to `shapes` (h, w), the resizing included.

    The largest batch's `program_bytes`, plus what the run holds besides (the constants above). Against
    peak RSS less RSS before, one tubingen.jpg resized by `fast.apply` with the committed starry_night
    model (XLA: 281 B/px; the CycleGAN demo model's agree within 1%): estimate 0.36 / 1.05 / 3.83 GiB,
    measured 0.30 / 1.01 / 3.66 GiB at 1024 / 2048 / 4096 px; 8 images at 1024 px, 4 per batch: 1.10
    against 1.17 GiB.
    """
    pixels = [h * w for h, w in shapes]
    largest = max(program_bytes(forward, args, batch) for batch in batch_shapes(shapes, batch_size=batch_size))
    return largest + HELD_BYTES_PER_PIXEL * sum(pixels) + RESIZE_BYTES_PER_PIXEL * max(pixels) + RUNTIME_BYTES


def _memory_and_block(forward, args: tuple, shapes: Sequence[tuple[int, int]], *, batch_size: int) -> tuple[int, int]:
    """(`memory_bytes`, the largest convolution block) of a run at this batch size."""
    block = CONV_BLOCK_BYTES_PER_PIXEL * max(n * h * w for n, h, w in batch_shapes(shapes, batch_size=batch_size))
    return memory_bytes(forward, args, shapes, batch_size=batch_size), block


def fits_in_memory(forward, args: tuple, shapes: Sequence[tuple[int, int]], *, batch_size: int) -> bool:
    """Whether `check_memory` lets this run go (always off the CPU backend, where it checks nothing)."""
    if jax.default_backend() != "cpu" or not shapes:
        return True
    need, block = _memory_and_block(forward, args, shapes, batch_size=batch_size)
    return need <= runtime.available_memory_bytes() and block <= runtime.memory_and_swap_bytes()


def check_memory(forward, args: tuple, shapes: Sequence[tuple[int, int]], *, batch_size: int) -> int | None:
    """Raises JaxstyleError when running `forward(*args, batch)` over images of `shapes` (h, w),
    `batch_size` at a time, would need more memory than is available now (`memory_bytes`), or a
    convolution buffer larger than memory and swap in all; the message says what would fit
    (--batch-size 1, or the largest --size). Returns the estimate (`memory_bytes`).

    Only on the CPU backend, where the programs share the host's memory with everything else; None
    elsewhere (and for no images).
    """
    if jax.default_backend() != "cpu" or not shapes:
        return None
    available, limit = runtime.available_memory_bytes(), runtime.memory_and_swap_bytes()

    def fits(batch_size: int) -> tuple[int, int]:
        return _memory_and_block(forward, args, shapes, batch_size=batch_size)

    need, block = fits(batch_size)
    if need <= available and block <= limit:
        return need
    h, w = max(shapes, key=lambda shape: shape[0] * shape[1])
    per_pass = max(n for n, _, _ in batch_shapes(shapes, batch_size=batch_size))
    need_1, block_1 = (need, block) if per_pass == 1 else fits(1)
    if need_1 <= available and block_1 <= limit:
        advice = "--batch-size 1 would fit"
    else:  # both grow with the pixels, so with the square of --size
        scale = min(math.sqrt(max(0, available - RUNTIME_BYTES) / (need_1 - RUNTIME_BYTES)), math.sqrt(limit / block_1))
        size = int(scale * max(max(shape) for shape in shapes)) // 8 * 8
        advice = (f"--size {size}{' --batch-size 1' if per_pass > 1 else ''} or less would fit" if size >= 8
                  else "free some memory first")
    what = f"{len(shapes)} image(s) of up to {w}x{h} px, {per_pass} per pass,"
    if need > available:
        why = f"need about {need / 2**30:.1f} GiB of memory but only {available / 2**30:.1f} GiB is available"
    else:
        why = (f"need a {block / 2**30:.1f} GiB convolution buffer, more than the {limit / 2**30:.1f} GiB of "
               f"memory and swap in all")
    raise JaxstyleError(f"{what} {why}; {advice}")
