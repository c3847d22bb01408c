"""Shared fixtures: tiny random VGG weights, the real weights when present, strict numpy rules;
one JAX compilation cache for the session and its subprocesses; the kill-and-resume run shared by
the training commands' tests; `run_cli`, the command run in this process."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import serialization

from jaxstyle import vgg

jax.config.update("jax_numpy_rank_promotion", "raise")

REPO = Path(__file__).resolve().parents[1]
REAL_WEIGHTS = REPO / "weights" / "vgg19.h5"
DATA = REPO / "jaxstyle" / "data"


def random_params(seed: int = 0, width: int = 4) -> dict:
    """VGG-19-shaped params with `width` channels per layer (3 in), He-scaled, plus an input affine."""
    rng = np.random.default_rng(seed)
    params, cin = {}, 3
    for name, _, _ in vgg.CONV_LAYERS:
        params[name] = {
            "kernel": (rng.standard_normal((3, 3, cin, width)) * np.sqrt(2.0 / (9 * cin))).astype(np.float32),
            "bias": (rng.standard_normal(width) * 0.1).astype(np.float32),
        }
        cin = width
    params["input"] = {
        "matrix": rng.standard_normal((3, 3)).astype(np.float32),
        "offset": rng.standard_normal(3).astype(np.float32),
    }
    return params


@pytest.fixture(scope="session")
def tiny_params():
    return random_params()


_OWN_CACHE = None


def pytest_configure(config):
    """One persistent compilation cache for this process and every process it starts (they inherit
    $JAX_COMPILATION_CACHE_DIR): a subprocess loads what was compiled before it, here or in another
    subprocess, instead of compiling it again. `make test` sets its own, which is kept.

    The tests' programs are small, so compiling them is most of the suite's time: XLA's CPU backend
    compiles them with LLVM at -O1 (the same HLO), here and in every process started from here (they
    inherit $XLA_FLAGS). Measured on the whole suite, two workers: 7.6 min against 8.0 at -O0 (whose
    slower code costs the real-weights runs more than it saves) and 8.2 at the default.
    """
    global _OWN_CACHE
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=1".strip()
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        _OWN_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxstyle-tests-jit-")
        jax.config.update("jax_compilation_cache_dir", _OWN_CACHE)  # nothing is compiled yet


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the groups: without it each test goes anywhere
def pytest_collection_modifyitems(config, items):
    """The one way a test says it needs the real weights: `@pytest.mark.real_weights` (or a module's
    `pytestmark`); without weights/vgg19.h5 those tests are skipped, saying how to get it.

    Under `pytest -n N --dist loadgroup` (make test) a test file runs on one worker, so its module
    fixtures are built once; each notebook (a kernel of its own) may go to any worker."""
    skip = pytest.mark.skip(reason=f"{REAL_WEIGHTS} missing: run `make weights` (make test does it)")
    for item in items:
        if "real_weights" in item.keywords and not REAL_WEIGHTS.exists():
            item.add_marker(skip)
        module = item.module.__name__
        item.add_marker(pytest.mark.xdist_group(item.name if module == "test_notebooks" else module))


@pytest.fixture(scope="session")
def real_params():
    """The real VGG-19 params; only for tests marked `real_weights`."""
    from jaxstyle.io import weights

    return weights.load_params(REAL_WEIGHTS)


def save_tiny_models(folder: Path) -> None:
    """FOLDER/fast.msgpack (styles "s", "t") and FOLDER/gan.msgpack (domains "a", "b"): untrained, width 4."""
    from jaxstyle.nets import gan, model_file, transform

    config = transform.NetworkConfig(width=4, residual_blocks=1, num_styles=2)
    model_file.save(folder / "fast.msgpack", model_file.FastModel(config, ("s", "t"),
                                                                  transform.init_params(config, jax.random.key(0))))
    gan_config = gan.CycleGANConfig(width=4, residual_blocks=1, disc_width=4)
    params = gan.init_cyclegan_params(gan_config, jax.random.key(0), size=32)
    model_file.save_cyclegan(folder / "gan.msgpack", model_file.CycleGANModel(
        gan_config, ("a", "b"), {k: params[k] for k in ("g_ab", "g_ba")}))


def kill_and_resume(train_cmd, tmp_path: Path, *, steps: int = 8, whole: Path | None = None) -> tuple[Path, Path, dict]:
    """Runs the training command `train_cmd(out, steps)` (an argv writing a model to `out`, with a
    checkpoint every step) SIGKILLed once its second checkpoint is on disk (so the kill lands
    mid-training, maybe mid-write), then again. Returns (the uninterrupted run's model file, the
    resumed one, the resumed run's sidecar); fails unless the second run said it resumed.

    whole: a model this command made without interruption (e.g. a module fixture's, in this
    process, whose compiled programs the runs here then load from the session's compilation
    cache); None: run it whole first."""
    env = dict(os.environ)
    if whole is None:
        whole = tmp_path / "whole" / "m.msgpack"
        whole.parent.mkdir()
        subprocess.run(train_cmd(whole, steps), check=True, env=env, capture_output=True, timeout=600)

    killed = tmp_path / "killed" / "m.msgpack"
    killed.parent.mkdir()
    checkpoint = killed.with_name("m.msgpack.checkpoint")
    proc = subprocess.Popen(train_cmd(killed, steps), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if checkpoint.exists():
            try:
                if len(serialization.msgpack_restore(checkpoint.read_bytes())["history"]["step"]) >= 2:
                    break
            except Exception:  # noqa: BLE001 - caught mid-write: look again
                pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists() and not killed.exists(), "the kill did not land during training"
    out = subprocess.run(train_cmd(killed, steps), env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "resuming from step" in out.stderr
    return whole, killed, json.loads(killed.with_suffix(".json").read_text())


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `jaxstyle ARGV` run in this process; argparse's own usage
    errors (exit 2, usage lines then one error line) are caught like the command's."""
    from jaxstyle import cli

    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def train_on_two_devices(argv: list, out: Path) -> dict:
    """Runs the training command `jaxstyle ARGV -o OUT` in a process with two (simulated) CPU devices,
    so that each step's batch is split over them; returns the model's sidecar."""
    env = dict(os.environ, XLA_FLAGS=os.environ["XLA_FLAGS"] + " --xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-m", "jaxstyle", *map(str, argv), "-o", str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["devices"] == 2
    return sidecar
