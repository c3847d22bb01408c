"""Loss plots: the running mean drawn over noisy training losses."""

import numpy as np
import pytest
from PIL import Image

from jaxstyle import reporting


@pytest.mark.parametrize("window", [1, 3, 7, 50])
def test_running_mean_is_the_mean_of_the_last_window_rows(window):
    values = np.random.default_rng(0).random((20, 2))
    expected = np.array([values[max(0, t - window + 1):t + 1].mean(axis=0) for t in range(len(values))])
    np.testing.assert_allclose(reporting.running_mean(values, window), expected, rtol=1e-12)


def test_running_mean_of_alternating_values_is_their_midpoint():
    values = np.tile([1.0, 3.0], 10)
    np.testing.assert_allclose(reporting.running_mean(values, 4)[3:], 2.0)


def test_smoothed_plot_differs_from_the_raw_one(tmp_path):
    rng = np.random.default_rng(1)
    history = [{"step": t, "cycle": float(2 + rng.random())} for t in range(1, 201)]
    raw = reporting.plot_losses(history, tmp_path / "raw.png", names=("cycle",))
    smooth = reporting.plot_losses(history, tmp_path / "smooth.png", names=("cycle",), smooth=20)
    a, b = (np.asarray(Image.open(p).convert("RGB"), np.float32) for p in (raw, smooth))
    assert a.shape == b.shape
    assert np.abs(a - b).mean() > 1.0
