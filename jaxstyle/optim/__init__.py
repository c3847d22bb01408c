"""The paper's method: optimising the pixels of an image against VGG-19 features.

`settings` (what decides a run), `solver` (the jitted, vmapped L-BFGS/Adam loop over a batch of
canvases), `problem` (tasks, `solve` for one batch, size and memory checks), `api` (packing tasks
into batches, and the public functions re-exported here); `batch/` runs manifests of jobs
durably over devices, processes and hosts.
"""

from jaxstyle.optim.api import plan, plan_shapes, solve_all, stylize, stylize_batch, stylize_many, sweep
from jaxstyle.optim.problem import (NonFiniteLoss, Prepared, Result, Task, Temporal, available_memory_bytes, check_memory,
                                    check_size, estimate_memory_bytes, estimate_tiled_bytes, final_shape, initial_image,
                                    make_task, prepare, scale_sizes, solve, tile_for)
from jaxstyle.optim.settings import INITS, MIN_SIDE, OPTIMIZERS, ProgramKey, Settings, validate
from jaxstyle.optim.solver import Progress, Resume

__all__ = ["INITS", "MIN_SIDE", "OPTIMIZERS", "NonFiniteLoss", "Prepared", "Progress", "ProgramKey", "Result",
           "Resume", "Settings", "Task", "Temporal", "available_memory_bytes", "check_memory", "check_size",
           "estimate_memory_bytes", "estimate_tiled_bytes", "final_shape", "initial_image", "make_task", "plan", "plan_shapes", "prepare",
           "scale_sizes", "solve", "solve_all", "stylize", "stylize_batch", "stylize_many", "sweep", "tile_for", "validate"]
