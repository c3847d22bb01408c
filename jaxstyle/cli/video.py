"""Video commands. The networks: `jaxstyle apply CLIP.mp4 -o OUT.mp4`, `jaxstyle cyclegan apply MODEL CLIP.mp4
-o OUT.mp4`; the optimisation: `jaxstyle video CLIP STYLE -o OUT.mp4`.

The image commands' skeleton (`cli.networks._apply`) hands a single video input to `apply_video` with its
family's parts (`check`, `paint`, `record`). Both kinds of run check the clip and the output before any
work, paint the frames into OUT.mp4.frames/ (a killed run resumes at its last finished frame), then
write the video with the input's frame rate and audio, and its sidecar OUT.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxstyle import optim, runtime
from jaxstyle.cli import stylize as cli_stylize
from jaxstyle.cli.options import (add_cache_option, at_least, load_params, number, sidecar_outputs, step_bar,
                                  weights_file)
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import background, files, image_io, sidecars, video
from jaxstyle.io.frames import FramesFolder
from jaxstyle.video import temporal

# gamma of `jaxstyle video`, chosen on carphone.mp4 (docs/video.md): Ruder et al.'s 200 is in their
# normalisation of the losses (about 7e4 in ours), which held the style back 1.2x more than frames alone.
DEFAULT_TEMPORAL_WEIGHT = 5e3


def add_frames_option(parser) -> None:
    parser.add_argument("--frames", type=video.parse_frames, default=None, metavar="A:B",
                        help="for a video input: paint only its frames A to B-1, counted from 0 "
                             "(A: or :B for open ends; default: all)")


def add_smooth_option(parser) -> None:
    parser.add_argument("--smooth", type=_smooth_strength, default=0.0, metavar="S",
                        help="for a video input: blend each frame with the previous result carried along the "
                             "optical flow, where the flow is trusted, by S in [0, 1) (0.5 halves the flicker "
                             "a frame adds; moving things leave no ghost); default: 0, each frame as painted")


def _smooth_strength(text: str) -> float:
    value = number(0)(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be below 1 (1 would repeat the first frame), got {text}")
    return value


def is_video_input(inputs: Sequence[Path], frames: tuple | None = None, smooth: float = 0.0) -> bool:
    """True when `inputs` is one video file (by its extension: `video.INPUT_EXTENSIONS`); a video among
    several inputs, or --frames (`frames`) or --smooth for images, is refused."""
    videos = [p for p in inputs if video.is_video_path(p) and not Path(p).is_dir()]
    if videos and len(inputs) > 1:
        raise JaxstyleError(f"{videos[0]} is a video: give it alone (one video per run), not with other inputs")
    for option, given in (("--frames", frames is not None), ("--smooth", smooth > 0)):
        if not videos and given:
            raise JaxstyleError(f"{option} is for a video input ({', '.join(video.VIDEO_EXTENSIONS)}, ...); "
                                f"{inputs[0]} is not one")
    return bool(videos)


def add_video_parser(sub) -> None:
    p = sub.add_parser("video", help="stylise a video by optimisation, each frame started from the previous "
                                     "output carried along the optical flow and held to it where the flow is "
                                     "trusted (Ruder et al. 2016)")
    p.add_argument("video", type=Path, metavar="CLIP", help="video file (any format FFmpeg reads)")
    p.add_argument("style", type=Path, metavar="STYLE", help="style image")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help=f"output video ({', '.join(video.VIDEO_EXTENSIONS)})")
    p.add_argument("--steps-next", type=at_least(0), default=None, metavar="N",
                   help="optimisation steps of every frame after the first, which starts from the previous "
                        "output warped by the optical flow (default: --steps / 4)")
    p.add_argument("--temporal-weight", type=number(0), default=DEFAULT_TEMPORAL_WEIGHT, metavar="GAMMA",
                   help="weight of Ruder et al.'s temporal loss, the summed squared distance to the earlier "
                        "output(s) carried along the flow where it is trusted, beside --content-weight and "
                        "--style-weight; "
                        f"0: only the warped start (default: {DEFAULT_TEMPORAL_WEIGHT:g})")
    p.add_argument("--long-term", type=_frame_distances, default=temporal.SHORT_TERM, metavar="J,J,...",
                   help="the temporal loss looks back these many frames, each pixel to the nearest it can be traced "
                        "to (Ruder et al.'s long-term loss, e.g. 1,10,20,40; default: 1, the previous frame only)")
    p.add_argument("--passes", type=at_least(0), default=0, metavar="N",
                   help="multi-pass: after each --window frames are painted, N more passes of --steps-next steps "
                        "optimise them together (one batch), each held to both neighbours (default: 0)")
    p.add_argument("--window", type=at_least(2), default=8, metavar="W",
                   help="frames per multi-pass batch (default: 8); a killed run resumes at a window's start")
    add_frames_option(p)
    cli_stylize._add_settings_options(p)
    out = p.add_argument_group("output")
    out.add_argument("--weights", type=Path, default=None,
                     help="converted VGG-19 weights (default: weights/vgg19.h5 or $JAXSTYLE_WEIGHTS)")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    add_cache_option(out)


def _frame_distances(text: str) -> tuple[int, ...]:
    try:
        distances = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        distances = ()
    if not distances or distances[0] < 1:
        raise argparse.ArgumentTypeError(f"expected frame distances >= 1 separated by commas (e.g. 1,10,20), "
                                         f"got {text!r}")
    return distances


def _video_output(path: Path) -> None:
    if path.is_dir() or not path.suffix:
        raise JaxstyleError(f"-o {path}: for a video input give a video file name "
                            f"({', '.join(video.VIDEO_EXTENSIONS)})")


def run_video(args: argparse.Namespace) -> int:
    """`jaxstyle video`: frame 0 as `stylize` paints it; frame t from warp(O_{t-1}) with --steps-next steps and
    the temporal loss."""

    settings = cli_stylize._settings_from(args)
    if args.mask:
        raise JaxstyleError("--mask is not available for video yet")
    info = video.probe(args.video, frames=args.frames)
    _video_output(args.output)
    [first] = video.read_frames(dataclasses.replace(info, stop=info.start + 1))
    style, _, style_inputs = cli_stylize._styles_and_masks(args, [first])
    shape = image_io.longest_side_shape(first.shape[:2], settings.size)
    plan = video.plan_output(args.output, info, shape)
    steps_next = max(1, settings.steps // 4) if args.steps_next is None else args.steps_next
    inputs = {"video": args.video, **style_inputs}
    run = {"command": "jaxstyle video", "inputs": cli_stylize._fingerprints(inputs), "settings": settings.to_dict(),
           "steps_next": steps_next, "temporal_weight": args.temporal_weight, "long_term": list(args.long_term),
           "passes": args.passes, "window": args.window if args.passes else None,
           "frames": [info.start, info.stop]}
    folder = FramesFolder(plan.path, run)
    named = [(f"the {name.replace('_', ' ')}", path) for name, path in inputs.items()]
    if settings.init not in optim.INITS:
        named.append(("the --init image", Path(settings.init)))
    files.check_outputs([*sidecar_outputs([plan.path]), ("the frames folder", folder.path)],
                        [*named, ("the weights", weights_file(args))])
    folder.check()
    params, weights_path = load_params(args)
    cli_stylize._print_memory_estimate([first], settings, quiet=args.quiet)
    runtime.enable_compilation_cache(args.cache_dir)

    done = folder.open()
    history = []  # (the frames just before, at the output's shape; their outputs as saved), oldest first
    if done:
        print(f"jaxstyle video: resuming at frame {done} of {info.count} ({folder.path})", file=sys.stderr)
        back = min(done, max(args.long_term))
        before = video.read_frames(dataclasses.replace(info, start=info.start + done - back, stop=info.start + done))
        history = [(image_io.resize(frame, shape), folder.load(index))
                   for index, frame in zip(range(done - back, done), before)]
    t0, losses = time.perf_counter(), []
    bar = None if args.quiet else step_bar(info.count, done, unit="frame")
    try:
        frames = video.read_frames(dataclasses.replace(info, start=info.start + done))
        results = temporal.stylize_frames(params, frames, style, settings, steps_next=steps_next,
                                          temporal_weight=args.temporal_weight, long_term=args.long_term,
                                          passes=args.passes, window=args.window, history=history)
        for index, result in enumerate(results, done):
            if result.failure:
                raise optim.NonFiniteLoss(f"frame {index}: {result.failure}", result)
            folder.save(index, result.image)
            losses.append(float(result.total))
            if bar is not None:
                bar.set_postfix_str(f"loss {losses[-1]:.4g}")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    video.write_video(plan, folder.frames(info.count))
    sidecars.write_sidecar(plan.path, {**run, "inputs": {k: sidecars.file_record(v) for k, v in inputs.items()},
                                       "weights": sidecars.file_record(weights_path), "video": info.to_dict(),
                                       "codec": plan.codec, "audio_copied": plan.audio_from is not None,
                                       "resumed_at_frame": done, "final_losses_this_run": losses,
                                       "seconds_this_run": round(seconds, 3)})
    folder.remove()
    print(plan.path)
    return 0


def apply_video(args: argparse.Namespace, source: Path, *, command: str, check: Callable[..., Any],
                paint: Callable[..., list[np.ndarray]], record: Mapping[str, Any]) -> int:
    """Checks the clip (`video.probe`, --frames), the output (`video.plan_output`, its sidecar, its frames
    folder) and `check(frames, size=, batch_size=, tile=)` (returns the peak bytes estimated, or None) before
    any work; then paints the frames with `paint(frames, size=, batch_size=, tile=)` in batches (two at once
    in threads where memory allows) into the frames folder, resuming it, and writes the video and its sidecar."""
    info = video.probe(source, frames=args.frames)
    size = args.size or None
    _video_output(args.output)
    plan = video.plan_output(args.output, info, video.frame_shape(info, size))
    run = {**record, "command": command, "input": sidecars.file_record(source), "frames": [info.start, info.stop],
           "size": args.size, "tile": args.tile, "smooth": args.smooth}
    folder = FramesFolder(plan.path, run)
    files.check_outputs([*sidecar_outputs([plan.path]), ("the frames folder", folder.path)],
                        [("the input video", source), ("the model", args.model)])
    folder.check()
    runtime.enable_compilation_cache(args.cache_dir)
    batch = min(args.batch_size, info.count)
    shape = video.frame_shape(info, size)  # resized by the decoder (`video.read_frames`), painted as they come
    done = folder.finished()
    # Decoding starts now, on the core that tracing and compiling leave idle: up to ~128 MB of frames ahead.
    ahead = max(2 * batch, min(256, 2**27 // (shape[0] * shape[1] * 12)))
    frames = background.prefetch(video.read_frames(dataclasses.replace(info, start=info.start + done), size=size),
                                 ahead=ahead)
    bar = None
    try:
        need = check([np.broadcast_to(np.zeros(3, np.float32), (*shape, 3))] * batch,  # the shape, no memory
                     size=None, batch_size=batch, tile=args.tile)
        # Two batches at once where their memory fits twice (`background.map_ahead`), else one.
        in_flight = 2 if need is None or 2 * need <= runtime.available_memory_bytes() else 1
        if folder.open() != done:
            raise JaxstyleError(f"{folder.path} changed while this run started; is another run writing it?")
        previous = None  # (the last result, its frame) for --smooth
        if done:
            print(f"{command}: resuming at frame {done} of {info.count} ({folder.path})", file=sys.stderr)
            if args.smooth:
                [before] = video.read_frames(dataclasses.replace(info, start=info.start + done - 1,
                                                                 stop=info.start + done), size=size)
                previous = (folder.load(done - 1), before)

        def chunks():  # (the first frame's index, the frames), batch by batch
            for first in range(done, info.count, batch):
                yield first, list(itertools.islice(frames, batch))

        def paint_chunk(item):
            first, chunk = item
            padded = chunk + chunk[-1:] * (batch - len(chunk))  # one shape, one compiled program
            return first, chunk, paint(padded, size=None, batch_size=batch, tile=args.tile)[:len(chunk)]

        t0 = time.perf_counter()
        bar = None if args.quiet else step_bar(info.count, done, unit="frame")
        # The video is encoded as the frames come (in the frames folder until it is complete), and each
        # frame is kept there too (`FramesFolder`), for a resumed run.
        # On an error both stop: the frames saved so far stay, the partial video is removed.
        painting = background.map_ahead(paint_chunk, chunks(), in_flight=in_flight)
        with contextlib.closing(painting), background.Pipe(folder.save_all) as saving, \
                background.Pipe(lambda images: video.write_video(plan, images, scratch=folder.path)) as encoding:
            for image in folder.frames(done):
                encoding.put(image)
            for first, chunk, painted in painting:
                if args.smooth:
                    painted = list(temporal.smoothed(painted, chunk, args.smooth, previous=previous))
                    previous = (painted[-1], chunk[-1])
                for index, image in enumerate(painted):
                    image = image_io.to_uint8(image)  # once, for both
                    saving.put((first + index, image))
                    encoding.put(image)
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        frames.close()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
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
