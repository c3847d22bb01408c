"""The optimisation commands: stylize, sweep, batch, demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from jaxstyle import losses, optim, runtime
from jaxstyle.cli.options import (EXIT_NON_FINITE, ProgressReporter, add_alpha_beta, add_common,
                                  add_dataclass_options, apply_alpha_beta, at_least, dataclass_values, load_params,
                                  number, parse_list, save_every, sidecar_outputs, weights_file)
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import files, image_io, plots, sidecars
from jaxstyle.optim.checkpoint import load_checkpoint, save_checkpoint
from jaxstyle.optim.solver import StaleCheckpoint

_HELP = {
    "size": "longest side of the output in px",
    "steps": "optimisation steps",
    "optimizer": f"one of {optim.OPTIMIZERS}",
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
    "style_blend": "comma-separated weight per style image (STYLE, then each --blend-with; default: equal)",
    "style_scale": "style image size relative to the content's",
    "preserve_colors": "none, luminance (transfer on luminance only) or histogram (match the style's colours)",
    "scales": "coarse-to-fine levels: optimise at size/2^(N-1) ... size, --steps at each",
    "linesearch_steps": "most halvings of an L-BFGS step that does not decrease the loss enough",
    "tile": "evaluate the loss in tiles of N px (a multiple of 16), exactly; 0: only when one pass would not fit "
            "in memory (default: 0)",
}


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    """One option per `Settings` field, its default shown from the dataclass."""
    group = parser.add_argument_group("optimisation (defaults: the paper's, see README)")
    add_dataclass_options(group, optim.Settings, _HELP)
    defaults = optim.Settings()
    add_alpha_beta(group, defaults.content_weight / defaults.style_weight)
    group.add_argument("--settings", type=Path, help="JSON sidecar of an earlier output: reuse its settings")
    group.add_argument("--blend-with", type=Path, action="append", default=[], metavar="STYLE2",
                       help="another style image blended with STYLE (repeatable; weights: --style-blend)")
    group.add_argument("--mask", action="append", default=[], metavar="REGION.png:STYLE.jpg",
                       help="paint the white part of REGION with STYLE (repeatable); "
                            "the main STYLE paints what no mask covers")


def add_parsers(sub) -> None:
    p = sub.add_parser("stylize", help="paint content image(s) in the style of a painting")
    p.add_argument("contents", nargs="+", type=Path, metavar="CONTENT",
                   help="content image(s); several are stylised as vmapped batches, one per size")
    p.add_argument("style", type=Path, metavar="STYLE", help="style image")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="output .png/.jpg/.webp for one content (default: CONTENT_STYLE.png here); "
                        "an existing folder for several")
    p.add_argument("--save-every", type=at_least(0), default=0, metavar="N",
                   help="also save every N-th step's image as OUTPUT_stepNNNNN.png (default: 0, none)")
    p.add_argument("--checkpoint-every", type=at_least(0), default=None, metavar="N",
                   help="one content: save the optimisation state every N steps as OUTPUT.checkpoint.npz; "
                        "the same command run again resumes from it, and it is removed when the picture is "
                        "written (0: never; default: every step of a run evaluated in tiles, else never)")
    _add_settings_options(p)
    add_common(p)

    p = sub.add_parser("sweep", help="one compiled run over several alpha/beta ratios, with a contact sheet")
    p.add_argument("content", type=Path, metavar="CONTENT", help="content image")
    p.add_argument("style", type=Path, metavar="STYLE", help="style image")
    p.add_argument("--ratios", type=parse_list(number(0)), default=(1e-5, 1e-4, 1e-3, 1e-2),
                   help="comma-separated alpha/beta values (default: 1e-5,1e-4,1e-3,1e-2, the paper's Fig. 4)")
    p.add_argument("-o", "--output", type=Path, default=Path("sweep.png"),
                   help="contact sheet .png/.jpg/.webp; each image is written beside it as "
                        "SHEET_ratioR.png (default: sweep.png)")
    _add_settings_options(p)
    add_common(p)

    p = sub.add_parser("batch", help="many jobs from a manifest, resumable, sharded over devices and hosts")
    p.add_argument("manifest", type=Path, nargs="?",
                   help='JSON Lines, one job a line: {"content": ..., "style": ..., "output": ..., "settings": {...}}')
    p.add_argument("--contents", type=Path, help="instead of a manifest: every image in this folder ...")
    p.add_argument("--style", type=Path, help="... in the style of this image")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder (created if missing)")
    p.add_argument("--batch-size", type=at_least(1), default=8, metavar="N",
                   help="images optimised together in one vmapped program (default: 8)")
    p.add_argument("--checkpoint-every", type=at_least(0), default=10, metavar="N",
                   help="save the optimisation state every N steps (0: never; default: 10)")
    p.add_argument("--lease-seconds", type=number(0, inclusive=False), default=60.0, metavar="S",
                   help="a running batch's claim lapses S seconds after its process stops renewing it (dies); "
                        "then another process running the same manifest into the same folder takes it over "
                        "(default: 60)")
    p.add_argument("--coordinator", help="host:port of process 0, to run on several processes/hosts "
                                         "(or set JAX_COORDINATOR_ADDRESS etc. and --distributed)")
    p.add_argument("--num-processes", type=at_least(1), help="with --coordinator: how many processes in all")
    p.add_argument("--process-id", type=at_least(0), help="with --coordinator: this process's number, from 0")
    p.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() from the environment (cluster auto-detection)")
    _add_settings_options(p)
    add_common(p)

    p = sub.add_parser("demo", help="the bundled Tübingen photo in the style of The Starry Night")
    p.add_argument("-o", "--output", type=Path, default=Path("outputs/tubingen_starry_night.png"),
                   help="output .png/.jpg/.webp; its folder is created (default: outputs/tubingen_starry_night.png)")
    _add_settings_options(p)
    add_common(p)


def _settings_from(args: argparse.Namespace) -> optim.Settings:
    """--settings SIDECAR's settings, overridden by the options given."""
    sidecar = getattr(args, "settings", None)
    values: dict[str, Any] = _read_sidecar_settings(sidecar) if sidecar else {}
    values.update(dataclass_values(args, optim.Settings))
    return optim.Settings.from_dict(apply_alpha_beta(args, values, optim.Settings),
                                    source=f"--settings {sidecar}" if sidecar else None)


def _read_sidecar_settings(path: Path) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as e:
        raise JaxstyleError(f"cannot read settings from {path} ({e}); give the .json written beside an output")
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise JaxstyleError(f"{path} holds no \"settings\" object; give the .json sidecar written beside an "
                            f"output of stylize, sweep or batch")
    return record["settings"]


def run_demo(args: argparse.Namespace) -> int:
    args.contents, args.style = [image_io.data_path("tubingen.jpg")], image_io.data_path("starry_night.jpg")
    args.save_every = 0
    _settings_from(args)  # refused before the output folder is made
    image_io.check_image_format(args.output)
    image_io.ensure_output_dir(args.output.parent)
    return run_stylize(args)


def run_stylize(args: argparse.Namespace) -> int:

    settings = _settings_from(args)
    outputs = _output_paths(args.contents, args.style, args.output)
    contents = [image_io.load_image(p) for p in args.contents]
    style, masks, style_inputs = _styles_and_masks(args, contents)
    frames = [out.with_name(f"{out.stem}_step{step:05d}{out.suffix}") for out in outputs
              for step in range(args.save_every, settings.steps, args.save_every or settings.steps + 1)]
    every = getattr(args, "checkpoint_every", 0)  # demo has no such option
    if every and len(contents) > 1:
        raise JaxstyleError("--checkpoint-every takes one content image; jaxstyle batch checkpoints many")
    checkpoint = outputs[0].with_name(outputs[0].name + ".checkpoint.npz")
    _check_outputs(args, [*sidecar_outputs(outputs), *(("--save-every", f) for f in frames),
                          *([("the checkpoint", checkpoint)] if len(contents) == 1 else [])],
                   {"content": args.contents, **style_inputs}, settings)
    params, weights_path = load_params(args)
    tile = _print_memory_estimate(contents, settings, quiet=args.quiet)
    runtime.enable_compilation_cache(args.cache_dir)
    if every is None:
        every = 1 if tile and len(contents) == 1 else 0  # a step at print size takes minutes

    with ProgressReporter(settings.steps, quiet=args.quiet, batch=len(contents), scales=settings.scales) as progress:
        callback = progress
        if getattr(args, "save_every", 0):
            callback = save_every(callback, args.save_every, outputs)
        if len(contents) == 1:
            task = optim.make_task(contents[0], style, settings, masks=masks)
            belongs_to = json.loads(json.dumps({"inputs": _fingerprints({"content": args.contents, **style_inputs}),
                                                "settings": settings.to_dict()}))  # as read back
            resume = load_checkpoint(checkpoint, belongs_to=belongs_to, what="the run") if every else None
            if resume is not None and not args.quiet:
                print(f"jaxstyle: resuming from {checkpoint} (scale {resume.scale + 1}, step {resume.step})",
                      file=sys.stderr)
            if every:
                callback = _checkpointing(callback, every, checkpoint, belongs_to, settings.scales)
            try:
                results = optim.solve(params, [task], callback=callback, resume=resume, on_tile=progress.on_tile)
            except StaleCheckpoint as e:
                print(f"jaxstyle: ignoring checkpoint {checkpoint.name} ({e}); the run starts afresh", file=sys.stderr)
                results = optim.solve(params, [task], callback=callback, on_tile=progress.on_tile)
        else:
            results = optim.stylize_many(params, contents, style, settings, callback=callback)
    failed = 0
    for content_path, out, result in zip(args.contents, outputs, results):
        image_io.save_image(out, result.image)
        if result.failure:  # the last finite image is kept, without a sidecar: it is not a finished run
            failed += 1
            print(f"jaxstyle: error: {content_path}: {result.failure}; wrote the last finite image to {out}",
                  file=sys.stderr)
            continue
        sidecars.write_run_sidecar(out, settings=settings, result=result, weights_path=weights_path,
                                inputs={"content": content_path, **style_inputs})
        if len(contents) == 1:
            checkpoint.unlink(missing_ok=True)
        print(out)
    if args.loss_plot:
        plots.plot_losses(progress.history, args.loss_plot)
    return EXIT_NON_FINITE if failed else 0


def run_sweep(args: argparse.Namespace) -> int:

    settings = _settings_from(args)
    sheet = args.output
    image_io.check_image_output(sheet)
    if not args.ratios or len({f"{r:g}" for r in args.ratios}) != len(args.ratios):
        raise JaxstyleError(f"--ratios needs distinct values (each names its output file), got "
                            f"{','.join(f'{r:g}' for r in args.ratios) or 'none'}")
    outputs = [sheet.with_name(f"{sheet.stem}_ratio{r:g}{sheet.suffix}") for r in args.ratios]
    content = image_io.load_image(args.content)
    style, masks, style_inputs = _styles_and_masks(args, [content])
    _check_outputs(args, [("-o", sheet), *sidecar_outputs(outputs, "a ratio's output")],
                   {"content": [args.content], **style_inputs}, settings)
    params, weights_path = load_params(args)
    _print_memory_estimate([content], settings, batch=len(args.ratios), quiet=args.quiet)
    runtime.enable_compilation_cache(args.cache_dir)

    with ProgressReporter(settings.steps, quiet=args.quiet, batch=len(args.ratios)) as progress:
        result = optim.sweep(params, content, style, args.ratios, settings, masks=masks, callback=progress)
    labels = []
    for k, (ratio, out) in enumerate(zip(args.ratios, outputs)):
        one = result.item(k)
        one_settings = settings.replace(content_weight=float(ratio) * settings.style_weight)
        image_io.save_image(out, one.image)
        sidecars.write_run_sidecar(out, settings=one_settings, result=one, weights_path=weights_path,
                                inputs={"content": args.content, **style_inputs})
        labels.append(f"a/b={ratio:g}  Lc={float(one.content):.3g}  Ls={float(one.style):.3g}")
        print(out)
    image_io.save_image(sheet, plots.contact_sheet(list(result.image), labels))
    print(sheet)
    if args.loss_plot:
        plots.plot_losses(progress.history, args.loss_plot)
    return 0


def run_batch(args: argparse.Namespace) -> int:
    import jax

    from jaxstyle.optim import batch

    distributed = _distributed_options(args)
    defaults = _settings_from(args)
    if args.manifest is not None and (args.contents is not None or args.style is not None):
        raise JaxstyleError("give a MANIFEST or --contents FOLDER with --style IMAGE, not both")
    if args.manifest is not None:
        jobs, failures = batch.read_manifest(args.manifest, args.output, defaults)
    elif args.contents is not None and args.style is not None:
        jobs, failures = batch.folder_jobs(args.contents, args.style, args.output, defaults), []
    else:
        raise JaxstyleError("give a MANIFEST, or --contents FOLDER with --style IMAGE")
    if distributed is not None:
        try:
            jax.distributed.initialize(**distributed)
        except (RuntimeError, ValueError) as e:
            raise JaxstyleError(f"cannot join the other processes: {str(e).splitlines()[0]}") from None
    params, weights_path = load_params(args)
    image_io.ensure_output_dir(args.output)  # only once everything above is known to be fine
    runtime.enable_compilation_cache(args.cache_dir)
    summary = batch.run(jobs, args.output, params=params, weights_path=weights_path,
                        batch_size=args.batch_size, checkpoint_every=args.checkpoint_every,
                        initial_failures=failures, quiet=args.quiet, lease_seconds=args.lease_seconds,
                        process_index=jax.process_index(), process_count=jax.process_count())
    if args.quiet:
        print(summary.line(), file=sys.stderr)
    return summary.exit_code


def _distributed_options(args: argparse.Namespace) -> dict | None:
    """jax.distributed.initialize's arguments from --coordinator etc. (None: a single process)."""
    if args.coordinator is None:
        if args.num_processes is not None or args.process_id is not None:
            raise JaxstyleError("--num-processes and --process-id go with --coordinator HOST:PORT")
        return {} if args.distributed else None
    host, _, port = args.coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise JaxstyleError(f"--coordinator must be HOST:PORT, e.g. 10.0.0.1:1234, got {args.coordinator!r}")
    if args.num_processes is None or args.process_id is None:
        raise JaxstyleError("--coordinator needs --num-processes N and --process-id K (0 to N-1)")
    if args.process_id >= args.num_processes:
        raise JaxstyleError(f"--process-id must be below --num-processes ({args.num_processes}), "
                            f"got {args.process_id}")
    return dict(coordinator_address=args.coordinator, num_processes=args.num_processes,
                process_id=args.process_id)


def _output_paths(contents: list[Path], style: Path, output: Path | None) -> list[Path]:
    if len(contents) == 1:
        out = output if output is not None else Path(f"{contents[0].stem}_{style.stem}.png")
        if out.is_dir():
            out = out / f"{contents[0].stem}_{style.stem}.png"
        elif not out.suffix:
            raise JaxstyleError(f"-o {out}: no such folder; create it first, or give a file name ending "
                                f".png, .jpg or .webp")
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


def _check_outputs(args: argparse.Namespace, outputs: list[tuple[str, Path]], inputs: dict[str, Path | list[Path]],
                   settings: optim.Settings) -> None:
    """Refuses, before any work, an output (with --loss-plot) that is unwritable, an input (with the
    --init image, the --settings sidecar and the weights) or another output."""
    if args.loss_plot:
        outputs = [*outputs, ("--loss-plot", image_io.check_output_path(args.loss_plot))]
    named = [(f"the {name.replace('_', ' ')} image", path) for name, paths in inputs.items()
             for path in (paths if isinstance(paths, list) else [paths])]
    if settings.init not in optim.INITS:
        named.append(("the --init image", Path(settings.init)))
    if getattr(args, "settings", None):
        named.append(("the --settings sidecar", args.settings))
    files.check_outputs(outputs, [*named, ("the weights", weights_file(args))])


def _print_memory_estimate(contents: list[np.ndarray], settings: optim.Settings, *, batch: int = 1,
                           quiet: bool = False) -> int:
    """Refuses a size that does not fit, else prints each size's estimate; returns the largest tile
    side used (0: no size is tiled)."""
    shapes = {image_io.longest_side_shape(c.shape[:2], settings.size) for c in contents}
    tiles = [0]
    for shape in shapes:
        optim.check_size(shape)
        need = optim.check_memory(shape, settings, batch=batch if len(contents) == 1 else len(contents))
        tiles.append(optim.tile_for(shape, settings, batch=batch if len(contents) == 1 else len(contents)))
        if not quiet:
            how = f" (in tiles of {tiles[-1]} px)" if tiles[-1] else ""
            print(f"jaxstyle: {shape[1]}x{shape[0]} px, estimated memory {need / 2**30:.2f} GiB{how}", file=sys.stderr)
    return max(tiles)


def _fingerprints(inputs: dict[str, Path | list[Path]]) -> dict[str, str]:
    """{input name: SHA-256 of the file}: a checkpoint belongs to these exact inputs."""
    return {f"{name}_{i}": sidecars.cached_file_sha256(path)
            for name, paths in inputs.items() for i, path in enumerate(paths if isinstance(paths, list) else [paths])}


def _checkpointing(callback: Callable[[optim.Progress], None], every: int, path: Path, belongs_to: dict,
                   scales: int) -> Callable[[optim.Progress], None]:
    """Wraps a callback so that every `every`-th step's loop state is saved to `path` (not the last
    step of the last scale: the picture itself is written then)."""

    def wrapped(p: optim.Progress) -> None:
        callback(p)
        if p.step % every == 0 and (p.step < p.steps or p.scale + 1 < scales):
            save_checkpoint(path, p, belongs_to=belongs_to)

    return wrapped
