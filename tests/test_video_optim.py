"""`jaxstyle video CLIP STYLE -o OUT.mp4` (the optimisation, frame by frame from the warped previous output,
held to it by Ruder et al.'s temporal loss) on a 5-frame 48x32 clip moving 1 px right per frame; its warped
start against np.roll; the temporal term in the solver and its long-term target."""

import json

import numpy as np
import pytest
from conftest import DATA, REAL_WEIGHTS, run_cli
from PIL import Image
from video_clips import luma_close, moving_frames, record_encoded, write_clip

from jaxstyle import optim
from jaxstyle.cli import video as cli_video
from jaxstyle.io import video
from jaxstyle.video import temporal

INNER = (slice(4, -4), slice(6, -6))


def test_the_warped_start_is_the_previous_output_moved_with_the_content():
    frames = [f.astype(np.float32) / 255 for f in moving_frames(count=2, height=40, width=56)]
    painted = np.random.default_rng(0).random((40, 56, 3), dtype=np.float32)
    start = temporal.warped_init(painted, frames[0], frames[1])  # the content moved 1 px right
    moved = np.roll(painted, 1, axis=1)
    assert np.abs(start - moved)[INNER].mean() < 0.05 < np.abs(painted - moved)[INNER].mean()


def test_the_long_term_target_has_the_gradient_of_the_sum_of_its_terms():
    rng = np.random.default_rng(1)
    x = rng.random((12, 10, 3))
    warped = [rng.random((12, 10, 3)).astype(np.float32) for _ in range(3)]
    masks = [(rng.random((12, 10)) > 0.5).astype(np.float32) for _ in range(3)]
    target, weight = temporal.combined_target(warped, masks)
    # Ruder et al.: sum_j c_long,j |x - w_j|^2, c_long,j = max(c_j - sum_{k<j} c_k, 0), nearest frame first.
    expected, covered = np.zeros_like(x), np.zeros((12, 10))
    for w, c in zip(warped, masks):
        expected += 2 * np.maximum(c - covered, 0)[..., None] * (x - w)
        covered += c
    np.testing.assert_allclose(2 * weight[..., None] * (x - target), expected, atol=1e-5)
    assert set(np.unique(weight)) <= {0.0, 1.0}  # each pixel follows one earlier frame, or none
    np.testing.assert_array_equal(target[masks[0] == 1], warped[0][masks[0] == 1])


def test_the_temporal_term_holds_the_trusted_pixels_to_the_target_and_no_others(tiny_params):
    rng = np.random.default_rng(2)
    content, style, target = (rng.random((40, 48, 3), dtype=np.float32) for _ in range(3))
    mask = np.zeros((40, 48), np.float32)
    mask[:, :24] = 1  # the left half is trusted
    settings = optim.Settings(size=48, steps=15)
    plain = optim.solve(tiny_params, [optim.make_task(content, style, settings)])[0]
    unweighted = optim.solve(tiny_params, [optim.make_task(content, style, settings,
                                                           temporal=optim.Temporal(target, mask, 0.0))])[0]
    np.testing.assert_allclose(unweighted.image, plain.image, atol=1e-6)
    held = optim.solve(tiny_params, [optim.make_task(content, style, settings,
                                                     temporal=optim.Temporal(target, mask, 1e9))])[0]
    left, right = np.abs(held.image - target)[:, :24].mean(), np.abs(held.image - target)[:, 24:].mean()
    assert left < 0.02 < 0.2 < right, (left, right)
    assert 0 <= held.temporal < 1e-3 and held.total >= 1e9 * held.temporal


def test_a_batched_pass_draws_the_outputs_of_a_still_clip_together(tiny_params):
    rng = np.random.default_rng(3)
    still = np.clip(np.repeat(np.linspace(0, 1, 48)[None, :, None], 40, 0) + rng.normal(0, 0.05, (40, 48, 3)),
                    0, 1).astype(np.float32)
    outputs = [rng.random((40, 48, 3), dtype=np.float32) for _ in range(3)]
    spread = lambda images: max(np.abs(a - b).mean() for a in images for b in images)  # noqa: E731
    settings = optim.Settings(size=48, steps=1)
    results = temporal.refine_window(tiny_params, [still] * 3, outputs, still, settings, passes=4, steps=10,
                                     temporal_weight=1e9)
    assert len(results) == 3
    assert spread([r.image for r in results]) < 0.25 * spread(outputs)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("video_optim")
    Image.open(DATA / "starry_night.jpg").resize((64, 40)).save(d / "s.jpg")
    return {"clip": write_clip(d / "clip.mkv", moving_frames(count=5), lossless=True), "style": d / "s.jpg"}


def _argv(inputs, out, *more):
    return ["video", inputs["clip"], inputs["style"], "-o", out, "--size", "48", "--steps", "3", "--quiet",
            "--weights", REAL_WEIGHTS, *more]


@pytest.mark.real_weights
def test_with_no_steps_after_the_first_each_frame_is_the_previous_one_carried_by_the_flow(inputs, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, stdout, stderr = run_cli(_argv(inputs, out, "--steps-next", "0", "--frames", "0:4"), capsys)
    assert code == 0 and stdout.strip() == str(out), stderr
    frames = list(video.read_frames(video.probe(out)))
    assert len(frames) == 4 and frames[0].shape == (32, 48, 3)
    for before, after in zip(frames, frames[1:]):
        moved = np.roll(before, 1, axis=1)
        assert np.abs(after - moved)[INNER].mean() < 0.04 < np.abs(after - before)[INNER].mean()
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["steps_next"] == 0 and sidecar["settings"]["steps"] == 3 and sidecar["frames"] == [0, 4]
    assert sidecar["temporal_weight"] == cli_video.DEFAULT_TEMPORAL_WEIGHT and sidecar["long_term"] == [1]
    assert not (tmp_path / "out.mp4.frames").exists()


@pytest.mark.real_weights
def test_the_long_term_loss_and_multi_pass_run_and_are_recorded(inputs, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, _, stderr = run_cli(_argv(inputs, out, "--long-term", "2,1", "--temporal-weight", "50", "--passes", "1",
                                    "--window", "3"), capsys)
    assert code == 0, stderr
    assert len(list(video.read_frames(video.probe(out)))) == 5
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["temporal_weight"] == 50 and sidecar["long_term"] == [1, 2]
    assert sidecar["passes"] == 1 and sidecar["window"] == 3


@pytest.mark.real_weights
@pytest.mark.parametrize("gamma", ["0", "5000"])
def test_a_killed_video_run_resumes_at_its_last_finished_frame(inputs, tmp_path, capsys, monkeypatch, gamma):
    whole, out = tmp_path / "whole.mp4", tmp_path / "out.mp4"
    argv = lambda path: _argv(inputs, path, "--temporal-weight", gamma)  # noqa: E731
    encoded = record_encoded(monkeypatch)
    assert run_cli(argv(whole), capsys)[0] == 0
    calls, real_solve = [], optim.solve

    def killed_at_the_third_frame(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_solve(*args, **kwargs)

    monkeypatch.setattr(optim, "solve", killed_at_the_third_frame)
    assert run_cli(argv(out), capsys)[0] == 130
    assert sorted(p.name for p in (tmp_path / "out.mp4.frames").glob("frame_*")) == ["frame_000000.npy",
                                                                                    "frame_000001.npy"]
    monkeypatch.setattr(optim, "solve", real_solve)
    code, _, stderr = run_cli(argv(out), capsys)
    assert code == 0, stderr
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["resumed_at_frame"] == 2 and sidecar["steps_next"] == 1  # --steps 3 // 4, at least 1
    # What the resumed run handed to the encoder is exactly the whole run's; the files, within x264's loss.
    np.testing.assert_array_equal(np.stack(encoded["out.mp4"]), np.stack(encoded["whole.mp4"]))
    luma_close(*(list(video.read_frames(video.probe(p))) for p in (out, whole)))
