"""CycleGAN (issue 12): the demo model's quality on held-out photos, training and apply speed.

Sections (select with --only):
  quality  held-out photos at 512 px through the committed demo model: style loss of A->B against
           the style of domain B (The Starry Night) / that of the photo itself (goal <= 0.4), and the
           cycle reconstruction's mean absolute error |F(G(x)) - x| (goal <= 0.05); pictures side by side.
  train    training steps/s at 128 px (width 32, 6 blocks) and 256 px (width 64, 9 blocks), batch 1,
           on this CPU, and at 128 px with a batch of 8 sharded over 8 simulated devices.
  apply    ms per image of `cyclegan.apply` at 512 px: the demo model and the paper's width.

    .venv/bin/python benchmarks/cyclegan_bench.py              # replaces its blocks of docs/benchmarks.md
    .venv/bin/python benchmarks/cyclegan_bench.py --quick      # smoke test, prints only
    .venv/bin/python benchmarks/cyclegan_bench.py --only quality --model M --print-only  # score another model
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
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "jaxstyle" / "data"
SECTIONS = ("quality", "train", "apply")


def quality(args, say) -> None:
    import jax

    from jaxstyle import losses
    from jaxstyle.io import image_io, plots, weights
    from jaxstyle.nets import cyclegan, model_file

    size = 64 if args.quick else 512
    model = model_file.load_cyclegan(args.model)
    style = image_io.load_image(DATA / "starry_night.jpg")
    vgg = weights.load_params()
    score_fn = jax.jit(lambda p, x, t: losses.loss_parts(
        p, x, t, content_layer_weights={"conv4_2": 1.0}, style_layer_weights=losses.equal_weights(losses.STYLE_LAYERS)))
    targets_fn = jax.jit(lambda p, c, s: losses.make_targets(p, c, s))
    photos = sorted(args.heldout.glob("*.jpg"))[: 1 if args.quick else None] + [DATA / "tubingen.jpg"]
    painted = sorted(args.domain_b.glob("*.png"))[:1]
    seen = sorted(args.domain_a.glob("*.jpg"))  # views G and F trained on: how far the fit itself is
    seen = seen[:: max(1, len(seen) // 4)][: 1 if args.quick else 4]
    pictures = ROOT / "docs" / "cyclegan"
    pictures.mkdir(parents=True, exist_ok=True)
    say(f"### Quality on held-out photos at {size} px: {os.path.relpath(args.model, ROOT)}")
    say()
    say("style ratio = style loss (VGG-19 conv1_1..conv5_1, the paper's Gram loss) of the image against "
        "The Starry Night resized to its shape / that of the unchanged photo (goal for A->B <= 0.4). "
        "cycle MAE = mean |F(G(x)) - x| over pixels in [0, 1] (goal <= 0.05). Held-out photos were never "
        "in either domain. For scale: a painting of domain B (made by `jaxstyle batch`) scores the first row, "
        "and the rows marked 'domain A' are views the model was trained on (not in the medians).")
    say()
    say("| image | shape | A->B style ratio | cycle MAE | ms A->B | ms B->A |")
    say("|---|---|---|---|---|---|")
    rows, fit = [], []
    for path in painted + seen + photos:
        photo = image_io.resize_longest(image_io.load_image(path), size)
        h, w = photo.shape[:2]
        targets = targets_fn(vgg, photo, image_io.resize(style, (h, w)))
        if path in painted:  # the domain-B painting next to its own photo
            source = image_io.resize_longest(image_io.load_image(args.domain_b_photos / (path.stem.rsplit(
                "_", 2)[0] + ".jpg")), size)
            source = image_io.resize(source, (h, w))
            s_ref = float(score_fn(vgg, source, targets_fn(vgg, source, image_io.resize(style, (h, w)))).style)
            s_img = float(score_fn(vgg, photo, targets_fn(vgg, source, image_io.resize(style, (h, w)))).style)
            say(f"| {path.name} (domain B, its photo as reference) | {w}x{h} | {s_img / s_ref:.3f} | n/a | | |")
            continue
        cyclegan.apply(model, [photo])
        t = time.perf_counter()
        [there] = cyclegan.apply(model, [photo], direction="a2b")
        ms_ab = 1e3 * (time.perf_counter() - t)
        cyclegan.apply(model, [there], direction="b2a")
        t = time.perf_counter()
        [back] = cyclegan.apply(model, [there], direction="b2a")
        ms_ba = 1e3 * (time.perf_counter() - t)
        s_photo = float(score_fn(vgg, photo, targets).style)
        s_there = float(score_fn(vgg, there, targets).style)
        mae = float(np.abs(back - photo).mean())
        if path in seen:
            fit.append((s_there / s_photo, mae))
            say(f"| {path.name} (domain A, trained on) | {w}x{h} | {s_there / s_photo:.3f} | {mae:.4f} | | |")
            continue
        rows.append((s_there / s_photo, mae))
        say(f"| {path.name} | {w}x{h} | {s_there / s_photo:.3f} | {mae:.4f} | {ms_ab:.0f} | {ms_ba:.0f} |")
        tall = (256, max(1, round(256 * w / h)))
        sheet = plots.contact_sheet([image_io.resize(p, tall) for p in (photo, there, back)],
                                       ["held-out photo", "A->B (painted)", "back: F(G(x))"], columns=3)
        if args.record:
            image_io.save_image(pictures / f"{path.stem}.png", sheet)
    say()
    say(f"median A->B style ratio {statistics.median(r[0] for r in rows):.3f} (goal <= 0.4); "
        f"median cycle MAE {statistics.median(r[1] for r in rows):.4f} (goal <= 0.05)" + (
            f"; on the domain-A views trained on: {statistics.median(r[0] for r in fit):.3f} and "
            f"{statistics.median(r[1] for r in fit):.4f}" if fit else ""))
    say()
    if args.record:
        for path in photos:
            say(f"![{path.stem}: photo | A->B | back](cyclegan/{path.stem}.png)")
        say()


TRAIN_WORKER = """
import json, sys, time
import jax, numpy as np
from jaxstyle.nets import cyclegan
from jaxstyle import optim
size, width, blocks, disc, batch, steps = map(int, sys.argv[1:7])
settings = cyclegan.CycleGANSettings(size=size, width=width, residual_blocks=blocks, disc_width=disc,
                                     batch_size=batch, steps=1000)
devices = jax.local_devices()
mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
state = jax.device_put(cyclegan.init_state(settings), replicated)
step = cyclegan.make_train_step(settings)
rng = np.random.default_rng(0)
a = jax.device_put(rng.random((batch, size, size, 3), np.float32), sharded)
b = jax.device_put(rng.random((batch, size, size, 3), np.float32), sharded)
t = time.perf_counter(); state, v = step(state, a, b); v.block_until_ready(); compile_s = time.perf_counter() - t
times = []
for _ in range(steps):
    t = time.perf_counter(); state, v = step(state, a, b); v.block_until_ready(); times.append(time.perf_counter() - t)
print(json.dumps({"compile_and_first": compile_s, "median": float(np.median(times)), "devices": len(devices)}))
"""


def train(args, say) -> None:
    configs = [(64, 8, 1, 8, 1, 1)] if args.quick else [
        (128, 32, 6, 64, 1, 1), (256, 64, 9, 64, 1, 1), (128, 32, 6, 64, 8, 8), (128, 16, 6, 32, 1, 1)]
    if args.accelerator:  # the paper's recipe, a few hundred steps on the device's own backend
        configs = [(256, 64, 9, 64, 1, 1), (256, 64, 9, 64, 4, 1)]
    say("### Training speed (`cyclegan.make_train_step`: both generators' and discriminators' updates)")
    say()
    say("Random crops in memory (no decoding), compile excluded, median of timed steps.")
    say()
    say("| crop px | width | blocks | disc width | batch | devices | s/step | steps/s | images/s | compile s |")
    say("|---|---|---|---|---|---|---|---|---|---|")
    for size, width, blocks, disc, batch, devices in configs:
        env = dict(os.environ) if args.accelerator else dict(os.environ, JAX_PLATFORMS="cpu")
        if devices > 1:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        steps = 2 if args.quick else args.accelerator or (3 if size >= 256 or batch > 1 else 5)
        out = subprocess.run([sys.executable, "-c", TRAIN_WORKER, *map(str, (size, width, blocks, disc, batch, steps))],
                             capture_output=True, text=True, env=env, timeout=3000)
        if out.returncode != 0:
            say(f"| {size} | {width} | {blocks} | {disc} | {batch} | {devices} | failed: "
                f"{out.stderr.strip().splitlines()[-1][:100]} | | | |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        say(f"| {size} | {width} | {blocks} | {disc} | {batch} | {r['devices']} | {r['median']:.2f} | "
            f"{1 / r['median']:.3f} | {batch / r['median']:.2f} | {r['compile_and_first']:.0f} |")
    say()


def apply_speed(args, say) -> None:
    import jax

    from jaxstyle.io import image_io
    from jaxstyle.nets import cyclegan, gan, model_file

    size = 64 if args.quick else 512
    photo = image_io.resize_longest(image_io.load_image(DATA / "tubingen.jpg"), size)
    demo = model_file.load_cyclegan(args.model)
    paper = gan.CycleGANConfig(width=64, residual_blocks=9, disc_width=64)
    params = gan.init_cyclegan_params(paper, jax.random.key(0))
    models = [("demo model " + json.dumps(demo.config.to_dict()), demo),
              ("paper's generator (width 64, 9 blocks), random weights",
               model_file.CycleGANModel(paper, ("a", "b"), {k: params[k] for k in ("g_ab", "g_ba")}))]
    h, w = photo.shape[:2]
    say(f"### Apply speed at {w}x{h} (`cyclegan.apply`, compile excluded, median of {args.repeats})")
    say()
    say("| model | batch 1 ms/image | batch 4 ms/image |")
    say("|---|---|---|")
    for label, model in models:
        figures = []
        for batch in (1, 4):
            images = [photo] * batch
            cyclegan.apply(model, images, batch_size=batch)
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                cyclegan.apply(model, images, batch_size=batch)
                times.append((time.perf_counter() - t) / batch)
            figures.append(1e3 * statistics.median(times))
        say(f"| {label} | {figures[0]:.0f} | {figures[1]:.0f} |")
    say()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, printed only")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "cyclegan_starry.msgpack")
    parser.add_argument("--heldout", type=Path, default=ROOT / ".cyclegan" / "heldout")
    parser.add_argument("--domain-a", type=Path, default=ROOT / ".cyclegan" / "a")
    parser.add_argument("--domain-b", type=Path, default=ROOT / ".cyclegan" / "b")
    parser.add_argument("--domain-b-photos", type=Path, default=ROOT / ".cyclegan" / "b_photos")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--accelerator", type=int, default=0, metavar="STEPS",
                        help="time STEPS steps of the paper's 256 px recipe on the default backend; print only")
    parser.add_argument("--print-only", action="store_true",
                        help="neither write docs/cyclegan/*.png nor docs/benchmarks.md")
    args = parser.parse_args(argv)
    args.record = not (args.quick or args.accelerator or args.print_only)

    from jaxstyle import runtime

    runtime.enable_compilation_cache()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    measured = (f"{datetime.datetime.now().isoformat(timespec='minutes')}, {platform.machine()}, "
                f"{len(os.sched_getaffinity(0))} CPUs: "
                + f"`python benchmarks/cyclegan_bench.py {' '.join(argv)}`".replace(" `", "`"))
    say(f"## CycleGAN (issue 12), {measured}")
    say()
    blocks = {}
    for name in SECTIONS:
        if name in sections:
            start = len(lines)
            {"quality": quality, "train": train, "apply": apply_speed}[name](args, say)
            blocks[name] = lines[start:]
    if args.record:
        # Each section replaces its own block of docs/benchmarks.md (<!-- cyclegan-bench:NAME:begin/end -->),
        # so a run of some sections leaves the others' latest figures; its date goes under its heading.
        from doc_blocks import write_block

        for name, block in blocks.items():
            write_block(f"cyclegan-bench:{name}", [block[0], "", f"Measured {measured}", *block[1:]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
