"""Renders the gallery: the Tübingen photograph in the style of each bundled painting.

    .venv/bin/python docs/make_gallery.py                  # 512 px, library defaults otherwise
    .venv/bin/python docs/make_gallery.py --size 256 --steps 20 --out /tmp/gallery

Writes <out>/tubingen_<style>.jpg and, beside the <out> folder, <out>.md: a table with each
picture, its settings, final losses, steps and seconds, and the machine and date of the run.
Everything goes through the Python API with the library's defaults, except the size and the
number of coarse-to-fine scales.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from pathlib import Path

import jax

import jaxstyle
from jaxstyle import Settings, data_path, enable_compilation_cache, load_image, load_params, save_image, stylize
from jaxstyle.io.files import file_sha256
from jaxstyle.io.weights import default_weights_path
from jaxstyle.optim import scale_sizes

CONTENT = "tubingen"
STYLES = ("starry_night", "the_scream", "shipwreck")
TITLES = {
    "starry_night": "Vincent van Gogh, *The Starry Night* (1889)",
    "the_scream": "Edvard Munch, *The Scream* (1893)",
    "shipwreck": "J. M. W. Turner, *The Shipwreck of the Minotaur* (c. 1810)",
}
JPEG_QUALITY = 85


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="longest side in px (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=defaults.steps,
                        help="L-BFGS steps per scale (default: the library's, %(default)s)")
    # Departure from the library default (1): a 256 px pass first makes 512 px affordable on a CPU.
    parser.add_argument("--scales", type=int, default=2, help="coarse-to-fine scales (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"), help="image folder (default: %(default)s)")
    parser.add_argument("--weights", type=Path, default=None, help="VGG-19 weights (default: weights/vgg19.h5)")
    return parser.parse_args(argv)


def changed_settings(settings: Settings) -> dict:
    """The fields that differ from the library defaults."""
    defaults = Settings().to_dict()
    return {k: v for k, v in settings.to_dict().items() if defaults[k] != v}


def markdown(rows: list[dict], settings: Settings, *, out: Path, page: Path, weights: Path,
             total_seconds: float) -> str:
    changed = ", ".join(f"`{k}={v}`" for k, v in changed_settings(settings).items()) or "none"
    link = os.path.relpath(out, page.parent)
    lines = [
        "# Gallery",
        "",
        f"The Tübingen photograph (`{CONTENT}.jpg`) in the style of each painting bundled with jaxstyle,",
        "rendered by `docs/make_gallery.py` through the Python API with the library defaults except",
        f"{changed}. Re-run with `.venv/bin/python docs/make_gallery.py`.",
        "",
        "| picture | style | settings | content loss | style loss | steps | evaluations | seconds |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| ![{row['style']}]({link}/{row['file']}) | {TITLES[row['style']]} | {changed} "
            f"| {row['content']:.4g} | {row['style_loss']:.4g} | {row['steps']} | {row['evaluations']} "
            f"| {row['seconds']:.0f} |")
    sizes = " then ".join(f"{s} px" for s in scale_sizes(settings))
    lines += [
        "",
        f"Content loss is the paper's L_content (unweighted), style loss its L_style; alpha/beta = "
        f"{settings.content_weight / settings.style_weight:g}. Steps count L-BFGS steps over all scales "
        f"({sizes}, {settings.steps} each); evaluations count loss evaluations including the line search; "
        "seconds are the optimisation loop, including compiling the step unless the persistent compilation "
        "cache (`~/.cache/jaxstyle/jit`) already held it; loading and computing the targets are excluded.",
        "",
        "## Settings (all rows)",
        "",
        "| setting | value |",
        "| --- | --- |",
    ]
    lines += [f"| `{k}` | `{v}` |" for k, v in settings.to_dict().items()]
    lines += [
        "",
        "## Run",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"JAX backend `{jax.default_backend()}`",
        f"- jaxstyle {jaxstyle.__version__}, jax {jax.__version__}, Python {platform.python_version()}",
        f"- weights: `{weights.name}`, SHA-256 `{file_sha256(weights)}`",
        f"- total wall time: {total_seconds / 60:.1f} min",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(size=args.size, steps=args.steps, scales=args.scales)
    enable_compilation_cache()
    weights = args.weights or default_weights_path()
    params = load_params(weights)
    content = load_image(data_path(f"{CONTENT}.jpg"))
    args.out.mkdir(parents=True, exist_ok=True)
    rows, start = [], datetime.datetime.now()
    for style in STYLES:
        result = stylize(params, content, load_image(data_path(f"{style}.jpg")), settings)
        name = f"{CONTENT}_{style}.jpg"
        save_image(args.out / name, result.image, quality=JPEG_QUALITY)
        rows.append(dict(style=style, file=name, content=float(result.content), style_loss=float(result.style),
                         steps=result.steps, evaluations=result.evaluations, seconds=result.seconds))
        print(f"{name}: content {result.content:.4g}, style {result.style:.4g}, {result.steps} steps, "
              f"{result.seconds:.0f} s", flush=True)
    page = args.out.with_suffix(".md")
    total = (datetime.datetime.now() - start).total_seconds()
    page.write_text(markdown(rows, settings, out=args.out, page=page, weights=weights,
                                   total_seconds=total), encoding="utf-8")
    print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except jaxstyle.JaxstyleError as error:
        raise SystemExit(f"make_gallery: {error}") from None
