"""Tiled evaluation: the whole image's loss and gradient, exactly, from crops with a halo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import DATA, REAL_WEIGHTS, random_params

from jaxstyle import losses, optim, vgg
from jaxstyle.io import image_io, weights
from jaxstyle.optim import tiled

pytestmark = pytest.mark.real_weights


@pytest.fixture(scope="module")
def params():
    return weights.load_params(REAL_WEIGHTS)


def test_the_halo_covers_the_receptive_field_of_conv5_1():
    # By hand: 3x3 convolutions add 1, 2, 4, 8, 16 px per side at their resolution (2 + 2x2 + 4x4 +
    # 4x8 + 1x16 = 70) and the four 2x2 poolings 1 + 2 + 4 + 8 = 15.
    assert vgg.receptive_radius(["conv4_2", "conv5_1"]) == 85
    assert vgg.tile_halo(["conv4_2", "conv5_1"]) == 96


@pytest.mark.parametrize("shape", [(100, 64), (90, 37)])
def test_the_tiles_interiors_partition_every_layer(shape):
    the_plan = tiled.plan(shape, 32, 96)
    for layer in ("conv1_1", "conv2_1", "conv5_1"):
        covered = np.zeros(vgg.feature_hw(shape, layer), int)
        for tile in the_plan.tiles:
            p = vgg.pools_before(layer)
            top, bottom, left, right = (int(v) >> p for v in tile.interior)
            covered[(tile.crop[0] >> p) + top: (tile.crop[0] >> p) + bottom,
                    (tile.crop[2] >> p) + left: (tile.crop[2] >> p) + right] += 1
        assert (covered == 1).all(), layer


def test_banded_total_variation_equals_numpy():
    """In bands of 7 rows (pairs across every band edge) against the sum of squared differences and
    its gradient written out here: d/dx_i of (x_i - x_j)^2 is 2 (x_i - x_j)."""
    x = np.random.default_rng(1).random((30, 11, 3), dtype=np.float32)
    dy, dx = x[1:] - x[:-1], x[:, 1:] - x[:, :-1]
    expected = np.zeros_like(x)
    expected[1:] += 2 * dy
    expected[:-1] -= 2 * dy
    expected[:, 1:] += 2 * dx
    expected[:, :-1] -= 2 * dx
    grad = np.ones_like(x)
    value = tiled.total_variation(x, grad, 0.5, band=7)
    np.testing.assert_allclose(value, np.sum(dy.astype(np.float64) ** 2) + np.sum(dx.astype(np.float64) ** 2), rtol=1e-6)
    np.testing.assert_allclose(grad, 1 + 0.5 * expected, rtol=1e-5, atol=1e-6)


def test_tiled_loss_and_gradient_equal_the_whole_images():
    """At 64x300 px in tiles of 32 px (crops of up to 224 px: every halo cut is inside the image; the
    last 12 px join the column before), with two blended styles and a TV term. On random VGG weights
    of width 8: the halo is a matter of the layers' geometry, not their weights (the real ones cost
    50 s here); the TV weight is set so that the VGG terms make most of the gradient."""
    params = random_params(seed=2, width=8)
    shape = (64, 300)
    content = image_io.resize(image_io.load_image(DATA / "tubingen.jpg"), shape)
    styles = [image_io.resize(image_io.load_image(DATA / "starry_night.jpg"), shape), content[::-1].copy()]
    image = np.clip(content + 0.1 * np.random.default_rng(0).standard_normal(content.shape), 0, 1).astype(np.float32)
    settings = optim.Settings(tv_weight=1e-6, style_blend=(0.7, 0.3))
    key, blend = settings.program_key(), np.asarray(settings.style_blend, np.float32)
    layer_weights = settings.layer_weights()

    whole = losses.make_targets(params, jnp.asarray(content), [jnp.asarray(s) for s in styles], blend=blend)

    def loss(x, weights):
        return losses.total_loss(params, x, whole, weights, content_layer_weights=layer_weights[0],
                                 style_layer_weights=layer_weights[1])

    whole_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
    (value, parts), grad = whole_grad(jnp.asarray(image), settings.loss_weights())
    _, vgg_grad = whole_grad(jnp.asarray(image), settings.replace(tv_weight=0.0).loss_weights())
    assert np.linalg.norm(vgg_grad) > 0.5 * np.linalg.norm(grad)  # the TV term does not hide the VGG's

    targets = tiled.make_targets(params, content, styles, blend, key, tile=32)
    t_value, t_parts, t_grad = tiled.loss_and_grad(params, image, targets, key, settings.loss_weights(),
                                                   layer_weights, tile=32)
    assert len(tiled.plan(shape, 32, 96).tiles) == 2 * 9
    np.testing.assert_allclose(t_value, float(value), rtol=1e-5)
    np.testing.assert_allclose([float(x) for x in t_parts], [float(x) for x in parts], rtol=1e-5)
    grad = np.asarray(grad)
    assert np.linalg.norm(t_grad - grad) <= 1e-4 * np.linalg.norm(grad)
    # Entry by entry too, though rounding alone may move one: the gradient jumps where a ReLU's input
    # crosses 0 (docs/benchmarks.md, tiled-exact: one pass moves by 5e-3 of its largest entry at 1e-6 noise).
    assert np.abs(t_grad - grad).max() <= 1e-2 * np.abs(grad).max()


def test_a_tiled_run_follows_the_untiled_one(params):
    """`optim.stylize` in tiles against one pass, the same L-BFGS memory: the same path up to rounding
    (layers up to conv3_2, so that the halo is 32 px and the test quick)."""
    content = image_io.resize(image_io.load_image(DATA / "tubingen.jpg"), (64, 300))
    style = image_io.load_image(DATA / "starry_night.jpg", size=300)
    settings = optim.Settings(size=300, steps=3, lbfgs_memory=5, content_layers=("conv3_2",),
                              style_layers="upto-conv3_1")
    assert vgg.tile_halo([*settings.content_layers, *settings.style_layers]) == 32
    plain = optim.stylize(params, content, style, settings)
    tiled_run = optim.stylize(params, content, style, settings.replace(tile=32))
    assert optim.tile_for((64, 300), settings.replace(tile=32)) == 32
    np.testing.assert_allclose(float(tiled_run.total), float(plain.total), rtol=1e-3)
    assert np.abs(tiled_run.image - plain.image).max() < 2 / 255
