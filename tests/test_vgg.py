"""The JAX forward pass against a direct NumPy convolution/pooling reference."""

import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference as ref
import pytest
from conftest import DATA

from jaxstyle import vgg


@pytest.mark.parametrize("pooling", ["avg", "max"])
@pytest.mark.parametrize("shape", [(16, 16), (19, 23), (37, 18)])
def test_forward_matches_numpy_reference(tiny_params, pooling, shape):
    image = np.random.default_rng(1).random((*shape, 3), dtype=np.float32)
    layers = ("conv1_1", "conv1_2", "pool1", "conv2_1", "conv3_1", "pool3", "conv4_2", "conv5_1")
    got = jax.jit(lambda p, x: vgg.features(p, x, layers=layers, pooling=pooling))(tiny_params, image)
    expected = ref.forward(tiny_params, image, pooling, upto="conv5_1")
    assert set(got) == set(layers)
    for name in layers:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_layer_names_and_shapes():
    assert len(vgg.CONV_NAMES) == 16
    assert vgg.LAYER_NAMES.index("pool1") == vgg.LAYER_NAMES.index("conv1_2") + 1
    assert vgg.LAYER_NAMES[-1] == "pool5" and len(vgg.LAYER_NAMES) == 21


def test_stops_at_deepest_requested_layer(tiny_params):
    """Layers past the deepest one asked for get no params lookups, so they can be absent."""
    shallow = {k: v for k, v in tiny_params.items() if k in ("input", "conv1_1", "conv1_2", "conv2_1")}
    out = vgg.features(shallow, jnp.ones((8, 8, 3)), layers=("conv2_1",))
    assert out["conv2_1"].shape == (4, 4, 4)


def test_unknown_layer_and_pooling_are_refused(tiny_params):
    with pytest.raises(ValueError, match="conv6_1"):
        vgg.features(tiny_params, jnp.ones((8, 8, 3)), layers=("conv6_1",))
    with pytest.raises(ValueError, match="pooling"):
        vgg.features(tiny_params, jnp.ones((8, 8, 3)), layers=("conv1_1",), pooling="median")


def test_vmap_equals_loop_and_grad_is_finite(tiny_params):
    images = np.random.default_rng(2).random((3, 20, 21, 3), dtype=np.float32)
    fn = lambda x: vgg.features(tiny_params, x, layers=("conv3_1",))["conv3_1"]
    batched = jax.vmap(fn)(images)
    for i in range(3):
        np.testing.assert_allclose(batched[i], fn(images[i]), rtol=1e-5, atol=1e-6)
    g = jax.grad(lambda x: jnp.sum(fn(x) ** 2))(images[0])
    assert g.shape == images[0].shape and np.all(np.isfinite(g)) and np.any(g != 0)


@pytest.mark.real_weights
def test_real_weights_match_numpy_on_real_crop(real_params):
    """An independent NumPy forward on a crop of the Tübingen photo matches at conv1_1, conv3_1, conv4_2."""
    from PIL import Image

    crop = np.asarray(Image.open(DATA / "tubingen.jpg").convert("RGB").crop((400, 300, 436, 330)))
    image = (crop / 255.0).astype(np.float32)
    layers = ("conv1_1", "conv3_1", "conv4_2")
    got = jax.jit(lambda p, x: vgg.features(p, x, layers=layers, pooling="max"))(real_params, image)
    # The reference builds its own Caffe preprocessing from the published constants.
    caffe = dict(real_params)
    caffe["input"] = {
        "matrix": 255.0 * np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], np.float64),
        "offset": -np.array([103.939, 116.779, 123.68]),
    }
    expected = ref.forward(caffe, image, "max", upto="conv4_2")
    for name in layers:
        scale = np.abs(expected[name]).max()
        assert scale > 1.0, name  # a real activation, not all zeros
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-3, atol=1e-4 * scale, err_msg=name)


@pytest.mark.parametrize("shape", [(16, 16), (19, 23)])
def test_feature_hw_matches_the_forward_pass(tiny_params, shape):
    out = vgg.features(tiny_params, jnp.ones((*shape, 3)), layers=vgg.LAYER_NAMES[:-4])
    for name, f in out.items():
        assert vgg.feature_hw(shape, name) == f.shape[:2], name
        # As the masked losses call it: on a traced i32[2].
        traced = jax.jit(lambda v, name=name: jnp.stack(vgg.feature_hw(v, name)))(np.array(shape, np.int32))
        assert tuple(np.asarray(traced)) == f.shape[:2], name


def test_pooling_gradients():
    # Average: d mean / d x = 1/4 for each pixel of a 2x2 window. Max: all of it to the window's
    # largest pixel. The odd last row and column, which pooling drops (floor), get none.
    x = np.random.default_rng(3).random((1, 5, 7, 2), dtype=np.float32)
    upstream = np.random.default_rng(4).random((1, 2, 3, 2), dtype=np.float32)
    spread = np.repeat(np.repeat(upstream, 2, axis=1), 2, axis=2)
    expected = np.zeros_like(x)
    expected[:, :4, :6] = spread / 4
    grad = jax.grad(lambda x: jnp.sum(vgg._pool(x, "avg") * upstream))(x)
    np.testing.assert_allclose(grad, expected, rtol=1e-6)
    windows = x[:, :4, :6].reshape(1, 2, 2, 3, 2, 2)
    largest = np.repeat(np.repeat(windows.max(axis=(2, 4)), 2, axis=1), 2, axis=2)
    expected = np.zeros_like(x)
    expected[:, :4, :6] = np.where(x[:, :4, :6] == largest, spread, 0.0)
    grad = jax.grad(lambda x: jnp.sum(vgg._pool(x, "max") * upstream))(x)
    np.testing.assert_allclose(grad, expected, rtol=1e-6)
