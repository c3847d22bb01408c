"""The network commands: train, apply, cyclegan train / apply.

Each pair runs one skeleton with its family's parts passed in: `_train` (outputs checked, resume,
progress bar, checkpoints and previews, loss plot, clean-up) and `_apply` (inputs and outputs
checked, one timed pass, each image saved with its sidecar).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxstyle import color, losses, runtime
from jaxstyle.cli import video as cli_video
from jaxstyle.cli.options import (add_alpha_beta, add_cache_option, add_common, add_dataclass_options,
                                  apply_alpha_beta, at_least, dataclass_values, load_params, number, parse_list,
                                  photo_files, sidecar_outputs, step_bar, weights_file)
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import files, image_io, plots, sidecars

if TYPE_CHECKING:  # the networks (flax) are imported only by the commands that run them
    from jaxstyle.nets.runs import Progress
    from jaxstyle.nets.tiles import TileProgress

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
    "start": "random: the paper's; identity: the output is the photo plus a learnt residual, zero at the start",
    "residual_blocks": "residual blocks (Johnson et al.: 5)",
    "seed": "seed of the initial parameters and of every crop",
    "temporal_weight": "gamma: stability on video, trained on each crop moved by a small random shift, zoom "
                       "and rotation (0: none); see docs/video.md",
    "motion": "px: the largest shift of that motion (its zoom and rotation scale with it)",
    "motion_noise": "std of Gaussian noise added to the moved crop as well (pixels in [0, 1]; 0: none)",
}


def _add_checkpoint_options(group, preview: str) -> None:
    group.add_argument("--checkpoint-every", type=at_least(0), default=100, metavar="N",
                       help="save the training state every N steps beside the model; the same command "
                            "resumes from it (0: never; default: 100)")
    group.add_argument("--preview", type=Path, default=None, metavar="IMAGE",
                       help=f"at every checkpoint, write IMAGE {preview} (MODEL_preview.png)")


def _add_apply_options(p, noun: str, size: str) -> None:
    """-o, --size, --batch-size, --tile, --quiet, --cache-dir; `noun`: what is applied to."""
    from jaxstyle.nets import tiles

    p.add_argument("-o", "--output", type=Path, required=True,
                   help=f"output .png/.jpg/.webp for one {noun}, or a folder (created if missing)")
    p.add_argument("--size", type=at_least(0), default=512, help=f"resize each {noun} so its longest side is N px first; "
                   f"0 keeps each {noun}'s size (default: 512{size})")
    p.add_argument("--batch-size", type=at_least(1), default=4, help=f"{noun}s per forward pass (default: 4)")
    p.add_argument("--tile", type=at_least(0), default=None, metavar="N",
                   help=f"run each {noun} in N px tiles, one at a time, every instance norm with the statistics of "
                        f"a {tiles.THUMBNAIL} px thumbnail of the whole {noun} (no seams); 0: never; default: "
                        f"{tiles.DEFAULT_TILE} px tiles only where the whole {noun} would not fit in memory")
    p.add_argument("--quiet", action="store_true", help="print only the output paths and no progress bar")
    add_cache_option(p)
    cli_video.add_frames_option(p)  # a video input (.mp4 ...) is painted frame by frame into -o OUT.mp4
    cli_video.add_smooth_option(p)


def add_train_parser(sub) -> None:
    from jaxstyle.nets import training

    p = sub.add_parser("train", help="train a fast style network on a folder of photos (Johnson et al. 2016)")
    p.add_argument("styles", nargs="+", type=Path, metavar="STYLE",
                   help="style image(s); several make one multi-style network (Dumoulin et al. 2017)")
    p.add_argument("--photos", type=Path, required=True, help="folder of training photos (e.g. COCO train2014)")
    p.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.msgpack)")
    p.add_argument("--from", dest="from_model", type=Path, default=None, metavar="MODEL",
                   help="add the STYLE(s) to this trained model: only their instance norms' scales and shifts "
                        "are learnt, the rest is MODEL's (its architecture; --width etc. are not used)")
    p.add_argument("--tune", dest="tune_model", type=Path, default=None, metavar="MODEL",
                   help="train this trained model further, all its parameters (e.g. with --temporal-weight for "
                        "video): STYLE(s) are the images of its styles, in its order; its architecture is kept")
    group = p.add_argument_group("training (defaults: see README, Fast networks)")
    add_dataclass_options(group, training.TrainSettings, _TRAIN_HELP)
    add_alpha_beta(group)
    out = p.add_argument_group("checkpoints and model file")
    _add_checkpoint_options(out, "painted by the network so far")
    out.add_argument("--float16", action="store_true", help="store the parameters as float16 (half the file)")
    add_common(p)


def add_apply_parser(sub) -> None:
    p = sub.add_parser("apply", help="stylise photos with a trained fast network (one forward pass each)")
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTO", help="image file(s) or folder(s) of images "
                   "(a first argument ending in .msgpack is taken as --model)")
    p.add_argument("--model", type=Path, default=None, metavar="MODEL",
                   help="model file from `jaxstyle train` (default: the bundled one, styles "
                        "starry_night, the_scream, shipwreck)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--style", default=None, metavar="NAME",
                       help="the model's style to paint: its name, a unique part of it (scream) or its index "
                            "(default: the first)")
    which.add_argument("--style-index", type=at_least(0), default=None, metavar="K",
                       help="index of the model's style to paint (default 0)")
    which.add_argument("--mix", type=parse_list(number(0)), default=None, metavar="W1,W2,...",
                       help="blend the model's styles with these weights (one per style)")
    p.add_argument("--strength", type=number(0), default=1.0, metavar="S",
                   help="how much of the style, in [0, 1]: 0 the photo, 1 the full style (default: 1)")
    p.add_argument("--preserve-colors", default="none", choices=color.PRESERVE_COLORS,
                   help="none, luminance (keep the photo's colours) or histogram (match them)")
    _add_apply_options(p, "photo", ", the scale the committed model's strokes were trained for")


_CYCLEGAN_HELP = {
    "size": "crop side in px (the paper: 256)",
    "steps": "training steps (the paper: 200 epochs of its folders, about 200000 at batch 1)",
    "decay_from": "step where the learning rate starts its linear decay to 0 (default: steps / 2)",
    "batch_size": "images of each domain per step, rounded up to a multiple of the device count",
    "learning_rate": "Adam's step size",
    "beta1": "Adam's beta1",
    "cycle_weight": "lambda, the cycle-consistency weight",
    "cycle_weight_end": "lambda at the last step, moving linearly from --cycle-weight at the first "
                        "(default: none, lambda constant)",
    "identity_weight": "identity loss weight, relative to lambda (0: none)",
    "pool_size": "past generated images each discriminator also sees (0: none)",
    "max_scale": "a photo's shorter side is first scaled to between min-scale x size and this x size",
    "min_scale": "see --max-scale (the demo: 2.2 to 2.5 at size 128, crops at 0.88-1.0 of its 512x320 images)",
    "width": "generator filters of the first convolution (then 2x, 4x)",
    "start": "random: the paper's; identity: each generator returns its input plus a learnt residual, zero at the start",
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
    _add_checkpoint_options(out, "translated A->B and back")
    out.add_argument("--loss-plot", type=Path, default=None, help="also write a loss-curve PNG here")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    add_cache_option(out)

    a = commands.add_parser("apply", help="translate images with a trained CycleGAN model")
    a.add_argument("model", type=Path, metavar="MODEL", help="model file from `jaxstyle cyclegan train`")
    a.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image file(s) or folder(s) of images")
    a.add_argument("--direction", default="a2b", choices=("a2b", "b2a"), help="a2b (default: A -> B) or b2a")
    _add_apply_options(a, "image", "")


# --- training: one skeleton, two families ---------------------------------------------------------------


def _model_output(args: argparse.Namespace, inputs: Sequence[tuple[str, Path]],
                  folders: Sequence[tuple[str, Path]]) -> Path:
    """-o, checked with what is written beside it (MODEL.json, the checkpoint, the preview, the loss
    plot: writable, none an input or another; the images not inside an input folder) before any work."""
    model_path = image_io.check_output_path(args.output)
    if model_path.suffix.lower() != ".msgpack":
        raise JaxstyleError(f"-o {model_path}: name the model file .msgpack (its sidecar is MODEL.json)")
    outputs = [*sidecar_outputs([model_path]), ("the checkpoint", model_path.with_name(model_path.name + ".checkpoint"))]
    if args.preview:
        outputs.append(("the preview", _preview_path(model_path)))
        inputs = [*inputs, ("--preview", args.preview)]
    if args.loss_plot:
        outputs.append(("--loss-plot", image_io.check_output_path(args.loss_plot)))
    files.check_outputs(outputs, inputs)
    files.check_not_within([o for o in outputs if o[0] in ("the preview", "--loss-plot")], folders)  # images
    return model_path


def _preview_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.stem + "_preview.png")


def _train(args: argparse.Namespace, model_path: Path, settings, *, command: str, inputs: str, batch: int,
           devices: Sequence, tag: Mapping[str, Any], template, loss_names: Sequence[str],
           bar_losses: str, skipped: Callable[[], int], preview: Callable[[Any], np.ndarray] | None,
           train: Callable, finish: Callable, plot_names: Sequence[str]) -> int:
    """Resumes from MODEL.msgpack.checkpoint if it matches `tag`, runs `train(resume, callback)` with a
    progress bar (the losses formatted by `bar_losses`, `skipped()` input files), a checkpoint (and `preview(params)`
    image) every --checkpoint-every steps, then `finish(result, history, first step)` (model file
    and sidecar), the loss plot and the clean-up."""
    from jaxstyle.nets.runs import Checkpointer

    checkpoints = Checkpointer(model_path.with_name(model_path.name + ".checkpoint"), tag,
                               history_keys=("step", *loss_names))
    resume, history = checkpoints.load(template, log=lambda m: print(f"{command}: {m}", file=sys.stderr))
    start = 0 if resume is None else int(resume.step)
    if resume is not None:
        print(f"{command}: resuming from step {start} ({checkpoints.path})", file=sys.stderr)
    print(f"{command}: {inputs}; batch {batch} over {len(devices)} device(s), {settings.steps} steps at "
          f"{settings.size} px", file=sys.stderr)
    bar = None if args.quiet else step_bar(settings.steps, start)

    def on_step(p: Progress) -> None:
        history.append({"step": p.step, **p.losses})
        if bar is not None:
            bar.set_postfix_str(f"{bar_losses.format_map(p.losses)}, {p.images_per_s:.2f} img/s, skipped {skipped()}")
            bar.update(1)
        if args.checkpoint_every and p.step % args.checkpoint_every == 0 and p.step < p.steps:
            checkpoints.save(p.state, history)
            if preview is not None:
                image_io.save_image(_preview_path(model_path), preview(p.state.params))

    try:
        result = train(resume, on_step)
    finally:
        if bar is not None:
            bar.close()
    finish(result, history, start)
    print(f"{command}: skipped {skipped()} unusable input file(s)", file=sys.stderr)
    if args.loss_plot:
        plots.plot_losses(history, args.loss_plot, names=plot_names, smooth=True)
    checkpoints.remove()
    print(model_path)
    return 0


def run_train(args: argparse.Namespace) -> int:
    import jax

    from jaxstyle.nets import fast, model_file, training
    from jaxstyle.nets.photos import PhotoFolder

    values = apply_alpha_beta(args, dataclass_values(args, training.TrainSettings), training.TrainSettings)
    settings = training.TrainSettings(**values)
    if args.from_model and args.tune_model:
        raise JaxstyleError("--from (add styles) and --tune (train further) cannot be combined")
    model_path = _model_output(args, [*(("a style image", p) for p in args.styles), ("the weights", weights_file(args)),
                                      *([("the --from model", args.from_model)] if args.from_model else []),
                                      *([("the --tune model", args.tune_model)] if args.tune_model else [])],
                               [("--photos", args.photos)])
    base = model_file.load(args.from_model) if args.from_model else None
    tune = model_file.load(args.tune_model) if args.tune_model else None
    styles = [image_io.load_image(p) for p in args.styles]
    names = tuple(p.stem for p in args.styles)
    if tune is not None and names != tuple(tune.styles):
        raise JaxstyleError(f"--tune {args.tune_model} holds the styles {', '.join(tune.styles)}: give their images, "
                            f"in that order (file names {', '.join(n + '.*' for n in tune.styles)}), not "
                            f"{', '.join(p.name for p in args.styles)}")
    if base is not None and set(names) & set(base.styles):
        taken = sorted(set(names) & set(base.styles))[0]
        raise JaxstyleError(f"{args.from_model} already holds a style named {taken!r}; "
                            f"rename the style image")
    config = training.model_config(settings, len(styles), base, tune)
    all_names = (*(base.styles if base else ()), *names)
    preview = image_io.load_image(args.preview, size=settings.style_size) if args.preview else None
    params, weights_path = load_params(args)
    photos = PhotoFolder(args.photos, size=settings.size, seed=settings.seed, max_short_side=settings.style_size)
    runtime.enable_compilation_cache(args.cache_dir)
    devices = jax.local_devices()
    batch = training.batch_size_for(settings, devices)

    def paint_preview(params) -> np.ndarray:  # the preview painted in each style, side by side
        model = model_file.FastModel(config, all_names, params)
        return np.concatenate([fast.apply(model, [preview], style_index=k)[0] for k in range(len(all_names))], axis=1)

    def finish(result: training.TrainResult, history, start: int) -> None:
        model_file.save(model_path, result.model, dtype="float16" if args.float16 else "float32")
        training.write_sidecar(model_path, settings=settings, result=result, style_paths=args.styles,
                               weights_path=weights_path, photos=photos, devices=len(devices),
                               extra={"resumed_from_step": start, "float16": bool(args.float16),
                                      **({"from": sidecars.file_record(args.from_model)} if base else {}),
                                      **({"tuned": sidecars.file_record(args.tune_model)} if tune else {})})

    return _train(
        args, model_path, settings, command="jaxstyle train", batch=batch, devices=devices,
        inputs=f"{len(photos.files)} photo file(s) in {args.photos}, {len(styles)} style(s)",
        tag={**training.checkpoint_tag(settings, batch, args.styles, weights_path, photos),
             **({"from": sidecars.file_record(args.from_model)["sha256"]} if base else {}),
             **({"tuned": sidecars.file_record(args.tune_model)["sha256"]} if tune else {})},
        template=jax.eval_shape(lambda: training.init_state(settings, len(styles), base, tune)),
        loss_names=training.LOSS_NAMES,
        plot_names=("total", "content", "style"), skipped=lambda: photos.skipped,
        bar_losses="loss {total:.4g} (content {content:.3g}, style {style:.3g}, tv {tv:.3g}"
                   + (", temporal {temporal:.3g})" if settings.temporal_weight else ")"),
        train=lambda resume, callback: training.train(params, styles, photos, settings, style_names=names,
                                                      resume=resume, callback=callback, devices=devices, base=base,
                                                      tune=tune),
        preview=paint_preview if preview is not None else None, finish=finish)


def run_cyclegan(args: argparse.Namespace) -> int:
    return (run_cyclegan_train if args.cyclegan_command == "train" else run_cyclegan_apply)(args)


def run_cyclegan_train(args: argparse.Namespace) -> int:
    import jax

    from jaxstyle.nets import cyclegan, model_file, runs

    settings = cyclegan.CycleGANSettings(**dataclass_values(args, cyclegan.CycleGANSettings))
    preview = image_io.load_image(args.preview, size=2 * settings.size) if args.preview else None
    domain_a, domain_b = cyclegan.photo_folders(args.a, args.b, settings)
    model_path = _model_output(args, [*(("an image of --a", p) for p in domain_a.files),
                                      *(("an image of --b", p) for p in domain_b.files)],
                               [("--a", args.a), ("--b", args.b)])
    runtime.enable_compilation_cache(args.cache_dir)
    devices = jax.local_devices()
    batch = cyclegan.batch_size_for(settings, devices)
    names = (args.a.resolve().name, args.b.resolve().name)
    t0 = time.perf_counter()

    def translate_preview(params) -> np.ndarray:  # the preview image | A->B | back to A
        model = model_file.CycleGANModel(settings.config(), names, params)
        [there] = cyclegan.apply(model, [preview], direction="a2b")
        [back] = cyclegan.apply(model, [there], direction="b2a")
        return np.concatenate([preview, there, back], axis=1)

    def finish(model: model_file.CycleGANModel, history, start: int) -> None:
        model_file.save_cyclegan(model_path, model)
        if preview is not None:
            image_io.save_image(_preview_path(model_path), translate_preview(model.params))
        folders = {"a": domain_a, "b": domain_b}
        sidecars.write_sidecar(model_path, {
            "kind": model_file.CYCLEGAN_FORMAT, "config": model.config.to_dict(), "settings": settings.to_dict(),
            "domains": {k: {"folder": str(f.folder), "files": len(f.files), "skipped": f.skipped}
                        for k, f in folders.items()},
            "names": list(names), "steps": settings.steps, "resumed_from_step": start, "devices": len(devices),
            "final_losses": runs.final_losses(history, cyclegan.LOSS_NAMES),
            "final_losses_window": runs.FINAL_WINDOW, "seconds_this_run": round(time.perf_counter() - t0, 1),
        }, key="model")

    return _train(
        args, model_path, settings, command="jaxstyle cyclegan", batch=batch, devices=devices,
        inputs=f"A {len(domain_a.files)} image file(s) in {args.a}, B {len(domain_b.files)} in {args.b}",
        tag=cyclegan.checkpoint_tag(settings, batch, domain_a, domain_b), template=cyclegan.state_template(settings),
        loss_names=cyclegan.LOSS_NAMES, plot_names=("generator", "discriminator", "cycle"),
        skipped=lambda: domain_a.skipped + domain_b.skipped,
        bar_losses="G {generator:.3g} (adv {adversarial:.3g}, cycle {cycle:.3g}) D {discriminator:.3g}",
        train=lambda resume, callback: cyclegan.train(domain_a, domain_b, settings, names=names, resume=resume,
                                                      callback=callback, devices=devices),
        preview=translate_preview if preview is not None else None, finish=finish)


# --- applying: one skeleton, two families ---------------------------------------------------------------


def _output_files(inputs: Sequence[Path], paths: list[Path], output: Path, label: str, model: Path) -> list[Path]:
    """Where `apply` writes each of `paths` (the image files of `inputs`): `output` itself for one input
    and a file name, else OUTPUT/STEM_LABEL.png; checked (no collisions, writable types, no input
    overwritten, none inside an input folder) before any work."""
    single = len(paths) == 1 and output.suffix and not output.is_dir()
    outputs = [output] if single else [output / f"{f.stem}_{label}.png" for f in paths]
    if len(set(outputs)) != len(outputs):
        raise JaxstyleError("two images share a file name; rename one so the outputs do not collide")
    for out in outputs:
        image_io.check_image_format(out)
        if single:
            image_io.check_output_path(out)
    files.check_outputs(sidecar_outputs(outputs), [*(("an input image", f) for f in paths), ("the model", model)])
    files.check_not_within([("-o", out) for out in outputs], [("the input folder", f) for f in inputs if f.is_dir()])
    return outputs


class _TileBar:
    """A tqdm bar on stderr over a tiled run's tiles, image by image (none when quiet or untiled)."""

    def __init__(self, *, quiet: bool):
        self.quiet, self._bar = quiet, None

    def update(self, p: TileProgress) -> None:
        if self.quiet:
            return
        if self._bar is None or p.tile == 1:
            self.close()
            self._bar = step_bar(p.tiles, unit="tile")
            self._bar.set_description(f"image {p.image + 1}/{p.images}")
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _apply(args: argparse.Namespace, inputs: Sequence[Path], *, command: str, label: str,
           check: Callable[..., Any], paint: Callable[..., list[np.ndarray]], record: Mapping[str, Any]) -> int:
    """Checks the inputs and outputs and `check(images, size=, batch_size=, tile=)` (memory), then creates the
    output folder, runs `paint(images, size=, batch_size=, tile=, progress=)` once and saves each result with its sidecar
    (`record`, the input, the cost). A single video input goes to `cli.video.apply_video`."""
    if cli_video.is_video_input(inputs, args.frames, args.smooth):
        return cli_video.apply_video(args, inputs[0], command=command, check=check, paint=paint, record=record)
    paths = photo_files(inputs)
    outputs = _output_files(inputs, paths, args.output, label, args.model)
    images = [image_io.load_image(f) for f in paths]
    runtime.enable_compilation_cache(args.cache_dir)
    size = args.size or None
    check(images, size=size, batch_size=args.batch_size, tile=args.tile)
    if len(outputs) > 1 or outputs[0] != args.output:  # created only now: a refusal leaves nothing behind
        image_io.ensure_output_dir(args.output)
    t0 = time.perf_counter()
    with _TileBar(quiet=args.quiet) as bar:
        results = paint(images, size=size, batch_size=args.batch_size, tile=args.tile, progress=bar.update)
    seconds = time.perf_counter() - t0
    for source, out, image in zip(paths, outputs, results):
        image_io.save_image(out, image)
        sidecars.write_sidecar(out, {**record, "input": sidecars.file_record(source), "size": args.size,
                                     "tile": args.tile, "seconds_all_images": round(seconds, 3),
                                     "images": len(paths)})
        print(out)
    if not args.quiet:
        print(f"{command}: {len(paths)} image(s) in {seconds:.2f} s (compilation included)", file=sys.stderr)
    return 0


def _on_device(model):
    """A model (`FastModel`, `CycleGANModel`) with its params as device arrays, once: a video is painted in
    many calls, and putting 62 arrays on the device again costs ~3 ms a call (jax.device_put; jnp.asarray
    cost ~16 ms, and compiled a conversion per array shape at first, ~0.2 s of a run's start-up)."""
    import jax

    return model._replace(params=jax.device_put(model.params))


def run_apply(args: argparse.Namespace) -> int:
    from jaxstyle.nets import fast, model_file

    if args.model is None:
        first = args.photos[0]
        with_model = first.suffix.lower() == ".msgpack" and len(args.photos) > 1
        args.model, args.photos = (first, args.photos[1:]) if with_model else (fast.DEFAULT_MODEL, args.photos)
    if args.model == fast.DEFAULT_MODEL and not args.model.is_file():
        raise JaxstyleError(f"the bundled model {args.model} is missing from this installation "
                            "(`make model` trains it); or give one with --model")
    model = _on_device(fast.load_model(args.model))
    if args.style is not None:
        args.style_index = model_file.find_style(model, args.style)
    weights = fast.style_weights(model, style_index=args.style_index, mix=args.mix)
    return _apply(
        args, args.photos, command="jaxstyle apply",
        label="mix" if args.mix is not None else model.styles[args.style_index or 0],
        check=functools.partial(fast.check_memory, model, style_index=args.style_index, mix=args.mix,
                                strength=args.strength),
        paint=functools.partial(fast.apply, model, style_index=args.style_index, mix=args.mix,
                                preserve_colors=args.preserve_colors, strength=args.strength),
        record={"model": {**sidecars.file_record(args.model), "styles": list(model.styles)},
                "style_weights": weights.tolist(), "strength": args.strength,
                "preserve_colors": args.preserve_colors})


def run_cyclegan_apply(args: argparse.Namespace) -> int:
    from jaxstyle.nets import cyclegan, model_file

    model = _on_device(model_file.load_cyclegan(args.model))
    return _apply(
        args, args.images, command="jaxstyle cyclegan",
        label=model.domains[1] if args.direction == "a2b" else model.domains[0],
        check=functools.partial(cyclegan.check_memory, model, direction=args.direction),
        paint=functools.partial(cyclegan.apply, model, direction=args.direction),
        record={"model": {**sidecars.file_record(args.model), "domains": list(model.domains)},
                "direction": args.direction})
