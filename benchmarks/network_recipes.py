"""Training recipes of the fast network (issue 26), judged on held-out photos at 512 px.

    .venv/bin/python benchmarks/network_recipes.py --only start     # random vs identity start, same steps
    .venv/bin/python benchmarks/network_recipes.py --only from      # a new style added with `train --from`
    .venv/bin/python benchmarks/network_recipes.py --only models --models A.msgpack,B.msgpack

- start: `make model`'s recipe (128 px crops, batch 4, Adam 2e-3, Starry Night) trained --steps N
  from the papers' random start and from the identity start, each by the command line.
- models: committed models side by side (--models A,B,...), every style of the first, and the seconds
  per 512 px image of `fast.apply` (batch 1, median of 5 after a warm-up).
- from: `jaxstyle train NEW --from BASE` (default: the paper's Picasso onto the bundled three-painting
  model) for --from-steps steps: its seconds, and the held-out style ratio of the new style against
  the model's own.

The judge (as `fast_bench.py --only quality`): the paper's losses with jaxstyle's VGG-19, content
loss per pixel at conv4_2 against the photo, and the style ratio: the style loss of the output
over that of the unchanged photo, each against its painting resized to the photo. Held-out photos:
.photos/heldout (`make photos`) and the bundled Tübingen photo, none of them trained on.
Writes the block `recipes-SECTION` of docs/fast_benchmarks.md unless --no-doc.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import jax  # noqa: E402

from doc_blocks import write_block  # noqa: E402

from jaxstyle import losses  # noqa: E402
from jaxstyle.io import image_io, weights  # noqa: E402
from jaxstyle.nets import fast  # noqa: E402

DATA = ROOT / "jaxstyle" / "data"
RECIPE = ["--size", "128", "--batch-size", "4", "--learning-rate", "2e-3", "--quiet"]
SIZE = 512


class Judge:
    """Content loss per pixel and style ratio of a picture of a photo, against a painting."""

    def __init__(self):
        self.vgg = weights.load_params()
        self.parts = jax.jit(lambda p, x, t: losses.loss_parts(
            p, x, t, content_layer_weights={"conv4_2": 1.0},
            style_layer_weights=losses.equal_weights(losses.STYLE_LAYERS)))
        self.targets = jax.jit(lambda p, c, s: losses.make_targets(p, c, s))

    def __call__(self, photo, painting, picture) -> tuple[float, float]:
        h, w = photo.shape[:2]
        t = self.targets(self.vgg, photo, image_io.resize(painting, (h, w)))
        own = self.parts(self.vgg, photo, t)
        got = self.parts(self.vgg, image_io.resize(picture, (h, w)), t)
        return float(got.content) / (h * w), float(got.style) / float(own.style)


def photos() -> list[tuple[str, object]]:
    paths = sorted((ROOT / ".photos" / "heldout").glob("*.jpg")) + [DATA / "tubingen.jpg"]
    return [(p.stem, image_io.resize_longest(image_io.load_image(p), SIZE)) for p in paths]


def train(out: Path, *args: str, extra: Sequence[str] = ()) -> float:
    """Seconds of `jaxstyle train ARGS` with RECIPE, then `extra` (which overrides it)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jaxstyle", "train", *args, "--photos", str(ROOT / ".photos" / "train"),
                    "-o", str(out), *RECIPE, *extra], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def scores(judge: Judge, model_path: Path, style: str, painting) -> list[tuple[float, float]]:
    model = fast.load_model(model_path)
    return [judge(photo, painting, fast.apply(model, [photo], style_index=model.styles.index(style))[0])
            for _, photo in photos()]


def row(label: str, seconds: float | None, values: list[tuple[float, float]]) -> str:
    content = " / ".join(f"{c:.3g}" for c, _ in values)
    style = " / ".join(f"{s:.3f}" for _, s in values)
    median_style = statistics.median(s for _, s in values)
    took = f"{seconds / 60:.1f} min" if seconds is not None else "committed"
    return f"| {label} | {took} | {content} | {style} (median {median_style:.3f}) |"


def start(judge: Judge, steps: int, folder: Path) -> list[str]:
    starry = image_io.load_image(DATA / "starry_night.jpg")
    names = " / ".join(n for n, _ in photos())
    lines = [f"Held-out photos at {SIZE} px ({names}); `make model`'s recipe, Starry Night, --steps {steps}:", "",
             "| start | training | content per px | style ratio |", "|---|---|---|---|"]
    for how in ("random", "identity"):
        out = folder / f"{how}.msgpack"
        seconds = train(out, str(DATA / "starry_night.jpg"), "--steps", str(steps), "--start", how)
        lines.append(row(f"{how}, {steps} steps", seconds, scores(judge, out, "starry_night", starry)))
        print(lines[-1], flush=True)
    return lines


def from_model(judge: Judge, steps: int, folder: Path, base: Path, new_style: Path, extra: list[str]) -> list[str]:
    out = folder / "grown.msgpack"
    seconds = train(out, str(new_style), "--from", str(base), "--steps", str(steps), extra=extra)
    grown = fast.load_model(out)
    lines = [f"`jaxstyle train {new_style.name} --from {os.path.relpath(base, ROOT)} --steps {steps}"
             f"{''.join(' ' + a for a in extra)}` (`make model`'s recipe otherwise: 128 px crops, batch 4), "
             f"held-out photos at {SIZE} px:", "",
             "| style | training | content per px | style ratio |", "|---|---|---|---|"]
    own = []
    for name in grown.styles[:-1]:
        values = scores(judge, out, name, image_io.load_image(DATA / f"{name}.jpg"))
        own.append(statistics.median(s for _, s in values))
        lines.append(row(f"{name} (the model's own)", None, values))
    new = scores(judge, out, grown.styles[-1], image_io.load_image(new_style))
    lines += [row(f"{grown.styles[-1]} (added)", seconds, new), "",
              f"New style's median style ratio / the model's own (median of their medians): "
              f"{statistics.median(s for _, s in new) / statistics.median(own):.2f} (goal <= 1.2, in <= 10 min)."]
    print("\n".join(lines[-4:]), flush=True)
    return lines


def apply_seconds(model_path: Path, photo) -> float:
    model = fast.load_model(model_path)
    fast.apply(model, [photo])
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        fast.apply(model, [photo])
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def compare_models(judge: Judge, paths: list[Path]) -> list[str]:
    rel = lambda p: os.path.relpath(p, ROOT)  # noqa: E731
    first = fast.load_model(paths[0])
    names = " / ".join(n for n, _ in photos())
    lines = [f"Held-out photos at {SIZE} px ({names}); ms per image: `fast.apply`, one {SIZE}x{SIZE} crop, batch 1:",
             "", "| model | config | ms/image | style | content per px | style ratio |", "|---|---|---|---|---|---|"]
    crop = photos()[-1][1][:SIZE, :SIZE]
    for path in paths:
        model = fast.load_model(path)
        ms = 1e3 * apply_seconds(path, crop)
        config = f"width {model.config.width}, {model.config.residual_blocks} blocks"
        for name in first.styles:
            values = scores(judge, path, name, image_io.load_image(DATA / f"{name}.jpg"))
            median_style = statistics.median(s for _, s in values)
            lines.append(f"| `{rel(path)}` | {config} | {ms:.0f} | {name} | "
                         f"{' / '.join(f'{c:.3g}' for c, _ in values)} | "
                         f"{' / '.join(f'{s:.3f}' for _, s in values)} (median {median_style:.3f}) |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("start", "from", "models"), required=True)
    parser.add_argument("--models", default=None, help="models: comma-separated model files (the first's styles)")
    parser.add_argument("--steps", type=int, default=550, help="start: steps of each training (default: 550)")
    parser.add_argument("--from-steps", type=int, default=300, help="from: steps of the new style (default: 300)")
    parser.add_argument("--base", type=Path, default=fast.DEFAULT_MODEL, help="from: the model to extend")
    parser.add_argument("--new-style", type=Path, default=ROOT.parent / "shared" / "images" / "seated-nude.jpg",
                        help="from: the painting to add (default: the paper's Picasso, benchmarks only)")
    parser.add_argument("--from-args", default="", help="from: more `jaxstyle train` arguments, after the recipe's "
                        "(e.g. \"--learning-rate 1e-2\")")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    judge = Judge()
    with tempfile.TemporaryDirectory() as folder:
        if args.only == "models":
            lines = compare_models(judge, [Path(p) for p in (args.models or str(fast.DEFAULT_MODEL)).split(",")])
        elif args.only == "start":
            lines = start(judge, args.steps, Path(folder))
        else:
            lines = from_model(judge, args.from_steps, Path(folder), args.base, args.new_style, args.from_args.split())
    lines = [f"Measured {time.strftime('%Y-%m-%d')}, 2 CPU cores (`benchmarks/network_recipes.py --only "
             f"{args.only}`).", "", *lines]
    if not args.no_doc:
        write_block(f"recipes-{args.only}", lines, doc=ROOT / "docs" / "fast_benchmarks.md")


if __name__ == "__main__":
    main()
