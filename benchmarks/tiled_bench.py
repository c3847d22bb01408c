"""Tiled evaluation (issue 25): exactness against one pass, cost per pixel, and peak memory of whole runs.

    .venv/bin/python benchmarks/tiled_bench.py --only exact,speed      # ~40 min on 2 cores
    .venv/bin/python benchmarks/tiled_bench.py --only speed --speed-tiles 512,1024 --repeats 1
    .venv/bin/python benchmarks/tiled_bench.py --only memory --sizes 1024,2048,4096

- exact: the loss and gradient of `optim.tiled.loss_and_grad` against `jax.value_and_grad` of
  `losses.total_loss` over the whole image, at 1024x1024 and 1000x1500, tiles of 256 and 512
  (the real weights, the bundled photo and painting, a noisy start, TV on).
- speed: seconds per evaluation (loss and gradient) at --speed-shape, one pass against tiles
  of --speed-tiles: the median of --repeats after one that compiles.
- memory: peak resident memory (`/usr/bin/time -v`) of `jaxstyle stylize --steps 2` at each size,
  and its seconds; the estimate the command prints beside it.

Writes its figures to the block `tiled` of docs/benchmarks.md unless --no-doc.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from doc_blocks import write_block  # noqa: E402

from jaxstyle import losses, optim, vgg  # noqa: E402
from jaxstyle.io import image_io, weights  # noqa: E402
from jaxstyle.optim import tiled  # noqa: E402

DATA = ROOT / "jaxstyle" / "data"


def problem(shape):
    content = image_io.resize(image_io.load_image(DATA / "tubingen.jpg"), shape)
    style = image_io.resize(image_io.load_image(DATA / "starry_night.jpg"), shape)
    noise = np.random.default_rng(0).standard_normal(content.shape).astype(np.float32)
    return content, style, np.clip(content + 0.1 * noise, 0, 1)


def one_pass(params, settings, content, style):
    targets = losses.make_targets(params, jnp.asarray(content), [jnp.asarray(style)])
    cw, sw = settings.layer_weights()
    loss = lambda x: losses.total_loss(params, x, targets, settings.loss_weights(), content_layer_weights=cw,  # noqa: E731
                                       style_layer_weights=sw)
    return jax.jit(jax.value_and_grad(loss, has_aux=True))


def exact(params, settings) -> list[str]:
    """Tiled against one pass; beside it, one pass against itself at the image plus 1e-6 noise: the
    loss's gradient jumps where a ReLU's input crosses 0, so rounding alone moves single entries."""
    lines = ["| image | tile | tiles | loss, relative error | gradient: max error / max entry | gradient: relative L2 "
             "error | one pass at image + 1e-6 noise: max / max, relative L2 |", "|---|---|---|---|---|---|---|"]
    key = settings.program_key()
    for shape in ((1024, 1024), (1000, 1500)):
        content, style, image = problem(shape)
        program = one_pass(params, settings, content, style)
        (value, _), grad = program(jnp.asarray(image))
        value, grad = float(value), np.asarray(grad)
        noise = 1e-6 * np.random.default_rng(5).standard_normal(image.shape).astype(np.float32)
        jitter = np.asarray(program(jnp.asarray(image + noise))[1]) - grad
        own = f"{np.abs(jitter).max() / np.abs(grad).max():.1e}, {np.linalg.norm(jitter) / np.linalg.norm(grad):.1e}"
        del program
        for tile in (256, 512):
            targets = tiled.make_targets(params, content, [style], np.ones(1, np.float32), key, tile=tile)
            t_value, _, t_grad = tiled.loss_and_grad(params, image, targets, key, settings.loss_weights(),
                                                     settings.layer_weights(), tile=tile)
            n = len(tiled.plan(shape, tile, vgg.tile_halo([*key.content_layers, *key.style_layers])).tiles)
            lines.append(f"| {shape[1]}x{shape[0]} | {tile} | {n} | {abs(t_value - value) / abs(value):.1e} | "
                         f"{np.abs(t_grad - grad).max() / np.abs(grad).max():.1e} | "
                         f"{np.linalg.norm(t_grad - grad) / np.linalg.norm(grad):.1e} | {own} |")
            print(lines[-1], flush=True)
    return lines


def speed(params, settings, shape, tiles=(256, 512, 1024), repeats=3) -> list[str]:
    content, style, image = problem(shape)
    key = settings.program_key()
    pixels = shape[0] * shape[1]
    lines = [f"| {shape[1]}x{shape[0]} | s / evaluation (median of {repeats}) | us / px | x one pass |",
             "|---|---|---|---|"]
    program = one_pass(params, settings, content, style)
    jax.block_until_ready(program(jnp.asarray(image)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(program(jnp.asarray(image)))
        times.append(time.perf_counter() - t0)
    base = statistics.median(times)
    del program
    lines.append(f"| one pass | {base:.2f} | {1e6 * base / pixels:.2f} | 1.00 |")
    print(lines[-1], flush=True)
    for tile in tiles:
        targets = tiled.make_targets(params, content, [style], np.ones(1, np.float32), key, tile=tile)
        args = (params, image, targets, key, settings.loss_weights(), settings.layer_weights())
        tiled.loss_and_grad(*args, tile=tile)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            tiled.loss_and_grad(*args, tile=tile)
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        n = len(tiled.plan(shape, tile, vgg.tile_halo([*key.content_layers, *key.style_layers])).tiles)
        lines.append(f"| tiles of {tile} ({n}) | {t:.2f} | {1e6 * t / pixels:.2f} | {t / base:.2f} |")
        print(lines[-1], flush=True)
    return lines


def memory(sizes) -> list[str]:
    lines = ["| --size | steps | tiled | estimate printed | peak RSS | seconds |", "|---|---|---|---|---|---|"]
    for size in sizes:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "out.png"
            command = ["/usr/bin/time", "-v", sys.executable, "-m", "jaxstyle", "stylize", str(DATA / "tubingen.jpg"),
                       str(DATA / "starry_night.jpg"), "-o", str(out), "--size", str(size), "--steps", "2"]
            t0 = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            seconds = time.perf_counter() - t0
        if done.returncode:
            raise SystemExit(done.stderr[-2000:])
        peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) * 1024
        estimate = re.search(r"estimated memory ([\d.]+) GiB", done.stderr).group(1)
        shape = image_io.longest_side_shape((768, 1024), size)
        tile = optim.tile_for(shape, optim.Settings(size=size))
        lines.append(f"| {size} | 2 | {tile or 'no'} | {estimate} GiB | {peak / 2**30:.2f} GiB | {seconds:.0f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="exact,speed,memory")
    parser.add_argument("--speed-shape", default="2048,2048")
    parser.add_argument("--speed-tiles", default="256,512,1024", help="tile sides timed (default: 256,512,1024)")
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations each, after one that compiles")
    parser.add_argument("--sizes", default="1024,2048,4096")
    parser.add_argument("--weights", default=None, help="VGG-19 weights (default: weights/vgg19.h5)")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    only = set(args.only.split(","))
    settings = optim.Settings(tv_weight=1e-3)
    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {jax.devices()[0].device_kind}, 2 cores "
             f"(`benchmarks/tiled_bench.py --only {args.only}`)."]
    if only & {"exact", "speed"}:
        params = weights.load_params(args.weights or weights.default_weights_path())
    if "exact" in only:
        lines += ["", "Exactness: tiled against one pass (default layers, TV 1e-3):", "", *exact(params, settings)]
    if "speed" in only:
        shape = tuple(int(v) for v in args.speed_shape.split(","))
        lines += ["", "Cost of an evaluation (loss and gradient):", "",
                  *speed(params, settings, shape, tuple(int(t) for t in args.speed_tiles.split(",")), args.repeats)]
    if "memory" in only:
        lines += ["", "Peak memory of `jaxstyle stylize --steps 2` (the bundled photo, auto tiling):", "",
                  *memory([int(s) for s in args.sizes.split(",")])]
    if not args.no_doc:
        write_block(f"tiled-{'-'.join(sorted(only))}", lines)


if __name__ == "__main__":
    main()
