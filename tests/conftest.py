"""Shared fixtures: tiny random VGG weights, the real weights when present, strict numpy rules."""

from pathlib import Path

import jax
import numpy as np
import pytest

from jaxstyle import vgg

jax.config.update("jax_numpy_rank_promotion", "raise")

REPO = Path(__file__).resolve().parents[1]
REAL_WEIGHTS = REPO / "weights" / "vgg19.h5"
DATA = REPO / "jaxstyle" / "data"


def random_params(seed: int = 0, width: int = 4) -> dict:
    """VGG-19-shaped params with `width` channels per layer (3 in), He-scaled, plus an input affine."""
    rng = np.random.default_rng(seed)
    params, cin = {}, 3
    for name, _, _ in vgg.CONV_LAYERS:
        params[name] = {
            "kernel": (rng.standard_normal((3, 3, cin, width)) * np.sqrt(2.0 / (9 * cin))).astype(np.float32),
            "bias": (rng.standard_normal(width) * 0.1).astype(np.float32),
        }
        cin = width
    params["input"] = {
        "matrix": rng.standard_normal((3, 3)).astype(np.float32),
        "offset": rng.standard_normal(3).astype(np.float32),
    }
    return params


@pytest.fixture(scope="session")
def tiny_params():
    return random_params()


@pytest.fixture(scope="session")
def real_params():
    if not REAL_WEIGHTS.exists():
        pytest.skip(f"{REAL_WEIGHTS} missing: run `make weights` (make test does it)")
    from jaxstyle import weights

    return weights.load_params(REAL_WEIGHTS)
