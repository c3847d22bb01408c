"""Video files (jaxstyle.io.video) and the frames folder (jaxstyle.io.frames), on clips of 8 frames of
48x32 written with PyAV in the test (tests/video_clips.py): the frames read back exactly from a lossless
clip, the frame rate, size and count kept, the audio packets copied byte for byte, bad clips refused."""

import json
import itertools
import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from video_clips import LUMA, audio_packets, moving_frames, write_clip, write_sound_only

from jaxstyle.errors import JaxstyleError
from jaxstyle.io import background, image_io, video
from jaxstyle.io.frames import FramesFolder

NTSC = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    frames = moving_frames()
    return {"frames": frames, "lossless": write_clip(d / "l.mkv", frames, rate=NTSC, audio=True, lossless=True),
            "h264": write_clip(d / "h.mp4", frames, audio=True), "silent": write_clip(d / "s.mp4", frames)}


def test_probe_reports_size_rate_count_and_audio(clips):
    mkv = video.probe(clips["lossless"])  # Matroska does not store the count: the packets are counted
    assert (mkv.width, mkv.height, mkv.frames, mkv.rate, mkv.audio) == (48, 32, 8, NTSC, "aac")
    mp4 = video.probe(clips["silent"], frames=(2, None))
    assert (mp4.frames, mp4.rate, mp4.audio, mp4.start, mp4.stop, mp4.count) == (8, 25, None, 2, 8, 6)


def test_frames_read_back_exactly_from_a_lossless_clip(clips):
    info = video.probe(clips["lossless"], frames=(3, 6))
    got = list(video.read_frames(info))
    assert len(got) == 3 and got[0].dtype == np.float32 and got[0].shape == (32, 48, 3)
    for image, pixels in zip(got, clips["frames"][3:6]):
        np.testing.assert_array_equal(image, pixels.astype(np.float32) / 255)
    [small] = video.read_frames(video.probe(clips["lossless"], frames=(0, 1)), size=24)
    assert small.shape == (16, 24, 3) == video.frame_shape(info, 24) + (3,)
    # Resized from 8 bits at decode: within rounding of the float resize of the picture commands.
    whole = image_io.resize_longest(clips["frames"][0].astype(np.float32) / 255, 24)
    assert np.abs(small - whole).mean() < 1 / 255 and np.abs(small - whole).max() < 8 / 255


def test_prefetch_keeps_the_order_raises_where_the_source_failed_and_stops_when_closed():
    assert list(background.prefetch(iter(range(50)), ahead=3)) == list(range(50))

    def failing():
        yield from range(4)
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for item in background.prefetch(failing(), ahead=2):
            got.append(item)
    assert got == [0, 1, 2, 3]

    produced = []

    def endless():
        for i in itertools.count():
            produced.append(i)
            yield i

    before = threading.active_count()
    items = background.prefetch(endless(), ahead=2)
    deadline = time.monotonic() + 10
    while len(produced) < 2 and time.monotonic() < deadline:  # it starts at once, before the first next()
        time.sleep(0.01)
    assert len(produced) >= 2
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert threading.active_count() == before and len(produced) <= 3 + 2 + 1
    with background.prefetch(endless(), ahead=2) as unused:  # closed unread: the thread stops too
        pass
    assert threading.active_count() == before and list(unused) == []


def test_map_ahead_keeps_the_order_runs_calls_together_and_raises_where_one_failed():
    running, most = [0], [0]
    lock = threading.Lock()

    def slow_square(x):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02 * (x % 3))  # later calls can finish first
        with lock:
            running[0] -= 1
        if x == 7:
            raise ValueError("seven")
        return x * x

    assert list(background.map_ahead(slow_square, range(7))) == [x * x for x in range(7)] and most[0] == 2
    got = []
    with pytest.raises(ValueError, match="seven"):
        for y in background.map_ahead(slow_square, range(20)):
            got.append(y)
    assert got == [x * x for x in range(7)]
    started = []
    squares = background.map_ahead(lambda x: started.append(x) or x, itertools.count())
    assert [next(squares) for _ in range(3)] == [0, 1, 2]
    squares.close()
    assert len(started) <= 3 + 2


def test_written_video_keeps_rate_size_count_and_copies_the_audio(clips, tmp_path):
    info = video.probe(clips["lossless"])
    plan = video.plan_output(tmp_path / "out.mp4", info, (32, 48))
    assert plan.codec == "libx264" and plan.audio_from is not None
    video.write_video(plan, [f.astype(np.float32) / 255 for f in clips["frames"]])
    out = video.probe(plan.path)
    assert (out.width, out.height, out.frames, out.rate, out.audio) == (48, 32, 8, NTSC, "aac")
    back = np.stack(list(video.read_frames(out)))
    source = np.stack(clips["frames"]).astype(np.float32)
    assert np.abs(back @ LUMA * 255 - source @ LUMA).mean() < 3  # H.264 at CRF 17: the brightness kept,
    assert np.abs(back.mean((1, 2)) * 255 - source.mean((1, 2))).max() < 3  # the colours on average (4:2:0)
    assert audio_packets(plan.path) == audio_packets(clips["lossless"])  # remuxed, not re-encoded
    assert not list(tmp_path.glob(".*tmp"))


def test_a_range_keeps_the_audio_of_its_time_span(clips, tmp_path):
    info = video.probe(clips["h264"], frames=(2, 6))  # 0.08 s to 0.24 s
    plan = video.plan_output(tmp_path / "part.mkv", info, (32, 48))
    video.write_video(plan, [np.zeros((32, 48, 3), np.float32)] * 4)
    with av.open(str(plan.path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        audio = c.streams.audio[0]
        starts = [p.pts * audio.time_base for p in c.demux(audio) if p.size]
    assert video.probe(plan.path).frames == 4
    assert 0 <= min(starts) < 0.03 and 0.1 < max(starts) < 0.16  # packets of 1024 samples at 44.1 kHz: 23 ms


def test_odd_sides_are_cropped_to_even_and_webm_drops_aac_audio(clips, tmp_path, capsys):
    info = video.probe(clips["h264"])
    plan = video.plan_output(tmp_path / "odd.webm", info, (31, 47))
    assert (plan.height, plan.width, plan.codec, plan.audio_from) == (30, 46, "libvpx-vp9", None)
    assert "without sound" in capsys.readouterr().err
    video.write_video(plan, [np.full((31, 47, 3), 0.5, np.float32)] * 3)
    out = video.probe(plan.path)
    assert (out.width, out.height, out.frames, out.audio) == (46, 30, 3, None)


@pytest.mark.parametrize("name, make, message", [
    ("notes.mp4", lambda p: p.write_text("not a video"), "not a video FFmpeg can read"),
    ("empty.mp4", lambda p: p.write_bytes(b""), "is empty"),
    ("sound.mp4", write_sound_only, "holds no video stream (only audio)"),
    ("zero.mp4", lambda p: write_clip(p, []), "zero-length"),
    ("zero.mkv", lambda p: write_clip(p, [], lossless=True), "zero-length"),
    ("nope.mp4", lambda p: None, "does not exist"),
])
def test_bad_clips_are_refused_by_the_probe(tmp_path, name, make, message):
    path = tmp_path / name
    make(path)
    with pytest.raises(JaxstyleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        video.probe(path)


def test_frames_outside_the_clip_and_unwritable_outputs_are_refused(clips, tmp_path):
    with pytest.raises(JaxstyleError, match="outside the clip"):
        video.probe(clips["h264"], frames=(5, 9))
    with pytest.raises(JaxstyleError, match="outside the clip"):
        video.probe(clips["h264"], frames=(8, None))
    info = video.probe(clips["h264"])
    for name, message in [("out.gif", "cannot hold libx264"), ("out.png", "not a video container"),
                          ("out.xyz", "not a video container"), ("missing/out.mp4", "does not exist")]:
        with pytest.raises(JaxstyleError, match=message):
            video.plan_output(tmp_path / name, info, (32, 48))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text, expected", [("2:5", (2, 5)), ("3:", (3, None)), (":4", (0, 4))])
def test_parse_frames(text, expected):
    assert video.parse_frames(text) == expected


@pytest.mark.parametrize("text", ["5", "5:5", "-1:3", "a:b", "6:2"])
def test_parse_frames_refuses(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        video.parse_frames(text)


def test_frames_folder_resumes_its_own_run_and_restarts_another(tmp_path, capsys):
    out = tmp_path / "out.mp4"
    folder = FramesFolder(out, {"input": "abc", "frames": (0, 4)})
    assert folder.open() == 0 and folder.path == tmp_path / "out.mp4.frames"
    image = np.linspace(0, 1, 8 * 6 * 3, dtype=np.float32).reshape(8, 6, 3)
    for index in range(3):
        folder.save(index, image)
    assert FramesFolder(out, {"input": "abc", "frames": [0, 4]}).open() == 3  # tuples read back as lists
    [back] = FramesFolder(out, {"input": "abc", "frames": [0, 4]}).frames(1)
    np.testing.assert_array_equal(back, np.rint(image * 255) / 255)
    other = FramesFolder(out, {"input": "def", "frames": [0, 4]})
    assert other.open() == 0 and "starting over" in capsys.readouterr().err
    assert sorted(p.name for p in other.path.iterdir()) == ["state.json"]
    other.remove()
    assert not other.path.exists()


def test_a_frames_folder_of_png_frames_from_an_older_version_starts_over(tmp_path, capsys):
    out, record = tmp_path / "out.mp4", {"input": "abc", "frames": [0, 4]}
    (tmp_path / "out.mp4.frames").mkdir()
    (tmp_path / "out.mp4.frames" / "state.json").write_text(json.dumps(record))
    (tmp_path / "out.mp4.frames" / "frame_000000.png").write_bytes(b"an old frame")
    assert FramesFolder(out, record).open() == 0 and "starting over" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out.mp4.frames").iterdir()) == ["state.json"]


def test_a_frame_file_that_is_not_an_8_bit_frame_is_one_clear_error_and_no_pickle_is_loaded(tmp_path):
    folder = FramesFolder(tmp_path / "out.mp4", {})
    folder.open()
    np.save(folder.frame_path(0), np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(folder.frame_path(1), np.zeros((4, 4, 3), np.float32))
    folder.frame_path(2).write_bytes(b"\x93NUMPY truncated")
    for index, message in [(0, "cannot be read"), (1, "not a frame"), (2, "cannot be read")]:
        with pytest.raises(JaxstyleError, match=message):
            folder.load(index)


def test_a_frames_folder_it_did_not_write_is_refused(tmp_path):
    (tmp_path / "out.mp4.frames").mkdir()
    (tmp_path / "out.mp4.frames" / "mine.txt").write_text("keep")
    with pytest.raises(JaxstyleError, match="did not write"):
        FramesFolder(tmp_path / "out.mp4", {}).check()
    (tmp_path / "b.mp4.frames").write_text("a file")
    with pytest.raises(JaxstyleError, match="is a file"):
        FramesFolder(tmp_path / "b.mp4", {}).check()


def test_a_clip_that_decodes_to_fewer_frames_than_its_header_says_is_one_clear_error(clips):
    import dataclasses

    promised = dataclasses.replace(video.probe(clips["h264"]), frames=10, stop=10)  # the file holds 8
    with pytest.raises(JaxstyleError, match="decodes to 8 frames, not the 10"):
        list(video.read_frames(promised))


def test_pipe_returns_the_consumers_result_and_discards_its_work_when_the_producer_fails():
    got = []
    with background.Pipe(got.extend, ahead=2) as pipe:
        for i in range(10):
            pipe.put(i)
    assert got == list(range(10))  # all taken by the end of the block
    pipe = background.Pipe(lambda items: sum(items), ahead=2)
    for i in range(10):
        pipe.put(i)
    assert pipe.close() == 45

    seen = []

    def consume(items):
        try:
            for item in items:
                seen.append(item)
        except background.Aborted:
            seen.append("aborted")
            raise

    with pytest.raises(KeyError):  # the error in the block is the one reported
        with background.Pipe(consume) as pipe:
            pipe.put(1)
            pipe.put(2)
            raise KeyError("painting failed")
    assert seen == [1, 2, "aborted"]  # what was put before the error is all taken, then the consumer is told

    def failing(items):
        for item in items:
            if item == 3:
                raise OSError("disk full")

    pipe = background.Pipe(failing, ahead=1)
    with pytest.raises(OSError, match="disk full"):
        for i in range(100):  # the producer is told at a later put, and never waits on a full queue forever
            pipe.put(i)
            time.sleep(0.001)
    with pytest.raises(OSError, match="disk full"):
        pipe.close()
