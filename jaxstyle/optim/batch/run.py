"""Batch jobs: a manifest of (content, style, settings) stylised into a folder, durably.

- Jobs that share a program (`Settings.batch_key`) share batches, whatever their styles, weights,
  seeds, step counts and shapes (`optim.plan_shapes`, from the files' headers); each batch
  runs vmapped, sharded over the local devices along the batch axis, padded only to a multiple of
  the device count.
- A job is done exactly when its JSON sidecar exists and names its output's sha256; a rerun of the
  same command skips done jobs. Outputs, sidecars and checkpoints are written atomically.
- Running batches are checkpointed every N steps, so a killed run resumes mid-optimisation; a
  checkpoint records the jobs, batch size and arrays it belongs to, and one that does not match is
  reported and that batch starts afresh.
- Any number of processes (one `jax.distributed` job or unrelated commands on hosts that share the
  output folder) split the batches by claiming them with a renewed lease (`jaxstyle.optim.batch.claims`); the
  batches of a process that died are taken over once its lease expires.
- A bad job (unreadable image, bad settings, a loss that became NaN/inf) is recorded in
  OUTDIR/failures.jsonl and never stops the others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

from jaxstyle import optim, runtime
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io, sidecars
from jaxstyle.io.files import atomic_write_text
from jaxstyle.optim import solver
from jaxstyle.optim.checkpoint import load_checkpoint, save_checkpoint
from jaxstyle.optim.batch.claims import Claims
from jaxstyle.optim.batch.jobs import FAILURES, Job, Unit, failure, is_done, plan

CHECKPOINTS = ".jaxstyle-checkpoints"
CLAIMS = ".jaxstyle-claims"
EXIT_SOME_FAILED = 4


@dataclasses.dataclass
class Summary:
    """What a batch run did; `exit_code` is 0 when every job is done."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: list[dict] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    failures_file: Path | None = None

    @property
    def exit_code(self) -> int:
        return 0 if not self.failed else EXIT_SOME_FAILED

    def line(self) -> str:
        rate = self.done / self.seconds if self.seconds else 0.0
        where = f" (why: {self.failures_file})" if self.failed and self.failures_file else ""
        return (f"jaxstyle batch: {self.done} done, {self.skipped} skipped (already done), "
                f"{len(self.failed)} failed{where} of {self.total} jobs in {self.seconds:.1f} s "
                f"({rate:.3f} images/s)")


def device_placer(devices: Sequence[jax.Device]) -> Callable:
    """A function putting every leaf's leading (batch) axis across `devices`, via a 1-D Mesh."""
    sharding = runtime.shardings(devices).batch
    return lambda tree: jax.tree.map(lambda x: jax.device_put(x, sharding), tree)



# --- running --------------------------------------------------------------------------------------


def run(jobs: Sequence[Job], outdir: Path, *, params, weights_path: Path, batch_size: int = 8,
        checkpoint_every: int = 10, devices: Sequence[jax.Device] | None = None,
        initial_failures: Sequence[dict] = (), quiet: bool = False, process_index: int = 0,
        process_count: int = 1, lease_seconds: float = 60.0) -> Summary:
    """Runs the jobs that are not done yet; returns what happened. Never raises for a bad job.

    Every process is given the full job list; each runs the units it claims, then waits for units
    held by others, taking over any whose holder stopped renewing its lease, until all are done.
    """
    t0 = time.perf_counter()
    outdir = Path(outdir)
    failures_file = outdir / FAILURES
    image_io.check_output_path(failures_file)
    devices = list(devices or jax.local_devices())
    place = device_placer(devices)
    summary = Summary(total=len(jobs) + len(initial_failures), failed=list(initial_failures),
                      failures_file=failures_file)
    done = {job.id for job in jobs if is_done(job)}
    summary.skipped = len(done)
    units, failures = plan(jobs, batch_size=batch_size, devices=len(devices))
    summary.failed += [f for f in failures if f["id"] not in done]
    claims = Claims(outdir / CLAIMS, lease_seconds=lease_seconds)
    pending = [u for u in units if any(job.id not in done for job in u.jobs)]
    for unit in pending:
        claims.reopen(unit.key)  # finished before, but an output has gone since: run it again
    extra = {"process": process_index, "processes": process_count, "owner": claims.owner}
    bar = _bar(sum(j.settings.steps * j.settings.scales for u in pending for j in u.jobs), quiet)
    try:
        while pending:
            ran = False
            for unit in list(pending):
                if claims.is_finished(unit.key) or all(is_done(job) for job in unit.jobs):
                    pending.remove(unit)
                    continue
                if not claims.try_claim(unit.key):
                    continue
                _run_unit(unit, outdir, params=params, weights_path=weights_path, place=place, claims=claims,
                          checkpoint_every=checkpoint_every, summary=summary, bar=bar, extra=extra)
                pending.remove(unit)
                ran = True
            if pending and not ran:  # the rest is held by live processes: wait for them or their leases
                time.sleep(min(2.0, lease_seconds / 4))
    finally:
        claims.close()
        if bar is not None:
            bar.close()
        summary.seconds = time.perf_counter() - t0
        _write_failures(failures_file, summary.failed, outdir)
        # The claims folder is shared by every process: it goes only when no job was runnable at all.
        for folder in (outdir / CHECKPOINTS, *([outdir / CLAIMS] if not units else [])):
            if folder.is_dir() and not any(folder.iterdir()):
                with contextlib.suppress(OSError):  # another process wrote into it meanwhile
                    folder.rmdir()
    if not quiet:
        print(summary.line(), file=sys.stderr)
    return summary


def _run_unit(unit: Unit, outdir: Path, *, params, weights_path, place, claims: Claims, checkpoint_every: int,
              summary: Summary, bar, extra) -> None:
    """Stylises one unit as one batch, padded to unit.padded with copies (results discarded); writes
    the outputs of its jobs that are not done, while this process still holds the unit's claim."""
    tasks, ok, failed = [], [], []
    for job in unit.jobs:
        try:
            tasks.append(optim.Task(image_io.load_image(job.content), (image_io.load_image(job.style),),
                                       job.settings))
            ok.append(job)
        except JaxstyleError as e:
            failed.append(failure(job, e))
    todo = [not is_done(job) for job in ok]
    if any(todo):
        checkpoint = outdir / CHECKPOINTS / f"{unit.key}.npz"
        belongs_to = {"jobs": [job.id for job in ok], "padded": unit.padded}
        resume = load_checkpoint(checkpoint, belongs_to=belongs_to)
        if bar is not None and resume is not None:
            bar.update(sum(j.settings.steps for j in ok) * resume.scale + len(ok) * resume.step)

        def on_step(p: solver.Progress) -> None:
            if bar is not None:
                bar.update(len(ok))
                bar.set_postfix_str(f"jobs {summary.done + summary.skipped}/{summary.total}, "
                                    f"loss {np.mean(p.total):.3g}")
            if checkpoint_every and p.step % checkpoint_every == 0 and p.step < p.steps:
                save_checkpoint(checkpoint, p, belongs_to=belongs_to)

        try:
            results = optim.solve(params, tasks, callback=on_step, resume=resume, place=place, pad_to=unit.padded)
        except solver.StaleCheckpoint as e:
            print(f"jaxstyle batch: ignoring checkpoint {checkpoint.name} ({e}); that batch starts afresh",
                  file=sys.stderr)
            results = optim.solve(params, tasks, callback=on_step, place=place, pad_to=unit.padded)
        except JaxstyleError as e:
            results = None
            failed += [failure(job, e) for job in ok]
        if results is not None:
            if not claims.holds(unit.key):
                print(f"jaxstyle batch: lost the claim on batch {unit.key} (lease expired); another process "
                      f"finishes it", file=sys.stderr)
                return
            for job, result, needed in zip(ok, results, todo):
                if not needed:
                    continue
                if result.failure:
                    failed.append(failure(job, JaxstyleError(result.failure)))
                    continue
                try:  # a full disk fails the jobs it hits; their outputs are not left without sidecars
                    image_io.save_image(job.output, result.image)
                    sidecars.write_run_sidecar(job.output, settings=job.settings, result=result,
                                               weights_path=weights_path, extra={"job_id": job.id, **extra},
                                               inputs={"content": job.content, "style": job.style})
                except JaxstyleError as e:
                    failed.append(failure(job, e))
                    continue
                summary.done += 1
        checkpoint.unlink(missing_ok=True)
    _record_unit_failures(outdir, unit, failed)
    summary.failed += failed
    claims.finish(unit.key)


def _unit_failures_path(outdir: Path, unit: Unit) -> Path:
    return outdir / CLAIMS / f"{unit.key}.failures.json"


def _record_unit_failures(outdir: Path, unit: Unit, failed: list[dict]) -> None:
    path = _unit_failures_path(outdir, unit)
    if failed:
        atomic_write_text(path, json.dumps(failed))
    else:
        path.unlink(missing_ok=True)


def _bar(total: int, quiet: bool):
    if quiet or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="img-step", file=sys.stderr, dynamic_ncols=True, desc="batch")


def _write_failures(path: Path, failures: list[dict], outdir: Path) -> None:
    """failures.jsonl: this process's failures and those other processes recorded per batch."""
    seen = {json.dumps(f, sort_keys=True) for f in failures}
    merged = list(failures)
    claims_dir = outdir / CLAIMS
    if claims_dir.is_dir():
        for other in sorted(claims_dir.glob("*.failures.json")):
            try:
                for f in json.loads(other.read_text()):
                    if json.dumps(f, sort_keys=True) not in seen:
                        seen.add(json.dumps(f, sort_keys=True))
                        merged.append(f)
            except (OSError, ValueError):
                continue
    if merged:
        atomic_write_text(path, "".join(json.dumps(f) + "\n" for f in merged))
    elif path.exists():
        path.unlink()
