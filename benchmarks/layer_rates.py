"""GFLOP/s of each VGG-19 convolution (forward + gradient w.r.t. its input, as in a style
transfer step) and of the whole evaluation, at one image size, for each XLA CPU kernel choice.

    .venv/bin/python benchmarks/layer_rates.py --size 256 --kernels ynnpack,eigen
    .venv/bin/python benchmarks/layer_rates.py --torch     # with the benchmark venv: PyTorch's rates

Shows where the time of one evaluation goes and how close each layer runs to the machine's
matmul rate (printed last). Kernel choices (see `jaxstyle.runtime`) are compiled side by
side in one process and timed in alternation, so their ratios are not confounded by a noisy
machine. With --torch (run by the benchmark venv's Python) it times PyTorch's layers instead.
"""

import argparse
import statistics
import time

# (name, input channels, output channels) up to conv5_1, the deepest layer the losses use, and
# the convolutions a 2x2 pooling follows: as in jaxstyle.vgg, repeated so that --torch needs no jaxstyle.
LAYERS = (("conv1_1", 3, 64), ("conv1_2", 64, 64), ("conv2_1", 64, 128), ("conv2_2", 128, 128),
          ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256),
          ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), ("conv4_4", 512, 512),
          ("conv5_1", 512, 512))
POOL_AFTER = ("conv1_2", "conv2_2", "conv3_4", "conv4_4")


def layer_shapes(size):
    """(name, h, w, cin, cout, GFLOP) of each layer for a 4:3 image of longest side `size`."""
    h, w = (size * 3) // 4, size
    shapes = []
    for name, cin, cout in LAYERS:
        shapes.append((name, h, w, cin, cout, 2 * 2 * h * w * cin * cout * 9 / 1e9))  # forward + input gradient
        if name in POOL_AFTER:
            h, w = h // 2, w // 2
    return shapes


def alternate(fns: dict, repeats: int) -> dict:
    """Median seconds of each zero-argument callable, timed in turn `repeats` times after a warm-up."""
    for fn in fns.values():
        fn()
    times = {key: [] for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(t) for key, t in times.items()}


def jax_rates(size, kernels, repeats):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxstyle import losses, runtime, vgg
    from jaxstyle.io import image_io, weights

    def compiled(fn, arg, choice):
        exe = jax.jit(fn).lower(arg).compile(compiler_options=runtime.options(choice))
        return lambda: jax.block_until_ready(exe(arg))

    auto = runtime.choose("auto", runtime.cpu_isa())
    print(f"CPU instruction set for XLA: {runtime.cpu_isa()}; jaxstyle's automatic choice: {auto}")
    kernels = [auto if k == "auto" else k for k in kernels]
    rng = np.random.default_rng(0)
    print("| layer | input | GFLOP | " + " | ".join(f"{k} ms | {k} GFLOP/s" for k in kernels) + " |")
    print("|---|---|---|" + "---|---|" * len(kernels))
    totals = dict.fromkeys(kernels, 0.0)
    for name, h, w, cin, cout, gflop in layer_shapes(size):
        x = jnp.asarray(rng.random((1, h, w, cin)), jnp.float32)
        layer = {"kernel": jnp.asarray(rng.standard_normal((3, 3, cin, cout)) * 0.01, jnp.float32),
                 "bias": jnp.zeros(cout)}
        step = jax.value_and_grad(lambda x, layer=layer: jnp.sum(jnp.square(vgg._conv_relu(x, layer))))
        seconds = alternate({k: compiled(step, x, k) for k in kernels}, repeats)
        for k in kernels:
            totals[k] += seconds[k]
        print(f"| {name} | {h}x{w}x{cin} | {gflop:.2f} | "
              + " | ".join(f"{1e3 * seconds[k]:.1f} | {gflop / seconds[k]:.0f}" for k in kernels) + " |", flush=True)
    print("sum of the layers: " + ", ".join(f"{k} {1e3 * t:.0f} ms" for k, t in totals.items()))

    params = weights.load_params()
    h, w = image_io.longest_side_shape((3, 4), size)
    image = jnp.asarray(rng.random((h, w, 3)), jnp.float32)
    targets = losses.make_targets(params, image, [jnp.asarray(rng.random((h, w, 3)), jnp.float32)])
    evaluation = jax.value_and_grad(lambda x: losses.total_loss(
        params, x, targets, losses.LossWeights(content=1e-3, style=1.0, tv=0.0),
        content_layer_weights={"conv4_2": 1.0}, style_layer_weights=losses.equal_weights(losses.STYLE_LAYERS))[0])
    seconds = alternate({k: compiled(evaluation, image, k) for k in kernels}, repeats)
    gflop = sum(s[-1] for s in layer_shapes(size))
    print("whole evaluation (paper's loss, real weights): " + ", ".join(
        f"{k} {1e3 * s:.0f} ms = {gflop / s:.0f} GFLOP/s" for k, s in seconds.items()))
    n = 2048
    a = jnp.asarray(rng.random((n, n)), jnp.float32)
    seconds = alternate({k: compiled(lambda a: a @ a, a, k) for k in kernels}, repeats)
    print(f"XLA fp32 matmul {n}x{n}: " + ", ".join(f"{k} {2 * n**3 / s / 1e9:.0f} GFLOP/s" for k, s in seconds.items()))


def torch_rates(size, repeats):
    import torch

    torch.set_num_threads(torch.get_num_threads())
    print(f"PyTorch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} threads")
    print("| layer | input | GFLOP | ms | GFLOP/s |")
    print("|---|---|---|---|---|")
    total = 0.0
    for name, h, w, cin, cout, gflop in layer_shapes(size):
        x = torch.rand(1, cin, h, w, requires_grad=True)
        conv = torch.nn.Conv2d(cin, cout, 3, padding=1).requires_grad_(False)

        def step():
            x.grad = None
            torch.relu(conv(x)).square().sum().backward()

        seconds = alternate({"torch": step}, repeats)["torch"]
        total += seconds
        print(f"| {name} | {h}x{w}x{cin} | {gflop:.2f} | {1e3 * seconds:.1f} | {gflop / seconds:.0f} |", flush=True)
    print(f"sum of the layers: {1e3 * total:.0f} ms")
    a = torch.rand(2048, 2048)
    seconds = alternate({"mm": lambda: a @ a}, repeats)["mm"]
    print(f"PyTorch fp32 matmul 2048x2048: {2 * 2048**3 / seconds / 1e9:.0f} GFLOP/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="longest side of a 4:3 image")
    parser.add_argument("--kernels", default="auto", help="comma-separated XLA CPU kernels: auto, ynnpack, eigen")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--torch", action="store_true", help="time PyTorch's layers (benchmark venv) instead")
    args = parser.parse_args()
    if args.torch:
        torch_rates(args.size, args.repeats)
    else:
        jax_rates(args.size, args.kernels.split(","), args.repeats)


if __name__ == "__main__":
    main()
