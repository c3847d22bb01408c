"""Trainable image-to-image networks as flax (linen) modules.

The feed-forward style network of Johnson et al. 2016 ("Perceptual Losses for Real-Time
Style Transfer"), with the instance normalisation of Ulyanov et al. 2016 made conditional
on the style as in Dumoulin et al. 2017 ("A Learned Representation for Artistic Style"):
one scale and shift per style and normalisation layer, so one network paints N styles and
mixes of them.

linen rather than nnx: a linen module's parameters are a plain pytree, like VGG-19's, so
`jax.jit`, `jax.vmap`, sharding and flax's msgpack serialisation apply to them directly,
with no split/merge of stateful objects around every transformation.

Every module takes one image, f32[h, w, C]; batches are `jax.vmap` at the edge
(`stylize_batch`). Any h, w >= 1 works: each upsampling resizes back to the exact size
that its matching downsampling started from, so odd sides come out unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """The architecture; stored in every model file.

    width: filters of the first convolution; the others are 2x and 4x that (Johnson et al.:
      32; their instance-norm models and jaxstyle's default: 16, a quarter of the FLOPs).
    residual_blocks: residual blocks at the lowest resolution (Johnson et al.: 5).
    num_styles: styles the conditional instance norm holds (1: a plain instance norm).
    """

    width: int = 16
    residual_blocks: int = 5
    num_styles: int = 1

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NetworkConfig":
        return cls(**{f.name: int(data[f.name]) for f in dataclasses.fields(cls)})


class ReflectConv(nn.Module):
    """k x k convolution with reflect padding (k // 2), optional stride. f32[h, w, Cin] -> [h', w', C]."""

    features: int
    kernel: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        pad = self.kernel // 2
        # Reflect padding needs pad < side; tiny inputs fall back to edge replication.
        mode = "reflect" if min(x.shape[:2]) > pad else "edge"
        x = jnp.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode=mode)
        h, w = ((n - self.kernel) // self.stride + 1 for n in x.shape[:2])
        # One extra zero row/column, cropped off again: XLA:CPU runs convolutions that have
        # some padding 1.5-5x faster than unpadded ("VALID") ones (docs/fast_benchmarks.md).
        y = nn.Conv(self.features, (self.kernel, self.kernel), strides=self.stride,
                    padding=((0, 1), (0, 1)))(x)
        return y[:h, :w]


class ConditionalInstanceNorm(nn.Module):
    """Instance normalisation whose scale and shift are a mix of per-style parameters.

    y = (x - mean_hw) / sqrt(var_hw + eps) * (w @ gamma) + (w @ beta), with gamma, beta of
    shape [S, C] and w: f32[S] the style weights (one-hot for one style, a convex mix to
    interpolate styles, Dumoulin et al. 2017 sec. 3).
    """

    num_styles: int
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array, style_weights: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        gamma = self.param("scale", nn.initializers.ones, (self.num_styles, channels))
        beta = self.param("shift", nn.initializers.zeros, (self.num_styles, channels))
        mean = jnp.mean(x, axis=(0, 1), keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=(0, 1), keepdims=True)
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


class TransformNet(nn.Module):
    """Johnson et al.'s image transformation network, with conditional instance norm.

    9x9 conv (w), 3x3 stride-2 convs (2w, 4w), residual blocks of 4w, two stages of
    nearest upsampling + 3x3 conv (2w, w), 9x9 conv to RGB, sigmoid to [0, 1].
    Departures: upsampling is resize-then-convolve instead of fractionally strided
    convolutions (those leave checkerboard artefacts, Odena et al. 2016); the output is
    a sigmoid instead of a scaled tanh (the same function, shifted to [0, 1]).

    Call: (image f32[h, w, 3] in [0, 1], style_weights f32[S]) -> f32[h, w, 3] in [0, 1].
    """

    config: NetworkConfig

    @nn.compact
    def __call__(self, image: jax.Array, style_weights: jax.Array) -> jax.Array:
        w, s = self.config.width, self.config.num_styles
        x = ConvNormRelu(w, 9, s)(image, style_weights)
        full_hw = x.shape[:2]
        x = ConvNormRelu(2 * w, 3, s, stride=2)(x, style_weights)
        half_hw = x.shape[:2]
        x = ConvNormRelu(4 * w, 3, s, stride=2)(x, style_weights)
        for _ in range(self.config.residual_blocks):
            x = ResidualBlock(s)(x, style_weights)
        x = ConvNormRelu(2 * w, 3, s)(upsample_to(x, half_hw), style_weights)
        x = ConvNormRelu(w, 3, s)(upsample_to(x, full_hw), style_weights)
        x = ReflectConv(3, 9)(x)
        return nn.sigmoid(x)


def init_params(config: NetworkConfig, key: jax.Array, *, size: int = 32) -> dict:
    """Fresh parameters of `TransformNet(config)` (the pytree does not depend on `size`)."""
    image = jnp.zeros((size, size, 3), jnp.float32)
    weights = jnp.ones(config.num_styles, jnp.float32) / config.num_styles
    return TransformNet(config).init(key, image, weights)["params"]


def stylize_batch(config: NetworkConfig, params: Mapping, images: jax.Array,
                  style_weights: jax.Array) -> jax.Array:
    """The network on a batch: f32[B, h, w, 3], f32[B, S] -> f32[B, h, w, 3]."""
    net = TransformNet(config)
    return jax.vmap(lambda x, sw: net.apply({"params": params}, x, sw))(images, style_weights)


def flops_per_pixel(config: NetworkConfig) -> float:
    """Multiply-adds x 2 per input pixel, by direct count of the convolutions."""
    w, full, half, quarter = config.width, 1.0, 0.25, 1.0 / 16
    macs = (9 * 9 * 3 * w * full                        # 9x9 in
            + 3 * 3 * w * 2 * w * half                  # down 1 (output at 1/2 side)
            + 3 * 3 * 2 * w * 4 * w * quarter           # down 2
            + config.residual_blocks * 2 * 3 * 3 * (4 * w) ** 2 * quarter
            + 3 * 3 * 4 * w * 2 * w * half              # up 1
            + 3 * 3 * 2 * w * w * full                  # up 2
            + 9 * 9 * w * 3 * full)                     # 9x9 out
    return 2.0 * macs


# --- CycleGAN (Zhu et al. 2017): the ResNet generator and the 70x70 PatchGAN discriminator ----------


@dataclasses.dataclass(frozen=True, kw_only=True)
class CycleGANConfig:
    """The architecture of a CycleGAN model; stored in its model file.

    width: filters of the generator's first convolution (the paper: 64); then 2x, 4x.
    residual_blocks: generator blocks at 1/4 resolution (the paper: 6 at 128 px, 9 at 256 px).
    disc_width: filters of the discriminator's first convolution (the paper: 64); then 2x, 4x, 8x.
    """

    width: int = 64
    residual_blocks: int = 9
    disc_width: int = 64

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CycleGANConfig":
        return cls(**{f.name: int(data[f.name]) for f in dataclasses.fields(cls)})


# The fast networks' norm with one style: a plain affine instance norm. numpy, not jnp: no JAX
# array may exist at import, before jax.distributed.initialize().
_ONE_STYLE = np.ones(1, np.float32)


class ResnetGenerator(nn.Module):
    """CycleGAN's generator: 7x7 conv (w), 3x3 stride-2 convs (2w, 4w), residual blocks of 4w,
    two stages of nearest upsampling + 3x3 conv (2w, w), 7x7 conv to RGB; reflect padding,
    instance norm (with a learnt scale and shift, as the fast networks').

    The same blocks as `TransformNet` with the paper's 7x7 outer kernels. Departures: resize-
    then-convolve upsampling instead of transposed convolutions (checkerboards, Odena et al.
    2016), and a sigmoid to [0, 1] instead of tanh to [-1, 1] (the same function, rescaled).

    Call: image f32[h, w, 3] in [0, 1] -> f32[h, w, 3] in [0, 1].
    """

    config: CycleGANConfig

    @nn.compact
    def __call__(self, image: jax.Array) -> jax.Array:
        w = self.config.width
        x = ConvNormRelu(w, 7, 1)(image, _ONE_STYLE)
        full_hw = x.shape[:2]
        x = ConvNormRelu(2 * w, 3, 1, stride=2)(x, _ONE_STYLE)
        half_hw = x.shape[:2]
        x = ConvNormRelu(4 * w, 3, 1, stride=2)(x, _ONE_STYLE)
        for _ in range(self.config.residual_blocks):
            x = ResidualBlock(1)(x, _ONE_STYLE)
        x = ConvNormRelu(2 * w, 3, 1)(upsample_to(x, half_hw), _ONE_STYLE)
        x = ConvNormRelu(w, 3, 1)(upsample_to(x, full_hw), _ONE_STYLE)
        return nn.sigmoid(ReflectConv(3, 7)(x))


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN: 4x4 convs w, 2w, 4w (stride 2), 8w (stride 1), then 1 (stride 1),
    zero padding 1, LeakyReLU 0.2, instance norm after every convolution but the first and last.

    Call: image f32[h, w, 3] in [0, 1] -> f32[h', w'] real/fake scores, one per 70x70 patch
    (h' = h/8 - 2 for h divisible by 8).
    """

    config: CycleGANConfig

    @nn.compact
    def __call__(self, image: jax.Array) -> jax.Array:
        x = image * 2.0 - 1.0  # the paper's [-1, 1] pixels: the first layer has no norm to absorb the scale
        w = self.config.disc_width
        for i, (features, stride) in enumerate(((w, 2), (2 * w, 2), (4 * w, 2), (8 * w, 1))):
            x = nn.Conv(features, (4, 4), strides=stride, padding=((1, 1), (1, 1)))(x)
            if i > 0:
                x = ConditionalInstanceNorm(1)(x, _ONE_STYLE)
            x = nn.leaky_relu(x, 0.2)
        return nn.Conv(1, (4, 4), padding=((1, 1), (1, 1)))(x)[..., 0]


@functools.partial(jax.jit, static_argnames=("config", "size"))  # one program, not hundreds of eager ops
def init_cyclegan_params(config: CycleGANConfig, key: jax.Array, *, size: int = 64) -> dict:
    """{"g_ab", "g_ba", "d_a", "d_b"}: fresh params of both generators and both discriminators.

    Each network's weights drawn from N(0, 0.02) as in the paper (biases zero, norms one/zero).
    """
    image = jnp.zeros((size, size, 3), jnp.float32)
    keys = dict(zip(("g_ab", "g_ba", "d_a", "d_b"), jax.random.split(key, 4)))
    params = {}
    for name, k in keys.items():
        net = ResnetGenerator(config) if name.startswith("g") else PatchDiscriminator(config)
        init_key, normal_key = jax.random.split(k)
        fresh = net.init(init_key, image)["params"]
        leaves, tree = jax.tree.flatten_with_path(fresh)
        normal_keys = jax.random.split(normal_key, len(leaves))
        params[name] = jax.tree.unflatten(tree, [
            0.02 * jax.random.normal(nk, leaf.shape) if jax.tree_util.keystr(path).endswith("['kernel']") else leaf
            for (path, leaf), nk in zip(leaves, normal_keys)])
    return params


def generate_batch(config: CycleGANConfig, params: Mapping, images: jax.Array) -> jax.Array:
    """One generator on a batch: f32[B, h, w, 3] -> f32[B, h, w, 3]."""
    net = ResnetGenerator(config)
    return jax.vmap(lambda x: net.apply({"params": params}, x))(images)


def discriminate_batch(config: CycleGANConfig, params: Mapping, images: jax.Array) -> jax.Array:
    """One discriminator on a batch: f32[B, h, w, 3] -> f32[B, h', w']."""
    net = PatchDiscriminator(config)
    return jax.vmap(lambda x: net.apply({"params": params}, x))(images)


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
