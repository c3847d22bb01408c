"""Progress bars on stderr for every command; the optimisation's reporter keeps the loss history."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from jaxstyle.io import image_io
from jaxstyle.optim import Progress


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
