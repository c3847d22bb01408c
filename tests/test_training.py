"""Training photos, the training step, checkpoints and resume, data parallelism over devices."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import DATA, REPO
from PIL import Image

from jaxstyle import losses, vgg
from jaxstyle.errors import JaxstyleError
from jaxstyle.nets import runs, training, transform
from jaxstyle.nets.photos import PhotoFolder
from jaxstyle.nets.runs import Checkpointer

HISTORY = ("step", *training.LOSS_NAMES)
# The VGG-19 up to conv2_1 only (nothing deeper is computed): the tests below are about how the
# losses are combined and trained, not about which layers they use.
SHALLOW = dict(content_layers=("conv2_1",), style_layers="upto-conv2_1")


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """Three real photos (crops of the bundled one), a tiny one, a broken one and a non-image."""
    folder = tmp_path_factory.mktemp("photos")
    town = Image.open(DATA / "tubingen.jpg")
    town.crop((0, 0, 400, 300)).save(folder / "a.jpg")
    town.crop((500, 300, 1000, 700)).save(folder / "b.png")
    town.crop((200, 100, 520, 420)).save(folder / "nested_c.jpg")
    town.resize((20, 15)).save(folder / "tiny.jpg")
    (folder / "broken.jpg").write_bytes((folder / "a.jpg").read_bytes()[:300])
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_crops_are_deterministic_flipped_and_in_range(photo_dir):
    photos = PhotoFolder(photo_dir, size=32, seed=3)
    a = photos.batch(5, 6)
    assert a.shape == (6, 32, 32, 3) and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(PhotoFolder(photo_dir, size=32, seed=3).batch(5, 6), a)
    assert np.abs(photos.batch(6, 6) - a).max() > 0.1
    assert np.abs(PhotoFolder(photo_dir, size=32, seed=4).batch(5, 6) - a).max() > 0.1
    streamed = list(photos.batches(4, 7, 6))
    assert len(streamed) == 3
    np.testing.assert_array_equal(streamed[1], a)


def test_crops_come_from_the_scale_range_asked_for(tmp_path):
    """A 400x200 horizontal ramp: a 32 px crop after scaling the shorter side to `short` spans
    31 / (2 short - 1) of the ramp, whatever its position or flip."""
    ramp = np.repeat(np.linspace(0, 255, 400)[None, :, None], 200, axis=0).repeat(3, axis=2)
    Image.fromarray(ramp.round().astype(np.uint8)).save(tmp_path / "ramp.png")

    def spans(**kw):
        crops = PhotoFolder(tmp_path, size=32, seed=1, **kw).batch(0, 16)
        return crops[..., 0].max(axis=(1, 2)) - crops[..., 0].min(axis=(1, 2))

    np.testing.assert_allclose(spans(min_short_side=100, max_short_side=100), 31 / 199, atol=0.01)
    np.testing.assert_allclose(spans(max_short_side=32), 31 / 63, atol=0.01)  # min defaults to size
    between = spans(min_short_side=64, max_short_side=128)
    assert np.all(between >= 31 / 255 - 0.01) and np.all(between <= 31 / 127 + 0.01)
    assert between.max() - between.min() > 0.05  # really drawn from the range
    wide = spans(max_short_side=128)
    assert wide.max() > 31 / 127 + 0.05  # the default range starts lower, at size


def test_unusable_files_are_skipped_and_counted(photo_dir):
    photos = PhotoFolder(photo_dir, size=32)
    assert len(photos.files) == 5  # the .txt is not listed
    for step in range(12):
        photos.batch(step, 4)
    assert photos.skipped == 2  # tiny.jpg and broken.jpg, never a crash


def test_folder_without_usable_photos_is_one_clear_error(tmp_path, photo_dir):
    with pytest.raises(JaxstyleError, match="does not exist"):
        PhotoFolder(tmp_path / "missing", size=32)
    (tmp_path / "bad.jpg").write_bytes(b"garbage")
    Image.new("RGB", (10, 10)).save(tmp_path / "small.png")
    with pytest.raises(JaxstyleError, match="no usable photo"):
        PhotoFolder(tmp_path, size=32)


def test_a_scale_range_outside_the_crop_size_is_refused(photo_dir):
    for kw in (dict(min_short_side=16), dict(min_short_side=80, max_short_side=64)):
        with pytest.raises(JaxstyleError, match="min_short_side"):
            PhotoFolder(photo_dir, size=32, **kw)


def test_batch_loss_is_the_mean_of_each_images_paper_loss(tiny_params):
    settings = training.TrainSettings(size=32, style_size=40, tv_weight=0.5, content_weight=2e-3, **SHALLOW)
    rng = np.random.default_rng(0)
    styles = [rng.random((30, 40, 3)).astype(np.float32), rng.random((40, 36, 3)).astype(np.float32)]
    targets = training.style_targets(tiny_params, styles, settings)
    config = settings.network_config(2)
    params = transform.init_params(config, jax.random.key(0))
    photos = rng.random((3, 32, 32, 3)).astype(np.float32)
    ids = np.array([1, 0, 1], np.int32)
    loss, terms = jax.jit(training.batch_loss, static_argnames=("config", "settings"))(
        params, tiny_params, photos, ids, targets, config=config, settings=settings)
    outputs = transform.transform_batch(config, params, photos, np.eye(2, dtype=np.float32)[ids])

    @jax.jit
    def paper_loss(out, photo, grams):  # one image's loss as `jaxstyle stylize` computes it
        p = vgg.features(tiny_params, photo, layers=settings.content_layers)
        return losses.total_loss(
            tiny_params, out, losses.Targets(p, grams, np.ones(1, np.float32)),
            losses.LossWeights(settings.content_weight, settings.style_weight, settings.tv_weight),
            content_layer_weights=losses.equal_weights(settings.content_layers),
            style_layer_weights=losses.equal_weights(settings.style_layers))[0]

    want = [float(paper_loss(out, photo, {n: g[sid][None] for n, g in targets.grams.items()}))
            for out, photo, sid in zip(outputs, photos, ids)]
    np.testing.assert_allclose(float(loss), np.mean(want), rtol=1e-4)
    assert terms.shape == (4,) and terms[3] == 0  # no temporal term at temporal_weight 0


def test_a_whole_pixel_shift_moves_the_image_and_keeps_only_pixels_from_inside():
    rng = np.random.default_rng(3)
    images = rng.random((2, 20, 24, 3)).astype(np.float32)
    affine = np.array([[[1, 0, 3], [0, 1, -2]], [[1, 0, 0], [0, 1, 0]]], np.float32)  # (y, x) <- (y + 3, x - 2)
    moved, inside = jax.jit(training.move)(images, affine)
    np.testing.assert_allclose(moved[0, :17, 2:], images[0, 3:, :22], atol=1e-6)
    np.testing.assert_allclose(moved[1], images[1], atol=1e-6)
    # margin 2: the source must lie in rows 2..17 and columns 2..21
    expected = np.zeros((20, 24), np.float32)
    expected[0:15, 4:24] = 1
    np.testing.assert_array_equal(inside[0], expected)
    still = training.random_motion(jax.random.key(0), 2, 24, 0.0)
    np.testing.assert_allclose(still, affine[1:].repeat(2, 0), atol=1e-6)  # no motion: the identity map


def test_the_temporal_term_is_zero_for_the_identity_and_positive_for_a_painting_network(tiny_params):
    settings = training.TrainSettings(size=32, style_size=40, temporal_weight=10.0, motion=3.0, **SHALLOW)
    rng = np.random.default_rng(4)
    targets = training.style_targets(tiny_params, [rng.random((30, 40, 3)).astype(np.float32)], settings)
    photos = rng.random((2, 32, 32, 3)).astype(np.float32)
    loss_fn = jax.jit(training.batch_loss, static_argnames=("config", "settings"))
    terms = {}
    for start in ("identity", "random"):
        config = settings.replace(start=start).network_config(1)
        params = transform.init_params(config, jax.random.key(0))
        loss, terms[start] = loss_fn(params, tiny_params, photos, np.zeros(2, np.int32), targets, config=config,
                                     settings=settings, key=jax.random.key(1))
        weights = np.array([settings.content_weight, settings.style_weight, settings.tv_weight, 10.0])
        np.testing.assert_allclose(float(loss), float(np.dot(weights, terms[start])), rtol=1e-5)
    # f = id commutes with any motion (up to float rounding of the identity network: a sum over 2 x 32 x 32 px)
    assert float(terms["identity"][3]) < 1e-5 < 1e-1 < float(terms["random"][3])


def test_motion_noise_costs_the_identity_network_its_variance_over_the_kept_pixels(tiny_params):
    # f = id, no motion: f(m(x) + n) - m(f(x)) = n, so the term is E sum |n|^2 = s^2 x 3 channels x the
    # pixels 2 px or more inside (28 x 28 of a 32 px crop); photos in [0.3, 0.7], so no noise is clipped.
    s = 0.02
    settings = training.TrainSettings(size=32, style_size=40, temporal_weight=1.0, motion=0.0, motion_noise=s,
                                      start="identity", **SHALLOW)
    rng = np.random.default_rng(5)
    targets = training.style_targets(tiny_params, [rng.random((30, 40, 3)).astype(np.float32)], settings)
    photos = (0.3 + 0.4 * rng.random((4, 32, 32, 3))).astype(np.float32)
    config = settings.network_config(1)
    params = transform.init_params(config, jax.random.key(0))
    _, terms = jax.jit(training.batch_loss, static_argnames=("config", "settings"))(
        params, tiny_params, photos, np.zeros(4, np.int32), targets, config=config, settings=settings,
        key=jax.random.key(1))
    np.testing.assert_allclose(float(terms[3]), s**2 * 3 * 28 * 28, rtol=0.1)


def test_style_targets_are_grams_of_the_resized_style(tiny_params):
    settings = training.TrainSettings(size=32, style_size=48)
    style = np.random.default_rng(1).random((24, 48, 3)).astype(np.float32)  # resized to 24x48 -> 24 x 48
    from jaxstyle.io import image_io

    resized = image_io.resize_longest(style, 48)
    grams = training.style_targets(tiny_params, [style], settings).grams
    f = vgg.features(tiny_params, resized, layers=("conv1_1",))["conv1_1"]
    flat = np.asarray(f).reshape(-1, f.shape[-1]).astype(np.float64)
    want = flat.T @ flat * (32 * 32) / flat.shape[0]  # rescaled to a 32x32 crop's positions
    np.testing.assert_allclose(grams["conv1_1"][0], want, rtol=1e-4)


def _tiny_settings(**kw):
    return training.TrainSettings(size=32, steps=6, batch_size=2, style_size=40, width=4, residual_blocks=1,
                                  learning_rate=1e-2, **SHALLOW, **kw)


def test_training_lowers_the_loss(tiny_params, photo_dir):
    style = np.asarray(Image.open(DATA / "starry_night.jpg").resize((48, 30)), np.float32) / 255
    settings = _tiny_settings().replace(steps=25)
    result = training.train(tiny_params, [style], PhotoFolder(photo_dir, size=32), settings,
                            style_names=["starry"])
    first = np.mean([h["total"] for h in result.history[:3]])
    last = np.mean([h["total"] for h in result.history[-3:]])
    assert last < 0.8 * first
    assert result.steps == 25 and result.model.styles == ("starry",)


def test_checkpoint_round_trip_and_stale_or_damaged_checkpoint_starts_afresh(tmp_path):
    template = training.init_state(_tiny_settings(), 1)
    state = template._replace(params=jax.tree.map(lambda x: x + 1, template.params), step=np.int32(3))
    history = [{"step": k, "total": k / 2, "content": 1.0, "style": 2.0, "tv": 3.0, "temporal": 0.0} for k in (1, 2, 3)]

    def checkpointer(tag):
        return Checkpointer(tmp_path / "c", tag=tag, history_keys=HISTORY)

    checkpointer({"lr": 1}).save(state, history)
    loaded, loaded_history = checkpointer({"lr": 1}).load(template)
    assert loaded_history == history and int(loaded.step) == 3
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(state)):
        np.testing.assert_array_equal(a, b)
    messages = []
    assert checkpointer({"lr": 2}).load(template, log=messages.append) == (None, [])
    (tmp_path / "c").write_bytes(b"\x00" * 10)
    assert checkpointer({"lr": 1}).load(template, log=messages.append) == (None, [])
    assert "other settings" in messages[0] and "unreadable" in messages[1]


def test_steps_report_progress_and_stop_at_a_non_finite_loss():
    """The loop every trainer shares: one `Progress` per step after the state's, and a NaN loss
    stops it with one clear error."""
    seen = []

    def step(state, batch):  # finite at step 2, NaN at step 3
        loss = 0.5 if int(state.step) < 2 else np.nan
        return state._replace(step=state.step + 1), np.array([loss, float(batch.sum())])

    batches = (np.full((2, 1), k, np.float32) for k in range(1, 5))
    with pytest.raises(JaxstyleError, match="non-finite at step 3"):
        runs.run_steps(step, training.TrainState(None, None, np.int32(1)), batches, steps=5, batch_size=2,
                       loss_names=("a", "b"), devices=jax.local_devices()[:1], callback=seen.append)
    assert [(p.step, p.steps, p.losses) for p in seen] == [(2, 5, {"a": 0.5, "b": 2.0})]
    assert seen[0].images_per_s > 0 and int(seen[0].state.step) == 2


def test_multi_style_batches_cycle_through_styles():
    ids = np.concatenate([training.style_ids(t, 4, 3) for t in range(3)])
    np.testing.assert_array_equal(np.bincount(ids), [4, 4, 4])
    assert len(set(training.style_ids(0, 4, 3))) == 3


SHARDED = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, {tests!r})
    from conftest import random_params
    from jaxstyle.nets import training, transform
    from jaxstyle.nets.photos import PhotoFolder
    assert len(jax.local_devices()) == 8
    settings = training.TrainSettings(size=32, steps=3, batch_size=8, style_size=40, width=4,
                                      residual_blocks=1, learning_rate=1e-2, **{shallow!r})
    rng = np.random.default_rng(0)
    styles = [rng.random((40, 40, 3)).astype(np.float32) for _ in range(2)]
    x = rng.random((2, 24, 20, 3)).astype(np.float32)
    out = {{}}
    for n in (1, 8):
        result = training.train(random_params(), styles, PhotoFolder({photos!r}, size=32), settings,
                                style_names=["a", "b"], devices=jax.local_devices()[:n])
        # Compared as functions: a convolution bias right before an instance norm has a zero
        # gradient up to rounding, which Adam's first steps turn into +-lr moves of either sign.
        painted = transform.transform_batch(result.model.config, result.model.params, x, np.eye(2, dtype=np.float32))
        out[n] = np.asarray(painted).ravel().tolist()
        out[str(n) + "_loss"] = [h["total"] for h in result.history]
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_data_parallel_over_8_devices_matches_one_device(photo_dir):
    env = dict(os.environ, XLA_FLAGS=os.environ["XLA_FLAGS"] + " --xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    code = SHARDED.format(tests=str(REPO / "tests"), photos=str(photo_dir), shallow=SHALLOW)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(result["8_loss"], result["1_loss"], rtol=1e-4)
    np.testing.assert_allclose(result["8"], result["1"], atol=1e-3)


def test_settings_refuse_bad_values():
    for kwargs in [{"size": 16}, {"steps": 0}, {"content_weight": -1.0}, {"style_layers": ("conv9_9",)},
                   {"learning_rate": float("nan")}]:
        with pytest.raises(JaxstyleError):
            training.TrainSettings(**kwargs)
    assert training.TrainSettings(style_layers="upto-conv2_1").style_layers == ("conv1_1", "conv2_1")
