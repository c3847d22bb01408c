"""Networks on video: `jaxstyle apply CLIP.mp4 -o OUT.mp4` and `jaxstyle cyclegan apply MODEL CLIP.mp4 -o OUT.mp4`.

The image commands' skeleton (`cli.networks._apply`) hands a single video input here with its family's
parts (`check`, `paint`, `record`): the clip and the output are checked before any work, the frames
are painted in batches of --batch-size into OUT.frames/ (a killed run resumes at its last finished
frame), then the video is written with the input's frame rate and audio, and its sidecar OUT.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxstyle import runtime
from jaxstyle.cli.options import sidecar_outputs, step_bar
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import files, sidecars, video
from jaxstyle.io.frames import FramesFolder


def add_frames_option(parser) -> None:
    parser.add_argument("--frames", type=video.parse_frames, default=None, metavar="A:B",
                        help="for a video input: paint only its frames A to B-1, counted from 0 "
                             "(A: or :B for open ends; default: all)")


def is_video_input(inputs: Sequence[Path]) -> bool:
    """True when `inputs` is one video file (by its extension: `video.VIDEO_EXTENSIONS`); a video among
    several inputs is refused."""
    videos = [p for p in inputs if video.is_video_path(p) and not Path(p).is_dir()]
    if videos and len(inputs) > 1:
        raise JaxstyleError(f"{videos[0]} is a video: give it alone (one video per run), not with other inputs")
    return bool(videos)


def apply_video(args: argparse.Namespace, source: Path, *, command: str, check: Callable[..., Any],
                paint: Callable[..., list[np.ndarray]], record: Mapping[str, Any]) -> int:
    """Checks the clip (`video.probe`, --frames), the output (`video.plan_output`, its sidecar, its frames
    folder) and `check(frames, size=, batch_size=, tile=)` before any work; then paints the frames with
    `paint(frames, size=, batch_size=, tile=)` in batches into the frames folder, resuming it, and writes
    the video and its sidecar."""
    info = video.probe(source, frames=args.frames)
    size = args.size or None
    if args.output.is_dir() or not args.output.suffix:
        raise JaxstyleError(f"-o {args.output}: for a video input give a video file name "
                            f"({', '.join(video.VIDEO_EXTENSIONS)})")
    plan = video.plan_output(args.output, info, video.frame_shape(info, size))
    run = {**record, "command": command, "input": sidecars.file_record(source), "frames": [info.start, info.stop],
           "size": args.size, "tile": args.tile}
    folder = FramesFolder(plan.path, run)
    files.check_outputs([*sidecar_outputs([plan.path]), ("the frames folder", folder.path)],
                        [("the input video", source), ("the model", args.model)])
    folder.check()
    runtime.enable_compilation_cache(args.cache_dir)
    batch = min(args.batch_size, info.count)
    check([np.zeros((info.height, info.width, 3), np.float32)] * batch, size=size, batch_size=batch, tile=args.tile)

    done = folder.open()
    if done:
        print(f"{command}: resuming at frame {done} of {info.count} ({folder.path})", file=sys.stderr)
    t0 = time.perf_counter()
    bar = None if args.quiet else step_bar(info.count, done, unit="frame")
    try:
        frames = video.read_frames(dataclasses.replace(info, start=info.start + done))
        for first in range(done, info.count, batch):
            chunk = list(itertools.islice(frames, batch))
            padded = chunk + chunk[-1:] * (batch - len(chunk))  # one shape, one compiled program
            for index, image in enumerate(paint(padded, size=size, batch_size=batch, tile=args.tile)[:len(chunk)]):
                folder.save(first + index, image)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    video.write_video(plan, folder.frames(info.count))
    sidecars.write_sidecar(plan.path, {**run, "video": info.to_dict(), "codec": plan.codec,
                                       "audio_copied": plan.audio_from is not None, "resumed_at_frame": done,
                                       "seconds_painting_this_run": round(seconds, 3)})
    folder.remove()
    print(plan.path)
    if not args.quiet:
        painted = info.count - done
        print(f"{command}: {painted} frame(s) in {seconds:.2f} s, {painted / max(seconds, 1e-9):.2f} frames/s "
              f"(compilation included)", file=sys.stderr)
    return 0
