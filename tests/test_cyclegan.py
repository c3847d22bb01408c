"""CycleGAN: the networks' architecture, the image pool, the losses against NumPy, the
schedule, resume, data parallelism, and `jaxstyle cyclegan train|apply` as a user runs them."""

import contextlib
import io
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import DATA, REPO, kill_and_resume, run_cli, train_on_two_devices
from PIL import Image

from jaxstyle import cli
from jaxstyle.io import image_io
from jaxstyle.io.files import file_sha256
from jaxstyle.nets import cyclegan, gan, model_file
from jaxstyle.nets.runs import Checkpointer

TINY = dict(size=32, steps=4, width=4, residual_blocks=1, disc_width=4, pool_size=2, batch_size=2)
TINY_ARGS = ["--size", "32", "--width", "4", "--residual-blocks", "1", "--disc-width", "4", "--pool-size", "2",
             "--batch-size", "2", "--cycle-weight", "1", "--cycle-weight-end", "3", "--quiet"]
# The settings TINY_ARGS give for the `trained` run's 8 steps (its compiled step is reused in-process).
TRAINED = cyclegan.CycleGANSettings(**{**TINY, "steps": 8}, cycle_weight=1.0, cycle_weight_end=3.0)
DEMO_MODEL = REPO / "models" / "cyclegan_starry.msgpack"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Domain A: crops of the Tübingen photo (and a broken file); domain B: crops of a painting."""
    root = tmp_path_factory.mktemp("domains")
    a, b = root / "photos", root / "paintings"
    a.mkdir()
    b.mkdir()
    town = Image.open(DATA / "tubingen.jpg")
    town.crop((0, 0, 300, 200)).save(a / "a1.jpg")
    town.crop((400, 300, 700, 600)).save(a / "a2.jpg")
    (a / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    starry = Image.open(DATA / "starry_night.jpg")
    starry.crop((0, 0, 250, 200)).save(b / "b1.png")
    starry.crop((200, 100, 500, 350)).save(b / "b2.png")
    photo = root / "town.jpg"
    town.resize((45, 33)).save(photo)
    return {"a": a, "b": b, "photo": photo, "root": root}


# --- networks ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_gan():
    """(config, fresh params) of the TINY settings' networks, shared: initialising them is slow."""
    config = cyclegan.CycleGANSettings(**TINY).config()
    return config, gan.init_cyclegan_params(config, jax.random.key(0))


def test_generator_keeps_any_shape_and_range(tiny_gan):
    config, params = tiny_gan
    x = np.random.default_rng(0).random((2, 37, 50, 3)).astype(np.float32)
    y = np.asarray(jax.jit(gan.generate_batch, static_argnums=0)(config, params["g_ab"], x))
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    kernels = [v for k, v in jax.tree_util.tree_leaves_with_path(params["g_ab"])
               if jax.tree_util.keystr(k).endswith("['kernel']")]
    shapes = [k.shape for k in kernels]
    assert (7, 7, 3, 4) in shapes and (7, 7, 4, 3) in shapes  # the 7x7 convolutions in and out
    assert 0.015 < np.std(np.concatenate([np.ravel(k) for k in kernels])) < 0.025  # N(0, 0.02) init


def test_discriminator_is_a_70x70_patchgan():
    """4x4 convolutions 3 -> w -> 2w -> 4w -> 8w -> 1; 256 px gives the paper's 30x30 scores.

    Strides 2, 2, 2, 1, 1 of 4x4 kernels give a receptive field of 70 px per score:
    1 + 3 * (1 + 1 + 2 + 4 + 8) = 70 (each layer adds (k - 1) x the product of earlier strides).
    """
    config = gan.CycleGANConfig(width=4, residual_blocks=1, disc_width=4)
    params = jax.eval_shape(lambda: gan.init_cyclegan_params(config, jax.random.key(1))["d_a"])
    kernels = [params[f"Conv_{i}"]["kernel"].shape for i in range(5)]
    assert kernels == [(4, 4, 3, 4), (4, 4, 4, 8), (4, 4, 8, 16), (4, 4, 16, 32), (4, 4, 32, 1)]
    scores = jax.eval_shape(lambda p, x: gan.discriminate_batch(config, p, x), params,
                            jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32))
    assert scores.shape == (1, 30, 30)


# --- the image pool ------------------------------------------------------------------------------------


def test_pool_fills_then_swaps_half_the_time():
    size = 4
    pool = cyclegan.Pool(jnp.zeros((size, 2, 2, 3)), jnp.zeros((), jnp.int32))
    fakes = jnp.arange(size, dtype=jnp.float32)[:, None, None, None] * jnp.ones((1, 2, 2, 3))
    pool, shown = cyclegan.query_pool(pool, fakes, jax.random.key(0))
    np.testing.assert_array_equal(shown, fakes)  # filling: every fake is shown as it is
    assert int(pool.count) == size and sorted(np.asarray(pool.images)[:, 0, 0, 0]) == [0, 1, 2, 3]
    swaps, query = 0, jax.jit(cyclegan.query_pool)
    for t in range(200):
        before = sorted(np.asarray(pool.images)[:, 0, 0, 0].tolist())
        fake = jnp.full((1, 2, 2, 3), 100.0 + t)
        pool, shown = query(pool, fake, jax.random.key(t + 1))
        after = sorted(np.asarray(pool.images)[:, 0, 0, 0].tolist())
        value = float(shown[0, 0, 0, 0])
        # Nothing is lost or made up: the pool before plus the fake = the pool after plus what was shown.
        assert sorted(before + [100.0 + t]) == sorted(after + [value])
        swaps += value != 100.0 + t
    assert 70 < swaps < 130  # p = 1/2: outside this range has probability < 1e-4


def test_zero_pool_shows_the_fakes():
    pool = cyclegan.Pool(jnp.zeros((0, 2, 2, 3)), jnp.zeros((), jnp.int32))
    fakes = jnp.ones((3, 2, 2, 3))
    assert cyclegan.query_pool(pool, fakes, jax.random.key(0))[1] is fakes


# --- losses and schedule ---------------------------------------------------------------------------------


def test_losses_match_numpy(tiny_gan):
    settings = cyclegan.CycleGANSettings(**TINY)
    config, params = tiny_gan
    rng = np.random.default_rng(3)
    a, b = rng.random((2, 32, 32, 3)).astype(np.float32), rng.random((2, 32, 32, 3)).astype(np.float32)
    gen = {k: params[k] for k in ("g_ab", "g_ba")}
    disc = {k: params[k] for k in ("d_a", "d_b")}

    def g(name, x):
        return np.asarray(gan.generate_batch(config, params[name], x), np.float64)

    def d(name, x):
        return np.asarray(gan.discriminate_batch(config, params[name], np.float32(x)), np.float64)

    fake_b, fake_a = g("g_ab", a), g("g_ba", b)
    adversarial = np.mean((d("d_b", fake_b) - 1) ** 2) + np.mean((d("d_a", fake_a) - 1) ** 2)
    # The paper's L1 on [-1, 1] pixels is twice the L1 on [0, 1] pixels.
    cycle = np.mean(np.abs(2 * g("g_ba", np.float32(fake_b)) - 2 * a)) + \
        np.mean(np.abs(2 * g("g_ab", np.float32(fake_a)) - 2 * b))
    identity = np.mean(np.abs(2 * g("g_ab", b) - 2 * b)) + np.mean(np.abs(2 * g("g_ba", a) - 2 * a))
    total, (terms, _, _) = cyclegan.generator_loss(gen, disc, a, b, config=config, settings=settings)
    np.testing.assert_allclose(terms, [adversarial, cycle, identity], rtol=1e-4)
    np.testing.assert_allclose(total, adversarial + 10 * (cycle + 0.5 * identity), rtol=1e-4)
    # lambda ramped from 1 to 3 over 5 steps: 1, 1.5, 2, 2.5, 3.
    ramped = settings.replace(steps=5, cycle_weight=1.0, cycle_weight_end=3.0)
    for step, lam in ((0, 1.0), (2, 2.0), (4, 3.0)):
        total, _ = cyclegan.generator_loss(gen, disc, a, b, config=config, settings=ramped, step=jnp.int32(step))
        np.testing.assert_allclose(total, adversarial + lam * (cycle + 0.5 * identity), rtol=1e-4)

    d_loss = cyclegan.discriminator_loss(disc, a, b, fake_a, fake_b, config=config)
    expected = 0.5 * (np.mean((d("d_a", a) - 1) ** 2) + np.mean(d("d_a", fake_a) ** 2)) + \
        0.5 * (np.mean((d("d_b", b) - 1) ** 2) + np.mean(d("d_b", fake_b) ** 2))
    np.testing.assert_allclose(d_loss, expected, rtol=1e-4)


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    schedule = cyclegan.CycleGANSettings(steps=200, learning_rate=2e-4).schedule()
    np.testing.assert_allclose([schedule(s) for s in (0, 50, 100, 150, 200)], [2e-4, 2e-4, 2e-4, 1e-4, 0],
                               atol=1e-9)
    early = cyclegan.CycleGANSettings(steps=100, decay_from=20).schedule()
    np.testing.assert_allclose([early(20), early(60), early(100)], [2e-4, 1e-4, 0], atol=1e-9)


def test_settings_refuse_bad_values():
    for bad in (dict(size=8), dict(steps=0), dict(learning_rate=-1), dict(beta1=1.0), dict(pool_size=-1),
                dict(max_scale=0.5), dict(cycle_weight=float("nan")), dict(min_scale=0.5),
                dict(max_scale=2.0, min_scale=2.5), dict(cycle_weight_end=-1.0)):
        with pytest.raises(cyclegan.JaxstyleError):
            cyclegan.CycleGANSettings(**bad)


def test_photo_folders_scale_shorter_sides_into_the_settings_range(folders):
    settings = cyclegan.CycleGANSettings(size=40, max_scale=2.5, min_scale=2.0)
    for folder in cyclegan.photo_folders(folders["a"], folders["b"], settings):
        assert (folder.min_short_side, folder.max_short_side) == (80, 100)


# --- training ------------------------------------------------------------------------------------------


def test_checkpoint_restores_the_whole_state_pools_included(tmp_path):
    """What a resumed run needs beyond the generators (the SIGKILL test below checks those):
    both Adam states, the discriminators and the pools of past fakes."""
    settings = cyclegan.CycleGANSettings(**TINY)
    template = cyclegan.state_template(settings)
    rng = np.random.default_rng(0)
    state = jax.tree.map(lambda x: rng.standard_normal(x.shape).astype(x.dtype), template)
    state = state._replace(pool_a=state.pool_a._replace(count=np.int32(2)), step=np.int32(3))
    checkpoints = Checkpointer(tmp_path / "c", {"run": 1}, history_keys=("step",))
    checkpoints.save(state, [{"step": 3}])
    loaded, history = checkpoints.load(template)
    assert history == [{"step": 3}] and int(loaded.pool_a.count) == 2 and int(loaded.step) == 3
    for x, y in zip(jax.tree.leaves(loaded), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(x, y)


# --- the command line ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(folders, tmp_path_factory):
    """A model trained by the command (8 steps, checkpoints and previews every 2, a loss plot)
    and what the command printed on stdout."""
    out = tmp_path_factory.mktemp("cg") / "m.msgpack"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main([str(x) for x in ["cyclegan", "train", "--a", folders["a"], "--b", folders["b"], "-o", out,
                                          "--steps", "8", "--checkpoint-every", "2", "--preview", folders["photo"],
                                          "--loss-plot", out.with_name("loss.png"), *TINY_ARGS]])
    assert code == 0
    return out, stdout.getvalue()


@pytest.mark.slow
def test_data_parallel_over_two_devices_matches_one_device(trained, folders, tmp_path):
    """The `trained` run again with each batch split over two devices: the same losses and network
    (losses as means over the run, within 1e-3: the two runs part by rounding; the networks as functions:
    biases before an instance norm move by +-lr under Adam either way, within 1.5 8-bit levels: on an
    AVX-512 machine one pixel of 2880 is 1.02 levels apart, at the same commit before and after issue 24)."""
    out = tmp_path / "m.msgpack"
    two = train_on_two_devices(["cyclegan", "train", "--a", folders["a"], "--b", folders["b"], "--steps", "8",
                                *TINY_ARGS], out)
    one = json.loads(trained[0].with_suffix(".json").read_text())
    for name in cyclegan.LOSS_NAMES:
        np.testing.assert_allclose(two["final_losses"][name], one["final_losses"][name], rtol=1e-3)
    x = np.random.default_rng(0).random((2, 24, 20, 3)).astype(np.float32)
    a, b = model_file.load_cyclegan(trained[0]), model_file.load_cyclegan(out)
    for direction in ("g_ab", "g_ba"):
        np.testing.assert_allclose(gan.generate_batch(b.config, b.params[direction], x),
                                   gan.generate_batch(a.config, a.params[direction], x), atol=1.5 / 255)


def test_each_training_step_weighs_the_cycle_by_the_ramped_lambda(trained, folders):
    """The `trained` run's steps (lambda from 1 to 3 over 8 steps): the generator's loss at step k is
    adversarial + lambda_k (cycle + 0.5 identity), lambda_k = 1 + 2k / 7."""
    seen = []
    cyclegan.train(*cyclegan.photo_folders(folders["a"], folders["b"], TRAINED), TRAINED,
                   callback=lambda p: seen.append(p.losses))
    assert len(seen) == 8
    for k, losses in enumerate(seen):
        lam = 1 + 2 * k / 7
        assert losses["generator"] == pytest.approx(
            losses["adversarial"] + lam * (losses["cycle"] + 0.5 * losses["identity"]), rel=1e-4), k


def test_train_writes_model_sidecar_preview_and_plot(trained):
    trained, stdout = trained
    assert stdout.strip() == str(trained)
    model = model_file.load_cyclegan(trained)
    assert model.domains == ("photos", "paintings") and set(model.params) == {"g_ab", "g_ba"}
    sidecar = json.loads(trained.with_suffix(".json").read_text())
    assert sidecar["steps"] == 8 and sidecar["domains"]["a"]["skipped"] == 1  # broken.jpg
    assert cyclegan.CycleGANSettings(**sidecar["settings"]) == TRAINED
    assert sidecar["model"] == str(trained) and len(sidecar["model_sha256"]) == 64 and sidecar["versions"]["optax"]
    assert set(sidecar["final_losses"]) == set(cyclegan.LOSS_NAMES)
    assert Image.open(trained.with_name("m_preview.png")).size == (3 * 64, 47)  # photo | A->B | back
    assert Image.open(trained.with_name("loss.png")).size[0] > 100
    assert not trained.with_name("m.msgpack.checkpoint").exists()


def test_apply_translates_files_and_folders_both_ways(trained, folders, tmp_path, capsys):
    trained = trained[0]
    out = tmp_path / "one.png"
    code, stdout, _ = run_cli(["cyclegan", "apply", trained, folders["photo"], "-o", out, "--size", "0", "--quiet"],
                          capsys)
    assert code == 0 and stdout.strip() == str(out) and Image.open(out).size == (45, 33)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["direction"] == "a2b" and sidecar["model"]["domains"] == ["photos", "paintings"]
    assert sidecar["output_sha256"] == file_sha256(out) and sidecar["input"]["path"] == str(folders["photo"])
    model = model_file.load_cyclegan(trained)
    photo = image_io.load_image(folders["photo"])
    direct = gan.ResnetGenerator(model.config).apply({"params": model.params["g_ab"]}, photo)
    assert np.abs(image_io.load_image(out) - np.asarray(direct)).max() <= 1 / 255 + 1e-6

    code, _, _ = run_cli(["cyclegan", "apply", trained, folders["b"], "-o", tmp_path / "back", "--direction", "b2a",
                      "--size", "40", "--quiet"], capsys)
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "back").glob("*.png")) == ["b1_photos.png", "b2_photos.png"]
    assert Image.open(tmp_path / "back" / "b1_photos.png").size == (40, 32)


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_parameters(trained, folders, tmp_path):
    """The `trained` command killed and run again: the same parameters, bit for bit."""
    whole, resumed, sidecar = kill_and_resume(
        lambda out, steps: [sys.executable, "-m", "jaxstyle", "cyclegan", "train", "--a", str(folders["a"]), "--b",
                            str(folders["b"]), "-o", str(out), "--steps", str(steps), "--checkpoint-every", "1",
                            *TINY_ARGS], tmp_path, whole=trained[0])
    a, b = model_file.load_cyclegan(whole), model_file.load_cyclegan(resumed)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(x, y)
    assert sidecar["resumed_from_step"] >= 2


@pytest.mark.skipif(not DEMO_MODEL.exists(), reason="models/cyclegan_starry.msgpack not trained yet")
def test_committed_demo_model_translates_a_held_out_photo(tmp_path, capsys):
    out = tmp_path / "town.png"
    code, _, _ = run_cli(["cyclegan", "apply", DEMO_MODEL, DATA / "tubingen.jpg", "-o", out, "--size", "256",
                      "--quiet"], capsys)
    assert code == 0
    painted = image_io.load_image(out)
    photo = image_io.load_image(DATA / "tubingen.jpg", size=256)
    assert painted.shape == photo.shape == (192, 256, 3)
    assert 0.02 < np.abs(painted - photo).mean() < 0.5  # changed, but not replaced by noise
