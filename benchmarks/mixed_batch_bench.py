"""Mixed batches (issue 11): any styles, weights, seeds and shapes in full batches, beside the code before.

    python benchmarks/mixed_batch_bench.py [--before COMMIT] [--quick]

Four measurements, each in fresh processes, printed as Markdown; a full run replaces its block of docs/benchmarks.md:

1. `jaxstyle batch` on 9 contents of different aspect ratios x 2 styles (18 jobs) against 16 jobs of
   one shape, 128 px, 20 steps, one device, each from an empty compilation cache (whole process).
2. 12 jobs (2 contents x 2 styles x 3 seeds, 64 px, 20 steps) on 8 simulated CPU devices.
3. A batch of 8 mixed jobs (styles, seeds, alpha/beta; one shape) against 8 single `stylize` runs,
   128 px, in one process, compile excluded.
4. Single-image `stylize` at 256 px, alternating processes, compile excluded.
5. With the real weights: images of three shapes in one batch against each alone (pixels, the last
   row and column, losses), and the masked loss in a padded canvas against the paper's loss.

Runs 1, 2 and 4 also run the code of --before (default: the commit before the redesign) from a git
worktree, on the same inputs, alternating with this code.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "jaxstyle" / "data"
WEIGHTS = ROOT / "weights" / "vgg19.h5"
BEFORE = "dfdc23d"  # the last commit before issue 11's redesign
RATIOS = [(1, 2), (9, 16), (2, 3), (3, 4), (1, 1), (4, 3), (3, 2), (16, 9), (2, 1)]  # width : height


def crop(image: Image.Image, aspect: float, shift: float = 0.5) -> Image.Image:
    """The largest crop of `image` with width/height = aspect, placed at `shift` along the free axis."""
    w, h = image.size
    if w / h > aspect:
        cw = round(h * aspect)
        x = round((w - cw) * shift)
        return image.crop((x, 0, x + cw, h))
    ch = round(w / aspect)
    y = round((h - ch) * shift)
    return image.crop((0, y, w, y + ch))


def make_inputs(folder: Path) -> dict[str, Path]:
    """Contents, styles and the manifests of measurements 1 and 2."""
    tubingen = Image.open(DATA / "tubingen.jpg").convert("RGB")
    styles = {"starry": DATA / "starry_night.jpg", "scream": DATA / "the_scream.jpg"}
    mixed, one_shape = [], []
    for a, b in RATIOS:
        path = folder / f"ratio_{a}x{b}.png"
        crop(tubingen, a / b).resize((256, round(256 * b / a)) if a >= b else (round(256 * a / b), 256)).save(path)
        mixed += [{"content": str(path), "style": str(s), "output": f"{path.stem}_{n}.png"} for n, s in styles.items()]
    for k in range(8):
        path = folder / f"same_{k}.png"
        crop(tubingen, 4 / 3, shift=k / 7).resize((256, 192)).save(path)  # 8 views of one 4:3 shape
        one_shape += [{"content": str(path), "style": str(s), "output": f"{path.stem}_{n}.png"} for n, s in styles.items()]
    seeds = []
    for content in (DATA / "tubingen.jpg", DATA / "shipwreck.jpg"):
        for n, s in styles.items():
            for seed in range(3):
                seeds.append({"content": str(content), "style": str(s), "output": f"{content.stem}_{n}_{seed}.png",
                              "settings": {"seed": seed, "init": "noise"}})
    manifests = {}
    for name, jobs in (("mixed", mixed), ("one_shape", one_shape), ("seeds", seeds)):
        manifests[name] = folder / f"{name}.jsonl"
        manifests[name].write_text("".join(json.dumps(j) + "\n" for j in jobs))
    return manifests


def batch_run(code: Path, manifest: Path, out: Path, *, size: int, steps: int, devices: int = 1) -> dict:
    """One `jaxstyle batch` process of `code` from an empty compilation cache: wall seconds, images/s."""
    env = dict(os.environ, PYTHONPATH=str(code))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    cache = Path(tempfile.mkdtemp(prefix="jit-", dir=out.parent))
    cmd = [sys.executable, "-m", "jaxstyle", "batch", str(manifest), "-o", str(out), "--size", str(size),
           "--steps", str(steps), "--batch-size", "8", "--checkpoint-every", "0", "--quiet",
           "--weights", str(WEIGHTS), "--cache-dir", str(cache)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=code)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"batch run failed ({code}):\n{done.stderr[-3000:]}")
    jobs = sum(1 for line in manifest.read_text().splitlines() if line.strip())
    return {"seconds": seconds, "images_per_s": jobs / seconds, "jobs": jobs, "summary": done.stderr.strip().splitlines()[-1]}


SINGLE = """
import json, sys, time
import jaxstyle
from jaxstyle import data_path
from jaxstyle.io import image_io
from jaxstyle import optim
from jaxstyle.io import weights
size, steps = int(sys.argv[1]), int(sys.argv[2])
params = weights.load_params(sys.argv[3])
content = image_io.load_image(data_path("tubingen.jpg"))
style = image_io.load_image(data_path("starry_night.jpg"))
s = optim.Settings(size=size, steps=steps)
optim.stylize(params, content, style, s.replace(steps=2))  # compile
t = time.perf_counter()
r = optim.stylize(params, content, style, s)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "evaluations": r.evaluations, "module": jaxstyle.__file__}))
"""

MIXED = """
import json, sys, time
from jaxstyle import data_path
from jaxstyle.io import image_io
from jaxstyle import optim
from jaxstyle.io import weights
size, steps = int(sys.argv[1]), int(sys.argv[2])
params = weights.load_params(sys.argv[3])
content = image_io.load_image(data_path("tubingen.jpg"))
styles = [image_io.load_image(data_path(n)) for n in ("starry_night.jpg", "the_scream.jpg", "shipwreck.jpg")]
ratios = (1e-3, 1e-2, 1e-4, 3e-3)
tasks = [optim.make_task(content, styles[k % 3], optim.Settings(
    size=size, steps=steps, init="noise", seed=k, content_weight=ratios[k % 4])) for k in range(8)]
short = [optim.Task(t.content, t.styles, t.settings.replace(steps=1)) for t in tasks]
optim.solve(params, short)  # compile the batch of 8
optim.solve(params, short[:1])  # compile the batch of 1
t = time.perf_counter()
singles = [optim.solve(params, [task])[0] for task in tasks]
single_s = time.perf_counter() - t
t = time.perf_counter()
batched = optim.solve(params, tasks)
batch_s = time.perf_counter() - t
diff = max(float(abs(a.image - b.image).max()) for a, b in zip(singles, batched))
print(json.dumps({"single_seconds": single_s, "batch_seconds": batch_s, "max_abs_diff": diff,
                  "single_evaluations": sum(r.evaluations for r in singles),
                  "batch_evaluations": batched[0].evaluations}))
"""


ALONE = """
import json, sys
import numpy as np
from jaxstyle import data_path, losses
from jaxstyle.io import image_io
from jaxstyle import optim
from jaxstyle.io import weights
size, steps = int(sys.argv[1]), int(sys.argv[2])
params = weights.load_params(sys.argv[3])
content = image_io.load_image(data_path("tubingen.jpg"))
names = ("starry_night.jpg", "the_scream.jpg", "shipwreck.jpg")
styles = [image_io.load_image(data_path(n)) for n in names]
crops = [content, content[:, 200:800], content[100:700, :500]]  # 4:3, 1:1 and 5:6 (portrait)
tasks = [optim.make_task(c, s, optim.Settings(size=size, steps=steps, content_weight=r))
         for c, s, r in zip(crops, styles, (1e-3, 1e-2, 3e-3))]
together = optim.solve(params, tasks)
rows = []
for task, mixed in zip(tasks, together):
    alone = optim.solve(params, [task])[0]
    d = np.abs(mixed.image - alone.image)
    rows.append({"shape": list(mixed.image.shape[:2]), "max": float(d.max()), "mean": float(d.mean()),
                 "last_row": float(d[-1].max()), "last_col": float(d[:, -1].max()),
                 "loss_rel": float(abs(mixed.total - alone.total) / alone.total)})
# The loss of one image alone and inside a larger canvas (outside filled with 0.5).
image, style = together[2].image, image_io.resize(styles[2], together[2].image.shape[:2])
h, w = image.shape[:2]
targets = losses.make_targets(params, image_io.resize(crops[2], (h, w)), [style])
lw = dict(content_layer_weights=losses.equal_weights(losses.CONTENT_LAYERS),
          style_layer_weights=losses.equal_weights(losses.STYLE_LAYERS))
plain, _ = losses.total_loss(params, image, targets, losses.LossWeights(3e-3, 1.0, 0.0), **lw)
def canvas(x, fill=0.0):
    out = np.full((size, size, 3), fill, np.float32); out[:h, :w] = x; return out
valid = np.array([h, w], np.int32)
padded = losses.canvas_targets(params, canvas(image_io.resize(crops[2], (h, w))), canvas(style)[None],
                               np.ones(1, np.float32), valid=valid, style_valid=valid[None])
masked, _ = losses.total_loss(params, canvas(image, 0.5), padded, losses.LossWeights(3e-3, 1.0, 0.0), **lw, valid=valid)
print(json.dumps({"rows": rows, "loss_alone": float(plain), "loss_in_canvas": float(masked)}))
"""


def python_run(code: Path, script: str, *args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code))
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=code)
    if done.returncode != 0:
        raise SystemExit(f"run failed ({code}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help=f"the code to compare with (default {BEFORE})")
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds (a smoke test)")
    parser.add_argument("--skip", default="", help="comma-separated measurements to skip (1,2,3,4)")
    parser.add_argument("--no-docs", action="store_true", help="print only; do not write docs/benchmarks.md")
    parser.add_argument("--only-this", action="store_true", help="measure this code only (no 'before' runs)")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    steps = 4 if args.quick else 20
    work = Path(tempfile.mkdtemp(prefix="mixed-bench-"))
    before = work / "before"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
                   check=True, capture_output=True)
    lines = [f"Measured {datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs: "
             f"`python benchmarks/mixed_batch_bench.py`; 'before' = commit {args.before}. {steps} L-BFGS steps.\n"]

    def emit(text=""):
        print(text, flush=True)
        lines.append(text)

    try:
        manifests = make_inputs(work)
        codes = {"this code": ROOT} if args.only_this else {"this code": ROOT, "before": before}
        if "1" not in skip:
            emit("### 1. 9 shapes x 2 styles (18 jobs) vs 16 jobs of one shape; 128 px, 1 device, empty cache\n")
            emit("| code | manifest | seconds (whole process) | images/s |")
            emit("|---|---|---|---|")
            rates = {}
            for name, code in codes.items():
                for which in ("one_shape", "mixed"):
                    r = batch_run(code, manifests[which], work / f"out-{name.replace(' ', '_')}-{which}", size=128,
                                  steps=steps)
                    rates[name, which] = r["images_per_s"]
                    emit(f"| {name} | {which} ({r['jobs']} jobs) | {r['seconds']:.1f} | {r['images_per_s']:.3f} |")
            for name in codes:
                emit(f"\n{name}: mixed / one shape = **{rates[name, 'mixed'] / rates[name, 'one_shape']:.2f}x**")
        if "2" not in skip:
            emit("\n### 2. 12 jobs (2 contents x 2 styles x 3 seeds), 64 px, 8 simulated devices, empty cache\n")
            emit("| code | seconds (whole process) | images/s |")
            emit("|---|---|---|")
            rates = {}
            for name, code in codes.items():
                r = batch_run(code, manifests["seeds"], work / f"out8-{name.replace(' ', '_')}", size=64, steps=steps,
                              devices=8)
                rates[name] = r["images_per_s"]
                emit(f"| {name} | {r['seconds']:.1f} | {r['images_per_s']:.3f} |")
            emit(f"\nthis code / before = **{rates['this code'] / rates['before']:.2f}x**")
        if "3" not in skip:
            emit("\n### 3. A batch of 8 mixed jobs (3 styles, 8 seeds, 4 alpha/beta; noise init) vs 8 single runs, "
                 "128 px, 1 device, compile excluded\n")
            r = python_run(ROOT, MIXED, 128, steps, WEIGHTS)
            emit(f"- 8 single runs: {r['single_seconds']:.1f} s ({8 / r['single_seconds']:.3f} images/s, "
                 f"{r['single_evaluations']} evaluations in all)")
            emit(f"- one batch of 8: {r['batch_seconds']:.1f} s ({8 / r['batch_seconds']:.3f} images/s, "
                 f"{r['batch_evaluations']} batch evaluations)")
            emit(f"- batch / singles = **{r['single_seconds'] / r['batch_seconds']:.2f}x**; largest pixel "
                 f"difference between an image in the batch and alone: {r['max_abs_diff']:.2e}")
        if "4" not in skip:
            rounds = 1 if args.quick else 3
            emit(f"\n### 4. Single-image stylize, 256 px, {steps} steps, compile excluded, {rounds} alternating rounds\n")
            times = {name: [] for name in codes}
            for _ in range(rounds):
                for name, code in codes.items():
                    r = python_run(code, SINGLE, 256, steps, WEIGHTS)
                    assert str(code) in r["module"], (code, r["module"])
                    times[name].append(r["seconds"] / r["evaluations"])
                    emit(f"- {name}: {r['seconds']:.2f} s, {r['evaluations']} evaluations")
            med = {name: statistics.median(t) for name, t in times.items()}
            emit(f"\nmedian s per evaluation: this code {med['this code']:.3f}, before {med['before']:.3f}: "
                 f"this code / before = **{med['this code'] / med['before']:.3f}** (1.00 = as fast)")
        if "5" not in skip:
            emit(f"\n### 5. Real weights, 128 px, {steps} steps: three shapes in one batch (canvas 128x128) against "
                 "each alone\n")
            r = python_run(ROOT, ALONE, 128, steps, WEIGHTS)
            emit("| shape | max pixel diff | mean | last row | last column | total loss, relative |")
            emit("|---|---|---|---|---|---|")
            for row in r["rows"]:
                emit(f"| {row['shape'][1]}x{row['shape'][0]} | {row['max']:.1e} | {row['mean']:.1e} | "
                     f"{row['last_row']:.1e} | {row['last_col']:.1e} | {row['loss_rel']:.1e} |")
            emit(f"\nLoss of the 5:6 result alone {r['loss_alone']:.6g}, inside a 128x128 canvas filled with 0.5: "
                 f"{r['loss_in_canvas']:.6g} (relative difference "
                 f"{abs(r['loss_in_canvas'] - r['loss_alone']) / r['loss_alone']:.1e}).")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], capture_output=True)
    if not args.no_docs and not args.quick:
        # The run replaces its block of docs/benchmarks.md (<!-- mixed-batch-bench:begin/end -->); a partial
        # run would drop the measurements it skipped from it, so it only prints.
        if skip - {""} or args.only_this:
            print("partial run (--skip, --only-this): docs/benchmarks.md not written")
        else:
            from doc_blocks import write_block

            write_block("mixed-batch-bench", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
