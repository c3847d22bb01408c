"""The feed-forward style network of Johnson et al. 2016 ("Perceptual Losses for Real-Time
Style Transfer"), with the instance normalisation of Ulyanov et al. 2016 made conditional on the
style as in Dumoulin et al. 2017 ("A Learned Representation for Artistic Style"): one scale and
shift per style and normalisation layer, so one network paints N styles and mixes of them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxstyle.nets.layers import (NORM_STATS, ConvNormRelu, IntConfig, ReflectConv, ResidualBlock,
                                  encoder_decoder_layers, image_output, receptive_radius, upsample_to)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NetworkConfig(IntConfig):
    """The architecture; stored in every model file.

    width: filters of the first convolution; the others are 2x and 4x that (Johnson et al.:
      32; their instance-norm models and jaxstyle's default: 16, a quarter of the FLOPs).
    residual_blocks: residual blocks at the lowest resolution (Johnson et al.: 5).
    num_styles: styles the conditional instance norm holds (1: a plain instance norm).
    identity: 1: the output is the photo plus a learnt residual (`layers.image_output`), so a fresh
      network returns the photo; 0: the output is the network's own (models made before it).
    """

    width: int = 16
    residual_blocks: int = 5
    num_styles: int = 1
    identity: int = 0


class TransformNet(nn.Module):
    """Johnson et al.'s image transformation network, with conditional instance norm.

    9x9 conv (w), 3x3 stride-2 convs (2w, 4w), residual blocks of 4w, two stages of
    nearest upsampling + 3x3 conv (2w, w), 9x9 conv to RGB, sigmoid to [0, 1] (with
    `config.identity`, of the photo's logit plus that conv, zero at the start: a departure).
    Departures: upsampling is resize-then-convolve instead of fractionally strided
    convolutions (those leave checkerboard artefacts, Odena et al. 2016); the output is
    a sigmoid instead of a scaled tanh (the same function, shifted to [0, 1]).

    Call: (image f32[h, w, 3] in [0, 1], style_weights f32[S], strength f32[] in [0, 1]) -> f32[h, w, 3]
    in [0, 1]; strength 0 gives the photo, 1 the full style.
    """

    config: NetworkConfig

    @nn.compact
    def __call__(self, image: jax.Array, style_weights: jax.Array, strength: jax.Array | float = 1.0) -> jax.Array:
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
        identity = bool(self.config.identity)
        return image_output(image, ReflectConv(3, 9, zero_init=identity)(x), identity=identity, strength=strength)


@functools.partial(jax.jit, static_argnames=("config", "size"))  # one program, not hundreds of eager ops (7 s)
def init_params(config: NetworkConfig, key: jax.Array, *, size: int = 32) -> dict:
    """Fresh parameters of `TransformNet(config)` (the pytree does not depend on `size`)."""
    image = jnp.zeros((size, size, 3), jnp.float32)
    weights = jnp.ones(config.num_styles, jnp.float32) / config.num_styles
    return TransformNet(config).init(key, image, weights)["params"]


@functools.partial(jax.jit, static_argnums=0)  # eagerly too: one program, not hundreds of ops
def transform_batch(config: NetworkConfig, params: Mapping, images: jax.Array,
                    style_weights: jax.Array, strength: jax.Array | float = 1.0) -> jax.Array:
    """The network on a batch: f32[B, h, w, 3], f32[B, S] -> f32[B, h, w, 3]."""
    net = TransformNet(config)
    return jax.vmap(lambda x, sw: net.apply({"params": params}, x, sw, strength))(images, style_weights)


@functools.partial(jax.jit, static_argnums=0)  # eagerly too: one program, not hundreds of ops
def norm_stats(config: NetworkConfig, params: Mapping, image: jax.Array, style_weights: jax.Array) -> dict:
    """Every instance norm's statistics on `image` f32[h, w, 3]: {layer path: {"mean", "var": f32[1, 1, C]}}
    (`layers.NORM_STATS`), for `transform(..., stats=)`."""
    _, state = TransformNet(config).apply({"params": params}, image, style_weights, mutable=[NORM_STATS])
    return state[NORM_STATS]


@functools.partial(jax.jit, static_argnums=0)  # eagerly too: one program, not hundreds of ops
def transform(config: NetworkConfig, params: Mapping, image: jax.Array, style_weights: jax.Array, *,
              stats: Mapping | None = None, strength: jax.Array | float = 1.0) -> jax.Array:
    """The network on one image f32[h, w, 3] -> f32[h, w, 3]; each instance norm with `stats` (`norm_stats`
    of a thumbnail of the whole image, so that its tiles agree) instead of `image`'s own when given."""
    variables = {"params": params} if stats is None else {"params": params, NORM_STATS: stats}
    return TransformNet(config).apply(variables, image, style_weights, strength)


def radius(config: NetworkConfig) -> int:
    """How far, in px, an output pixel's inputs reach (`layers.receptive_radius`): 60 for 5 residual blocks."""
    return receptive_radius(encoder_decoder_layers(9, config.residual_blocks))


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
