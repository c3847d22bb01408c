"""Checkpoints of a training run: its whole state and loss history, atomically, in flax msgpack.

Shared by every trainer (fast networks, CycleGAN): a state is any pytree of arrays (a NamedTuple
of params, optimiser states, step ...), read back into the structure of a template.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np
from flax import serialization

from jaxstyle.io.files import atomic_write_bytes

State = TypeVar("State")


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
