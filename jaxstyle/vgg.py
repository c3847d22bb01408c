"""VGG-19's convolutional part as a pure function over a params pytree.

Params are a nested dict keyed by the paper's layer names::

    {"conv1_1": {"kernel": f32[3, 3, 3, 64] (HWIO), "bias": f32[64]}, ...,
     "input": {"matrix": f32[3, 3], "offset": f32[3]}}

``params["input"]`` is the weights' input convention as an affine map from RGB in
[0, 1] to what the network was trained on (see ``jaxstyle.io.weights``), so the forward
pass honours the convention of whichever weights file the params came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import jax
import jax.numpy as jnp

# (name, input channels, output channels) of the 16 convolutions, in order.
CONV_LAYERS: tuple[tuple[str, int, int], ...] = (
    ("conv1_1", 3, 64), ("conv1_2", 64, 64),
    ("conv2_1", 64, 128), ("conv2_2", 128, 128),
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256),
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), ("conv4_4", 512, 512),
    ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512), ("conv5_4", 512, 512),
)
CONV_NAMES: tuple[str, ...] = tuple(name for name, _, _ in CONV_LAYERS)
CHANNELS: dict[str, int] = {name: out for name, _, out in CONV_LAYERS}  # output channels of each convolution
# A 2x2 pooling follows the last convolution of each block.
POOL_AFTER: dict[str, str] = {
    "conv1_2": "pool1", "conv2_2": "pool2", "conv3_4": "pool3", "conv4_4": "pool4", "conv5_4": "pool5",
}
# Every layer a caller may ask for, in the order the network computes them.
LAYER_NAMES: tuple[str, ...] = tuple(
    n for conv in CONV_NAMES for n in ((conv, POOL_AFTER[conv]) if conv in POOL_AFTER else (conv,))
)
POOLINGS = ("avg", "max")
# Smallest image side: conv5_1 sits behind four 2x2 poolings, so 32 px leaves it 2x2 positions.
MIN_SIDE = 32


def _conv_relu(x: jax.Array, layer: Mapping[str, jax.Array]) -> jax.Array:
    """3x3 convolution, stride 1, padding 1, then ReLU. x: [1, h, w, Cin] -> [1, h, w, Cout]."""
    y = jax.lax.conv_general_dilated(
        x, layer["kernel"], window_strides=(1, 1), padding=((1, 1), (1, 1)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return jax.nn.relu(y + layer["bias"].reshape(1, 1, 1, -1))


def _pool(x: jax.Array, pooling: str) -> jax.Array:
    """2x2 pooling, stride 2; an odd last row/column is dropped (floor, as in Caffe's VGG)."""
    n, h, w, c = x.shape
    # As a reshape, not reduce_window: the gradient is then a broadcast that fuses into its
    # consumer instead of an image-sized buffer (192 MB at 1024 px after conv1_2).
    blocks = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    return blocks.max(axis=(2, 4)) if pooling == "max" else blocks.mean(axis=(2, 4))


def preprocess(params: Mapping, image: jax.Array) -> jax.Array:
    """RGB in [0, 1], [h, w, 3] -> the network's input convention, [h, w, 3]."""
    return image @ params["input"]["matrix"] + params["input"]["offset"].reshape(1, 1, 3)


def feature_hw(image_hw: tuple[int, int], layer: str) -> tuple[int, int]:
    """(h, w) of a layer's features for an image of (h, w): each pooling before it floors by 2.

    image_hw: two ints, or an i32[2] array (e.g. a traced `valid`), which gives i32 scalars."""
    pools = pools_before(layer)
    return image_hw[0] >> pools, image_hw[1] >> pools


def pools_before(layer: str) -> int:
    """How many 2x2 poolings lie before `layer` (itself included, for a pooling layer)."""
    return sum(1 for name in LAYER_NAMES[: LAYER_NAMES.index(layer) + 1] if name.startswith("pool"))


def receptive_radius(layers: Iterable[str]) -> int:
    """How far, in pixels, a position of the deepest of `layers` sees on each side: each 3x3
    convolution adds one position of its resolution, each 2x2 pooling one position of its input's."""
    deepest = max(layers, key=LAYER_NAMES.index)
    radius, scale = 0, 1
    for name in LAYER_NAMES[: LAYER_NAMES.index(deepest) + 1]:
        radius += scale
        if name.startswith("pool"):
            scale *= 2
    return radius


def tile_halo(layers: Iterable[str]) -> int:
    """The context a tile needs on each side so that its interior features at `layers` equal the
    whole image's: the receptive radius, rounded up to the pooling grid of conv5_1 (16 px)."""
    return -(-receptive_radius(layers) // 16) * 16


def check_layers(layers: Iterable[str]) -> tuple[str, ...]:
    """Validates layer names; returns them as a tuple. Raises ValueError on an unknown name."""
    layers = tuple(layers)
    unknown = [name for name in layers if name not in LAYER_NAMES]
    if unknown:
        raise ValueError(f"unknown VGG-19 layer(s) {unknown}; choose from {', '.join(LAYER_NAMES)}")
    return layers


def valid_mask(valid: jax.Array, hw: tuple[int, int], pools: int) -> jax.Array:
    """f32[h, w]: 1 where a position of a canvas of size hw (after `pools` poolings) belongs to
    the image of size valid = i32[2] (h0, w0) in its top-left corner, else 0."""
    rows = jnp.arange(hw[0]) < (valid[0] >> pools)
    cols = jnp.arange(hw[1]) < (valid[1] >> pools)
    return (rows[:, None] & cols[None, :]).astype(jnp.float32)


def features(
    params: Mapping, image: jax.Array, *, layers: Iterable[str], pooling: str = "avg",
    valid: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """VGG-19 activations of one image at the requested layers.

    Args:
      params: the VGG-19 pytree (see the module docstring).
      image: f32[h, w, 3], RGB in [0, 1]. Any h, w >= 1; pooling floors odd sides.
      layers: paper layer names, e.g. ("conv4_2", "pool1"); "convX_Y" is that layer's
        ReLU output. Nothing past the deepest requested layer is computed.
      pooling: "avg" (the paper's choice) or "max".
      valid: None, or i32[2] (h0, w0): the image fills only the top-left h0 x w0 of a larger
        canvas. Every layer's input is then zero outside the image, as the zero padding of a
        network run on the h0 x w0 image alone would see it, so features inside equal that run's.

    Returns:
      {layer name: f32[h_l, w_l, C_l]} for every requested layer.
    """
    wanted = set(check_layers(layers))
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    out: dict[str, jax.Array] = {}
    pools = 0

    def masked(x):
        if valid is None:
            return x
        return x * valid_mask(valid, x.shape[1:3], pools)[None, :, :, None]

    x = masked(preprocess(params, image)[None])
    for name in LAYER_NAMES:
        if not wanted - out.keys():
            break
        if name.startswith("pool"):
            pools += 1
            x = masked(_pool(x, pooling))
        else:
            x = masked(_conv_relu(x, params[name]))
        if name in wanted:
            out[name] = x[0]
    return out
