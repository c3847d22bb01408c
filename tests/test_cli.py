"""The `jaxstyle` command as a user runs it: outputs, sidecars, and one clear line for bad input."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import DATA, REAL_WEIGHTS, run_cli
from PIL import Image

from jaxstyle import cli
from jaxstyle.io import image_io, weights

pytestmark = pytest.mark.real_weights
# One small size and step count for every run, so the process compiles each program once.
FAST = ["--size", "48", "--steps", "3", "--quiet"]


@pytest.fixture(autouse=True)
def _weights(monkeypatch):
    monkeypatch.setenv("JAXSTYLE_WEIGHTS", str(REAL_WEIGHTS))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("in")
    content = folder / "town.jpg"
    Image.open(DATA / "tubingen.jpg").resize((64, 48)).save(content)
    style = folder / "paint.png"
    Image.open(DATA / "starry_night.jpg").resize((64, 40)).save(style)
    return content, style


def test_stylize_writes_image_and_sidecar_that_reproduces_it(images, tmp_path, capsys):
    content, style = images
    out = tmp_path / "out.png"
    code, stdout, stderr = run_cli(["stylize", content, style, "-o", out, *FAST, "--loss-plot", tmp_path / "loss.png"],
                                   capsys)
    assert code == 0 and stdout.strip() == str(out)
    assert stderr == "", "--quiet prints nothing on stderr"
    assert Image.open(out).size == (48, 36)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["settings"]["size"] == 48 and sidecar["steps"] == 3
    assert sidecar["weights"]["sha256"] and sidecar["versions"]["jax"]
    assert set(sidecar["losses"]) == {"total", "content", "style", "tv"}
    assert Image.open(tmp_path / "loss.png").size[0] > 100

    again = tmp_path / "again.png"
    code, _, _ = run_cli(["stylize", content, style, "-o", again, "--settings", out.with_suffix(".json"), "--quiet"], capsys)
    assert code == 0
    np.testing.assert_allclose(image_io.load_image(again), image_io.load_image(out), atol=2 / 255)


def test_several_contents_go_to_a_folder(images, tmp_path, capsys):
    content, style = images
    second = tmp_path / "second.png"
    Image.open(content).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(second)
    outdir = tmp_path / "outs"
    outdir.mkdir()
    code, stdout, _ = run_cli(["stylize", content, second, style, "-o", outdir, *FAST, "--save-every", "2"], capsys)
    assert code == 0
    names = sorted(p.name for p in outdir.iterdir())
    assert names == ["second_paint.json", "second_paint.png", "second_paint_step00002.png",
                     "town_paint.json", "town_paint.png", "town_paint_step00002.png"]


def test_sweep_writes_sheet_and_each_image(images, tmp_path, capsys):
    content, style = images
    sheet = tmp_path / "sheet.png"
    code, _, _ = run_cli(["sweep", content, style, "--ratios", "1e-4,1e-2", "-o", sheet, *FAST], capsys)
    assert code == 0
    assert Image.open(sheet).size[0] == 2 * 48
    for ratio in ("0.0001", "0.01"):
        sidecar = json.loads((tmp_path / f"sheet_ratio{ratio}.json").read_text())
        assert sidecar["settings"]["content_weight"] == pytest.approx(float(ratio))


def test_bad_cpu_kernels_setting_is_refused_before_any_work(images, tmp_path, capsys, monkeypatch):
    content, style = images
    monkeypatch.setenv("JAXSTYLE_CPU_KERNELS", "fastest")
    out = tmp_path / "result.png"
    # Missing weights too: checked later, so only a check made first names the setting.
    code, _, err = run_cli(["stylize", content, style, "-o", out, "--weights", tmp_path / "none.h5", *FAST], capsys)
    assert code == cli.EXIT_ERROR
    assert err.strip().splitlines() == ["jaxstyle: error: JAXSTYLE_CPU_KERNELS='fastest': expected one of auto, ynnpack, eigen"]
    assert not out.exists()


def test_non_finite_loss_keeps_last_finite_image(images, tmp_path, capsys):
    content, style = images
    out = tmp_path / "out.png"
    code, _, err = run_cli(["stylize", content, style, "-o", out, *FAST, "--style-weight", "1e38"], capsys)
    assert code == cli.EXIT_NON_FINITE and "style-weight" in err and "Traceback" not in err
    assert np.isfinite(image_io.load_image(out)).all()


def test_console_script_runs_in_a_fresh_process(images):
    """`python -m jaxstyle` passes the exit status on; the commands themselves are tested in-process."""
    bad = subprocess.run([sys.executable, "-m", "jaxstyle", "stylize", "missing.jpg", str(images[1])],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("jaxstyle: error:")
    assert "Traceback" not in bad.stderr


def test_the_command_line_starts_without_the_networks():
    """flax loads only when a network command runs (it costs every command's start); the networks'
    public names still resolve from the package."""
    code = ("import sys, jaxstyle, jaxstyle.cli; assert 'flax' not in sys.modules, 'flax imported'; "
            "from jaxstyle import load_cyclegan, load_model, paint, translate; "
            "assert paint.__module__ == 'jaxstyle.nets.fast' and translate.__module__ == 'jaxstyle.nets.cyclegan'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_optax_h5py_ffmpeg_and_opencv_load_at_their_first_use_not_with_the_command_line():
    """`jaxstyle.lazy`: every parser built (the network commands' included) and none loaded; then used."""
    code = ("import sys; from jaxstyle.cli import build_parser; build_parser(); "
            "loaded = [m for m in sys.modules if m.startswith(('optax.', 'h5py.', 'av.', 'cv2.'))]; "
            "assert not loaded, loaded; "
            "from jaxstyle.nets import training; from jaxstyle.io import video, weights; "
            "from jaxstyle.video import flow; "
            "assert callable(training.optax.adam) and weights.h5py.File.__module__.startswith('h5py'); "
            "assert callable(video.av.open) and callable(flow.cv2.remap)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_weights_info_of_the_real_weights(capsys):
    code, stdout, _ = run_cli(["weights", "info", REAL_WEIGHTS], capsys)
    assert code == 0 and "caffe" in stdout


def test_controls_from_the_command_line(images, tmp_path, capsys):
    content, style = images
    region = tmp_path / "sky.png"
    top = np.zeros((48, 64), np.uint8)
    top[:20] = 255
    Image.fromarray(top).save(region)
    out = tmp_path / "masked.png"
    code, _, err = run_cli(["stylize", content, style, "-o", out, *FAST, "--mask", f"{region}:{DATA / 'the_scream.jpg'}",
                        "--preserve-colors", "luminance", "--style-layers", "upto-conv3_1"], capsys)
    assert code == 0, err
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["settings"]["style_layers"] == ["conv1_1", "conv2_1", "conv3_1"]
    assert sidecar["settings"]["preserve_colors"] == "luminance"
    assert set(sidecar["inputs"]) == {"content", "style", "mask_1", "mask_1_style"}

    out = tmp_path / "blend.png"
    code, _, err = run_cli(["stylize", content, style, "-o", out, *FAST, "--blend-with", DATA / "the_scream.jpg",
                        "--style-blend", "0.7,0.3", "--style-scale", "1.5", "--preserve-colors", "histogram"], capsys)
    assert code == 0, err
    assert json.loads(out.with_suffix(".json").read_text())["settings"]["style_blend"] == [0.7, 0.3]

    code, _, err = run_cli(["stylize", content, style, "-o", tmp_path / "x.png", *FAST, "--mask", "nocolon"], capsys)
    assert code == 2 and "REGION.png:STYLE.jpg" in err


def test_zero_steps_with_a_loss_plot_writes_the_image_and_no_plot(images, tmp_path, capsys):
    content, style = images
    out, plot = tmp_path / "out.png", tmp_path / "loss.png"
    code, stdout, err = run_cli(["stylize", content, style, "-o", out, "--size", "48", "--steps", "0", "--quiet",
                             "--loss-plot", plot], capsys)
    assert code == 0 and stdout.strip() == str(out) and "Traceback" not in err
    assert "jaxstyle: no steps ran; no loss plot written" in err.splitlines()
    assert out.exists() and not plot.exists()


@pytest.mark.parametrize("name", ["out.xyz", "out.webp.bak"])
def test_unsupported_output_extension_is_refused_before_any_work(images, tmp_path, capsys, monkeypatch, name):
    def never(*args, **kwargs):
        raise AssertionError("the weights were loaded before the output was checked")

    monkeypatch.setattr(weights, "load_params", never)
    content, style = images
    code, stdout, err = run_cli(["stylize", content, style, "-o", tmp_path / name, *FAST], capsys)
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("jaxstyle: error: ") and ".png, .jpg, .jpeg, .webp" in err
    assert list(tmp_path.iterdir()) == []


def test_webp_output(images, tmp_path, capsys):
    content, style = images
    out = tmp_path / "out.webp"
    code, stdout, err = run_cli(["stylize", content, style, "-o", out, *FAST], capsys)
    assert code == 0, err
    assert Image.open(out).format == "WEBP" and image_io.load_image(out).shape == (36, 48, 3)


def test_every_option_shows_its_default_once():
    def parsers(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    for parser in parsers(cli.build_parser()):
        for action in parser._actions:
            text = parser._get_formatter()._expand_help(action) if action.help else ""
            assert text.count("default") <= 1 and "(default: None)" not in text, (parser.prog, action.dest, text)


def test_a_stylize_stopped_midway_resumes_from_its_checkpoint(images, tmp_path, capsys, monkeypatch):
    """Interrupted after its second checkpoint (Ctrl-C), the same command resumes there and writes
    the picture of an uninterrupted run; the checkpoint is removed once the picture is written."""
    from jaxstyle.cli import stylize as stylize_cli

    content, style = images
    whole = tmp_path / "whole.png"
    assert run_cli(["stylize", content, style, "-o", whole, *FAST], capsys)[0] == 0
    out = tmp_path / "out.png"
    checkpoint = tmp_path / "out.png.checkpoint.npz"
    save, saved = stylize_cli.save_checkpoint, []

    def save_then_stop(path, progress, **kwargs):
        save(path, progress, **kwargs)
        saved.append(progress.step)
        if len(saved) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(stylize_cli, "save_checkpoint", save_then_stop)
    code, _, _ = run_cli(["stylize", content, style, "-o", out, *FAST, "--checkpoint-every", "1"], capsys)
    assert code != 0 and saved == [1, 2] and checkpoint.exists() and not out.exists()

    monkeypatch.setattr(stylize_cli, "save_checkpoint", save)
    loud = [a for a in FAST if a != "--quiet"]
    code, _, stderr = run_cli(["stylize", content, style, "-o", out, *loud, "--checkpoint-every", "1"], capsys)
    assert code == 0 and "resuming from" in stderr and "step 2" in stderr
    assert not checkpoint.exists()
    np.testing.assert_allclose(image_io.load_image(out), image_io.load_image(whole), atol=1 / 255)
