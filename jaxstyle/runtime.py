"""What every jaxstyle program needs from the runtime: CPU kernels, the compilation cache, devices.

- CPU kernels: jaxlib 0.10 hands convolutions, dots and reductions to YNNPACK by default. XLA's
  own Eigen kernels ran the paper's value-and-gradient faster on both x86 CPUs measured:
  1.04-1.12x on a 2-core AMD EPYC with AVX2 only, 1.06-1.18x on a 2-core Intel Xeon with AVX-512
  (`benchmarks/layer_rates.py --kernels ynnpack,eigen`; whole L-BFGS steps in
  docs/benchmarks.md). Elsewhere (no AVX, or not x86) nothing was measured and XLA's default
  stays. ``JAXSTYLE_CPU_KERNELS=ynnpack|eigen`` overrides the choice (``auto``, the default).
- The persistent compilation cache, so a new process skips the compile.
- The device mesh a batch is sharded over (one axis, "batch"), and a batch rounded up to it.
- The host memory available now, and in all, which the memory checks compare their estimates with.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from jaxstyle.errors import JaxstyleError

ENV = "JAXSTYLE_CPU_KERNELS"
CHOICES = ("auto", "ynnpack", "eigen")
# XLA's names for the instruction-set levels, in increasing order (--xla_cpu_max_isa).
ISA_LEVELS = ("SSE4_2", "AVX", "AVX2", "AVX512")


def cpu_isa(cpuinfo: str | None = None, xla_flags: str | None = None) -> str | None:
    """The vector instruction set XLA may use here: the CPU's best of `ISA_LEVELS`, capped by
    ``--xla_cpu_max_isa`` in XLA_FLAGS; None where unknown (not x86, or no /proc/cpuinfo)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    line = next((ln for ln in cpuinfo.splitlines() if ln.startswith("flags")), "")
    flags = set(line.partition(":")[2].split())
    present = [level for level, flag in zip(ISA_LEVELS, ("sse4_2", "avx", "avx2", "avx512f")) if flag in flags]
    if not present:
        return None
    best = present[-1]
    flags_text = os.environ.get("XLA_FLAGS", "") if xla_flags is None else xla_flags
    cap = re.search(r"--xla_cpu_max_isa=(\w+)", flags_text)
    if cap and cap.group(1).upper() in ISA_LEVELS:
        best = ISA_LEVELS[min(ISA_LEVELS.index(best), ISA_LEVELS.index(cap.group(1).upper()))]
    return best


def choose(setting: str, isa: str | None) -> str:
    """'ynnpack' or 'eigen' for a JAXSTYLE_CPU_KERNELS setting on a CPU of instruction set `isa`."""
    if setting not in CHOICES:
        raise JaxstyleError(f"{ENV}={setting!r}: expected one of {', '.join(CHOICES)}")
    if setting != "auto":
        return setting
    # Measured only on x86 (AVX2 and AVX-512); elsewhere XLA's default stays.
    return "eigen" if isa in ("AVX", "AVX2", "AVX512") else "ynnpack"


def options(kernels: str) -> dict[str, str]:
    """XLA compiler options that select 'ynnpack' (XLA's default) or 'eigen' kernels."""
    # An empty list of YNNPACK fusion types: convolutions, dots and reductions stay XLA's own.
    return {} if kernels == "ynnpack" else {"xla_cpu_experimental_ynn_fusion_type": ""}


def setting() -> str:
    """The JAXSTYLE_CPU_KERNELS setting (default 'auto'); a bad value raises JaxstyleError, so
    the command line can refuse it before any work."""
    value = os.environ.get(ENV, "auto")
    choose(value, None)
    return value


@functools.lru_cache(maxsize=None)
def compiler_options() -> dict[str, str]:
    """Options for `jax.jit(..., compiler_options=...)` of the VGG programs ({} off the CPU)."""
    if jax.default_backend() != "cpu":
        return {}
    return options(choose(setting(), cpu_isa()))


def jit(fn: Callable, **jit_kwargs) -> Callable:
    """`jax.jit(fn)` compiled with `compiler_options()`.

    XLA takes compiler options only for a top-level program, so a call from inside another
    transformation (`jax.eval_shape`, an outer jit) goes to the plain `jax.jit(fn)`.
    """
    top = jax.jit(fn, compiler_options=compiler_options(), **jit_kwargs)
    nested = jax.jit(fn, **jit_kwargs)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, kwargs)))
        return (nested if traced else top)(*args, **kwargs)

    call._cache_size = top._cache_size  # tests check that a second call does not recompile
    call.lower = top.lower  # for memory_analysis of the compiled program
    call.eval_shape = top.eval_shape
    return call


def enable_compilation_cache(path: str | os.PathLike | None = None) -> None:
    """Keeps compiled programs on disk so a new process skips the compile (per canvas shape)."""
    path = path or os.environ.get("JAX_COMPILATION_CACHE_DIR") or Path.home() / ".cache" / "jaxstyle" / "jit"
    jax.config.update("jax_compilation_cache_dir", str(path))
    # 0.25 s, not JAX's 1 s: a network's program compiles in ~0.7 s, a third of a short clip's run.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.25)


def round_up(count: int, devices: int) -> int:
    """`count` rounded up to a multiple of `devices` (each device gets whole images)."""
    return -(-count // devices) * devices


class Shardings(NamedTuple):
    """Where a data-parallel program puts its arrays: `batch` splits the leading axis over the
    mesh's devices, `replicated` copies an array (params, targets) onto each."""

    batch: jax.sharding.NamedSharding
    replicated: jax.sharding.NamedSharding


def shardings(devices: Sequence[jax.Device] | None = None) -> Shardings:
    """`Shardings` over a 1-D mesh ("batch") of `devices` (default: all local devices)."""
    mesh = jax.sharding.Mesh(np.asarray(list(devices or jax.local_devices())), ("batch",))
    return Shardings(jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch")),
                     jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def available_memory_bytes() -> int:
    """The host memory available now (MemAvailable in /proc/meminfo; elsewhere the free pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def memory_and_swap_bytes() -> int:
    """The host's memory and swap in all (MemTotal + SwapTotal): under Linux's default (heuristic)
    overcommit, no single allocation may be larger."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return sum(int(fields[key].split()[0]) * 1024 for key in ("MemTotal", "SwapTotal"))
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
