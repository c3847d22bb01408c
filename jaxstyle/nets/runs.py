"""What every trainer (fast networks, CycleGAN) shares: the progress record, the step loop, checkpoints.

A trainer builds its jitted step and its stream of photo batches; `run_steps` places them on
the devices, runs the steps, stops on a non-finite loss, times them and hands a `Progress` to
the callback. `Checkpointer` saves any state pytree (a NamedTuple of params, optimiser states,
step ...) with its loss history, atomically, and reads it back into a template's structure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np
from flax import serialization

from jaxstyle import runtime
from jaxstyle.errors import JaxstyleError
from jaxstyle.io.files import atomic_write_bytes

State = TypeVar("State")

FINAL_WINDOW = 20  # the final losses of a run are means over its last steps (one batch is noisy)


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a trainer's callback receives after each step; losses are batch means, unweighted per term."""

    step: int
    steps: int
    losses: dict[str, float]  # the trainer's LOSS_NAMES
    images_per_s: float
    seconds: float
    state: Any  # the trainer's state, for checkpoints; read it in the callback (the next step donates it)


def run_steps(step_fn: Callable[[State, Any], tuple[State, jax.Array]], state: State, batches: Iterable, *,
              steps: int, batch_size: int, loss_names: Sequence[str], devices: Sequence[jax.Device],
              callback: Callable[[Progress], None] | None = None) -> tuple[State, list[dict]]:
    """Runs `step_fn(state, batch) -> (state, losses f32[len(loss_names)])` on each batch after `state.step`.

    The state is replicated over `devices` and each batch (a pytree of arrays with the batch
    first) split over them. Returns the last state and one {"step", *loss_names, "seconds"} per step.

    Raises:
      JaxstyleError: a loss became NaN or infinite (the caller's last checkpoint is kept).
    """
    shardings = runtime.shardings(devices)
    state = jax.device_put(state, shardings.replicated)
    history: list[dict] = []
    t0 = last = time.perf_counter()
    for step, batch in enumerate(batches, int(state.step) + 1):
        state, values = step_fn(state, jax.device_put(batch, shardings.batch))
        losses = dict(zip(loss_names, np.asarray(values).tolist()))
        if not np.all(np.isfinite(list(losses.values()))):
            raise JaxstyleError(f"a training loss became non-finite at step {step} ({losses}); lower "
                                "--learning-rate or the loss weights (the last checkpoint is kept)")
        now = time.perf_counter()
        history.append({"step": step, **losses, "seconds": now - t0})
        if callback is not None:
            callback(Progress(step=step, steps=steps, losses=losses, images_per_s=batch_size / (now - last),
                              seconds=now - t0, state=state))
        last = now
    return state, history


def final_losses(history: Sequence[Mapping[str, float]], names: Sequence[str]) -> dict[str, float]:
    """Each loss's mean over the last `FINAL_WINDOW` steps of `history` (NaN if no step ran)."""
    window = history[-FINAL_WINDOW:]
    return {k: float(np.mean([h[k] for h in window])) if window else float("nan") for k in names}


class Checkpointer:
    """Atomic checkpoints of a `State` (flax msgpack: no pickle), tagged with what they belong to.

    A checkpoint whose tag (settings, styles, weights) differs from the run's is reported in
    one line and ignored, so a changed command starts afresh instead of mixing two runs.
    """

    def __init__(self, path: str | Path, tag: Mapping[str, Any], *, history_keys: Sequence[str]):
        self.path = Path(path)
        self.history_keys = tuple(history_keys)
        self.tag = hashlib.sha256(json.dumps(tag, sort_keys=True, default=str).encode()).hexdigest()

    def save(self, state: State, history: Sequence[Mapping[str, float]] = ()) -> None:
        """Writes the state and the loss history so far (for the loss plot of a resumed run)."""
        host = jax.tree.map(np.asarray, state)
        columns = {k: np.asarray([h[k] for h in history], np.float64) for k in self.history_keys}
        record = {"tag": self.tag, "state": serialization.to_state_dict(host), "history": columns}
        atomic_write_bytes(self.path, serialization.msgpack_serialize(record))

    def load(self, template: State, *,
             log: Callable[[str], None] = print) -> tuple[State | None, list[dict]]:
        """(saved state with `template`'s structure, loss history), or (None, []) if none or stale."""
        if not self.path.exists():
            return None, []
        try:
            record = serialization.msgpack_restore(self.path.read_bytes())
            if record.get("tag") != self.tag:
                log(f"checkpoint {self.path} belongs to other settings, styles, weights or photos; starting afresh")
                return None, []
            state = serialization.from_state_dict(template, record["state"])
            columns = record["history"]
            history = [{k: (int if k == "step" else float)(columns[k][i]) for k in self.history_keys}
                       for i in range(len(columns["step"]))]
            return state, history
        except Exception as e:  # noqa: BLE001 - an unreadable checkpoint is not worth a crash
            log(f"checkpoint {self.path} is unreadable ({type(e).__name__}); starting afresh")
            return None, []

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
