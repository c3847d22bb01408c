"""The flax style network against NumPy references written here, and its model file."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle.errors import JaxstyleError
from jaxstyle.nets import layers, model_file, transform


def np_reflect_conv(x, kernel, bias, stride):
    """Direct loop: reflect-pad by k // 2, then a strided k x k convolution. x: [h, w, ci]."""
    k = kernel.shape[0]
    p = k // 2
    xp = np.pad(x, ((p, p), (p, p), (0, 0)), mode="reflect")
    h = (xp.shape[0] - k) // stride + 1
    w = (xp.shape[1] - k) // stride + 1
    out = np.zeros((h, w, kernel.shape[-1]))
    for i in range(h):
        for j in range(w):
            patch = xp[i * stride:i * stride + k, j * stride:j * stride + k]
            out[i, j] = np.einsum("abc,abcd->d", patch, kernel) + bias
    return out


@pytest.mark.parametrize("kernel,stride,hw", [(3, 1, (7, 9)), (3, 2, (8, 11)), (9, 1, (11, 10)), (3, 2, (5, 5))])
def test_reflect_conv_matches_direct_loop(kernel, stride, hw):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((*hw, 3)).astype(np.float32)
    conv = layers.ReflectConv(4, kernel, stride)
    params = conv.init(jax.random.key(1), x)
    params = jax.tree.map(lambda a: rng.standard_normal(a.shape).astype(np.float32), params)
    got = conv.apply(params, x)
    want = np_reflect_conv(x, np.asarray(params["params"]["Conv_0"]["kernel"]),
                           np.asarray(params["params"]["Conv_0"]["bias"]), stride)
    assert got.shape == want.shape == (-(-hw[0] // stride), -(-hw[1] // stride), 4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel,r,hw,channels", [(9, 2, (11, 10), (16, 3)), (7, 2, (6, 13), (3, 5)),
                                                   (9, 3, (10, 10), (4, 2)), (5, 4, (9, 7), (2, 3))])
def test_space_to_depth_conv_is_the_plain_convolution(kernel, r, hw, channels):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((*hw, channels[0])).astype(np.float32)
    k = rng.standard_normal((kernel, kernel, *channels)).astype(np.float32)
    got = layers.space_to_depth_conv(jnp.asarray(np.pad(x, ((kernel // 2,) * 2, (kernel // 2,) * 2, (0, 0)),
                                                       mode="reflect")), jnp.asarray(k), r)
    np.testing.assert_allclose(got, np_reflect_conv(x, k, np.zeros(channels[1]), 1), rtol=1e-4, atol=1e-4)


def test_a_generators_outer_convolutions_take_the_space_to_depth_path_on_the_cpu():
    # The direct-loop tests above go through it: 9x9 from 3 channels, and 7x7/9x9 into 3 from 16 or fewer.
    assert layers.space_to_depth_factor(9, 1, 3) == layers.space_to_depth_factor(7, 1, 16) == 2
    assert layers.space_to_depth_factor(9, 1, 32) == layers.space_to_depth_factor(3, 1, 3) == 1
    assert layers.space_to_depth_factor(9, 2, 3) == 1


@pytest.mark.parametrize("features,kernel", [(3, 7), (3, 9)])
def test_reflect_conv_into_three_channels_matches_direct_loop(features, kernel):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 14, 8)).astype(np.float32)
    conv = layers.ReflectConv(features, kernel)
    params = jax.tree.map(lambda a: rng.standard_normal(a.shape).astype(np.float32), conv.init(jax.random.key(1), x))
    got = conv.apply(params, x)
    want = np_reflect_conv(x, np.asarray(params["params"]["Conv_0"]["kernel"]),
                           np.asarray(params["params"]["Conv_0"]["bias"]), 1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conditional_instance_norm_mixes_scales_and_shifts():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5, 4)).astype(np.float32) * 3 + 1
    norm = layers.ConditionalInstanceNorm(num_styles=3)
    gamma = rng.standard_normal((3, 4)).astype(np.float32)
    beta = rng.standard_normal((3, 4)).astype(np.float32)
    mix = np.array([0.2, 0.5, 0.3], np.float32)
    got = norm.apply({"params": {"scale": gamma, "shift": beta}}, x, mix)
    mean = x.mean(axis=(0, 1))
    std = np.sqrt(x.var(axis=(0, 1)) + 1e-5)
    want = (x - mean) / std * (mix @ gamma) + mix @ beta
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hw", [(17, 23), (32, 32), (9, 6), (3, 4)])
def test_network_keeps_any_shape_and_stays_in_unit_range(hw):
    config = transform.NetworkConfig(width=4, residual_blocks=1, num_styles=2)
    params = transform.init_params(config, jax.random.key(0))
    x = np.random.default_rng(1).random((2, *hw, 3)).astype(np.float32)
    y = transform.transform_batch(config, params, x, np.eye(2, dtype=np.float32))
    assert y.shape == x.shape
    assert float(y.min()) > 0 and float(y.max()) < 1


def test_batch_equals_one_image_at_a_time():
    config = transform.NetworkConfig(width=4, residual_blocks=2, num_styles=2)
    params = transform.init_params(config, jax.random.key(0))
    x = np.random.default_rng(1).random((3, 12, 10, 3)).astype(np.float32)
    weights = np.array([[1, 0], [0, 1], [0.5, 0.5]], np.float32)
    batch = transform.transform_batch(config, params, x, weights)
    net = transform.TransformNet(config)
    for k in range(3):
        one = net.apply({"params": params}, x[k], weights[k])
        np.testing.assert_allclose(batch[k], one, rtol=1e-5, atol=1e-6)


def _perturbed(config, seed=0):
    """Params whose per-style scales and shifts differ, so styles give different pictures."""
    params = transform.init_params(config, jax.random.key(seed))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: a + 0.3 * rng.standard_normal(a.shape).astype(np.float32), params)


def test_mix_is_the_network_with_interpolated_norm_parameters():
    config = transform.NetworkConfig(width=4, residual_blocks=1, num_styles=2)
    params = _perturbed(config)
    x = np.random.default_rng(1).random((1, 10, 10, 3)).astype(np.float32)
    mixed = transform.transform_batch(config, params, x, np.array([[0.7, 0.3]], np.float32))
    # The same network with every (scale, shift) pair replaced by 0.7 style 0 + 0.3 style 1,
    # stored as style 0, then asked for style 0.
    def interpolate(path, leaf):
        if path[-1].key in ("scale", "shift"):
            blended = 0.7 * leaf[0] + 0.3 * leaf[1]
            return jnp.stack([blended, blended])
        return leaf
    blended_params = jax.tree_util.tree_map_with_path(interpolate, params)
    want = transform.transform_batch(config, blended_params, x, np.array([[1.0, 0.0]], np.float32))
    np.testing.assert_allclose(mixed, want, rtol=1e-5, atol=1e-6)
    other = transform.transform_batch(config, params, x, np.array([[0.0, 1.0]], np.float32))
    assert np.abs(np.asarray(other) - np.asarray(mixed)).max() > 1e-3


def test_flop_count_matches_xla_cost_analysis(monkeypatch):
    # The network's own multiply-adds: the space-to-depth path also multiplies its kernels' zero taps.
    monkeypatch.setattr(layers, "space_to_depth_factor", lambda *_: 1)
    config = transform.NetworkConfig(width=8, residual_blocks=2)
    params = transform.init_params(config, jax.random.key(0))
    x = jnp.zeros((1, 64, 64, 3))
    w = jnp.ones((1, 1))
    compiled = jax.jit(lambda p, x: transform.transform_batch(config, p, x, w)).lower(params, x).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    # XLA counts every op (norms, padding, the extra cropped row/column); the convolutions dominate.
    assert cost["flops"] == pytest.approx(transform.flops_per_pixel(config) * 64 * 64, rel=0.15)


# --- model file ---------------------------------------------------------------------------------------


@pytest.fixture
def small_model():
    config = transform.NetworkConfig(width=4, residual_blocks=1, num_styles=2)
    params = jax.tree.map(np.asarray, _perturbed(config))
    return model_file.FastModel(config, ("starry", "scream"), params)


def test_model_file_round_trip(small_model, tmp_path):
    path = model_file.save(tmp_path / "m.msgpack", small_model)
    loaded = model_file.load(path)
    assert loaded.config == small_model.config and loaded.styles == small_model.styles
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(small_model.params)):
        np.testing.assert_array_equal(a, b)
    half = model_file.from_bytes(model_file.to_bytes(small_model, dtype="float16"))
    for a, b in zip(jax.tree.leaves(half.params), jax.tree.leaves(small_model.params)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


def test_damaged_or_foreign_model_files_are_one_clear_error(small_model, tmp_path):
    data = model_file.to_bytes(small_model)
    cases = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "text": b"hello, not a model",
        "flipped": data[:-200] + bytes([data[-200] ^ 0xFF]) + data[-199:],
    }
    for name, blob in cases.items():
        with pytest.raises(JaxstyleError, match="damaged|not a jaxstyle"):
            model_file.from_bytes(blob, where=name)
    from flax import serialization

    other = serialization.msgpack_serialize({"format": "jaxstyle-cyclegan", "version": 1})
    with pytest.raises(JaxstyleError, match="cyclegan"):
        model_file.from_bytes(other)
    record = serialization.msgpack_restore(data)
    record["version"] = 99
    with pytest.raises(JaxstyleError, match="version 99"):
        model_file.from_bytes(serialization.msgpack_serialize(record))
    # A well-formed file whose params do not fit its architecture (another width).
    record = serialization.msgpack_restore(data)
    record["config"]["width"] = 8
    with pytest.raises(JaxstyleError, match="do not match its architecture"):
        model_file.from_bytes(serialization.msgpack_serialize(record))
    with pytest.raises(JaxstyleError, match="cannot read"):
        model_file.load(tmp_path / "missing.msgpack")


def test_style_weights_validate_index_and_mix(small_model):
    np.testing.assert_array_equal(model_file.style_weights(small_model, style_index=1), [0, 1])
    np.testing.assert_allclose(model_file.style_weights(small_model, mix=[3, 1]), [0.75, 0.25])
    for kwargs, message in [({"style_index": 2}, "out of range"), ({"style_index": -1}, "out of range"),
                            ({"mix": [1, 2, 3]}, "needs 2"), ({"mix": [1, -1]}, "non-negative"),
                            ({"mix": [0, 0]}, "positive sum"), ({"style_index": 0, "mix": [1, 1]}, "either")]:
        with pytest.raises(JaxstyleError, match=message):
            model_file.style_weights(small_model, **kwargs)


def test_map_by_shape_batches_each_shape_at_one_size_and_keeps_the_order():
    rng = np.random.default_rng(0)
    images = [rng.random(shape, np.float32) for shape in
              [(4, 5, 3), (6, 2, 3), (4, 5, 3), (4, 5, 3), (6, 2, 3), (4, 5, 3), (4, 5, 3)]]
    calls = []

    def forward(batch):
        calls.append(batch.shape)
        return batch[:, ::-1] * 2.0  # per image, so padding copies cannot leak into real outputs

    outputs = layers.map_by_shape(forward, images, batch_size=3)
    for image, out in zip(images, outputs):
        np.testing.assert_array_equal(out, image[::-1] * 2.0)
    # 5 images of one shape: batches of 3 and 2+1 copy; 2 of the other: one batch of 2.
    assert sorted(calls) == [(2, 6, 2, 3), (3, 4, 5, 3), (3, 4, 5, 3)]


def test_batch_shapes_are_the_batches_map_by_shape_runs():
    shapes = [(4, 5), (6, 2), (4, 5), (4, 5), (6, 2), (4, 5), (4, 5)]  # as in the test above
    assert sorted(layers.batch_shapes(shapes, batch_size=3)) == [(2, 6, 2), (3, 4, 5)]
    assert layers.sized_shapes([np.zeros((30, 40, 3)), np.zeros((7, 5, 3))], 80) == [(60, 80), (80, 57)]


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the memory check runs on the CPU backend only")
def test_memory_estimate_grows_with_pixels_and_refuses_before_resizing(small_model, monkeypatch):
    from jaxstyle import runtime
    from jaxstyle.nets import fast

    forward, args = fast._program(small_model, None, None)
    small, large = (layers.program_bytes(forward, args, (1, side, side)) for side in (64, 128))
    assert 12 * 2 * 128 * 128 < large and 3.5 * small < large < 4.5 * small  # at least its input and output
    photo = np.zeros((30, 40, 3), np.float32)
    need = fast.check_memory(small_model, [photo], size=64)
    assert need == layers.memory_bytes(forward, args, [(48, 64)], batch_size=4) < runtime.available_memory_bytes()
    assert fast.check_memory(small_model, [photo] * 3, size=64) > need  # three images held
    # Resizing to 200000 px alone would take 360 GB: the refusal comes first.
    with pytest.raises(JaxstyleError, match=r"GiB .*--size \d+ or less would fit"):
        fast.apply(small_model, [photo], size=200_000)

    # What the message offers fits: batch 1 when that alone fits, else the largest --size it names.
    one = layers.memory_bytes(forward, args, [(48, 64)] * 4, batch_size=1)
    monkeypatch.setattr(runtime, "available_memory_bytes", lambda: one)
    with pytest.raises(JaxstyleError, match="--batch-size 1 would fit"):
        fast.check_memory(small_model, [photo] * 4, size=64, tile=0)
    monkeypatch.setattr(runtime, "available_memory_bytes", lambda: 2**30)
    with pytest.raises(JaxstyleError, match="available") as refused:
        fast.check_memory(small_model, [photo], size=20_000, batch_size=1, tile=0)
    size = int(str(refused.value).split("--size ")[1].split()[0])
    assert 1000 < size < 20_000 and fast.check_memory(small_model, [photo], size=size, batch_size=1, tile=0) <= 2**30


def _logit(x, clip=True):
    x = np.asarray(x, np.float64)
    x = np.clip(x, layers.IDENTITY_EPS, 1 - layers.IDENTITY_EPS) if clip else x
    return np.log(x) - np.log1p(-x)


@pytest.mark.parametrize("which", ["fast", "cyclegan"])
def test_a_fresh_identity_generator_returns_the_photo(which):
    from jaxstyle.nets import gan

    x = np.random.default_rng(2).random((13, 18, 3)).astype(np.float32)
    x[0, 0], x[0, 1] = 0.0, 1.0  # pure black and white come back within the clip
    if which == "fast":
        config = transform.NetworkConfig(width=4, residual_blocks=1, num_styles=2, identity=1)
        params = transform.init_params(config, jax.random.key(0))
        y = transform.transform(config, params, x, np.eye(2, dtype=np.float32)[1])
    else:
        config = gan.CycleGANConfig(width=4, residual_blocks=1, disc_width=4, identity=1)
        y = gan.generate(config, gan.init_cyclegan_params(config, jax.random.key(0), size=32)["g_ab"], x)
    np.testing.assert_allclose(np.asarray(y), np.clip(x, layers.IDENTITY_EPS, 1 - layers.IDENTITY_EPS), atol=1e-6)


def test_strength_scales_the_residual_in_logit_space_and_blends_an_older_model():
    """Identity start: logit(out_s) - logit(photo) = s (logit(out_1) - logit(photo)) (a trained-looking
    network: random last layer); an older model (identity 0): (1 - s) photo + s out_1, exact at 0 and 1."""
    x = np.random.default_rng(3).random((16, 12, 3)).astype(np.float32)
    weights = np.ones(1, np.float32)
    for identity in (1, 0):
        config = transform.NetworkConfig(width=4, residual_blocks=1, identity=identity)
        params = transform.init_params(config, jax.random.key(0))
        last = [k for k in params if k.startswith("ReflectConv")][-1]
        kernel = params[last]["Conv_0"]["kernel"]
        params[last]["Conv_0"]["kernel"] = 0.05 * jax.random.normal(jax.random.key(1), kernel.shape)
        out = {s: np.asarray(transform.transform(config, params, x, weights, strength=s)) for s in (0.0, 0.3, 1.0)}
        if identity:
            residual = _logit(out[1.0], clip=False) - _logit(x)
            assert np.abs(residual).max() > 0.05  # the residual is not zero
            np.testing.assert_allclose(_logit(out[0.3], clip=False) - _logit(x), 0.3 * residual, atol=2e-3)
            np.testing.assert_allclose(out[0.0], np.clip(x, layers.IDENTITY_EPS, 1 - layers.IDENTITY_EPS), atol=1e-6)
        else:
            np.testing.assert_array_equal(out[0.0], x)
            np.testing.assert_allclose(out[0.3], 0.7 * x + 0.3 * out[1.0], atol=1e-6)


def test_a_model_file_from_before_the_identity_start_loads_as_it_was():
    config = transform.NetworkConfig.from_dict({"width": 4, "residual_blocks": 1, "num_styles": 1})
    assert config.identity == 0
    assert transform.NetworkConfig.from_dict({**config.to_dict(), "identity": 1}).identity == 1
