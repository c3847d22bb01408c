"""`jaxstyle train` and `jaxstyle apply` as a user runs them: files written, resume after a kill,
and one clear line (exit 2, nothing written) for bad input."""

import contextlib
import io
import json
import sys

import jax
import numpy as np
import pytest
from conftest import DATA, REAL_WEIGHTS, kill_and_resume, run_cli
from flax import serialization
from PIL import Image

from jaxstyle import cli
from jaxstyle.io import image_io
from jaxstyle.io.files import file_sha256
from jaxstyle.nets import model_file, transform

pytestmark = pytest.mark.real_weights
TINY = ["--size", "32", "--style-size", "40", "--batch-size", "2", "--width", "4", "--residual-blocks", "1",
        "--quiet"]


@pytest.fixture(autouse=True)
def _weights(monkeypatch):  # also for the training subprocesses, whatever their working directory
    monkeypatch.setenv("JAXSTYLE_WEIGHTS", str(REAL_WEIGHTS))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fast")
    photos = folder / "photos"
    photos.mkdir()
    town = Image.open(DATA / "tubingen.jpg")
    town.crop((0, 0, 300, 200)).save(photos / "a.jpg")
    town.crop((400, 300, 700, 600)).save(photos / "b.jpg")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    style = folder / "starry.png"
    Image.open(DATA / "starry_night.jpg").resize((64, 40)).save(style)
    scream = folder / "scream.png"
    Image.open(DATA / "the_scream.jpg").resize((40, 50)).save(scream)
    photo = folder / "town.jpg"
    town.resize((45, 33)).save(photo)
    return {"photos": photos, "style": style, "scream": scream, "photo": photo, "folder": folder}


@pytest.fixture(scope="module")
def trained(inputs, tmp_path_factory):
    """A two-style model trained by the command (8 steps in float16, checkpoints and previews every
    2 steps, a loss plot) and what the command printed on stdout."""
    out = tmp_path_factory.mktemp("model") / "two.msgpack"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main([str(a) for a in ["train", inputs["style"], inputs["scream"], "--photos", inputs["photos"],
                                          "-o", out, "--steps", "8", "--checkpoint-every", "2", "--preview",
                                          inputs["photo"], "--loss-plot", out.with_name("loss.png"), "--float16",
                                          *TINY]])
    assert code == 0
    return out, stdout.getvalue()


@pytest.fixture(scope="module")
def two_style_model(trained):
    return trained[0]


def test_train_writes_model_sidecar_preview_and_plot(trained):
    two_style_model, stdout = trained
    assert stdout.strip() == str(two_style_model)
    model = model_file.load(two_style_model)
    assert model.styles == ("starry", "scream") and model.config.num_styles == 2
    assert serialization.msgpack_restore(two_style_model.read_bytes())["dtype"] == "float16"
    sidecar = json.loads(two_style_model.with_suffix(".json").read_text())
    assert sidecar["steps"] == 8 and sidecar["settings"]["size"] == 32 and sidecar["float16"] is True
    assert sidecar["model"] == str(two_style_model) and len(sidecar["model_sha256"]) == 64
    assert [s["name"] for s in sidecar["styles"]] == ["starry", "scream"]
    assert len(sidecar["styles"][0]["sha256"]) == 64 and len(sidecar["weights"]["sha256"]) == 64
    assert sidecar["photos"]["skipped"] == 1  # broken.jpg
    assert set(sidecar["final_losses"]) == {"total", "content", "style", "tv", "temporal"}
    assert sidecar["versions"]["flax"] and sidecar["seconds"] > 0
    # The photo (45x33) at the style size (40 px), painted in each style side by side.
    assert Image.open(two_style_model.with_name("two_preview.png")).size == (2 * 40, 29)
    assert Image.open(two_style_model.with_name("loss.png")).size[0] > 100
    assert not two_style_model.with_name("two.msgpack.checkpoint").exists()


def test_apply_paints_files_and_folders_with_style_index_and_mix(inputs, two_style_model, tmp_path, capsys):
    out = tmp_path / "one.png"
    code, stdout, _ = run_cli(["apply", two_style_model, inputs["photo"], "-o", out, "--size", "0", "--quiet"], capsys)
    assert code == 0 and stdout.strip() == str(out)
    assert Image.open(out).size == (45, 33)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["style_weights"] == [1.0, 0.0] and sidecar["model"]["styles"] == ["starry", "scream"]
    assert sidecar["output_sha256"] == file_sha256(out) and len(sidecar["model"]["sha256"]) == 64

    folder_out = tmp_path / "painted"
    code, stdout, _ = run_cli(["apply", two_style_model, inputs["photos"] / "a.jpg", inputs["photos"] / "b.jpg",
                           "-o", folder_out, "--style-index", "1", "--size", "40", "--quiet"], capsys)
    assert code == 0
    written = sorted(p.name for p in folder_out.glob("*.png"))
    assert written == ["a_scream.png", "b_scream.png"]
    assert Image.open(folder_out / "a_scream.png").size == (40, 27)

    mixed = tmp_path / "mix.png"
    code, _, _ = run_cli(["apply", two_style_model, inputs["photo"], "-o", mixed, "--mix", "0.5,0.5", "--size", "48",
                      "--preserve-colors", "luminance", "--quiet"], capsys)
    assert code == 0
    assert json.loads(mixed.with_suffix(".json").read_text())["style_weights"] == [0.5, 0.5]

    faint = tmp_path / "faint.png"  # strength 0: the photo itself
    code, _, _ = run_cli(["apply", two_style_model, inputs["photo"], "-o", faint, "--size", "0", "--strength", "0",
                          "--quiet"], capsys)
    assert code == 0 and json.loads(faint.with_suffix(".json").read_text())["strength"] == 0
    np.testing.assert_allclose(image_io.load_image(faint), image_io.load_image(inputs["photo"]), atol=1.01 / 255)


def test_apply_in_python_matches_the_network(two_style_model, inputs):
    from jaxstyle.nets import fast

    model = fast.load_model(two_style_model)
    photo = image_io.load_image(inputs["photo"])
    images = [photo, photo[:20, :30], photo]
    outs = fast.apply(model, images, style_index=1, batch_size=2)
    assert [o.shape for o in outs] == [i.shape for i in images]
    direct = transform.TransformNet(model.config).apply({"params": model.params}, photo, np.array([0.0, 1.0]))
    np.testing.assert_allclose(outs[0], direct, atol=1e-5)
    np.testing.assert_allclose(outs[2], direct, atol=1e-5)


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_parameters(trained, inputs, tmp_path):
    """The `trained` command killed and run again: the same parameters, bit for bit (two styles: the
    resumed run must also continue the styles' rotation over the batch)."""
    whole, resumed, sidecar = kill_and_resume(
        lambda out, steps: [sys.executable, "-m", "jaxstyle", "train", str(inputs["style"]), str(inputs["scream"]),
                            "--photos", str(inputs["photos"]), "-o", str(out), "--steps", str(steps),
                            "--checkpoint-every", "1", "--float16", *TINY], tmp_path, whole=trained[0])
    a, b = model_file.load(whole), model_file.load(resumed)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(x, y)
    assert sidecar["resumed_from_step"] >= 2 and sidecar["steps"] == 8


def test_bundled_model_paints_the_photo_with_no_model_argument(tmp_path, capsys):
    out, lighter = tmp_path / "town.png", tmp_path / "lighter.png"
    for path, strength in ((out, "1"), (lighter, "0.5")):
        code, _, _ = run_cli(["apply", DATA / "tubingen.jpg", "-o", path, "--style", "scream", "--strength", strength,
                              "--size", "256", "--quiet"], capsys)
        assert code == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["model"]["styles"] == ["starry_night", "the_scream", "shipwreck"]
    assert sidecar["style_weights"] == [0, 1, 0]
    painted, half = image_io.load_image(out), image_io.load_image(lighter)
    photo = image_io.load_image(DATA / "tubingen.jpg", size=256)
    assert painted.shape == photo.shape == (192, 256, 3)
    change = np.abs(painted - photo).mean()
    assert 0.03 < change < 0.5  # changed, but not replaced by noise
    assert np.abs(half - photo).mean() < 0.8 * change  # half the residual: closer to the photo


def test_apply_takes_the_model_as_an_option_and_a_style_by_part_of_its_name(inputs, two_style_model, tmp_path,
                                                                           capsys):
    out = tmp_path / "part.png"
    code, _, _ = run_cli(["apply", inputs["photo"], "--model", two_style_model, "-o", out, "--style", "SCR",
                          "--size", "0", "--quiet"], capsys)
    assert code == 0 and json.loads(out.with_suffix(".json").read_text())["style_weights"] == [0, 1]
    code, _, err = run_cli(["apply", inputs["photo"], "--model", two_style_model, "-o", out, "--style", "s",
                            "--size", "0", "--quiet"], capsys)
    assert code != 0 and "several style names: starry, scream" in err


def test_train_from_a_model_adds_a_style_learning_only_its_norms(inputs, two_style_model, tmp_path, capsys):
    """The new style's scale and shift rows are learnt (starting from the mean of the model's rows);
    every other parameter, and the old styles' rows, come out exactly as they were."""
    shipwreck = inputs["folder"] / "shipwreck.png"
    Image.open(DATA / "shipwreck.jpg").resize((60, 40)).save(shipwreck)
    out = tmp_path / "three.msgpack"
    tiny = [a for a in TINY if a not in ("--width", "4", "--residual-blocks", "1")]
    code, _, _ = run_cli(["train", shipwreck, "--photos", inputs["photos"], "--from", two_style_model, "-o", out,
                          "--steps", "3", *tiny], capsys)
    assert code == 0
    base, grown = model_file.load(two_style_model), model_file.load(out)
    assert grown.styles == ("starry", "scream", "shipwreck") and grown.config.num_styles == 3
    assert json.loads(out.with_suffix(".json").read_text())["from"]["sha256"] == file_sha256(two_style_model)
    norms = 0
    for (path, old), (_, new) in zip(jax.tree_util.tree_leaves_with_path(base.params),
                                     jax.tree_util.tree_leaves_with_path(grown.params), strict=True):
        old, new = np.asarray(old, np.float32), np.asarray(new, np.float32)
        if jax.tree_util.keystr(path).endswith(("['scale']", "['shift']")):
            norms += 1
            np.testing.assert_array_equal(new[:2], old)
            assert not np.allclose(new[2], old.mean(axis=0), atol=1e-7)  # it learnt
        else:
            np.testing.assert_array_equal(new, old)
    assert norms > 0
    painted = tmp_path / "ship.png"
    code, _, _ = run_cli(["apply", out, inputs["photo"], "-o", painted, "--style", "shipwreck", "--size", "0",
                          "--quiet"], capsys)
    assert code == 0 and json.loads(painted.with_suffix(".json").read_text())["style_weights"] == [0, 0, 1]
