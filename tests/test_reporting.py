"""Loss plots: the running mean drawn over noisy training losses."""

import numpy as np
import pytest
from PIL import Image

from jaxstyle.io import plots


@pytest.mark.parametrize("window", [1, 3, 7, 50])
def test_running_mean_is_the_mean_of_the_last_window_rows(window):
    values = np.random.default_rng(0).random((20, 2))
    expected = np.array([values[max(0, t - window + 1):t + 1].mean(axis=0) for t in range(len(values))])
    np.testing.assert_allclose(plots.running_mean(values, window), expected, rtol=1e-12)


def test_running_mean_of_alternating_values_is_their_midpoint():
    values = np.tile([1.0, 3.0], 10)
    np.testing.assert_allclose(plots.running_mean(values, 4)[3:], 2.0)


def test_smoothed_plot_draws_a_narrower_line_through_the_noise(tmp_path):
    """Noise uniform in [2, 3] over 1000 steps: the full-colour line's rows span the noise raw, and a
    far narrower band once it is the mean of 20 steps (the raw steps are drawn faint behind it)."""
    rng = np.random.default_rng(1)
    history = [{"step": t, "cycle": float(2 + rng.random())} for t in range(1, 1001)]

    def line_rows(path):
        pixels = np.asarray(Image.open(path).convert("RGB"), np.float32)
        opaque = np.abs(pixels - np.array([31, 119, 180], np.float32)).max(axis=-1) < 12  # matplotlib's C0
        rows = np.nonzero(opaque.any(axis=1))[0]
        return rows.max() - rows.min()

    raw = line_rows(plots.plot_losses(history, tmp_path / "raw.png", names=("cycle",)))
    smooth = line_rows(plots.plot_losses(history, tmp_path / "smooth.png", names=("cycle",), smooth=True))
    assert smooth < 0.5 * raw, (smooth, raw)
