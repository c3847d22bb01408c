"""Video files (jaxstyle.io.video) and the frames folder (jaxstyle.io.frames), on clips of 8 frames of
48x32 written with PyAV in the test (tests/video_clips.py): the frames read back exactly from a lossless
clip, the frame rate, size and count kept, the audio packets copied byte for byte, bad clips refused."""

import itertools
import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from video_clips import audio_packets, moving_frames, write_clip, write_sound_only

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
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert threading.active_count() == before and len(produced) <= 3 + 2 + 1


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
