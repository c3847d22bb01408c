"""Reading and writing video files with PyAV (its wheels bundle FFmpeg: no system ffmpeg).

Frames cross the boundary as float32 RGB ``[h, w, 3]`` in ``[0, 1]``, as images do (`image_io`).

    info = video.probe(Path("clip.mp4"), frames=(0, 20))   # every bad input refused here, before any work
    for frame in video.read_frames(info, size=256): ...      # f32[h, w, 3], frames info.start .. info.stop - 1
    plan = video.plan_output(Path("out.mp4"), info, (h, w))  # the codec and audio, checked before any work
    video.write_video(plan, frames)                          # atomically, the audio copied unchanged

Written video: H.264 (libx264 "veryfast" at CRF 17; mpeg4 if the bundled FFmpeg lacks it; VP9 for .webm) in
yuv420p, so each side is cropped to an even number of pixels (one row or column at most), at the
input's frame rate; the input's first audio stream is copied packet for packet (remuxed, not
re-encoded) when the output container can hold its codec, else left out with a warning.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from jaxstyle import lazy
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io
from jaxstyle.io.files import atomic_path, check_output_path

av = lazy.module("av")  # FFmpeg is loaded by the video commands only (`jaxstyle.lazy`)

# The extensions written (and the FFmpeg muxer of each); the extensions taken as a video input
# (`is_video_path`): these and other video-only containers (an animated .gif stays an image).
FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".webm": "webm"}
VIDEO_EXTENSIONS = tuple(FORMATS)
INPUT_EXTENSIONS = (*VIDEO_EXTENSIONS, ".mpg", ".mpeg", ".ts", ".m2ts", ".mts", ".flv", ".wmv", ".3gp", ".ogv",
                    ".vob", ".mxf", ".y4m")
# x264 "veryfast" at CRF 17 against "medium" at CRF 18 (FFmpeg's default preset) on stylised frames at 256 px:
# 0.4-0.6x the encoding time, within 0.3 dB of the luma PSNR, -1% to +5% the size (docs/video.md).
_ENCODER_OPTIONS = {"libx264": {"crf": "17", "preset": "veryfast"}, "mpeg4": {"qscale": "2"},
                    "libvpx-vp9": {"crf": "30", "b": "0"}}


def is_video_path(path: Path) -> bool:
    """True for a file name ending in one of INPUT_EXTENSIONS (.mp4 .mov .mkv .webm .ts .mpg ...)."""
    return Path(path).suffix.lower() in INPUT_EXTENSIONS


def parse_frames(text: str) -> tuple[int, int | None]:
    """An argparse type: "A:B" -> (A, B), frames A to B - 1 (0-based); "A:" to the end, ":B" from 0."""
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError
        first, last = int(start) if start.strip() else 0, int(stop) if stop.strip() else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A:B (frames A to B-1, from 0), got {text!r}") from None
    if first < 0 or (last is not None and last <= first):
        raise argparse.ArgumentTypeError(f"expected 0 <= A < B in A:B, got {text!r}")
    return first, last


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """A probed video file and the frames chosen from it (`probe`)."""

    path: Path
    width: int
    height: int
    frames: int           # frames in the file's video stream
    rate: Fraction        # frames per second
    time_base: Fraction   # of the video stream's timestamps
    codec: str
    audio: str | None     # the first audio stream's codec, or None
    start: int            # the chosen frames: start .. stop - 1
    stop: int

    @property
    def count(self) -> int:
        """How many frames are chosen."""
        return self.stop - self.start

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "frames": self.frames, "rate": str(self.rate),
                "codec": self.codec, "audio": self.audio, "start": self.start, "stop": self.stop}


def probe(path: Path, *, frames: tuple[int, int | None] | None = None) -> VideoInfo:
    """Opens `path`, counts its video frames, decodes the first; checks the `frames` range (A, B).

    Raises:
      JaxstyleError: the file is missing, empty, not a video FFmpeg reads, has no video stream or no
        frames, its first frame does not decode, or the range is outside the clip.
    """
    path = Path(path)
    if path.is_dir():
        raise JaxstyleError(f"{path} is a folder; give the path of a video file.")
    if not path.is_file():
        raise JaxstyleError(f"Video file {path} does not exist; check the path.")
    if path.stat().st_size == 0:
        raise JaxstyleError(f"Video file {path} is empty; replace it with a valid video.")
    try:
        with av.open(str(path)) as container:
            if not container.streams:
                raise JaxstyleError(f"{path} holds no streams: a zero-length clip; give a video with frames.")
            if not container.streams.video:
                raise JaxstyleError(f"{path} holds no video stream (only {_stream_kinds(container)}); "
                                    f"give a video file.")
            stream = container.streams.video[0]
            count = stream.frames
            if not count:  # the container does not say (Matroska, WebM): count the packets
                count = sum(1 for p in container.demux(stream) if p.size)
                container.seek(0)
            if count == 0:
                raise JaxstyleError(f"{path} is a zero-length clip: its video stream holds no frames.")
            first = next(container.decode(stream), None)
            if first is None:
                raise JaxstyleError(f"{path}: the first video frame does not decode; re-export the clip.")
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
            info = VideoInfo(path, first.width, first.height, count, Fraction(rate), Fraction(stream.time_base),
                             stream.codec_context.name, audio, 0, count)
    except JaxstyleError:
        raise
    except av.error.EOFError:
        raise JaxstyleError(f"{path} ends before its first frame: a zero-length or truncated clip.") from None
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise JaxstyleError(f"{path} is not a video FFmpeg can read ({_reason(e)}); give a video file.") from None
    if frames is None:
        return info
    start, stop = frames
    stop = count if stop is None else stop
    if not 0 <= start < stop <= count:
        raise JaxstyleError(f"--frames {start}:{stop} is outside the clip {path}, which holds frames 0:{count}")
    return dataclasses.replace(info, start=start, stop=stop)


def _stream_kinds(container) -> str:
    return ", ".join(sorted({s.type for s in container.streams}))


def _reason(e: Exception) -> str:
    return (getattr(e, "strerror", None) or str(e)).strip().rstrip(".")


def read_frames(info: VideoInfo, *, size: int | None = None) -> Iterator[np.ndarray]:
    """Yields frames info.start .. info.stop - 1 as f32[h, w, 3] in [0, 1], in order; `size`: resized
    so the longest side is `size` px first (`frame_shape`), by Lanczos on the 8-bit frame after a box
    reduction to within 2x of the size (Pillow's reducing_gap=2: 4x faster than `image_io.resize` from
    720p, which resamples each channel in float; the two differ by ~0.4 of 8 bits on average).

    Raises:
      JaxstyleError: the clip ends before info.stop (its header promised more frames than decode).
    """
    index = -1
    with av.open(str(info.path)) as container:
        stream = container.streams.video[0]
        # FFmpeg's frame threads cost CPU that the network could use: on bikes.mp4's 640x272 frames 0.2 s
        # against 0.1 s in one thread, in the same time alone. Taken from 1080p up, where decoding can be
        # what the network waits for.
        if info.width * info.height > 1_000_000:
            stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index >= info.stop:
                break
            if index >= info.start:
                yield _frame_pixels(frame, frame_shape(info, size) if size else None)
    if index + 1 < info.stop:
        raise JaxstyleError(f"{info.path} decodes to {index + 1} frames, not the {info.frames} its header says; "
                            f"give --frames {info.start}:{index + 1} (or re-export the clip)")


def _frame_pixels(frame, shape: tuple[int, int] | None) -> np.ndarray:
    """A decoded frame as f32[h, w, 3] in [0, 1], resized to `shape` (h, w) if given and not its own."""
    # One thread for the colour conversion, as in `write_video`: FFmpeg's threaded swscale is not repeatable here.
    if shape is None or shape == (frame.height, frame.width):
        return frame.to_ndarray(format="rgb24", threads=1).astype(np.float32) / 255.0
    pixels = frame.to_ndarray(format="rgb24", threads=1)  # the same bytes as `to_image`, 0.07 ms against 0.5 (640x272)
    image = Image.fromarray(pixels).resize(shape[::-1], Image.Resampling.LANCZOS, reducing_gap=2.0)
    return np.asarray(image, np.float32) / 255.0


def frame_shape(info: VideoInfo, size: int | None) -> tuple[int, int]:
    """(h, w) of `read_frames(info, size=size)`'s frames."""
    return image_io.longest_side_shape((info.height, info.width), size) if size else (info.height, info.width)


@dataclasses.dataclass(frozen=True)
class OutputPlan:
    """How `write_video` writes a video (`plan_output`)."""

    path: Path
    format: str          # FFmpeg's muxer
    codec: str           # the video encoder
    height: int          # even sides: the frames are cropped to these
    width: int
    rate: Fraction
    audio_from: VideoInfo | None  # copy this file's audio for its chosen frames' time span; None: none


def plan_output(path: Path, info: VideoInfo, shape: tuple[int, int]) -> OutputPlan:
    """Chooses the muxer (from the extension), the encoder and whether the audio can be copied, and tries
    them on an empty video in memory: writes nothing.

    Raises:
      JaxstyleError: an extension that is no video container, a folder that is missing or read-only,
        or a container that cannot hold the encoder's video.
    """
    path = check_output_path(Path(path))
    fmt = FORMATS.get(path.suffix.lower()) or _muxer(path.suffix.lower())
    if fmt is None or fmt == "image2":
        raise JaxstyleError(f"Cannot write {path}: {path.suffix or '(no extension)'!r} is not a video container; "
                            f"use one of {', '.join(VIDEO_EXTENSIONS)}.")
    codec = _encoder(fmt)
    h, w = shape[0] // 2 * 2, shape[1] // 2 * 2
    if min(h, w) < 2:
        raise JaxstyleError(f"Cannot write {path}: frames of {shape[0]}x{shape[1]} px are too small for video")
    plan = OutputPlan(path, fmt, codec, h, w, info.rate, None)
    try:
        _empty_video(dataclasses.replace(plan, height=64, width=64), None)
    except (av.error.FFmpegError, ValueError) as e:
        raise JaxstyleError(f"Cannot write {path}: the {fmt} container cannot hold {codec} video ({_reason(e)}); "
                            f"use .mp4 or .mkv.") from None
    try:
        _empty_video(plan, None)
    except (av.error.FFmpegError, ValueError) as e:
        raise JaxstyleError(f"Cannot write {path}: {codec} cannot encode frames of {w}x{h} px ({_reason(e)}); "
                            f"choose a smaller --size.") from None
    if info.audio is None:
        return plan
    try:
        _empty_video(plan, info)
    except (av.error.FFmpegError, ValueError):
        print(f"jaxstyle: warning: the {fmt} container of {path} cannot hold the input's {info.audio} audio; "
              f"the video is written without sound (.mp4 or .mkv keep it)", file=sys.stderr)
        return plan
    return dataclasses.replace(plan, audio_from=info)


def _muxer(extension: str) -> str | None:
    """The FFmpeg muxer that writes files ending in `extension` (".ts": "mpegts"), or None."""
    for name in sorted(av.formats_available):
        try:
            if extension[1:] in av.format.ContainerFormat(name, "w").extensions:
                return name
        except ValueError:  # a demuxer only
            continue
    return None


def _encoder(fmt: str) -> str:
    wanted = ("libvpx-vp9",) if fmt == "webm" else ("libx264", "mpeg4")
    for name in wanted:
        try:
            av.codec.Codec(name, "w")
            return name
        except (av.error.FFmpegError, ValueError):
            continue
    raise JaxstyleError(f"this FFmpeg build has none of the encoders {', '.join(wanted)}; reinstall av")


def _open_streams(container, plan: OutputPlan, audio_source):
    """Adds the video stream and, from the open input `audio_source`, a copy of its audio stream."""
    stream = container.add_stream(plan.codec, rate=plan.rate, options=_ENCODER_OPTIONS.get(plan.codec, {}))
    stream.width, stream.height, stream.pix_fmt = plan.width, plan.height, "yuv420p"
    audio = container.add_stream_from_template(audio_source.streams.audio[0]) if audio_source else None
    return stream, audio


def _empty_video(plan: OutputPlan, audio_from: VideoInfo | None) -> None:
    with av.open(io.BytesIO(), "w", format=plan.format) as out:
        source = av.open(str(audio_from.path)) if audio_from else None
        try:
            _open_streams(out, plan, source)
            out.start_encoding()
        finally:
            if source is not None:
                source.close()


def write_video(plan: OutputPlan, frames: Iterable[np.ndarray], *, scratch: Path | None = None) -> None:
    """Encodes `frames` (f32[h, w, 3] in [0, 1], or u8, cropped to plan's even sides) at plan.rate into plan.path,
    atomically, with the input's audio of the chosen frames' time span copied unchanged (`plan.audio_from`).
    scratch: the folder of the file while it is written (default: beside the output), on the same file system;
    an error while taking `frames` leaves nothing there."""
    with atomic_path(plan.path, folder=scratch) as temp:
        source = av.open(str(plan.audio_from.path)) if plan.audio_from else None
        try:
            with av.open(str(temp), "w", format=plan.format) as out:
                stream, audio = _open_streams(out, plan, source)
                for index, image in enumerate(frames):
                    pixels = image_io.to_uint8(image[:plan.height, :plan.width])
                    # Converted here in one thread: PyAV's own conversion in the encoder uses FFmpeg's threaded
                    # swscale, with which the same frames encoded differently about one run in four.
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24").reformat(
                        format="yuv420p", threads=1)
                    frame.pts = index
                    out.mux(stream.encode(frame))
                out.mux(stream.encode(None))
                if audio is not None:
                    _copy_audio(source, audio, plan.audio_from, out)
        finally:
            if source is not None:
                source.close()


def _copy_audio(source, audio, info: VideoInfo, out) -> None:
    """Remuxes the audio packets whose time lies in the chosen frames' span, shifted to start at 0."""
    stream = source.streams.audio[0]
    t0, t1 = Fraction(info.start) / info.rate, Fraction(info.stop) / info.rate
    whole = info.start == 0 and info.stop == info.frames
    first = stream.start_time or 0
    shift = round(t0 / stream.time_base)
    for packet in source.demux(stream):
        if packet.dts is None or packet.pts is None:
            continue
        t = (packet.pts - first) * stream.time_base
        if whole or t0 <= t < t1:
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = audio
            out.mux(packet)
