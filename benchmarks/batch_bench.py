"""Batch throughput: images/s against simulated CPU devices and against batch size.

    python benchmarks/batch_bench.py [--size 96] [--steps 10] [--images 8]

Each configuration runs in a fresh process (XLA_FLAGS=--xla_force_host_platform_device_count=D
must be set before JAX starts), compiles once, then times `--steps` L-BFGS steps of a vmapped batch
sharded over D devices. On a CPU the "devices" share the same cores, so this measures the cost of
sharding, not a speed-up; on a GPU/TPU host the same command measures real devices (D = all).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

WORKER = """
import json, sys, time, jax, numpy as np
from jaxstyle import data_path
from jaxstyle.optim import batch
from jaxstyle.io import image_io
from jaxstyle import optim
from jaxstyle.io import weights
size, steps, images, ndev = map(int, sys.argv[1:5])
params = weights.load_params()
content = image_io.load_image(data_path("tubingen.jpg"))
style = image_io.load_image(data_path("starry_night.jpg"))
s = optim.Settings(size=size, steps=steps)
place = batch.device_placer(jax.devices()[:ndev])
stamps = []
optim.stylize_batch(params, [content] * images, style, s.replace(steps=1), place=place)  # compile
t = time.perf_counter()
optim.stylize_batch(params, [content] * images, style, s, place=place, callback=lambda p: stamps.append(1))
seconds = time.perf_counter() - t
print(json.dumps({"devices": ndev, "batch": images, "seconds": seconds, "images_per_s": images / seconds,
                  "backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind}))
"""


def measure(size, steps, images, devices, simulate):
    env = dict(os.environ)
    if simulate:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    out = subprocess.run([sys.executable, "-c", WORKER, str(size), str(steps), str(images), str(devices)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--real-devices", action="store_true", help="use the host's devices (GPU/TPU)")
    args = parser.parse_args()
    print(f"size {args.size} px, {args.steps} L-BFGS steps, compile excluded")
    print("| devices | batch | seconds | images/s |")
    print("|---|---|---|---|")
    counts = [1] if args.real_devices else [1, 2, 4, 8]
    for d in counts:
        r = measure(args.size, args.steps, args.images, d, simulate=not args.real_devices)
        print(f"| {d} ({r['device_kind']}) | {r['batch']} | {r['seconds']:.2f} | {r['images_per_s']:.3f} |",
              flush=True)
    for b in (1, 2, 4, 8):
        r = measure(args.size, args.steps, b, 1, simulate=False)
        print(f"| 1 | {b} | {r['seconds']:.2f} | {r['images_per_s']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
