"""Checkpoints of the optimisation loop: its state as an .npz of plain arrays (no pickles).

Used by `jaxstyle batch` for every running batch and by `jaxstyle stylize --checkpoint-every` for a
long single picture; a checkpoint records what it belongs to, and one that does not match is ignored.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import jax
import numpy as np

from jaxstyle.io.files import atomic_path
from jaxstyle.optim import solver


def save_checkpoint(path: Path, progress: solver.Progress, *, belongs_to: dict | None = None) -> None:
    """The loop state after `progress.step`, written atomically and streamed to the file (at print
    size the state is gigabytes: no copy of it is made in memory).

    belongs_to: what the state was computed for (jobs, batch size), checked by `load_checkpoint`.
    """
    leaves = [np.asarray(x) for x in jax.tree.leaves(progress.state)]
    meta = {"scale": progress.scale, "step": progress.step, "evaluations": progress.evaluations,
            "belongs_to": belongs_to or {}, "arrays": [[list(x.shape), str(x.dtype)] for x in leaves]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp_path, open(temp_path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **{f"leaf_{i:04d}": x for i, x in enumerate(leaves)})


def load_checkpoint(path: Path, *, belongs_to: dict | None = None, what: str = "that batch") -> solver.Resume | None:
    """The saved state, or None when there is none, it cannot be read, or it belongs to something
    else (then it is reported in one line, naming `what` starts afresh, and removed)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            leaves = [data[f"leaf_{i:04d}"] for i in range(len(data.files) - 1)]
        if belongs_to is not None and meta.get("belongs_to") != belongs_to:
            raise ValueError("it belongs to other inputs, settings or batch size")
        return solver.Resume(meta["scale"], meta["step"], meta["evaluations"], leaves)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        print(f"jaxstyle: ignoring checkpoint {path.name} ({e}); {what} starts afresh", file=sys.stderr)
        path.unlink(missing_ok=True)
        return None
