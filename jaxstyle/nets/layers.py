"""The building blocks shared by jaxstyle's trainable networks, as flax (linen) modules.

linen rather than nnx: a linen module's parameters are a plain pytree, like VGG-19's, so
`jax.jit`, `jax.vmap`, sharding and flax's msgpack serialisation apply to them directly,
with no split/merge of stateful objects around every transformation.

Every module takes one image, f32[h, w, C]; batches are `jax.vmap` at the edge. Any h, w >= 1
works: each upsampling resizes back to the exact size that its matching downsampling started
from, so odd sides come out unchanged. `map_by_shape` applies a network to images of any shapes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class IntConfig:
    """A frozen dataclass of integers (an architecture) that goes to and from a model file's JSON."""

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
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
