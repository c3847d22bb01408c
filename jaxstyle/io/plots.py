"""Pictures of a run: loss curves (PNG) and labelled contact sheets."""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jaxstyle.io.files import atomic_write_bytes
from jaxstyle.io.image_io import as_rgb_float


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


def contact_sheet(
    images: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    columns: int | None = None,
    label_height: int = 20,
) -> np.ndarray:
    """Lays out same-size images in a grid with a text label under each.

    Cells are filled row by row; unused cells and the label strips are
    white. Labels wider than a cell are cut off at the cell's edge.

    Args:
      images: ``n`` float arrays ``[h, w, 3]`` in ``[0, 1]``, all one shape.
      labels: ``n`` strings, one per image.
      columns: images per row; defaults to ``ceil(sqrt(n))``.
      label_height: height in pixels of the strip under each image (0 for none).

    Returns:
      float32 array ``[rows * (h + label_height), columns * w, 3]`` with
      ``rows = ceil(n / columns)``.

    Raises:
      ValueError: no images, a label count that differs from the image
        count, images of different shapes, or a non-positive ``columns``.
    """
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    if len(labels) != len(images):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels")
    if label_height < 0:
        raise ValueError(f"label_height must be >= 0, got {label_height}")
    cells = [np.clip(as_rgb_float(image), 0.0, 1.0) for image in images]
    shapes = {cell.shape for cell in cells}
    if len(shapes) != 1:
        raise ValueError(f"contact_sheet images must share one shape, got {sorted(shapes)}")
    columns = columns if columns is not None else math.ceil(math.sqrt(len(cells)))
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")

    rows = math.ceil(len(cells) / columns)
    height, width, _ = cells[0].shape
    cell_height = height + label_height
    sheet = np.ones((rows * cell_height, columns * width, 3), dtype=np.float32)
    for index, (cell, label) in enumerate(zip(cells, labels)):
        top, left = (index // columns) * cell_height, (index % columns) * width
        sheet[top : top + height, left : left + width] = cell
        if label_height:
            strip = _label_strip(str(label), width, label_height)
            sheet[top + height : top + cell_height, left : left + width] = strip[..., None]
    return sheet


def _label_strip(text: str, width: int, height: int) -> np.ndarray:
    """Renders ``text`` in black, left-aligned and vertically centred, on white.

    Returns:
      float32 array ``[height, width]`` in ``[0, 1]``.
    """
    strip = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default()
    _, top, _, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text((2, (height - (bottom + top)) / 2), text, fill=0, font=font)
    return np.asarray(strip, dtype=np.float32) / 255.0
