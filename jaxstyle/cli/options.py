"""What every command shares: options generated from a settings dataclass, output options, input
checks, progress bars on stderr.

Option defaults come from the dataclasses (`optim.Settings`, `training.TrainSettings`,
`cyclegan.CycleGANSettings`); nothing here restates them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from jaxstyle import losses
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io, sidecars, weights
from jaxstyle.optim import Progress
from jaxstyle.nets.photos import EXTENSIONS

EXIT_ERROR, EXIT_NON_FINITE, EXIT_INTERRUPTED = 2, 3, 130


def at_least(minimum: int):
    """An argparse type: an integer >= `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def number(minimum: float, *, inclusive: bool = True):
    """An argparse type: a finite number >= `minimum` (> it when not `inclusive`)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (np.isfinite(value) and (value >= minimum if inclusive else value > minimum)):
            raise argparse.ArgumentTypeError(f"must be a finite number {'>=' if inclusive else '>'} {minimum:g}, "
                                             f"got {text}")
        return value
    parse.__name__ = "number"
    return parse


def parse_list(kind):
    """An argparse type: comma-separated values of `kind`, as a tuple."""
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        try:
            return tuple(kind(t) for t in items)
        except (ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}") from None
    return parse


def parse_layers(text: str):
    """Comma-separated layer names, or a preset name such as upto-conv3_1."""
    return text if text in losses.STYLE_PRESETS else parse_list(str)(text)


def _option_type(field: dataclasses.Field):
    """The argparse type of a dataclass field, from its annotation (a string: postponed annotations)."""
    annotation = str(field.type)
    if field.name.endswith("_layers"):
        return parse_layers
    if annotation.startswith("tuple[float"):
        return parse_list(float)
    if annotation.startswith("tuple[str"):
        return parse_list(str)
    return {"int": int, "float": float, "str": str}[annotation.split(" ")[0].split("|")[0]]


def add_dataclass_options(group, cls, helps: Mapping[str, str]) -> None:
    """One --option per field of the dataclass `cls`, with its help, its choices (from the field's
    rules) and its default (shown, not set: only the options given reach `dataclass_values`).
    A help that says its own default (e.g. "default: equal") is not given another."""
    defaults = cls()
    for field in dataclasses.fields(cls):
        default = getattr(defaults, field.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text = helps.get(field.name, "")
        if "default" not in text:
            text += f" (default: {shown})"
        group.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=_option_type(field),
                           default=argparse.SUPPRESS, choices=field.metadata.get("choices"), help=text)


def dataclass_values(args: argparse.Namespace, cls) -> dict:
    """{field: value} of the options of `cls` given on the command line (`add_dataclass_options`)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def add_alpha_beta(group, default: float | None = None) -> None:
    shown = "" if default is None else f"; unset, the content and style weights are used as given (default ratio {default:g})"
    group.add_argument("--alpha-beta", type=number(0), default=argparse.SUPPRESS,
                       help=f"alpha/beta ratio: sets content weight = ratio x style weight{shown}")


def apply_alpha_beta(args: argparse.Namespace, values: dict, cls) -> dict:
    """`values` with the content weight set from --alpha-beta (and the style weight given or default)."""
    if hasattr(args, "alpha_beta"):
        if hasattr(args, "content_weight"):
            raise JaxstyleError("give --alpha-beta or --content-weight, not both: the ratio sets the content weight")
        values["content_weight"] = args.alpha_beta * values.get("style_weight", cls.style_weight)
    return values


def add_cache_option(parser) -> None:
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="persistent compilation cache (default: ~/.cache/jaxstyle/jit)")


def add_common(parser: argparse.ArgumentParser) -> None:
    """--weights, --loss-plot, --quiet, --cache-dir."""
    out = parser.add_argument_group("output")
    out.add_argument("--weights", type=Path, default=None,
                     help="converted VGG-19 weights (default: weights/vgg19.h5 or $JAXSTYLE_WEIGHTS)")
    out.add_argument("--loss-plot", type=Path, default=None,
                     help="also write a loss-curve PNG here (none if no step runs, e.g. --steps 0)")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    add_cache_option(out)


def photo_files(paths: list[Path]) -> list[Path]:
    """Files as given, and the image files inside any folder (sorted); a folder with none is an error."""
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


def sidecar_outputs(outputs: Sequence[Path], role: str = "-o") -> list[tuple[str, Path]]:
    """(role, path) of each output and of its sidecar OUTPUT.json, for `files.check_outputs`."""
    return [item for out in outputs for item in ((role, out), (f"the sidecar of {out}", sidecars.sidecar_path(out)))]


def weights_file(args: argparse.Namespace) -> Path:
    """--weights, or the default weights file."""
    return Path(args.weights if args.weights is not None else weights.default_weights_path())


def load_params(args: argparse.Namespace):
    path = weights_file(args)
    return weights.load_params(path), path


class ProgressReporter:
    """A tqdm bar on stderr with the current losses; keeps the loss history for a plot.

    For a batch the bar shows the mean over images; the history keeps every image's values.
    """

    def __init__(self, steps: int, *, quiet: bool = False, batch: int = 1, scales: int = 1):
        self.steps, self.quiet, self.batch, self.scales = steps, quiet, batch, scales
        self.history: list[dict] = []
        self._bar = None
        self._losses = ""

    def __enter__(self):
        if not self.quiet:
            self._bar = step_bar(self.steps)
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.close()

    def __call__(self, p: Progress) -> None:
        record = {"step": p.step, "seconds": p.seconds, "evaluations": p.evaluations}
        for name in ("total", "content", "style", "tv"):
            record[name] = np.asarray(getattr(p, name)).tolist()
        self.history.append(record)
        if self._bar is not None:
            if p.step < self._bar.n:  # a new scale, or a new batch of a multi-size run, starts over
                self._bar.reset(total=self.steps)
            if self.scales > 1:
                self._bar.set_description(f"scale {p.scale + 1}/{self.scales}")
            self._losses = f"loss {np.mean(p.total):.4g} (content {np.mean(p.content):.3g}, style {np.mean(p.style):.3g})"
            self._bar.set_postfix_str(self._losses)
            self._bar.update(p.step - self._bar.n)

    def on_tile(self, text: str) -> None:
        """Shows which tile of a tiled evaluation runs (`optim.solve`'s on_tile)."""
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self._losses}, {text}" if self._losses else text)


def save_every(callback: Callable[[Progress], None], every: int,
               outputs: Sequence[Path]) -> Callable[[Progress], None]:
    """Wraps a callback so that every `every`-th step's image(s) are also saved beside the outputs."""

    def wrapped(p: Progress) -> None:
        callback(p)
        if p.step % every == 0 and p.step != p.steps:
            for out, image in zip(outputs, p.image()):
                image_io.save_image(out.with_name(f"{out.stem}_step{p.step:05d}{out.suffix}"), image)

    return wrapped


def step_bar(steps: int, start: int = 0, *, unit: str = "step"):
    """A tqdm bar on stderr, starting at `start` of `steps`."""
    from tqdm import tqdm

    return tqdm(total=steps, initial=start, unit=unit, file=sys.stderr, dynamic_ncols=True)
