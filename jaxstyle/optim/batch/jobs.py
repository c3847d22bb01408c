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
from jaxstyle.io.files import check_outputs, file_sha256
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


KEYS = ("content", "style", "output", "settings")


def read_manifest(path: Path, outdir: Path, defaults: optim.Settings) -> tuple[list[Job], list[dict]]:
    """Jobs from a JSON Lines manifest, and a failure record for each line that is not a valid job.

    Each line: {"content": PATH, "style": PATH, "output": NAME (optional), "settings": {...} (optional)};
    relative paths are taken from the manifest's folder (Windows' backslashes are accepted);
    settings override `defaults`. A line fails alone for an unknown key, a wrong type or value, an
    output name with a folder in it, an output that would overwrite an input (any line's content,
    style or --init image, or the manifest) or that an earlier line also writes.

    Raises:
      JaxstyleError: the manifest cannot be read or holds no jobs.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()  # -sig: a BOM from Windows editors
    except (OSError, UnicodeDecodeError) as e:
        raise JaxstyleError(f"cannot read manifest {path}: {e}; give a JSON Lines file, one job per line")
    if not any(line.strip() for line in lines):
        raise JaxstyleError(f'manifest {path} holds no jobs; write one per line: {{"content": "photo.jpg", '
                            f'"style": "painting.jpg"}}')
    base = Path(path).resolve().parent
    numbered, failures = [], []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                numbered.append((number, line, _job(line, base, outdir, defaults)))
            except JaxstyleError as e:
                failures.append({"line": number, "job": line.strip()[:200], "reason": str(e)})
    inputs = [("the manifest", Path(path))]
    for number, _, job in numbered:
        inputs += [(f"line {number}'s content", job.content), (f"line {number}'s style", job.style)]
        if job.settings.init not in optim.INITS:
            inputs.append((f"line {number}'s --init image", Path(job.settings.init)))
    jobs, written = [], {}
    for number, line, job in numbered:
        try:
            check_outputs([("the output", job.output), ("its sidecar", sidecar_path(job.output))], inputs)
            if job.output in written:
                raise JaxstyleError(f"line {written[job.output]} writes the same output {job.output.name}; "
                                    f'give each job its own "output"')
        except JaxstyleError as e:
            failures.append({"line": number, "job": line.strip()[:200], "reason": str(e)})
            continue
        written[job.output] = number
        jobs.append(job)
    return jobs, sorted(failures, key=lambda f: f["line"])


def _job(line: str, base: Path, outdir: Path, defaults: optim.Settings) -> Job:
    """One manifest line's job; JaxstyleError saying what is wrong with it."""
    try:
        entry = json.loads(line)
    except ValueError as e:
        raise JaxstyleError(f"not a JSON object: {e}") from None
    if not isinstance(entry, dict):
        raise JaxstyleError('a job is a JSON object: {"content": PATH, "style": PATH, ...}')
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise JaxstyleError(f"unknown key(s) {', '.join(map(repr, unknown))}; a job has {', '.join(KEYS)}")
    for key in ("content", "style"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise JaxstyleError(f'"{key}" must be the path of an image, got {entry.get(key)!r:.60}')
    content, style = _manifest_path(base, entry["content"]), _manifest_path(base, entry["style"])
    name = entry.get("output")
    if name is None:
        name = f"{content.stem}_{style.stem}.png"
    elif not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name:
        raise JaxstyleError(f'"output" must be a file name, written in the output folder, got {name!r:.60}')
    image_io.check_image_format(name)
    overrides = entry.get("settings", {})
    if not isinstance(overrides, dict):
        raise JaxstyleError(f'"settings" must be an object of {{name: value}}, got {overrides!r:.60}')
    settings = optim.Settings.from_dict({**defaults.to_dict(), **overrides}, source='"settings"')
    return Job(content, style, outdir / name, settings)


def _manifest_path(base: Path, text: str) -> Path:
    """`text` from the manifest's folder `base`; a Windows path (backslashes) if no file has that name."""
    path = base / text
    if "\\" in text and not path.exists():
        return base / text.replace("\\", "/")
    return path


def folder_jobs(folder: Path, style: Path, outdir: Path, settings: optim.Settings) -> list[Job]:
    """One job per file in `folder` (sorted; unreadable ones fail later, as jobs), all with one style;
    the style image itself is skipped if it is in the folder."""
    if not Path(folder).is_dir():
        raise JaxstyleError(f"--contents {folder} is not a folder; give a folder of content images")
    if not Path(style).is_file():
        raise JaxstyleError(f"--style {style} is not a file; give the style image")
    if Path(outdir).resolve() == Path(folder).resolve():
        raise JaxstyleError(f"-o {outdir} is the --contents folder; write elsewhere, or a rerun would stylise "
                            f"the outputs too")
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.resolve() != Path(style).resolve())
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
