"""GFLOP/s of each VGG-19 convolution (forward + gradient w.r.t. its input, as in a style
transfer step) next to the whole evaluation, at one image size; random weights.

    .venv/bin/python benchmarks/layer_rates.py --size 256

Shows where the time of one evaluation goes and how close each layer runs to the machine's
matmul rate (printed last).
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import image_io, vgg


def median_seconds(fn, *args, repeats=7) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="longest side of a 4:3 image")
    args = parser.parse_args()
    h, w = image_io.longest_side_shape((3, 4), args.size)
    rng = np.random.default_rng(0)
    print("| layer | input | GFLOP | ms | GFLOP/s |")
    print("|---|---|---|---|---|")
    total_ms = 0.0
    for name, cin, cout in vgg.CONV_LAYERS[:13]:  # up to conv5_1, the deepest layer the losses use
        x = jnp.asarray(rng.random((1, h, w, cin)), jnp.float32)
        layer = {"kernel": jnp.asarray(rng.standard_normal((3, 3, cin, cout)) * 0.01, jnp.float32),
                 "bias": jnp.zeros(cout)}
        step = jax.jit(jax.value_and_grad(lambda x, layer=layer: jnp.sum(jnp.square(vgg._conv_relu(x, layer)))))
        seconds = median_seconds(step, x)
        flops = 2 * 2 * h * w * cin * cout * 9  # forward and input gradient, direct 3x3 convolution
        total_ms += 1e3 * seconds
        print(f"| {name} | {h}x{w}x{cin} | {flops / 1e9:.2f} | {1e3 * seconds:.1f} | {flops / seconds / 1e9:.0f} |")
        if name in vgg.POOL_AFTER:
            h, w = h // 2, w // 2
    print(f"sum of the layers: {total_ms:.0f} ms")
    n = 2048
    a = jnp.asarray(rng.random((n, n)), jnp.float32)
    dot = jax.jit(jnp.dot)
    print(f"XLA fp32 matmul {n}x{n}: {2 * n**3 / median_seconds(dot, a, a) / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
