"""Batch jobs and how they are grouped: the manifest, folder jobs, done-ness, and the units
(batches) that every process derives alike from the job list."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageOps

from jaxstyle import optim, runtime
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io
from jaxstyle.io.files import file_sha256
from jaxstyle.io.sidecars import sidecar_path

FAILURES = "failures.jsonl"


@dataclasses.dataclass(frozen=True)
class Job:
    """One stylisation: content and style files, the output file, the settings."""

    content: Path
    style: Path
    output: Path
    settings: optim.Settings

    @property
    def id(self) -> str:
        record = {"content": str(self.content.resolve()), "style": str(self.style.resolve()),
                  "output": self.output.name, "settings": self.settings.to_dict()}
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def read_manifest(path: Path, outdir: Path, defaults: optim.Settings) -> tuple[list[Job], list[dict]]:
    """Jobs from a JSON Lines manifest, and a failure record for each line that is not a valid job.

    Each line: {"content": PATH, "style": PATH, "output": NAME (optional), "settings": {...} (optional)};
    relative paths are taken from the manifest's folder; settings override `defaults`.
    """
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise JaxstyleError(f"cannot read manifest {path}: {e}; give a JSON Lines file, one job per line")
    base = Path(path).resolve().parent
    jobs, failures = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or "content" not in entry or "style" not in entry:
                raise ValueError('a job needs "content" and "style"')
            settings = optim.Settings.from_dict({**defaults.to_dict(), **entry.get("settings", {})})
            content, style = base / entry["content"], base / entry["style"]
            name = entry.get("output") or f"{content.stem}_{style.stem}.png"
            image_io.check_image_format(name)
            jobs.append(Job(content, style, outdir / Path(name).name, settings))
        except (ValueError, TypeError, JaxstyleError) as e:
            failures.append({"line": number, "job": line.strip()[:200], "reason": str(e)})
    return jobs, failures


def folder_jobs(folder: Path, style: Path, outdir: Path, settings: optim.Settings) -> list[Job]:
    """One job per file in `folder` (sorted; unreadable ones fail later, as jobs), all with one style."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise JaxstyleError(f"{folder} holds no files; give a folder of content images")
    return [Job(p, Path(style), outdir / f"{p.stem}_{Path(style).stem}.png", settings) for p in files]


def is_done(job: Job) -> bool:
    """True when the sidecar exists and names the sha256 of the output file as it is now."""
    try:
        record = json.loads(sidecar_path(job.output).read_text())
        return record.get("output_sha256") == file_sha256(job.output)
    except (OSError, ValueError):
        return False


def output_shape(job: Job) -> tuple[int, int]:
    """(h, w) of the job's output, from the content file's header and EXIF orientation only."""
    try:
        with Image.open(job.content) as img:
            w, h = img.size
            if ImageOps.exif_transpose(img, in_place=False).size != (w, h):
                w, h = h, w
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise JaxstyleError(f"cannot read {job.content}: {e}")
    return image_io.longest_side_shape((h, w), job.settings.size)


def failure(job: Job, error: Exception) -> dict:
    return {"id": job.id, "content": str(job.content), "style": str(job.style), "output": str(job.output),
            "reason": str(error)}


# --- units of work: the batches of the plan ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Unit:
    """One planned batch: its jobs, its size after padding to the device count, and its key."""

    jobs: tuple[Job, ...]
    padded: int

    @property
    def key(self) -> str:
        """Names the unit's claim and checkpoint; the same jobs in the same batch give the same key."""
        record = "|".join(j.id for j in self.jobs) + f"|{self.padded}"
        return hashlib.sha256(record.encode()).hexdigest()[:20]


def plan(jobs: Sequence[Job], *, batch_size: int, devices: int) -> tuple[list[Unit], list[dict]]:
    """The units every process derives alike from the whole job list (done or not, so a rerun
    batches every job with the same partners: the same program on the same batch gives the same
    floats), and a failure record for each job whose content cannot be read."""
    items, readable, failures = [], [], []
    for job in sorted(jobs, key=lambda j: j.id):
        try:
            shape = output_shape(job)
            optim.check_size(shape)
        except JaxstyleError as e:
            failures.append(failure(job, e))
            continue
        readable.append(job)
        items.append(((job.settings.batch_key(),), shape))
    units = []
    for indices in optim.plan_shapes(items, batch_size=batch_size, devices=devices):
        units.append(Unit(tuple(readable[i] for i in indices), runtime.round_up(len(indices), devices)))
    return units, failures
