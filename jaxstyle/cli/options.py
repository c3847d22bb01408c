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
from jaxstyle.io import image_io, weights
from jaxstyle.optim import Progress
from jaxstyle.nets.photos import EXTENSIONS

EXIT_ERROR, EXIT_NON_FINITE, EXIT_INTERRUPTED = 2, 3, 130


def parse_list(kind):
    """An argparse type: comma-separated values of `kind`, as a tuple."""
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        try:
            return tuple(kind(t) for t in items)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}")
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


def add_dataclass_options(group, cls, helps: Mapping[str, str], *,
                          choices: Mapping[str, tuple] | None = None) -> None:
    """One --option per field of the dataclass `cls`, with its help and its default (shown, not set:
    only the options given reach `dataclass_values`); `choices` restricts a field's values."""
    defaults = cls()
    for field in dataclasses.fields(cls):
        default = getattr(defaults, field.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        group.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=_option_type(field),
                           default=argparse.SUPPRESS, choices=(choices or {}).get(field.name),
                           help=f"{helps.get(field.name, '')} (default: {shown})")


def dataclass_values(args: argparse.Namespace, cls) -> dict:
    """{field: value} of the options of `cls` given on the command line (`add_dataclass_options`)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def add_alpha_beta(group, default: float | None = None) -> None:
    shown = "" if default is None else f" (default: {default:g})"
    group.add_argument("--alpha-beta", type=float, default=argparse.SUPPRESS,
                       help=f"alpha/beta ratio: sets content weight = ratio x style weight{shown}")


def apply_alpha_beta(args: argparse.Namespace, values: dict, cls) -> dict:
    """`values` with the content weight set from --alpha-beta (and the style weight given or default)."""
    if hasattr(args, "alpha_beta"):
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


def check_not_inputs(outputs: list[Path], inputs: list[Path]) -> None:
    resolved = {p.resolve() for p in inputs}
    for out in outputs:
        if out.resolve() in resolved:
            raise JaxstyleError(f"output {out} is also an input; choose another -o so inputs are never overwritten")


def load_params(args: argparse.Namespace):
    path = args.weights if args.weights is not None else weights.default_weights_path()
    return weights.load_params(path), Path(path)


class ProgressReporter:
    """A tqdm bar on stderr with the current losses; keeps the loss history for a plot.

    For a batch the bar shows the mean over images; the history keeps every image's values.
    """

    def __init__(self, steps: int, *, quiet: bool = False, batch: int = 1):
        self.steps, self.quiet, self.batch = steps, quiet, batch
        self.history: list[dict] = []
        self._bar = None

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
            if p.step < self._bar.n:  # a new batch of a multi-size run starts over
                self._bar.reset(total=self.steps)
            self._bar.set_postfix_str(
                f"loss {np.mean(p.total):.4g} (content {np.mean(p.content):.3g}, style {np.mean(p.style):.3g})")
            self._bar.update(p.step - self._bar.n)


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
