"""The optimisation loop on tiny random weights: losses fall, batching equals looping, no recompiles."""

import jax
import numpy as np
import pytest

from conftest import random_params
from jaxstyle import optimize
from jaxstyle.errors import JaxstyleError

PARAMS = random_params(seed=3, width=8)
RNG = np.random.default_rng(7)
CONTENT = RNG.random((36, 44, 3), dtype=np.float32)
CONTENT2 = RNG.random((36, 44, 3), dtype=np.float32)
STYLE = RNG.random((50, 40, 3), dtype=np.float32)
BASE = optimize.Settings(size=44, steps=6, init="noise", content_weight=1.0, style_weight=1e3)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_loss_falls_and_pixels_stay_valid(optimizer):
    settings = BASE.replace(optimizer=optimizer, steps=12, learning_rate=0.01)
    seen = []
    result = optimize.stylize(PARAMS, CONTENT, STYLE, settings, callback=seen.append)
    assert [p.step for p in seen] == list(range(1, 13))
    assert float(result.total) < 0.5 * float(seen[0].total)
    assert result.image.shape == (36, 44, 3)
    assert result.image.min() >= 0.0 and result.image.max() <= 1.0
    assert result.evaluations >= settings.steps + 1
    if optimizer == "lbfgs":  # Armijo's condition: every accepted step decreases the loss
        totals = [float(p.total) for p in seen]
        assert all(b <= a for a, b in zip(totals, totals[1:])), totals


def test_noise_init_is_seeded():
    a = optimize.stylize(PARAMS, CONTENT, STYLE, BASE.replace(steps=0))
    b = optimize.stylize(PARAMS, CONTENT, STYLE, BASE.replace(steps=0))
    c = optimize.stylize(PARAMS, CONTENT, STYLE, BASE.replace(steps=0, seed=1))
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.allclose(a.image, c.image)


def test_content_init_with_zero_steps_returns_the_content():
    result = optimize.stylize(PARAMS, CONTENT, STYLE, BASE.replace(steps=0, init="content"))
    np.testing.assert_allclose(result.image, CONTENT, atol=1e-6)
    assert float(result.content) < 1e-9


def test_batch_equals_loop():
    batch = optimize.stylize_batch(PARAMS, [CONTENT, CONTENT2], STYLE, BASE)
    for i, content in enumerate([CONTENT, CONTENT2]):
        single = optimize.stylize(PARAMS, content, STYLE, BASE)
        np.testing.assert_allclose(batch.image[i], single.image, atol=2e-4)
        np.testing.assert_allclose(batch.total[i], single.total, rtol=2e-3)


def test_sweep_equals_separate_runs():
    ratios = [1e-3, 1.0]
    swept = optimize.sweep(PARAMS, CONTENT, STYLE, ratios, BASE)
    assert swept.image.shape == (2, 36, 44, 3)
    for k, ratio in enumerate(ratios):
        single = optimize.stylize(PARAMS, CONTENT, STYLE, BASE.replace(content_weight=ratio * BASE.style_weight))
        np.testing.assert_allclose(swept.image[k], single.image, atol=2e-4)
    assert not np.allclose(swept.image[0], swept.image[1], atol=1e-3)


def test_stylize_many_groups_sizes_and_keeps_order():
    tall = RNG.random((44, 34, 3), dtype=np.float32)
    results = optimize.stylize_many(PARAMS, [CONTENT, tall, CONTENT2], STYLE, BASE.replace(steps=2))
    assert [r.image.shape for r in results] == [(36, 44, 3), (44, 34, 3), (36, 44, 3)]


def test_second_call_does_not_recompile():
    settings = BASE.replace(steps=2, seed=11)
    optimize.stylize(PARAMS, CONTENT, STYLE, settings)
    init, propose, _ = optimize._programs(optimize._program_key(settings), "single")
    before = (init._cache_size(), propose._cache_size())
    optimize.stylize(PARAMS, CONTENT2, STYLE, settings.replace(steps=3, seed=5, content_weight=2.0))
    assert (init._cache_size(), propose._cache_size()) == before


def test_non_finite_loss_stops_and_keeps_last_finite_image():
    # A network whose activations are 1e12 times too large overflows the float32 style loss.
    loud = dict(PARAMS, input={k: v * 1e12 for k, v in PARAMS["input"].items()})
    with pytest.raises(optimize.NonFiniteLoss, match="style-weight") as info:
        optimize.stylize(loud, CONTENT, STYLE, BASE.replace(steps=3))
    assert np.all(np.isfinite(info.value.result.image))
    assert info.value.result.image.shape == (36, 44, 3)


@pytest.mark.parametrize("changes, match", [
    ({"optimizer": "sgd"}, "optimizer"),
    ({"pooling": "median"}, "pooling"),
    ({"content_layers": ("conv9_9",)}, "unknown content layer"),
    ({"style_layer_weights": (1.0, 2.0)}, "style_layer_weights"),
    ({"style_weight": float("nan")}, "style_weight"),
    ({"size": 8}, "size"),
    ({"init": "/no/such/file.png"}, "init"),
    ({"content_layers": (), "style_layers": ()}, "at least one"),
])
def test_bad_settings_are_refused(changes, match):
    with pytest.raises(JaxstyleError, match=match):
        optimize.Settings(**changes)


def test_too_small_image_is_refused():
    with pytest.raises(JaxstyleError, match="too small"):
        optimize.stylize(PARAMS, CONTENT[:, :8], STYLE, BASE)


def test_settings_round_trip_through_dict():
    settings = BASE.replace(style_layers=("conv1_1", "conv2_1"), style_layer_weights=(0.3, 0.7))
    assert optimize.Settings.from_dict(settings.to_dict()) == settings
    with pytest.raises(JaxstyleError, match="unknown setting"):
        optimize.Settings.from_dict({"colour": "blue"})


def test_memory_estimate_grows_with_pixels_and_batch():
    s = optimize.Settings()
    small = optimize.estimate_memory_bytes((100, 100), s)
    assert optimize.estimate_memory_bytes((200, 200), s) - 600e6 > 3.9 * (small - 600e6)
    assert optimize.estimate_memory_bytes((100, 100), s, batch=4) > small
    with pytest.raises(JaxstyleError, match="GiB"):
        optimize.check_memory((60000, 60000), s)


def test_lbfgs_direction_keeps_or_restarts_its_memory():
    """Fresh L-BFGS memory gives -g scaled to at most unit norm; a curvature pair with
    s.y > 0 is kept (the count grows), one with s.y <= 0 restarts the memory."""
    settings = optimize.Settings(lbfgs_memory=3)
    direct = jax.jit(lambda s, x, g: optimize._direct(s, x, g, settings=settings))
    rng = np.random.default_rng(0)
    x0, g0 = rng.random((6, 5, 3), dtype=np.float32), rng.standard_normal((6, 5, 3)).astype(np.float32)
    d0, state = direct(optimize.make_optimizer(settings).init(x0), x0, g0)
    np.testing.assert_allclose(d0, -g0 / max(1.0, np.linalg.norm(g0)), rtol=1e-5)
    x1 = x0 + 0.01 * np.asarray(d0)
    # A convex quadratic's gradient change along the step: s.y = 2 |s|^2 > 0.
    _, kept = direct(state, x1, g0 + 2 * (x1 - x0))
    assert int(kept[0].count) == 2
    # The gradient moved against the step: s.y < 0, so the memory starts again.
    _, restarted = direct(jax.tree.map(np.asarray, state), x1, g0 - 2 * (x1 - x0))
    assert int(restarted[0].count) == 1
