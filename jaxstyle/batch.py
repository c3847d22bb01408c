"""Batch jobs: a manifest of (content, style, settings) stylised into a folder, durably.

- Jobs are grouped into buckets by (style, settings, output shape): each bucket compiles once and
  runs as vmapped batches of `batch_size`, sharded over the local devices along the batch axis.
- A job is done exactly when its JSON sidecar exists and names its output's sha256; a rerun of the
  same command skips done jobs. Outputs, sidecars and checkpoints are written atomically.
- Running batches are checkpointed every N steps, so a killed run resumes mid-optimisation.
- A bad job (unreadable image, bad settings) is recorded in OUTDIR/failures.jsonl and never stops
  the others.
- On several processes (`jax.distributed`), each takes a deterministic share of the jobs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import jax
import numpy as np
from PIL import Image, ImageOps

from jaxstyle import image_io, optimize, reporting
from jaxstyle.errors import JaxstyleError

CHECKPOINTS = ".jaxstyle-checkpoints"
FAILURES = "failures.jsonl"


@dataclasses.dataclass(frozen=True)
class Job:
    """One stylisation: content and style files, the output file, the settings."""

    content: Path
    style: Path
    output: Path
    settings: optimize.Settings

    @property
    def id(self) -> str:
        record = {"content": str(self.content.resolve()), "style": str(self.style.resolve()),
                  "output": self.output.name, "settings": self.settings.to_dict()}
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


@dataclasses.dataclass
class Summary:
    """What a batch run did; `exit_code` is 0 when every job is done."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: list[dict] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 0 if not self.failed else EXIT_SOME_FAILED

    def line(self) -> str:
        rate = self.done / self.seconds if self.seconds else 0.0
        return (f"jaxstyle batch: {self.done} done, {self.skipped} skipped (already done), "
                f"{len(self.failed)} failed of {self.total} jobs in {self.seconds:.1f} s ({rate:.3f} images/s)")


EXIT_SOME_FAILED = 4


def read_manifest(path: Path, outdir: Path, defaults: optimize.Settings) -> tuple[list[Job], list[dict]]:
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
            settings = optimize.Settings.from_dict({**defaults.to_dict(), **entry.get("settings", {})})
            content, style = base / entry["content"], base / entry["style"]
            name = entry.get("output") or f"{content.stem}_{style.stem}.png"
            jobs.append(Job(content, style, outdir / Path(name).name, settings))
        except (ValueError, TypeError, JaxstyleError) as e:
            failures.append({"line": number, "job": line.strip()[:200], "reason": str(e)})
    return jobs, failures


def folder_jobs(folder: Path, style: Path, outdir: Path, settings: optimize.Settings) -> list[Job]:
    """One job per file in `folder` (sorted; unreadable ones fail later, as jobs), all with one style."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise JaxstyleError(f"{folder} holds no files; give a folder of content images")
    return [Job(p, Path(style), outdir / f"{p.stem}_{Path(style).stem}.png", settings) for p in files]


def is_done(job: Job) -> bool:
    """True when the sidecar exists and names the sha256 of the output file as it is now."""
    try:
        record = json.loads(reporting.sidecar_path(job.output).read_text())
        return record.get("output_sha256") == reporting.file_sha256(job.output)
    except (OSError, ValueError):
        return False


def process_share(jobs: Sequence[Job], index: int, count: int) -> list[Job]:
    """This process's jobs: every count-th job in order of job id, starting at `index`."""
    return [job for k, job in enumerate(sorted(jobs, key=lambda j: j.id)) if k % count == index]


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


def buckets(jobs: Iterable[Job]) -> tuple[dict[tuple, list[Job]], list[dict]]:
    """Jobs grouped so that each group shares one compiled program; failures for unreadable contents."""
    groups: dict[tuple, list[Job]] = {}
    failures = []
    for job in jobs:
        try:
            shape = output_shape(job)
            optimize.check_size(shape)
        except JaxstyleError as e:
            failures.append(_failure(job, e))
            continue
        groups.setdefault((str(job.style.resolve()), job.settings, shape), []).append(job)
    return groups, failures


def _failure(job: Job, error: Exception) -> dict:
    return {"id": job.id, "content": str(job.content), "style": str(job.style), "output": str(job.output),
            "reason": str(error)}


def device_placer(devices: Sequence[jax.Device]) -> Callable:
    """A function putting every leaf's leading (batch) axis across `devices`, via a 1-D Mesh."""
    mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    return lambda tree: jax.tree.map(lambda x: jax.device_put(x, sharding), tree)


# --- checkpoints ----------------------------------------------------------------------------------


def _checkpoint_path(outdir: Path, jobs: Sequence[Job], padded: int) -> Path:
    key = hashlib.sha256(("|".join(j.id for j in jobs) + f"|{padded}").encode()).hexdigest()[:16]
    return outdir / CHECKPOINTS / f"{key}.npz"


def save_checkpoint(path: Path, progress: optimize.Progress) -> None:
    """The loop state after `progress.step`, as an .npz of arrays (no pickles), written atomically."""
    leaves = [np.asarray(x) for x in jax.tree.leaves(progress.state)]
    meta = {"scale": progress.scale, "step": progress.step, "evaluations": progress.evaluations}
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), **{f"leaf_{i:04d}": x for i, x in enumerate(leaves)})
    path.parent.mkdir(parents=True, exist_ok=True)
    image_io.atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> optimize.Resume | None:
    """The saved state, or None when there is none or it cannot be read (then it is removed)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            leaves = [data[f"leaf_{i:04d}"] for i in range(len(data.files) - 1)]
        return optimize.Resume(meta["scale"], meta["step"], meta["evaluations"], leaves)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        print(f"jaxstyle batch: ignoring unreadable checkpoint {path.name} ({e})", file=sys.stderr)
        path.unlink(missing_ok=True)
        return None


# --- running --------------------------------------------------------------------------------------


def run(jobs: Sequence[Job], outdir: Path, *, params, weights_path: Path, batch_size: int = 8,
        checkpoint_every: int = 10, devices: Sequence[jax.Device] | None = None,
        initial_failures: Sequence[dict] = (), quiet: bool = False, process_index: int = 0,
        process_count: int = 1) -> Summary:
    """Runs the jobs that are not done yet; returns what happened. Never raises for a bad job.

    With several processes, pass each the full job list: it runs only its `process_share`.
    """
    t0 = time.perf_counter()
    outdir = Path(outdir)
    failures_file = outdir / (FAILURES if process_count == 1 else f"failures.p{process_index}.jsonl")
    image_io.check_output_path(failures_file)
    jobs = process_share(jobs, process_index, process_count)
    extra = {"process": process_index, "processes": process_count}
    devices = list(devices or jax.local_devices())
    place = device_placer(devices)
    summary = Summary(total=len(jobs) + len(initial_failures), failed=list(initial_failures))
    done = {job.id for job in jobs if is_done(job)}
    summary.skipped = len(done)
    groups, failures = buckets(jobs)
    summary.failed += [f for f in failures if f["id"] not in done]
    # Chunks are cut from all jobs, done or not, so a rerun batches every job with the same
    # partners as before: the same program on the same batch gives the same floats.
    work = []
    for (_, settings, _), group in groups.items():
        # Every chunk of a bucket has one padded size, so a short last chunk needs no new compile.
        padded = -(-min(batch_size, len(group)) // len(devices)) * len(devices)
        for start in range(0, len(group), batch_size):
            chunk = group[start:start + batch_size]
            if any(job.id not in done for job in chunk):
                work.append((settings, chunk, padded))
    bar = _bar(sum(s.steps * s.scales * len(chunk) for s, chunk, _ in work), quiet)
    try:
        for settings, chunk, padded in work:
            _run_chunk(chunk, outdir, settings, params=params, weights_path=weights_path, place=place,
                       padded=padded, checkpoint_every=checkpoint_every, summary=summary, bar=bar,
                       extra=extra, done=done)
    finally:
        if bar is not None:
            bar.close()
        summary.seconds = time.perf_counter() - t0
        _write_failures(failures_file, summary.failed)
        checkpoints = outdir / CHECKPOINTS
        if checkpoints.is_dir() and not any(checkpoints.iterdir()):
            checkpoints.rmdir()
    if not quiet:
        print(summary.line(), file=sys.stderr)
    return summary


def _run_chunk(chunk: list[Job], outdir: Path, settings: optimize.Settings, *, params, weights_path, place,
               padded: int, checkpoint_every: int, summary: Summary, bar, extra, done: set[str]) -> None:
    """Stylises up to `padded` jobs as one vmapped batch, padded with copies (results discarded);
    writes the outputs of the jobs not already `done`."""
    contents, ok = [], []
    for job in chunk:
        try:
            contents.append(image_io.load_image(job.content))
            ok.append(job)
        except JaxstyleError as e:
            if job.id not in done:
                summary.failed.append(_failure(job, e))
    if not ok:
        return
    try:
        style = image_io.load_image(ok[0].style)
    except JaxstyleError as e:
        summary.failed += [_failure(job, e) for job in ok if job.id not in done]
        return
    contents += [contents[-1]] * (padded - len(ok))
    checkpoint = _checkpoint_path(outdir, ok, padded)
    resume = load_checkpoint(checkpoint)
    if bar is not None and resume is not None:
        bar.update(len(ok) * (resume.scale * settings.steps + resume.step))

    def on_step(p: optimize.Progress) -> None:
        if bar is not None:
            bar.update(len(ok))
            bar.set_postfix_str(f"jobs {summary.done + summary.skipped}/{summary.total}, "
                                f"loss {np.mean(p.total[: len(ok)]):.3g}")
        if checkpoint_every and p.step % checkpoint_every == 0 and p.step < p.steps:
            save_checkpoint(checkpoint, p)

    try:
        result = optimize.stylize_batch(params, contents, style, settings, callback=on_step, resume=resume,
                                        place=place)
    except JaxstyleError as e:
        summary.failed += [_failure(job, e) for job in ok if job.id not in done]
        checkpoint.unlink(missing_ok=True)
        return
    for k, job in enumerate(ok):
        if job.id in done:
            continue
        one = result.item(k)
        image_io.save_image(job.output, one.image)
        reporting.write_sidecar(job.output, settings=settings, result=one, weights_path=weights_path,
                                inputs={"content": job.content, "style": job.style},
                                extra={"job_id": job.id, **(extra or {})})
        summary.done += 1
    checkpoint.unlink(missing_ok=True)


def _bar(total: int, quiet: bool):
    if quiet or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="img-step", file=sys.stderr, dynamic_ncols=True, desc="batch")


def _write_failures(path: Path, failures: list[dict]) -> None:
    if failures:
        image_io.atomic_write_text(path, "".join(json.dumps(f) + "\n" for f in failures))
    elif path.exists():
        path.unlink()
