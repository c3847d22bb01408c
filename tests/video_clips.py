"""Tiny test clips written with PyAV directly (not through jaxstyle.io.video): lossless RGB frames
(FFV1 in Matroska) or H.264 in MP4, with or without an AAC sine tone; a file with sound only; a clip
with a video stream and no frames. And for the video tests: `record_encoded` (the frames a command hands
to the encoder) and `luma_close` (decoded frames against expected ones, within the codec's loss)."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601: what 4:2:0 H.264 keeps at full resolution


def moving_frames(count: int = 8, height: int = 32, width: int = 48, seed: int = 0) -> list[np.ndarray]:
    """u8[h, w, 3] frames of a smooth random texture moving 1 px right per frame."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height, width + count, 3)).astype(np.float32)
    for _ in range(8):  # smoothed, so optical flow and 4:2:0 codecs see structure, not noise
        texture = (texture + np.roll(texture, 1, 0) + np.roll(texture, 1, 1) + np.roll(texture, (1, 1), (0, 1))) / 4
    texture = (texture - texture.min()) / (texture.max() - texture.min()) * 255
    return [texture[:, count - t:count - t + width].astype(np.uint8) for t in range(count)]


def write_clip(path: Path, frames, *, rate=Fraction(25), audio: bool = False, lossless: bool = False) -> Path:
    """Writes u8[h, w, 3] `frames` (lossless: FFV1 in RGB, for a .mkv) at `rate` fps, with 1 s of a
    440 Hz AAC tone if `audio`."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("ffv1" if lossless else "libx264", rate=rate)
        video.height, video.width = frames[0].shape[:2] if frames else (32, 48)
        video.pix_fmt = "bgr0" if lossless else "yuv420p"
        sound = out.add_stream("aac", rate=44100) if audio else None
        out.start_encoding()  # the header, even for a clip of no frames
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            _tone(out, sound)
    return path


def write_sound_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        _tone(out, out.add_stream("aac", rate=44100))
    return path


def _tone(out, sound, seconds: float = 1.0) -> None:
    samples = np.sin(2 * np.pi * 440 * np.arange(int(44100 * seconds)) / 44100).astype(np.float32)
    for start in range(0, len(samples), 1024):
        frame = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 44100, start
        out.mux(sound.encode(frame))
    out.mux(sound.encode(None))


def audio_packets(path: Path) -> list[bytes]:
    """The bytes of every packet of the file's first audio stream."""
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def record_encoded(monkeypatch) -> dict[str, list[np.ndarray]]:
    """Spies on `jaxstyle.io.video.write_video`: {output file name: the u8[h, w, 3] frames given to the
    encoder, in order, by the last run to write it}, filled as the commands run.

    A resume test compares these exactly, and the decoded files only within the codec's loss: in a
    process that has run JAX, x264 now and then encodes the same frames (identical RGB and YUV input, one
    encoder thread too) into other bytes, about 1 run in 5 to 20 under load on this 48x32 clip."""
    from jaxstyle.io import image_io, video

    encoded, real = {}, video.write_video

    def spy(plan, frames, **kwargs):
        kept = encoded[plan.path.name] = []  # the last run to write the file

        def recorded():
            for image in frames:
                kept.append(image_io.to_uint8(np.asarray(image)[:plan.height, :plan.width]))
                yield image

        return real(plan, recorded(), **kwargs)

    monkeypatch.setattr(video, "write_video", spy)
    return encoded


def luma_close(video_frames, expected):
    """Each decoded frame is its expected frame within the codec's loss (a noise-like picture, as a
    random network paints, comes back about 0.02 off in mean luma from x264 alone), and nearer it than
    any other (the order)."""
    assert len(video_frames) == len(expected) and video_frames[0].shape == expected[0].shape
    errors = np.array([[np.abs(got @ LUMA - want @ LUMA).mean() for want in expected] for got in video_frames])
    assert (np.diag(errors) < 0.03).all(), errors
    assert (np.argmin(errors, axis=1) == np.arange(len(errors))).all(), errors
