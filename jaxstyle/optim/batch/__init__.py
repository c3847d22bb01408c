"""Batch jobs: a manifest of (content, style, settings) stylised into a folder, durably and shared
by any number of processes (`jobs`: the manifest and its units; `run`: running them, with
checkpoints; `claims`: which process runs which unit)."""

from jaxstyle.optim.batch.jobs import FAILURES, Job, Unit, folder_jobs, is_done, output_shape, plan, read_manifest
from jaxstyle.optim.batch.run import (CHECKPOINTS, CLAIMS, EXIT_SOME_FAILED, Summary, device_placer, load_checkpoint,
                                      run, save_checkpoint)

__all__ = ["CHECKPOINTS", "CLAIMS", "EXIT_SOME_FAILED", "FAILURES", "Job", "Summary", "Unit", "device_placer",
           "folder_jobs", "is_done", "load_checkpoint", "output_shape", "plan", "read_manifest", "run",
           "save_checkpoint"]
