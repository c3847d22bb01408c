"""The optimisation on tiny random weights: losses fall, any mixed batch equals running each image alone,
per-image failure, no recompiles for per-image settings, batching plans."""

import dataclasses
import functools

import jax
import numpy as np
import pytest
from conftest import random_params

from jaxstyle import losses, optim, runtime
from jaxstyle.errors import JaxstyleError
from jaxstyle.optim import solver

PARAMS = random_params(seed=3, width=8)
RNG = np.random.default_rng(7)
CONTENT = RNG.random((36, 44, 3), dtype=np.float32)
CONTENT2 = RNG.random((36, 44, 3), dtype=np.float32)
STYLE = RNG.random((50, 40, 3), dtype=np.float32)
BASE = optim.Settings(size=44, steps=6, init="noise", content_weight=1.0, style_weight=1e3)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_loss_falls_and_pixels_stay_valid(optimizer):
    settings = BASE.replace(optimizer=optimizer, steps=12, learning_rate=0.01)
    seen = []
    result = optim.stylize(PARAMS, CONTENT, STYLE, settings, callback=seen.append)
    assert [p.step for p in seen] == list(range(1, 13))
    assert float(result.total) < 0.5 * float(seen[0].total[0])
    assert result.image.shape == (36, 44, 3)
    assert result.image.min() >= 0.0 and result.image.max() <= 1.0
    assert result.evaluations >= settings.steps + 1
    if optimizer == "lbfgs":  # Armijo's condition: every accepted step decreases the loss
        totals = [float(p.total[0]) for p in seen]
        assert all(b <= a for a, b in zip(totals, totals[1:])), totals


def test_noise_init_is_seeded():
    a = optim.stylize(PARAMS, CONTENT, STYLE, BASE.replace(steps=0))
    b = optim.stylize(PARAMS, CONTENT, STYLE, BASE.replace(steps=0))
    c = optim.stylize(PARAMS, CONTENT, STYLE, BASE.replace(steps=0, seed=1))
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.allclose(a.image, c.image)


def test_content_init_with_zero_steps_returns_the_content():
    result = optim.stylize(PARAMS, CONTENT, STYLE, BASE.replace(steps=0, init="content"))
    np.testing.assert_allclose(result.image, CONTENT, atol=1e-6)
    assert float(result.content) < 1e-9


def test_batch_equals_loop():
    batch = optim.stylize_batch(PARAMS, [CONTENT, CONTENT2], STYLE, BASE)
    for i, content in enumerate([CONTENT, CONTENT2]):
        single = optim.stylize(PARAMS, content, STYLE, BASE)
        np.testing.assert_allclose(batch.image[i], single.image, atol=2e-4)
        np.testing.assert_allclose(batch.total[i], single.total, rtol=2e-3)


def test_sweep_equals_separate_runs():
    ratios = [1e-3, 1.0]
    swept = optim.sweep(PARAMS, CONTENT, STYLE, ratios, BASE)
    assert swept.image.shape == (2, 36, 44, 3)
    for k, ratio in enumerate(ratios):
        single = optim.stylize(PARAMS, CONTENT, STYLE, BASE.replace(content_weight=ratio * BASE.style_weight))
        np.testing.assert_allclose(swept.image[k], single.image, atol=2e-4)
    assert not np.allclose(swept.image[0], swept.image[1], atol=1e-3)


def test_stylize_many_packs_sizes_and_keeps_order():
    tall = RNG.random((44, 34, 3), dtype=np.float32)
    results = optim.stylize_many(PARAMS, [CONTENT, tall, CONTENT2], STYLE, BASE.replace(steps=2))
    assert [r.image.shape for r in results] == [(36, 44, 3), (44, 34, 3), (36, 44, 3)]


def _mixed_tasks():
    """Four tasks that differ in shape, style, alpha/beta, TV, seed, init, steps and style blend."""
    rng = np.random.default_rng(11)
    tall = rng.random((44, 34, 3), dtype=np.float32)
    style2 = rng.random((30, 60, 3), dtype=np.float32)
    return [
        optim.make_task(CONTENT, STYLE, BASE),
        optim.make_task(tall, style2, BASE.replace(content_weight=10.0, tv_weight=5.0, seed=4)),
        optim.make_task(CONTENT2, STYLE, BASE.replace(init="content", steps=4, style_weight=50.0)),
        optim.make_task(CONTENT[:, :40], [STYLE, style2], BASE.replace(style_blend=(0.2, 0.8), seed=9)),
    ]


def _assert_as_alone(task, mixed):
    alone = optim.solve(PARAMS, [task])[0]
    assert mixed.image.shape == alone.image.shape
    np.testing.assert_allclose(mixed.image, alone.image, atol=5e-4)
    np.testing.assert_allclose(mixed.total, alone.total, rtol=2e-3)
    # The last row and column, where a canvas would leak into the image if the masking were wrong.
    np.testing.assert_allclose(mixed.image[-1], alone.image[-1], atol=5e-4)
    np.testing.assert_allclose(mixed.image[:, -1], alone.image[:, -1], atol=5e-4)


def test_a_mixed_batch_gives_each_image_what_it_gets_alone():
    tasks = _mixed_tasks()[:3]
    for task, mixed in zip(tasks, optim.solve(PARAMS, tasks)):
        _assert_as_alone(task, mixed)


def test_blended_styles_share_a_batch_of_other_shapes():
    tasks = [t for t in _mixed_tasks() if len(t.styles) == 2]
    tasks.append(optim.make_task(CONTENT2[:, :34], [STYLE, STYLE], BASE.replace(style_blend=(1.0, 0.0))))
    for task, mixed in zip(tasks, optim.solve(PARAMS, tasks)):
        _assert_as_alone(task, mixed)


def _numpy_gram_loss(f, a):
    """E = 1/(4 N^2 M^2) sum (G - A M / M_a)^2 in NumPy; f: [M, N] features, a: [M_a, N] the style's."""
    n, m, m_a = f.shape[1], len(f), len(a)
    return np.sum((f.T @ f - (a.T @ a) * (m / m_a)) ** 2) / (4 * n**2 * m**2)


def test_padded_and_masked_loss_equals_the_images_own_loss():
    """The masked loss of an image in the corner of a larger canvas equals the paper's loss of the image
    alone: compared with `losses.total_loss` and, at one layer, with a NumPy Gram loss."""
    from jaxstyle import vgg

    image, content, style = CONTENT[:, :40], CONTENT2[:, :40], STYLE[:36, :40]  # 36 x 40 in 48 x 56
    targets = losses.make_targets(PARAMS, content, [style])
    lw = dict(content_layer_weights=losses.equal_weights(losses.CONTENT_LAYERS),
              style_layer_weights=losses.equal_weights(losses.STYLE_LAYERS))
    # Jitted: run op by op, these calls compile some 300 small programs (10 s here).
    total_loss = jax.jit(functools.partial(losses.total_loss, PARAMS, **lw))
    expected, parts = total_loss(image, targets, losses.LossWeights(2.0, 30.0, 0.5))

    def canvas(x, outside=0.0):
        out = np.full((48, 56, 3), outside, np.float32)
        out[:36, :40] = x
        return out

    valid = np.array([36, 40], np.int32)
    padded = jax.jit(functools.partial(losses.canvas_targets, PARAMS))(
        canvas(content), canvas(style)[None], np.ones(1, np.float32), valid=valid, style_valid=valid[None])
    noisy = canvas(image, outside=0.7)  # what lies outside the image must not matter
    total, got = total_loss(noisy, padded, losses.LossWeights(2.0, 30.0, 0.5), valid=valid)
    np.testing.assert_allclose(total, expected, rtol=1e-4)
    for a, b in zip(got, parts):
        np.testing.assert_allclose(a, b, rtol=1e-4)
    f, a = (np.asarray(vgg.features(PARAMS, x, layers=["conv2_1"])["conv2_1"], np.float64) for x in (image, style))
    f, a = f.reshape(-1, f.shape[-1]), a.reshape(-1, a.shape[-1])
    one_layer = losses.loss_parts(PARAMS, noisy, padded, content_layer_weights={}, style_layer_weights={"conv2_1": 1.0},
                                  valid=valid).style
    np.testing.assert_allclose(one_layer, _numpy_gram_loss(f, a), rtol=1e-4)


def test_a_failing_image_stops_alone():
    # The TV term (about 1e3) times 3e38 overflows float32 for this image only; the others must not notice.
    tasks = _mixed_tasks()[:3]
    tasks[1] = dataclasses.replace(tasks[1], settings=tasks[1].settings.replace(tv_weight=3e38))
    results = optim.solve(PARAMS, tasks)
    assert results[1].failure and "NaN/inf" in results[1].failure
    assert np.all(np.isfinite(results[1].image))
    for k in (0, 2):
        assert results[k].failure is None
        _assert_as_alone(tasks[k], results[k])


def test_per_image_settings_do_not_recompile():
    optim.solve(PARAMS, _mixed_tasks()[:3])
    programs = solver.programs(BASE.program_key(), True)
    before = [f._cache_size() for f in programs]
    others = [dataclasses.replace(t, settings=t.settings.replace(
        content_weight=3.0, style_weight=7.0, tv_weight=1.0, seed=21, steps=3, init="noise",
        style_layer_weights=(0.5, 0.1, 0.1, 0.1, 0.2))) for t in _mixed_tasks()[:3]]
    optim.solve(PARAMS, others)
    # targets, init_opt, direct, evaluate (the value_and_grad program) and select
    assert [f._cache_size() for f in programs] == before


def test_plan_fills_batches_and_pads_only_to_the_device_count():
    shapes = [(36, 44), (44, 36), (40, 40), (32, 44), (44, 32), (36, 40), (40, 36), (33, 44), (44, 33)]
    tasks = [optim.make_task(np.zeros((*s, 3), np.float32), STYLE, BASE.replace(seed=i))
             for i, s in enumerate(shapes * 2)]
    batches = optim.plan(tasks, batch_size=8)
    assert sorted(i for b in batches for i in b) == list(range(18))
    assert sorted(len(b) for b in batches) == [6, 6, 6]
    assert [runtime.round_up(len(b), 8) for b in optim.plan(tasks[:12], batch_size=8, devices=8)] == [8, 8]
    other = optim.make_task(CONTENT, STYLE, BASE.replace(pooling="max"))
    assert len(optim.plan([*tasks[:2], other], batch_size=8)) == 2  # another program: another batch


def test_non_finite_loss_stops_and_keeps_last_finite_image():
    # A network whose activations are 1e12 times too large overflows the float32 style loss.
    loud = dict(PARAMS, input={k: v * 1e12 for k, v in PARAMS["input"].items()})
    with pytest.raises(optim.NonFiniteLoss, match="style-weight") as info:
        optim.stylize(loud, CONTENT, STYLE, BASE.replace(steps=3))
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
        optim.Settings(**changes)


def test_too_small_image_is_refused():
    with pytest.raises(JaxstyleError, match="too small"):
        optim.stylize(PARAMS, CONTENT[:, :8], STYLE, BASE)


def test_settings_round_trip_through_dict():
    settings = BASE.replace(style_layers=("conv1_1", "conv2_1"), style_layer_weights=(0.3, 0.7))
    assert optim.Settings.from_dict(settings.to_dict()) == settings
    with pytest.raises(JaxstyleError, match="unknown setting"):
        optim.Settings.from_dict({"colour": "blue"})


def test_memory_estimate_grows_with_pixels_and_batch():
    s = optim.Settings()
    small = optim.estimate_memory_bytes((100, 100), s)
    assert optim.estimate_memory_bytes((200, 200), s) - 600e6 > 3.9 * (small - 600e6)
    assert optim.estimate_memory_bytes((100, 100), s, batch=4) > small
    with pytest.raises(JaxstyleError, match="GiB"):
        optim.check_memory((60000, 60000), s)


def test_lbfgs_direction_keeps_or_restarts_its_memory():
    """Fresh L-BFGS memory gives -g scaled to at most unit norm; a curvature pair with
    s.y > 0 is kept (the count grows), one with s.y <= 0 restarts the memory."""
    programs = solver.programs(optim.Settings(lbfgs_memory=3).program_key())
    rng = np.random.default_rng(0)
    x0, g0 = rng.random((1, 6, 5, 3), dtype=np.float32), rng.standard_normal((1, 6, 5, 3)).astype(np.float32)
    step = np.zeros(1, np.int32)
    d0, state = programs.direct(programs.init_opt(x0), x0, g0, x0, g0, step)
    np.testing.assert_allclose(d0, -g0 / max(1.0, np.linalg.norm(g0)), rtol=1e-5)
    x1 = x0 + 0.01 * np.asarray(d0)
    # A convex quadratic's gradient change along the step: s.y = 2 |s|^2 > 0.
    _, kept = programs.direct(state, x1, g0 + 2 * (x1 - x0), x0, g0, step + 1)
    assert int(kept.count[0]) == 2
    # The gradient moved against the step: s.y < 0, so the memory starts again.
    _, restarted = programs.direct(jax.tree.map(np.asarray, state), x1, g0 - 2 * (x1 - x0), x0, g0, step + 1)
    assert int(restarted.count[0]) == 1
