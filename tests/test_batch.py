"""Batch jobs: manifests, plans, checkpoints, sharding over devices, claims across processes, SIGKILL."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, REAL_WEIGHTS, REPO, random_params, run_cli
from PIL import Image

from jaxstyle import cli, optim
from jaxstyle.io import image_io
from jaxstyle.io.files import file_sha256
from jaxstyle.optim import batch, solver

PARAMS = random_params(seed=2, width=8)
RNG = np.random.default_rng(4)
CONTENTS = [RNG.random((36, 44, 3), dtype=np.float32) for _ in range(3)]
STYLE = RNG.random((40, 40, 3), dtype=np.float32)
SETTINGS = optim.Settings(size=44, steps=6, init="noise", content_weight=1.0, style_weight=1e3)


def make_inputs(folder: Path, n: int) -> Path:
    """n small content images, two styles, and a manifest alternating the styles."""
    base = Image.open(DATA / "tubingen.jpg").resize((64, 48))
    lines = []
    for i in range(n):
        base.rotate(7 * i).save(folder / f"c{i}.png")
        lines.append(json.dumps({"content": f"c{i}.png", "style": f"s{i % 2}.png"}))
    Image.open(DATA / "starry_night.jpg").resize((64, 40)).save(folder / "s0.png")
    Image.open(DATA / "the_scream.jpg").resize((40, 52)).save(folder / "s1.png")
    manifest = folder / "jobs.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_manifest_lines_that_are_not_jobs_become_failures(tmp_path):
    (tmp_path / "m.jsonl").write_text(
        '{"content": "a.png", "style": "s.png"}\n\nnot json\n{"content": "a.png"}\n'
        '{"content": "b.png", "style": "s.png", "output": "x.jpg", "settings": {"steps": 3}}\n'
        '{"content": "c.png", "style": "s.png", "settings": {"pooling": "median"}}\n'
        '{"content": "d.png", "style": "s.png", "output": "d.xyz"}\n')
    jobs, failures = batch.read_manifest(tmp_path / "m.jsonl", tmp_path / "out", SETTINGS)
    assert [j.output.name for j in jobs] == ["a_s.png", "x.jpg"]
    assert jobs[1].settings.steps == 3 and jobs[0].settings.steps == SETTINGS.steps
    assert jobs[0].content == tmp_path / "a.png"
    assert [f["line"] for f in failures] == [3, 4, 6, 7]
    assert "pooling" in failures[2]["reason"] and ".xyz" in failures[3]["reason"]


def test_a_manifest_from_windows_reads_alike(tmp_path):
    """A byte-order mark, CRLF line ends and backslashes in paths, as Windows editors write them."""
    (tmp_path / "in").mkdir()
    for name in ("c.jpg", "s.jpg"):
        (tmp_path / "in" / name).write_bytes(b"x")
    manifest = tmp_path / "jobs.jsonl"
    lines = ['{"content": "in\\\\c.jpg", "style": "in/s.jpg", "output": "Tübingen 写真.png"}',
             '{"content": "in/c.jpg", "style": "in\\\\s.jpg", "settings": {"steps": 3}}']
    manifest.write_bytes("\ufeff".encode() + "\r\n".join(lines).encode() + b"\r\n")
    jobs, failures = batch.read_manifest(manifest, tmp_path / "out", optim.Settings())
    assert failures == []
    assert [(j.content, j.style, j.output.name) for j in jobs] == [
        (tmp_path / "in" / "c.jpg", tmp_path / "in" / "s.jpg", "Tübingen 写真.png"),
        (tmp_path / "in" / "c.jpg", tmp_path / "in" / "s.jpg", "c_s.png")]
    assert jobs[1].settings.steps == 3


def test_every_process_plans_the_same_units_covering_every_job(tmp_path):
    shapes = [(48, 64), (64, 48), (60, 64), (64, 60), (64, 64)]
    jobs = []
    for i in range(10):
        h, w = shapes[i % 5]
        image_io.save_image(tmp_path / f"c{i}.png", np.zeros((h, w, 3)))
        settings = SETTINGS.replace(seed=i, content_weight=float(i + 1), steps=4 + i % 3)  # all per-image data
        jobs.append(batch.Job(tmp_path / f"c{i}.png", tmp_path / f"s{i % 2}.png", tmp_path / f"o{i}.png", settings))
    jobs.append(batch.Job(tmp_path / "missing.png", tmp_path / "s0.png", tmp_path / "o.png", SETTINGS))
    units, failures = batch.plan(jobs, batch_size=4, devices=1)
    again, _ = batch.plan(list(reversed(jobs)), batch_size=4, devices=1)
    assert sorted(u.key for u in units) == sorted(u.key for u in again)
    ids = [j.id for u in units for j in u.jobs]
    assert sorted(ids) == sorted(j.id for j in jobs[:10])  # mixed settings and shapes, each job once
    assert sorted(len(u.jobs) for u in units) == [3, 3, 4] and all(u.padded == len(u.jobs) for u in units)
    assert len(failures) == 1 and "missing.png" in failures[0]["reason"]
    eight, _ = batch.plan(jobs[:10], batch_size=4, devices=8)  # padded to the devices, never further
    assert [(len(u.jobs), u.padded) for u in eight] == [(5, 8), (5, 8)]


def test_done_means_sidecar_names_the_outputs_sha(tmp_path):
    job = batch.Job(tmp_path / "c.png", tmp_path / "s.png", tmp_path / "o.png", SETTINGS)
    assert not batch.is_done(job)
    image_io.save_image(job.output, np.zeros((4, 4, 3)))

    (tmp_path / "o.json").write_text(json.dumps({"output_sha256": file_sha256(job.output)}))
    assert batch.is_done(job)
    image_io.save_image(job.output, np.ones((4, 4, 3)))  # replaced output: no longer done
    assert not batch.is_done(job)


@pytest.fixture(scope="module")
def straight():
    """One uninterrupted run of the three images on one device, the program the tests below share."""
    return optim.stylize_batch(PARAMS, CONTENTS, STYLE, SETTINGS)


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path, straight):
    path = tmp_path / "ck.npz"

    class Killed(Exception):
        pass

    def checkpoint_then_die(p):
        if p.step == 4:
            batch.save_checkpoint(path, p)
            raise Killed

    with pytest.raises(Killed):
        optim.stylize_batch(PARAMS, CONTENTS, STYLE, SETTINGS, callback=checkpoint_then_die)
    resume = batch.load_checkpoint(path)
    assert resume.step == 4
    resumed = optim.stylize_batch(PARAMS, CONTENTS, STYLE, SETTINGS, resume=resume)
    np.testing.assert_allclose(resumed.image, straight.image, atol=1e-6)
    np.testing.assert_allclose(resumed.total, straight.total, rtol=1e-6)


def test_unreadable_checkpoint_is_ignored_and_removed(tmp_path):
    path = tmp_path / "ck.npz"
    path.write_bytes(b"PK\x03\x04 truncated")
    assert batch.load_checkpoint(path) is None and not path.exists()


def test_a_checkpoint_of_other_jobs_is_reported_and_the_batch_starts_afresh(tmp_path, capsys):
    path, copy = tmp_path / "ck.npz", tmp_path / "copy.npz"
    jobs = {"jobs": ["a", "b", "c"], "padded": 3}

    def save(p):
        if p.step == 2:
            batch.save_checkpoint(path, p, belongs_to=jobs)
            batch.save_checkpoint(copy, p, belongs_to=jobs)

    optim.stylize_batch(PARAMS, CONTENTS, STYLE, SETTINGS, callback=save)
    assert batch.load_checkpoint(path, belongs_to=jobs).step == 2
    assert batch.load_checkpoint(path, belongs_to={"jobs": ["a", "b", "d"], "padded": 3}) is None
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "starts afresh" in message and not path.exists()
    # The right jobs but arrays of another batch (two images): refused before any step.
    with pytest.raises(solver.StaleCheckpoint, match="do not match"):
        optim.stylize_batch(PARAMS, CONTENTS[:2], STYLE, SETTINGS, resume=batch.load_checkpoint(copy))


SHARDED = """
import sys, numpy as np, jax
sys.path.insert(0, {tests!r})
from test_batch import CONTENTS, PARAMS, SETTINGS, STYLE
from jaxstyle.optim import batch
from jaxstyle import optim
assert jax.device_count() == 8
padded = CONTENTS + [CONTENTS[-1]] * 5
sharded = optim.stylize_batch(PARAMS, padded, STYLE, SETTINGS, place=batch.device_placer(jax.devices()))
np.savez({out!r}, image=sharded.image, total=sharded.total)
"""


def test_batch_sharded_over_8_cpu_devices_equals_one_device(straight, tmp_path):
    """The three images padded to 8, one per device, against the run of just the three on one device
    in this process."""
    env = dict(os.environ, XLA_FLAGS=os.environ["XLA_FLAGS"] + " --xla_force_host_platform_device_count=8")
    code = SHARDED.format(tests=str(REPO / "tests"), out=str(tmp_path / "sharded.npz"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    sharded = np.load(tmp_path / "sharded.npz")
    assert sharded["image"].shape[0] == 8
    np.testing.assert_allclose(sharded["image"][:3], straight.image, atol=1e-5)
    # The losses sum over every feature in another order on 8 devices: 2.3e-5 apart measured (AMD EPYC).
    np.testing.assert_allclose(sharded["total"][:3], straight.total, rtol=1e-4)


# --- the command, with the real weights ------------------------------------------------------------

FAST = ["--size", "48", "--steps", "8", "--batch-size", "2", "--checkpoint-every", "2", "--quiet"]


def batch_argv(manifest, outdir, *extra):
    """`jaxstyle batch` with the real weights; every run, here or in a subprocess, uses the session's
    compilation cache (conftest), so only the first compiles."""
    return ["batch", str(manifest), "-o", str(outdir), *FAST, "--weights", str(REAL_WEIGHTS), *extra]


def batch_cmd(manifest, outdir, *extra):
    return [sys.executable, "-m", "jaxstyle", *batch_argv(manifest, outdir, *extra)]


def outputs_of(outdir: Path) -> dict:
    return {p.name: image_io.load_image(p) for p in sorted(outdir.glob("*.png"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of 6 jobs (two styles), in this process: the runs in subprocesses that
    follow load its compiled programs from the shared cache and must match its outputs bit for bit."""
    folder = tmp_path_factory.mktemp("batch")
    manifest = make_inputs(folder, 6)
    assert cli.main(batch_argv(manifest, folder / "ref")) == 0
    return folder, manifest


@pytest.mark.real_weights
def test_a_rerun_skips_finished_jobs_and_bad_jobs_fail_alone(reference, tmp_path, capsys):
    folder, manifest = reference
    code, _, err = run_cli(batch_argv(manifest, folder / "ref"), capsys)
    assert code == 0 and "0 done, 6 skipped" in err, err
    with_bad = tmp_path / "jobs.jsonl"
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    # Two good jobs (the reference's first batch, so its compiled program serves) and three bad ones.
    jobs = [{"content": str(folder / "c0.png"), "style": str(folder / "s0.png")},
            {"content": "broken.png", "style": str(folder / "s0.png")},
            {"content": str(folder / "c0.png"), "style": str(folder / "s0.png"), "output": "m.png",
             "settings": {"lbfgs_memory": 0}},
            {"content": str(folder / "c0.png"), "style": str(folder / "s0.png"), "ouput": "typo.png"},
            {"content": str(folder / "c1.png"), "style": str(folder / "s1.png")}]
    with_bad.write_text("".join(json.dumps(job) + "\n" for job in jobs))
    code, _, err = run_cli(batch_argv(with_bad, tmp_path / "out"), capsys)
    assert code == batch.EXIT_SOME_FAILED, err[-2000:]
    failures = [json.loads(line) for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    reasons = sorted(f["reason"] for f in failures)
    assert len(reasons) == 3 and "lbfgs_memory" in reasons[0] and "broken.png" in reasons[1], reasons
    assert "unknown key(s) 'ouput'" in reasons[2] and "failures.jsonl" in err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["c0_s0.png", "c1_s1.png"]


def wait_for_checkpoint(outdir: Path, proc: subprocess.Popen, newer_than: float, timeout: float = 300) -> bool:
    """Waits until a checkpoint written after `newer_than` exists (the process is mid-optimisation);
    False if the process ended first."""
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        for ck in (outdir / batch.CHECKPOINTS).glob("*.npz"):
            try:
                if ck.stat().st_mtime > newer_than:
                    return True
            except FileNotFoundError:
                continue
        time.sleep(0.05)
    return False


@pytest.mark.real_weights
def test_sigkill_mid_optimisation_then_finish_equals_an_uninterrupted_run(reference, capsys):
    """A process SIGKILLed mid-optimisation, then the command run again (here) to the end: it writes
    what one uninterrupted run writes, bit for bit, and nothing else."""
    folder, manifest = reference
    outdir = folder / "killed"
    started = time.time()
    proc = subprocess.Popen(batch_cmd(manifest, outdir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for_checkpoint(outdir, proc, started), "the process ended before writing a checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list((outdir / batch.CHECKPOINTS).glob("*.npz")), "nothing left to resume from"
    code, _, err = run_cli(batch_argv(manifest, outdir), capsys)
    assert code == 0, err[-3000:]
    names = sorted(p.name for p in outdir.iterdir() if not p.name.startswith("."))
    expected = sorted(f"c{i}_s{i % 2}.{ext}" for i in range(6) for ext in ("png", "json"))
    assert names == expected  # one output and one sidecar per job; no temporary files
    assert not (outdir / batch.CHECKPOINTS).exists()
    for name in expected[::2]:
        job = batch.Job(folder / "x", folder / "y", outdir / name.replace(".json", ".png"), optim.Settings())
        assert batch.is_done(job)
    ref, got = outputs_of(folder / "ref"), outputs_of(outdir)
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


@pytest.mark.real_weights
def test_a_killed_process_never_restarted_is_taken_over(reference):
    """Two processes on one manifest; one is SIGKILLed mid-optimisation holding a claim and never
    restarted. The other finishes every job (resuming the dead one's checkpoint), none twice."""
    folder, manifest = reference
    outdir = folder / "takeover"
    started = time.time()
    procs = [subprocess.Popen(batch_cmd(manifest, outdir, "--lease-seconds", "3"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    victim = None
    end = time.time() + 300
    while victim is None and time.time() < end:
        for ck in (outdir / batch.CHECKPOINTS).glob("*.npz"):
            try:
                owner = json.loads((outdir / batch.CLAIMS / f"{ck.stem}.claim").read_text())["owner"]
            except (OSError, ValueError):
                continue
            victim = next((p for p in procs if owner.split(":")[1] == str(p.pid)), None)
            if victim is not None and ck.stat().st_mtime > started:
                break
            victim = None
        time.sleep(0.05)
    assert victim is not None, "no process was caught mid-optimisation"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    survivor = next(p for p in procs if p is not victim)
    _, err = survivor.communicate(timeout=900)
    assert survivor.returncode == 0, err[-3000:]
    sidecars = [json.loads(p.read_text()) for p in outdir.glob("*.json")]
    assert len(sidecars) == 6
    by_victim = sum(1 for s in sidecars if s["owner"].split(":")[1] == str(victim.pid))
    done_by_survivor = int(err.strip().splitlines()[-1].split("jaxstyle batch: ")[1].split(" done")[0])
    assert by_victim + done_by_survivor == 6  # every job written once
    ref, got = outputs_of(folder / "ref"), outputs_of(outdir)
    assert sorted(got) == sorted(ref)
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


@pytest.mark.real_weights
def test_two_processes_split_the_work_and_together_match_one(reference):
    folder, manifest = reference
    outdir = folder / "two"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen(batch_cmd(manifest, outdir, "--coordinator", f"127.0.0.1:{port}",
                                        "--num-processes", "2", "--process-id", str(i)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-2000:] for r in results]
    sidecars = [json.loads(p.read_text()) for p in outdir.glob("*.json")]
    assert len(sidecars) == 6 and all(s["processes"] == 2 for s in sidecars)
    assert {s["process"] for s in sidecars} <= {0, 1}
    # Every process plans the same batches, so each job runs with the same partners as in one process.
    ref, got = outputs_of(folder / "ref"), outputs_of(outdir)
    assert sorted(got) == sorted(ref)
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


def test_a_job_lost_mid_write_is_redone_with_the_same_batch_partners(tmp_path):
    """Killed after writing one job of a batch: the rerun recomputes that batch, so the lost
    output comes back identical, and the finished partner is not written again."""
    for i, content in enumerate(CONTENTS[:2]):
        image_io.save_image(tmp_path / f"c{i}.png", content)
    image_io.save_image(tmp_path / "s.png", STYLE)
    jobs = [batch.Job(tmp_path / f"c{i}.png", tmp_path / "s.png", tmp_path / "out" / f"o{i}.png", SETTINGS)
            for i in range(2)]
    (tmp_path / "out").mkdir()
    run = lambda: batch.run(jobs, tmp_path / "out", params=PARAMS, weights_path=tmp_path / "s.png",
                            batch_size=2, quiet=True)
    assert run().done == 2
    first = {p.name: p.read_bytes() for p in (tmp_path / "out").glob("o*.png")}
    partner_sidecar = (tmp_path / "out" / "o0.json").read_text()
    (tmp_path / "out" / "o1.png").unlink()
    (tmp_path / "out" / "o1.json").unlink()
    summary = run()
    assert (summary.done, summary.skipped) == (1, 1)
    assert (tmp_path / "out" / "o1.png").read_bytes() == first["o1.png"]
    assert (tmp_path / "out" / "o0.json").read_text() == partner_sidecar
