"""Tiled apply with thumbnail instance normalisation: tiles agree with the whole image run with the same
statistics, the statistics of an image its own thumbnail give today's output, and tiling switches on by
itself only where the whole image would not fit."""

import functools

import jax
import numpy as np
import pytest

from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io
from jaxstyle.nets import cyclegan, fast, gan, layers, model_file, tiles, transform


def _jitter(params, seed):
    """Params moved off their init (unit scales, zero shifts), so each layer matters."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: np.asarray(a + 0.3 * rng.standard_normal(a.shape), np.float32), params)


@pytest.fixture(scope="module")
def fast_model():
    config = transform.NetworkConfig(width=4, residual_blocks=1, num_styles=2)
    return model_file.FastModel(config, ("a", "b"), _jitter(transform.init_params(config, jax.random.key(0)), 0))


@pytest.fixture(scope="module")
def gan_model():
    config = gan.CycleGANConfig(width=4, residual_blocks=1, disc_width=4)
    params = jax.jit(gan.ResnetGenerator(config).init)(jax.random.key(0), np.zeros((32, 32, 3), np.float32))["params"]
    return model_file.CycleGANModel(config, ("a", "b"), {"g_ab": _jitter(params, 1), "g_ba": _jitter(params, 2)})


def _network(family, fast_model, gan_model):
    """(statistics fn, tile fn, halo) of one of the two families' small networks."""
    if family == "fast":
        args = (fast_model.config, fast_model.params, np.array([1, 0], np.float32), np.float32(1))
        return (functools.partial(fast._thumbnail_stats, *args), functools.partial(fast._forward_tiles, *args),
                tiles.halo_for(transform.radius(fast_model.config)))
    args = (gan_model.config, gan_model.params["g_ab"])
    return (functools.partial(gan.generator_stats, *args), functools.partial(cyclegan._generate_tiles, *args),
            tiles.halo_for(gan.generator_radius(gan_model.config)))


def test_receptive_radius_adds_up_each_layer():
    assert layers.receptive_radius([("conv", 9)]) == 4
    assert layers.receptive_radius([("down", 3), ("conv", 3)]) == 3  # 1 px at half size is 2 px, plus 1
    assert layers.receptive_radius([("up", 2), ("conv", 3)]) == 2  # 1 px at double size is 1/2 px, plus 1
    # Johnson et al.'s network with 5 residual blocks, CycleGAN's with 9.
    assert layers.receptive_radius(layers.encoder_decoder_layers(9, 5)) == 60
    assert layers.receptive_radius(layers.encoder_decoder_layers(7, 9)) == 90


def test_axis_tiles_cover_the_side_with_windows_on_the_grid_inside_it():
    for side, tile, halo in [(100, 32, 28), (101, 32, 8), (200, 48, 12), (80, 32, 28)]:
        parts = tiles.axis_tiles(side, tile=tile, halo=halo)
        window = min(side, tile + 2 * halo)
        padded = side if side <= window else -(-side // 4) * 4
        assert [p[1] for p in parts] == list(range(0, padded, tile if len(parts) > 1 else padded))
        for start, t0, t1 in parts:
            assert 0 <= start and start + window <= padded and start % 4 == 0
            assert start == 0 or t0 - start >= halo
            assert start + window == padded or start + window - t1 >= halo


@pytest.mark.parametrize("family,hw,tile", [("fast", (100, 140), 32), ("fast", (99, 138), 48),
                                            ("cyclegan", (100, 140), 32)])
def test_tiles_equal_the_whole_image_with_the_same_statistics(family, hw, tile, fast_model, gan_model):
    stats_fn, tile_fn, halo = _network(family, fast_model, gan_model)
    image = np.random.default_rng(2).random((*hw, 3)).astype(np.float32)
    tiled = tiles.apply_tiled(stats_fn, tile_fn, image, tile=tile, halo=halo, thumbnail=64)
    # The whole image, the same thumbnail's statistics; a side cut into tiles is first reflect-extended
    # to a multiple of 4.
    stats = stats_fn(image_io.resize_longest(image, 64))
    pads = [(0, -n % 4 if n > tile + 2 * halo else 0) for n in hw]
    whole = np.asarray(tile_fn(stats, np.pad(image, [*pads, (0, 0)], mode="reflect")[None]))[0, :hw[0], :hw[1]]
    assert len(tiles.axis_tiles(hw[1], tile=tile, halo=halo)) > 1
    np.testing.assert_allclose(tiled, whole, atol=1e-5, rtol=0)
    # A margin short of the receptive field leaves seams.
    narrow = tiles.apply_tiled(stats_fn, tile_fn, image, tile=tile, halo=8, thumbnail=64)
    assert np.abs(narrow - whole).max() > 1e-2


@pytest.mark.parametrize("family", ["fast", "cyclegan"])
def test_an_image_no_larger_than_its_thumbnail_gives_todays_output(family, fast_model, gan_model):
    rng = np.random.default_rng(3)
    photos = [rng.random((60, 84, 3)).astype(np.float32), rng.random((45, 33, 3)).astype(np.float32)]
    if family == "fast":
        run = functools.partial(fast.apply, fast_model, photos, style_index=1)
    else:
        run = functools.partial(cyclegan.apply, gan_model, photos, direction="a2b")
    today = run(tile=0)
    seen = []
    for got, want in zip(run(tile=16, progress=seen.append), today):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert seen[-1] == tiles.TileProgress(image=1, images=2, tile=1, tiles=1)  # 45x33 lies within one window


def test_statistics_from_the_image_itself_are_the_default_path(fast_model):
    image = np.random.default_rng(4).random((20, 28, 3)).astype(np.float32)
    config, params, weights = fast_model.config, fast_model.params, np.array([0.3, 0.7], np.float32)
    stats = transform.norm_stats(config, params, image, weights)
    assert len(jax.tree.leaves(stats)) == 2 * (5 + 2 * config.residual_blocks)  # mean and var per norm
    # Jitted as `transform` is: compiled and eager runs of one network differ by rounding.
    default = jax.jit(lambda p, x, w: transform.TransformNet(config).apply({"params": p}, x, w))(params, image, weights)
    np.testing.assert_array_equal(transform.transform(config, params, image, weights), default)
    np.testing.assert_allclose(transform.transform(config, params, image, weights, stats=stats), default, atol=1e-6)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the memory check runs on the CPU backend only")
def test_tiles_switch_on_where_the_whole_image_would_not_fit(fast_model, monkeypatch):
    from jaxstyle import runtime

    photo = np.random.default_rng(5).random((150, 200, 3)).astype(np.float32)
    monkeypatch.setattr(tiles, "DEFAULT_TILE", 32)
    whole = fast.check_memory(fast_model, [photo], tile=0)
    tiled = fast.check_memory(fast_model, [photo], tile=32)
    assert tiled < whole and fast.check_memory(fast_model, [photo]) == whole  # fits: whole
    monkeypatch.setattr(runtime, "available_memory_bytes", lambda: tiled)
    assert fast.check_memory(fast_model, [photo]) == tiled
    np.testing.assert_array_equal(fast.apply(fast_model, [photo])[0], fast.apply(fast_model, [photo], tile=32)[0])
    with pytest.raises(JaxstyleError, match="--batch-size 1 would fit|--size"):
        fast.check_memory(fast_model, [photo], tile=0)
    # The full-size image alone too large: refused even in tiles, with a --size that fits (a small
    # thumbnail, so that its program is no larger than a window's: the advice scales the images only).
    monkeypatch.setattr(runtime, "available_memory_bytes", lambda: tiled + 2**25)
    with pytest.raises(JaxstyleError, match=r"even in 32 px tiles .*; --size \d+ or less would fit") as refused:
        fast.check_memory(fast_model, [photo], size=4000, thumbnail=64)
    size = int(str(refused.value).split("--size ")[1].split()[0])
    assert 200 < size < 4000 and fast.check_memory(fast_model, [photo], size=size, thumbnail=64) <= tiled + 2**25
