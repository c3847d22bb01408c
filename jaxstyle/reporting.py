"""What surrounds a run: the progress bar, intermediate images, JSON sidecars, loss plots.

The optimisation loop knows nothing of this; it only calls a callback with `optimize.Progress`.
"""

from __future__ import annotations

import datetime
import io
import json
import platform
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from jaxstyle import image_io
# file_sha256 is also imported from here by callers (jaxstyle.batch).
from jaxstyle.files import atomic_write_bytes, atomic_write_text, cached_file_sha256, file_sha256
from jaxstyle.optimize import Progress, Result, Settings


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
            from tqdm import tqdm

            self._bar = tqdm(total=self.steps, unit="step", file=sys.stderr, dynamic_ncols=True)
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


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def sidecar_path(output: Path) -> Path:
    """OUTPUT.json, where `write_sidecar` records how OUTPUT was made."""
    return output.with_suffix(".json")


def write_sidecar(output: Path, *, settings: Settings, result: Result, weights_path: Path,
                  inputs: dict[str, Path], extra: dict | None = None) -> Path:
    """Writes OUTPUT.json: settings, seed, weights sha256, versions, final losses, cost, output sha256.

    `extra` adds fields (a batch job's id and process, say). Written atomically and after the
    output, so a sidecar that names the output's sha256 marks a finished job.
    """
    import jax

    record = {
        "output": str(output),
        "output_sha256": file_sha256(output),
        "inputs": {k: {"path": str(v), "sha256": cached_file_sha256(v)} for k, v in inputs.items()},
        "settings": settings.to_dict(),
        "seed": settings.seed,
        "weights": {"path": str(weights_path), "sha256": cached_file_sha256(weights_path)},
        "losses": {name: float(np.asarray(getattr(result, name)))
                   for name in ("total", "content", "style", "tv")},
        "steps": result.steps,
        "evaluations": result.evaluations,
        "seconds": round(result.seconds, 3),
        "versions": {p: _version(p) for p in ("jaxstyle", "jax", "jaxlib", "optax", "numpy")},
        "backend": jax.default_backend(),
        "python": platform.python_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    return atomic_write_text(sidecar_path(output), json.dumps(record, indent=2) + "\n")


def running_mean(values, window: int) -> np.ndarray:
    """f[T, ...] -> f64[T, ...]: at each row, the mean of the last `window` >= 1 rows (fewer at the start)."""
    values = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(values, axis=0)
    sums[window:] = sums[window:] - sums[:-window]
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return sums / counts.reshape(-1, *[1] * (values.ndim - 1))


def plot_losses(history: list[dict], path: Path, *,
                names: Sequence[str] = ("total", "content", "style"), smooth: bool = False) -> Path | None:
    """Writes a PNG of each loss in `names` against step (log scale), one line per image.

    smooth (training, where each step sees other images): each loss is drawn faint, with its
    mean over the last 1/50 of the steps on top, so the trend shows through the noise.
    Returns `path`, or None when `history` is empty (no step ran, e.g. --steps 0): then
    nothing is written and one line saying so goes to stderr.
    """
    if not history:
        print("jaxstyle: no steps ran; no loss plot written", file=sys.stderr)
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    window = len(history) // 50 if smooth else 1
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5))
    for ax, name in zip(np.atleast_1d(axes), names):
        values = np.array([np.atleast_1d(h[name]) for h in history])
        if window > 1:
            raw = ax.plot(steps, values, alpha=0.25, linewidth=0.5)
            for line, mean in zip(raw, running_mean(values, window).T):
                ax.plot(steps, mean, color=line.get_color())
            ax.set_title(f"{name} loss (line: mean of last {window} steps)", fontsize="medium")
        else:
            ax.plot(steps, values)
            ax.set_title(f"{name} loss")
        ax.set(xlabel="step", yscale="log")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
