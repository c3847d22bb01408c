"""`jaxstyle apply CLIP -o OUT.mp4` and `jaxstyle cyclegan apply MODEL CLIP -o OUT.mp4` with tiny random
networks on an 8-frame 48x32 lossless clip: each frame painted as the image command paints it, the rate
and the audio kept, a killed run resumed at its last finished frame."""

import json
from fractions import Fraction

import numpy as np
import pytest
from conftest import DATA, REPO, run_cli, save_tiny_models
from video_clips import audio_packets, luma_close, moving_frames, record_encoded, write_clip

from jaxstyle.io import image_io, video
from jaxstyle.nets import cyclegan, fast, model_file

RATE = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("video_cli")
    frames = moving_frames()
    save_tiny_models(d)
    return {"dir": d, "frames": [f.astype(np.float32) / 255 for f in frames],
            "clip": write_clip(d / "clip.mkv", frames, rate=RATE, audio=True, lossless=True)}


def test_apply_paints_each_frame_as_the_image_command_and_keeps_rate_and_audio(files, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, stdout, stderr = run_cli(["apply", files["clip"], "--model", files["dir"] / "fast.msgpack", "-o", out,
                                    "--frames", "1:7", "--batch-size", "4", "--style", "t", "--size", "0"], capsys)
    assert code == 0, stderr
    assert stdout.strip() == str(out) and "frame/s" in stderr  # tqdm's rate
    info = video.probe(out)
    assert (info.frames, info.rate, info.width, info.height, info.audio) == (6, RATE, 48, 32, "aac")
    model = fast.load_model(files["dir"] / "fast.msgpack")
    expected = fast.apply(model, files["frames"][1:7], style_index=1)  # the image command's path, one by one
    luma_close(list(video.read_frames(info)), expected)
    assert set(audio_packets(out)) <= set(audio_packets(files["clip"]))  # copied, not re-encoded
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["frames"] == [1, 7] and sidecar["audio_copied"] and sidecar["style_weights"] == [0.0, 1.0]
    assert not (tmp_path / "out.mp4.frames").exists()


def test_two_batches_are_painted_at_once_only_where_their_memory_fits_twice(files, tmp_path, capsys, monkeypatch):
    from jaxstyle import runtime
    from jaxstyle.io import background

    used, real = [], background.map_ahead
    monkeypatch.setattr(background, "map_ahead", lambda *a, in_flight, **k: used.append(in_flight) or real(
        *a, in_flight=in_flight, **k))
    argv = ["apply", files["clip"], "--model", files["dir"] / "fast.msgpack", "--size", "0", "--quiet"]
    need = fast.check_memory(fast.load_model(files["dir"] / "fast.msgpack"), files["frames"][:4], batch_size=4)
    for available in (2 * need, 2 * need - 1):
        monkeypatch.setattr(runtime, "available_memory_bytes", lambda: available)
        assert run_cli([*argv, "-o", tmp_path / f"{available}.mp4"], capsys)[0] == 0
    assert used == [2, 1]


def test_a_clip_beyond_memory_is_refused_in_one_line_with_nothing_written(files, tmp_path, capsys, monkeypatch):
    from jaxstyle import runtime

    monkeypatch.setattr(runtime, "available_memory_bytes", lambda: 1)  # decoding has started when the check refuses
    code, _, stderr = run_cli(["apply", files["clip"], "--model", files["dir"] / "fast.msgpack", "--size", "0",
                               "--tile", "0", "-o", tmp_path / "out.mp4"], capsys)
    assert code == 2 and "GiB" in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert list(tmp_path.iterdir()) == []  # no video, no frames folder


@pytest.mark.parametrize("smooth", ["0", "0.5"])
def test_a_killed_run_resumes_at_its_last_finished_frame(files, tmp_path, capsys, monkeypatch, smooth):
    argv = ["apply", files["clip"], "--model", files["dir"] / "fast.msgpack", "--batch-size", "3", "--size", "0",
            "--quiet", "--smooth", smooth]
    whole, encoded = tmp_path / "whole.mp4", record_encoded(monkeypatch)
    assert run_cli([*argv, "-o", whole], capsys)[0] == 0
    calls, real_apply = [], fast.apply

    def killed_at_the_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_apply(*args, **kwargs)

    out = tmp_path / "out.mp4"
    monkeypatch.setattr(fast, "apply", killed_at_the_second_batch)
    code, _, stderr = run_cli([*argv, "-o", out], capsys)
    assert code == 130, stderr
    kept = tmp_path / "out.mp4.frames"
    assert sorted(p.name for p in kept.iterdir()) == ["frame_000000.npy", "frame_000001.npy", "frame_000002.npy",
                                                      "state.json"] and not out.exists()
    monkeypatch.setattr(fast, "apply", real_apply)
    code, _, stderr = run_cli([*argv, "-o", out], capsys)
    assert code == 0 and "resuming at frame 3 of 8" in stderr, stderr
    # What the resumed run handed to the encoder is exactly the whole run's; the files, within x264's loss.
    np.testing.assert_array_equal(np.stack(encoded["out.mp4"]), np.stack(encoded["whole.mp4"]))
    luma_close(*(list(video.read_frames(video.probe(p))) for p in (out, whole)))
    assert not kept.exists() and json.loads(out.with_suffix(".json").read_text())["resumed_at_frame"] == 3


def test_an_mpeg_ts_clip_is_a_video_input_too(files, tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.ts", moving_frames(count=3))
    code, _, stderr = run_cli(["apply", clip, "--model", files["dir"] / "fast.msgpack", "-o", tmp_path / "o.mkv",
                               "--batch-size", "4", "--size", "0", "--quiet"], capsys)
    assert code == 0, stderr
    assert video.probe(tmp_path / "o.mkv").frames == 3


def test_cyclegan_apply_translates_a_clip_at_a_size(files, tmp_path, capsys):
    out = tmp_path / "out.mkv"
    code, _, stderr = run_cli(["cyclegan", "apply", files["dir"] / "gan.msgpack", files["clip"], "-o", out,
                               "--size", "24", "--direction", "b2a", "--quiet"], capsys)
    assert code == 0, stderr
    info = video.probe(out)
    assert (info.frames, info.width, info.height, info.audio) == (8, 24, 16, "aac")
    model = model_file.load_cyclegan(files["dir"] / "gan.msgpack")
    luma_close(list(video.read_frames(info)), cyclegan.apply(model, files["frames"], direction="b2a", size=24))
    assert json.loads(out.with_suffix(".json").read_text())["direction"] == "b2a"


@pytest.mark.parametrize("shift", [1, 3])
def test_the_committed_video_models_paint_a_moved_photo_as_the_moved_painting_in_their_order(shift):
    # |f(roll(x)) - roll(f(x))|^2 inside: bundled > stable (gamma 3e4) > steady (gamma 1e6), by wide margins
    # (measured: 0.023-0.025, 0.007, 0.0004-0.0007 on this photo at 128 px).
    photo = image_io.load_image(DATA / "tubingen.jpg", size=128)
    moved = np.roll(photo, shift, axis=1)
    error = {}
    for path in (DATA / "paintings.msgpack", REPO / "models" / "paintings_stable.msgpack",
                 REPO / "models" / "paintings_steady.msgpack"):
        painted, painted_moved = fast.apply(fast.load_model(path), [photo, moved], style_index=0)
        error[path.stem] = float(((painted_moved - np.roll(painted, shift, axis=1))[8:-8, 8 + shift:-8] ** 2).mean())
    assert error["paintings_steady"] < 0.25 * error["paintings_stable"] < 0.125 * error["paintings"], error
