"""CycleGAN's networks (Zhu et al. 2017): the ResNet generator and the 70x70 PatchGAN discriminator,
built from the fast networks' blocks."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle.nets.layers import (NORM_STATS, ConditionalInstanceNorm, ConvNormRelu, IntConfig, ReflectConv,
                                  ResidualBlock, encoder_decoder_layers, image_output, receptive_radius, upsample_to)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CycleGANConfig(IntConfig):
    """The architecture of a CycleGAN model; stored in its model file.

    width: filters of the generator's first convolution (the paper: 64); then 2x, 4x.
    residual_blocks: generator blocks at 1/4 resolution (the paper: 6 at 128 px, 9 at 256 px).
    disc_width: filters of the discriminator's first convolution (the paper: 64); then 2x, 4x, 8x.
    identity: 1: each generator's output is its input plus a learnt residual (`layers.image_output`),
      so fresh generators return their input and the cycle starts closed; 0: models made before it.
    """

    width: int = 64
    residual_blocks: int = 9
    disc_width: int = 64
    identity: int = 0


# The fast networks' norm with one style: a plain affine instance norm. numpy, not jnp: no JAX
# array may exist at import, before jax.distributed.initialize().
_ONE_STYLE = np.ones(1, np.float32)


class ResnetGenerator(nn.Module):
    """CycleGAN's generator: 7x7 conv (w), 3x3 stride-2 convs (2w, 4w), residual blocks of 4w,
    two stages of nearest upsampling + 3x3 conv (2w, w), 7x7 conv to RGB; reflect padding,
    instance norm (with a learnt scale and shift, as the fast networks').

    The same blocks as `TransformNet` with the paper's 7x7 outer kernels. Departures: resize-
    then-convolve upsampling instead of transposed convolutions (checkerboards, Odena et al.
    2016), and a sigmoid to [0, 1] instead of tanh to [-1, 1] (the same function, rescaled);
    with `config.identity`, the sigmoid of the input's logit plus the last convolution, zero at
    the start (a departure from the paper's random start: the generator starts as the identity).

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
        identity = bool(self.config.identity)
        return image_output(image, ReflectConv(3, 7, zero_init=identity)(x), identity=identity)


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

    Each network's weights drawn from N(0, 0.02) as in the paper (biases zero, norms one/zero), but
    an identity start's last layers, which stay zero.
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
        # A kernel made zero (an identity start's last layer) stays zero.
        params[name] = jax.tree.unflatten(tree, [
            jnp.where(jnp.any(leaf != 0), 0.02 * jax.random.normal(nk, leaf.shape), leaf)
            if jax.tree_util.keystr(path).endswith("['kernel']") else leaf
            for (path, leaf), nk in zip(leaves, normal_keys)])
    return params


@functools.partial(jax.jit, static_argnums=0)  # eagerly too: one program, not hundreds of ops
def generate_batch(config: CycleGANConfig, params: Mapping, images: jax.Array) -> jax.Array:
    """One generator on a batch: f32[B, h, w, 3] -> f32[B, h, w, 3]."""
    net = ResnetGenerator(config)
    return jax.vmap(lambda x: net.apply({"params": params}, x))(images)


@functools.partial(jax.jit, static_argnums=0)  # eagerly too: one program, not hundreds of ops
def generator_stats(config: CycleGANConfig, params: Mapping, image: jax.Array) -> dict:
    """Every instance norm's statistics on `image` f32[h, w, 3] (`layers.NORM_STATS`), for `generate`."""
    _, state = ResnetGenerator(config).apply({"params": params}, image, mutable=[NORM_STATS])
    return state[NORM_STATS]


@functools.partial(jax.jit, static_argnums=0)  # eagerly too: one program, not hundreds of ops
def generate(config: CycleGANConfig, params: Mapping, image: jax.Array, *, stats: Mapping | None = None) -> jax.Array:
    """One generator on one image f32[h, w, 3] -> f32[h, w, 3], its instance norms with `stats`
    (`generator_stats` of a thumbnail of the whole image) instead of `image`'s own when given."""
    variables = {"params": params} if stats is None else {"params": params, NORM_STATS: stats}
    return ResnetGenerator(config).apply(variables, image)


def generator_radius(config: CycleGANConfig) -> int:
    """How far, in px, a generator's output pixel's inputs reach (`layers.receptive_radius`): 90 for 9 blocks."""
    return receptive_radius(encoder_decoder_layers(7, config.residual_blocks))


@functools.partial(jax.jit, static_argnums=0)  # eagerly too: one program, not hundreds of ops
def discriminate_batch(config: CycleGANConfig, params: Mapping, images: jax.Array) -> jax.Array:
    """One discriminator on a batch: f32[B, h, w, 3] -> f32[B, h', w']."""
    net = PatchDiscriminator(config)
    return jax.vmap(lambda x: net.apply({"params": params}, x))(images)
