"""jaxstyle: neural style transfer (Gatys, Ecker & Bethge, CVPR 2016) as plain, functional JAX.

    from jaxstyle import Settings, data_path, load_image, load_params, stylize
    params = load_params()                      # weights/vgg19.h5 (`make weights`)
    result = stylize(params, load_image(data_path("tubingen.jpg")),
                     load_image(data_path("starry_night.jpg")), Settings(size=256))

The package: shared maths and runtime here (`vgg`, `losses`, `color`, `errors`, `runtime`),
files in `io/`, the paper's optimisation in `optim/`, the trainable networks in `nets/`, the
command line in `cli/`.
"""

import importlib
from importlib import metadata

from jaxstyle.errors import JaxstyleError
from jaxstyle.io.image_io import data_path, load_image, save_image
from jaxstyle.io.weights import load_params
from jaxstyle.losses import LossWeights, Targets, make_targets, total_loss
from jaxstyle.optim import (NonFiniteLoss, Progress, Result, Settings, Task, make_task, solve, stylize, stylize_batch,
                            stylize_many, sweep)
from jaxstyle.runtime import enable_compilation_cache
from jaxstyle.vgg import features

__all__ = ["JaxstyleError", "LossWeights", "NonFiniteLoss", "Progress", "Result", "Settings", "Targets", "Task",
           "data_path", "enable_compilation_cache", "features", "load_cyclegan", "load_image", "load_model",
           "load_params", "make_targets", "make_task", "paint", "save_image", "solve", "stylize", "stylize_batch",
           "stylize_many", "sweep", "total_loss", "translate"]

# The networks' names, imported on first use: flax costs every command's start otherwise.
_NETWORKS = {"paint": ("jaxstyle.nets.fast", "apply"), "translate": ("jaxstyle.nets.cyclegan", "apply"),
             "load_model": ("jaxstyle.nets.model_file", "load"),
             "load_cyclegan": ("jaxstyle.nets.model_file", "load_cyclegan")}


def __getattr__(name: str):
    if name not in _NETWORKS:
        raise AttributeError(f"module 'jaxstyle' has no attribute {name!r}")
    module, attribute = _NETWORKS[name]
    return getattr(importlib.import_module(module), attribute)


try:
    __version__ = metadata.version("jaxstyle")
except metadata.PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0.0.0+unknown"
