"""JSON sidecars: OUTPUT.json beside every output file records how it was made.

Every sidecar holds one provenance block (`provenance`: package versions, backend, Python,
time) next to what its command adds (settings, inputs and their sha256, losses, cost).
"""

from __future__ import annotations

import datetime
import json
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import numpy as np

from jaxstyle.errors import JaxstyleError
from jaxstyle.io.files import atomic_write_text, cached_file_sha256, file_sha256

PACKAGES = ("jaxstyle", "jax", "jaxlib", "flax", "optax", "numpy")


def version(package: str) -> str | None:
    """The installed version of `package`, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def provenance() -> dict:
    """What made an output: {"versions": {package: version}, "backend", "python", "created"}."""
    import jax

    return {
        "versions": {p: version(p) for p in PACKAGES},
        "backend": jax.default_backend(),
        "python": platform.python_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def sidecar_path(output: Path) -> Path:
    """OUTPUT.json, where the sidecar of OUTPUT records how it was made."""
    return Path(output).with_suffix(".json")


def file_record(path: Path) -> dict:
    """{"path", "sha256"} of an input file (hashed once per file version)."""
    return {"path": str(path), "sha256": cached_file_sha256(path)}


def write_sidecar(output: Path, record: Mapping, *, key: str = "output") -> Path:
    """Writes OUTPUT.json: {key: output, key + "_sha256", **record, **provenance()}, atomically.

    Written after the output, so a sidecar that names the output's sha256 marks a finished job;
    if it cannot be written (a full disk), the output is removed too.
    key: what the output is ("model" for a model file's sidecar).
    """
    full = {key: str(output), f"{key}_sha256": file_sha256(output), **record, **provenance()}
    try:
        return atomic_write_text(sidecar_path(output), json.dumps(full, indent=2) + "\n")
    except JaxstyleError as e:  # a disk that filled up: no output is left without its record
        Path(output).unlink(missing_ok=True)
        raise JaxstyleError(f"{e} {output} was removed, as it has no sidecar") from None


def write_run_sidecar(output: Path, *, settings, result, weights_path: Path, inputs: dict[str, Path],
                      extra: dict | None = None) -> Path:
    """The sidecar of an optimised image: settings, seed, inputs' and weights' sha256, final losses, cost.

    `extra` adds fields (a batch job's id and process, say).
    """
    return write_sidecar(output, {
        "inputs": {k: file_record(v) for k, v in inputs.items()},
        "settings": settings.to_dict(),
        "seed": settings.seed,
        "weights": file_record(weights_path),
        "losses": {name: float(np.asarray(getattr(result, name))) for name in ("total", "content", "style", "tv")},
        "steps": result.steps,
        "evaluations": result.evaluations,
        "seconds": round(result.seconds, 3),
        **(extra or {}),
    })
