"""The network commands: train, apply, cyclegan train / apply."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from jaxstyle import color, losses, runtime
from jaxstyle.cli.options import (add_alpha_beta, add_common, add_dataclass_options, apply_alpha_beta, check_not_inputs,
                                  dataclass_values, load_params, parse_list, photo_files)
from jaxstyle.cli.progress import step_bar
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io, plots, sidecars
from jaxstyle.io.files import atomic_write_text, file_sha256
from jaxstyle.nets.checkpoint import Checkpointer

_TRAIN_HELP = {
    "size": "crop side in px",
    "steps": "training steps (batches)",
    "batch_size": "photos per step, rounded up to a multiple of the device count",
    "learning_rate": "Adam's step size",
    "content_weight": "alpha, the content loss weight",
    "style_weight": "beta, the style loss weight",
    "tv_weight": "total-variation weight (smooths high-frequency noise)",
    "style_size": "longest side of each style image when its Gram matrices are taken "
                  "(the scale of the strokes: about the size you will apply at)",
    "content_layers": "comma-separated VGG-19 layers",
    "style_layers": "comma-separated VGG-19 layers, or a preset: " + ", ".join(losses.STYLE_PRESETS),
    "width": "filters of the first convolution (the others are 2x and 4x); Johnson et al.: 32",
    "residual_blocks": "residual blocks (Johnson et al.: 5)",
    "seed": "seed of the initial parameters and of every crop",
}


def add_train_parser(sub) -> None:
    from jaxstyle.nets import training

    p = sub.add_parser("train", help="train a fast style network on a folder of photos (Johnson et al. 2016)")
    p.add_argument("styles", nargs="+", type=Path, metavar="STYLE",
                   help="style image(s); several make one multi-style network (Dumoulin et al. 2017)")
    p.add_argument("--photos", type=Path, required=True, help="folder of training photos (e.g. COCO train2014)")
    p.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.msgpack)")
    group = p.add_argument_group("training (defaults: see README, Fast networks)")
    add_dataclass_options(group, training.TrainSettings, _TRAIN_HELP)
    add_alpha_beta(group)
    out = p.add_argument_group("checkpoints and model file")
    out.add_argument("--checkpoint-every", type=int, default=100, metavar="N",
                     help="save the training state every N steps beside the model; the same command "
                          "resumes from it (0: never; default: 100)")
    out.add_argument("--float16", action="store_true", help="store the parameters as float16 (half the file)")
    out.add_argument("--preview", type=Path, default=None, metavar="IMAGE",
                     help="at every checkpoint, write IMAGE painted by the network so far (MODEL_preview.png)")
    add_common(p)


def add_apply_parser(sub) -> None:
    p = sub.add_parser("apply", help="stylise photos with a trained fast network (one forward pass each)")
    p.add_argument("model", type=Path, metavar="MODEL", help="model file from `jaxstyle train` "
                   "(a ready one: models/starry_night.msgpack)")
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTO", help="image file(s) or folder(s) of images")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output .png/.jpg/.webp for one photo, or a folder (created if missing)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--style", type=int, default=None, metavar="K", help="index of the style to paint (default 0)")
    which.add_argument("--mix", type=parse_list(float), default=None, metavar="W1,W2,...",
                       help="blend the model's styles with these weights (one per style)")
    p.add_argument("--size", type=int, default=512,
                   help="resize each photo so its longest side is N px first; 0 keeps each photo's size "
                        "(default: 512, the scale the committed model's strokes were trained for)")
    p.add_argument("--batch-size", type=int, default=4, help="photos per forward pass (default: 4)")
    p.add_argument("--preserve-colors", default="none", choices=color.PRESERVE_COLORS,
                   help="none, luminance (keep the photo's colours) or histogram (match them)")
    p.add_argument("--quiet", action="store_true", help="print only the output paths")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="persistent compilation cache (default: ~/.cache/jaxstyle/jit)")


_CYCLEGAN_HELP = {
    "size": "crop side in px (the paper: 256)",
    "steps": "training steps (the paper: 200 epochs of its folders, about 200000 at batch 1)",
    "decay_from": "step where the learning rate starts its linear decay to 0 (default: steps / 2)",
    "batch_size": "images of each domain per step, rounded up to a multiple of the device count",
    "learning_rate": "Adam's step size",
    "beta1": "Adam's beta1",
    "cycle_weight": "lambda, the cycle-consistency weight",
    "identity_weight": "identity loss weight, relative to lambda (0: none)",
    "pool_size": "past generated images each discriminator also sees (0: none)",
    "scale_jitter": "a photo's shorter side is first scaled to between min-scale x size and this x size",
    "min_scale": "see --scale-jitter (the demo: 2.2 to 2.5 at size 128, crops at 0.88-1.0 of its 512x320 images)",
    "width": "generator filters of the first convolution (then 2x, 4x)",
    "residual_blocks": "generator residual blocks (the paper: 6 at 128 px, 9 at 256 px)",
    "disc_width": "discriminator filters of the first convolution (then 2x, 4x, 8x)",
    "seed": "seed of the initial parameters, the crops and the image pools",
}


def add_cyclegan_parser(sub) -> None:
    from jaxstyle.nets import cyclegan

    p = sub.add_parser("cyclegan", help="unpaired translation between two folders of images (Zhu et al. 2017)",
                       description="Train or apply a CycleGAN (see `jaxstyle cyclegan train -h`).")
    commands = p.add_subparsers(dest="cyclegan_command", required=True)
    t = commands.add_parser("train", help="train both directions on two folders of images")
    t.add_argument("--a", type=Path, required=True, metavar="DIR_A", help="folder of domain A's images")
    t.add_argument("--b", type=Path, required=True, metavar="DIR_B", help="folder of domain B's images")
    t.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.msgpack)")
    group = t.add_argument_group("training (defaults: the paper's 256 px recipe)")
    add_dataclass_options(group, cyclegan.CycleGANSettings, _CYCLEGAN_HELP)
    out = t.add_argument_group("checkpoints and output")
    out.add_argument("--checkpoint-every", type=int, default=100, metavar="N",
                     help="save the training state every N steps beside the model; the same command "
                          "resumes from it (0: never; default: 100)")
    out.add_argument("--preview", type=Path, default=None, metavar="IMAGE",
                     help="at every checkpoint, write IMAGE translated A->B and back (MODEL_preview.png)")
    out.add_argument("--loss-plot", type=Path, default=None, help="also write a loss-curve PNG here")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    out.add_argument("--cache-dir", type=Path, default=None,
                     help="persistent compilation cache (default: ~/.cache/jaxstyle/jit)")

    a = commands.add_parser("apply", help="translate images with a trained CycleGAN model")
    a.add_argument("model", type=Path, metavar="MODEL", help="model file from `jaxstyle cyclegan train`")
    a.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image file(s) or folder(s) of images")
    a.add_argument("-o", "--output", type=Path, required=True,
                   help="output .png/.jpg/.webp for one image, or a folder (created if missing)")
    a.add_argument("--direction", default="a2b", choices=("a2b", "b2a"), help="a2b (default: A -> B) or b2a")
    a.add_argument("--size", type=int, default=512,
                   help="resize each image so its longest side is N px first; 0 keeps each size (default: 512)")
    a.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default: 4)")
    a.add_argument("--quiet", action="store_true", help="print only the output paths")
    a.add_argument("--cache-dir", type=Path, default=None,
                   help="persistent compilation cache (default: ~/.cache/jaxstyle/jit)")


def run_train(args: argparse.Namespace) -> int:
    import jax

    from jaxstyle.nets import model_file, training
    from jaxstyle.nets.photos import PhotoFolder

    values = apply_alpha_beta(args, dataclass_values(args, training.TrainSettings), training.TrainSettings)
    settings = training.TrainSettings(**values)
    model_path = image_io.check_output_path(args.output)
    sidecar = sidecars.sidecar_path(model_path)
    if model_path.suffix.lower() == ".json":
        raise JaxstyleError(f"-o {model_path}: the sidecar is written as MODEL.json; name the model .msgpack")
    extra_outputs = [sidecar, *([args.loss_plot] if args.loss_plot else [])]
    for path in extra_outputs:
        image_io.check_output_path(path)
    styles = [image_io.load_image(p) for p in args.styles]
    names = [p.stem for p in args.styles]
    preview = image_io.load_image(args.preview, size=settings.style_size) if args.preview else None
    check_not_inputs([model_path, *extra_outputs], [*args.styles, *([args.preview] if args.preview else [])])
    if args.checkpoint_every < 0:
        raise JaxstyleError("--checkpoint-every must be 0 (never) or a positive number of steps")
    params, weights_path = load_params(args)
    photos = PhotoFolder(args.photos, size=settings.size, seed=settings.seed, max_short_side=settings.style_size)
    runtime.enable_compilation_cache(args.cache_dir)
    devices = jax.local_devices()
    batch = training.batch_size_for(settings, devices)

    checkpoints = Checkpointer(
        model_path.with_name(model_path.name + ".checkpoint"),
        # Not the step count: a run resumed with another --steps continues the same trajectory.
        tag={"settings": {**settings.to_dict(), "steps": None}, "batch": batch, "styles": [file_sha256(p) for p in args.styles],
             "weights": file_sha256(weights_path), "photos": [str(p) for p in photos.files]},
        history_keys=("step", *training.LOSS_NAMES))
    resume, history, start = _resume(checkpoints, training.init_state(settings, len(styles)), "jaxstyle train")
    print(f"jaxstyle train: {len(photos.files)} photo file(s) in {args.photos}, {len(styles)} style(s), "
          f"batch {batch} over {len(devices)} device(s), {settings.steps} steps at {settings.size} px",
          file=sys.stderr)
    bar = None if args.quiet else step_bar(settings.steps, start)

    def on_step(p: training.Progress) -> None:
        history.append({"step": p.step, "total": p.total, "content": p.content, "style": p.style, "tv": p.tv})
        if bar is not None:
            bar.set_postfix_str(f"loss {p.total:.4g} (content {p.content:.3g}, style {p.style:.3g}, "
                                f"tv {p.tv:.3g}) {p.images_per_s:.2f} img/s, skipped {photos.skipped}")
            bar.update(1)
        if args.checkpoint_every and p.step % args.checkpoint_every == 0 and p.step < p.steps:
            checkpoints.save(p.state, history)
            if preview is not None:
                model = model_file.FastModel(settings.network_config(len(styles)), tuple(names), p.state.params)
                from jaxstyle.nets import fast

                image_io.save_image(model_path.with_name(model_path.stem + "_preview.png"),
                                    np.concatenate(fast.apply(model, [preview] * len(styles), style=None)
                                                   if len(styles) == 1 else
                                                   [fast.apply(model, [preview], style=k)[0]
                                                    for k in range(len(styles))], axis=1))

    try:
        result = training.train(params, styles, photos, settings, style_names=names, resume=resume,
                                callback=on_step, devices=devices)
    finally:
        if bar is not None:
            bar.close()
    model_file.save(model_path, result.model, dtype="float16" if args.float16 else "float32")
    training.write_sidecar(model_path, settings=settings, result=result, style_paths=args.styles,
                           weights_path=weights_path, photos=photos, devices=len(devices),
                           extra={"resumed_from_step": start, "float16": bool(args.float16)})
    if args.loss_plot:
        plots.plot_losses(history, args.loss_plot, smooth=True)
    checkpoints.remove()
    print(f"jaxstyle train: skipped {photos.skipped} unusable photo file(s)", file=sys.stderr)
    print(model_path)
    return 0


def run_apply(args: argparse.Namespace) -> int:

    from jaxstyle import color
    from jaxstyle.nets import fast

    model = fast.load_model(args.model)
    weights = fast.style_weights(model, style=args.style, mix=args.mix)
    color.prepare_colors(args.preserve_colors, np.zeros((1, 1, 3), np.float32), [])
    if args.size < 0:
        raise JaxstyleError(f"--size must be a number of pixels (0: the photo's own size), got {args.size}")
    if args.batch_size < 1:
        raise JaxstyleError(f"--batch-size must be at least 1, got {args.batch_size}")
    files = photo_files(args.photos)
    label = "mix" if args.mix is not None else model.styles[args.style or 0]
    outputs = _output_files(files, args.output, label, args.model)
    photos = [image_io.load_image(f) for f in files]
    runtime.enable_compilation_cache(args.cache_dir)
    t0 = time.perf_counter()
    results = fast.apply(model, photos, style=args.style, mix=args.mix, size=args.size or None,
                         batch_size=args.batch_size, preserve_colors=args.preserve_colors)
    seconds = time.perf_counter() - t0
    for photo_path, out, image in zip(files, outputs, results):
        image_io.save_image(out, image)
        record = {
            "output": str(out), "output_sha256": file_sha256(out),
            "model": {"path": str(args.model), "sha256": file_sha256(args.model),
                      "styles": list(model.styles)},
            "style_weights": [float(w) for w in weights],
            "input": {"path": str(photo_path), "sha256": file_sha256(photo_path)},
            "size": args.size, "preserve_colors": args.preserve_colors,
            "seconds_all_images": round(seconds, 3), "images": len(files),
            "versions": {p: sidecars.version(p) for p in ("jaxstyle", "jax", "jaxlib", "flax")},
        }
        atomic_write_text(sidecars.sidecar_path(out), json.dumps(record, indent=2) + "\n")
        print(out)
    if not args.quiet:
        print(f"jaxstyle apply: {len(files)} image(s) in {seconds:.2f} s (compilation included)", file=sys.stderr)
    return 0


def run_cyclegan(args: argparse.Namespace) -> int:
    return (run_cyclegan_train if args.cyclegan_command == "train" else run_cyclegan_apply)(args)


def run_cyclegan_train(args: argparse.Namespace) -> int:
    import jax

    from jaxstyle.nets import cyclegan, model_file, training

    settings = cyclegan.CycleGANSettings(**dataclass_values(args, cyclegan.CycleGANSettings))
    model_path = image_io.check_output_path(args.output)
    if model_path.suffix.lower() == ".json":
        raise JaxstyleError(f"-o {model_path}: the sidecar is written as MODEL.json; name the model .msgpack")
    sidecar = sidecars.sidecar_path(model_path)
    for path in [sidecar, *([args.loss_plot] if args.loss_plot else [])]:
        image_io.check_output_path(path)
    if args.checkpoint_every < 0:
        raise JaxstyleError("--checkpoint-every must be 0 (never) or a positive number of steps")
    preview = image_io.load_image(args.preview, size=2 * settings.size) if args.preview else None
    domain_a, domain_b = cyclegan.photo_folders(args.a, args.b, settings)
    check_not_inputs([model_path, sidecar], [*domain_a.files, *domain_b.files,
                                               *([args.preview] if args.preview else [])])
    runtime.enable_compilation_cache(args.cache_dir)
    devices = jax.local_devices()
    batch = cyclegan.batch_size_for(settings, devices)
    names = (args.a.resolve().name, args.b.resolve().name)

    checkpoints = Checkpointer(model_path.with_name(model_path.name + ".checkpoint"),
                                        cyclegan.checkpoint_tag(settings, batch, domain_a, domain_b),
                                        history_keys=("step", *cyclegan.LOSS_NAMES))
    resume, history, start = _resume(checkpoints, cyclegan.state_template(settings), "jaxstyle cyclegan")
    print(f"jaxstyle cyclegan: A {len(domain_a.files)} image file(s) in {args.a}, B {len(domain_b.files)} in "
          f"{args.b}; batch {batch} over {len(devices)} device(s), {settings.steps} steps at {settings.size} px",
          file=sys.stderr)
    bar = None if args.quiet else step_bar(settings.steps, start)

    def on_step(p: cyclegan.Progress) -> None:
        history.append({"step": p.step, **p.losses})
        if bar is not None:
            bar.set_postfix_str(f"G {p.losses['generator']:.3g} (adv {p.losses['adversarial']:.3g}, cycle "
                                f"{p.losses['cycle']:.3g}) D {p.losses['discriminator']:.3g}, "
                                f"{p.images_per_s:.2f} img/s, skipped {domain_a.skipped + domain_b.skipped}")
            bar.update(1)
        if args.checkpoint_every and p.step % args.checkpoint_every == 0 and p.step < p.steps:
            checkpoints.save(p.state, history)
            if preview is not None:
                model = model_file.CycleGANModel(settings.config(), names, p.state.params)
                _write_cyclegan_preview(model_path, model, preview)

    t0 = time.perf_counter()
    try:
        model = cyclegan.train(domain_a, domain_b, settings, names=names, resume=resume, callback=on_step,
                               devices=devices)
    finally:
        if bar is not None:
            bar.close()
    model_file.save_cyclegan(model_path, model)
    if preview is not None:
        _write_cyclegan_preview(model_path, model, preview)
    window = history[-training.FINAL_WINDOW:]
    record = {
        "model": str(model_path), "model_sha256": file_sha256(model_path), "kind": model_file.CYCLEGAN_FORMAT,
        "config": model.config.to_dict(), "settings": settings.to_dict(),
        "domains": {name: {"folder": str(folder.folder), "files": len(folder.files), "skipped": folder.skipped}
                    for name, folder in zip(("a", "b"), (domain_a, domain_b))},
        "names": list(names), "steps": settings.steps, "resumed_from_step": start, "devices": len(devices),
        "final_losses": {k: float(np.mean([h[k] for h in window])) for k in cyclegan.LOSS_NAMES} if window else {},
        "final_losses_window": training.FINAL_WINDOW, "seconds_this_run": round(time.perf_counter() - t0, 1),
        "versions": {p: sidecars.version(p) for p in ("jaxstyle", "jax", "jaxlib", "flax", "optax", "numpy")},
        "backend": jax.default_backend(),
    }
    atomic_write_text(sidecar, json.dumps(record, indent=2) + "\n")
    if args.loss_plot:
        plots.plot_losses(history, args.loss_plot, names=("generator", "discriminator", "cycle"),
                             smooth=True)
    checkpoints.remove()
    print(f"jaxstyle cyclegan: skipped {domain_a.skipped} + {domain_b.skipped} unusable image file(s) in A + B",
          file=sys.stderr)
    print(model_path)
    return 0


def _output_files(files: list[Path], output: Path, label: str, model: Path) -> list[Path]:
    """Where `apply` writes each input: `output` itself for one input and a file name, else
    OUTPUT/STEM_LABEL.png; checked (no collisions, writable types, no input overwritten) before any work."""
    single = len(files) == 1 and output.suffix and not output.is_dir()
    outputs = [output] if single else [output / f"{f.stem}_{label}.png" for f in files]
    if len(set(outputs)) != len(outputs):
        raise JaxstyleError("two images share a file name; rename one so the outputs do not collide")
    check_not_inputs(outputs, [*files, model])
    if not single:  # created only once the names are known to be fine: a refusal leaves nothing behind
        image_io.ensure_output_dir(output)
    for out in outputs:
        image_io.check_image_output(out)
    return outputs


def _resume(checkpoints, template, command: str):
    """(state or None, loss history, first step) from `checkpoints`, saying so on stderr when resuming."""
    resume, history = checkpoints.load(template, log=lambda m: print(f"{command}: {m}", file=sys.stderr))
    start = 0 if resume is None else int(resume.step)
    if resume is not None:
        print(f"{command}: resuming from step {start} ({checkpoints.path})", file=sys.stderr)
    return resume, history, start


def _write_cyclegan_preview(model_path: Path, model, preview: np.ndarray) -> None:
    """MODEL_preview.png: the preview image | A->B | back to A."""
    from jaxstyle.nets import cyclegan

    [there] = cyclegan.apply(model, [preview], direction="a2b")
    [back] = cyclegan.apply(model, [there], direction="b2a")
    image_io.save_image(model_path.with_name(model_path.stem + "_preview.png"),
                        np.concatenate([preview, there, back], axis=1))


def run_cyclegan_apply(args: argparse.Namespace) -> int:
    from jaxstyle.nets import cyclegan, model_file

    if args.direction not in ("a2b", "b2a"):
        raise JaxstyleError(f"--direction must be a2b or b2a, got {args.direction!r}")
    if args.size < 0:
        raise JaxstyleError(f"--size must be a number of pixels (0: each image's own size), got {args.size}")
    if args.batch_size < 1:
        raise JaxstyleError(f"--batch-size must be at least 1, got {args.batch_size}")
    model = model_file.load_cyclegan(args.model)
    files = photo_files(args.images)
    target = model.domains[1] if args.direction == "a2b" else model.domains[0]
    outputs = _output_files(files, args.output, target, args.model)
    images = [image_io.load_image(f) for f in files]
    runtime.enable_compilation_cache(args.cache_dir)
    t0 = time.perf_counter()
    results = cyclegan.apply(model, images, direction=args.direction, size=args.size or None,
                             batch_size=args.batch_size)
    seconds = time.perf_counter() - t0
    for source, out, image in zip(files, outputs, results):
        image_io.save_image(out, image)
        record = {"output": str(out), "output_sha256": file_sha256(out),
                  "model": {"path": str(args.model), "sha256": file_sha256(args.model),
                            "domains": list(model.domains)},
                  "direction": args.direction, "input": {"path": str(source), "sha256": file_sha256(source)},
                  "size": args.size, "seconds_all_images": round(seconds, 3), "images": len(files),
                  "versions": {p: sidecars.version(p) for p in ("jaxstyle", "jax", "jaxlib", "flax")}}
        atomic_write_text(sidecars.sidecar_path(out), json.dumps(record, indent=2) + "\n")
        print(out)
    if not args.quiet:
        print(f"jaxstyle cyclegan: {len(files)} image(s) in {seconds:.2f} s (compilation included)",
              file=sys.stderr)
    return 0
