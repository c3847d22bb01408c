"""`jaxstyle video CLIP STYLE -o OUT.mp4` (the optimisation, frame by frame from the warped previous output)
on an 8-frame 48x32 clip moving 1 px right per frame, and its warped start against np.roll."""

import json

import numpy as np
import pytest
from conftest import DATA, REAL_WEIGHTS, run_cli
from PIL import Image
from video_clips import moving_frames, write_clip

from jaxstyle import optim
from jaxstyle.io import video
from jaxstyle.video import temporal

INNER = (slice(4, -4), slice(6, -6))


def test_the_warped_start_is_the_previous_output_moved_with_the_content():
    frames = [f.astype(np.float32) / 255 for f in moving_frames(count=2, height=40, width=56)]
    painted = np.random.default_rng(0).random((40, 56, 3), dtype=np.float32)
    start = temporal.warped_init(painted, frames[0], frames[1])  # the content moved 1 px right
    moved = np.roll(painted, 1, axis=1)
    assert np.abs(start - moved)[INNER].mean() < 0.05 < np.abs(painted - moved)[INNER].mean()


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
    assert not (tmp_path / "out.mp4.frames").exists()


@pytest.mark.real_weights
def test_a_killed_video_run_resumes_at_its_last_finished_frame(inputs, tmp_path, capsys, monkeypatch):
    whole, out = tmp_path / "whole.mp4", tmp_path / "out.mp4"
    assert run_cli(_argv(inputs, whole), capsys)[0] == 0
    calls, real_solve = [], optim.solve

    def killed_at_the_third_frame(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_solve(*args, **kwargs)

    monkeypatch.setattr(optim, "solve", killed_at_the_third_frame)
    assert run_cli(_argv(inputs, out), capsys)[0] == 130
    assert sorted(p.name for p in (tmp_path / "out.mp4.frames").glob("frame_*")) == ["frame_000000.png",
                                                                                    "frame_000001.png"]
    monkeypatch.setattr(optim, "solve", real_solve)
    code, _, stderr = run_cli(_argv(inputs, out), capsys)
    assert code == 0, stderr
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["resumed_at_frame"] == 2 and sidecar["steps_next"] == 1  # --steps 3 // 4, at least 1
    resumed, uninterrupted = (np.stack(list(video.read_frames(video.probe(p)))) for p in (out, whole))
    np.testing.assert_array_equal(resumed, uninterrupted)
