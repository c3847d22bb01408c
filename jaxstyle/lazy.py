"""Modules imported on first use: a command that never touches them does not pay for their import.

    optax = lazy.module("optax")   # at the top of a module; loaded at the first `optax.<name>`

optax (~80 ms, its `contrib` included) and h5py (~25 ms) are what `jaxstyle apply` and `--help`
would import without using; PyAV (FFmpeg) and OpenCV are for the video commands only. A module whose
import-time code reads an attribute loads at once, as usual.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def module(name: str) -> ModuleType:
    """`name`, imported now if it already is, else when one of its attributes is first read
    (`importlib.util.LazyLoader`). Raises ModuleNotFoundError now if it is not installed."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    lazy = importlib.util.module_from_spec(spec)
    sys.modules[name] = lazy
    loader.exec_module(lazy)
    return lazy
