"""XLA's own memory plan for jaxstyle's compiled programs at one image size (no weights needed).

    .venv/bin/python benchmarks/memory_analysis.py --size 1024

Prints, per program, the temporary, argument, output and aliased (donated, updated in place)
bytes from `jax.jit(...).lower(...).compile().memory_analysis()`. The evaluation program's
temporaries are most of a run's peak memory.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import image_io, losses, optimize, vgg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="longest side of a 4:3 image")
    args = parser.parse_args()
    h, w = image_io.longest_side_shape((3, 4), args.size)
    rng = np.random.default_rng(0)
    params = {name: {"kernel": jnp.asarray(rng.standard_normal((3, 3, cin, cout)), jnp.float32),
                     "bias": jnp.zeros(cout)} for name, cin, cout in vgg.CONV_LAYERS}
    params["input"] = {"matrix": jnp.eye(3), "offset": jnp.zeros(3)}
    settings = optimize.Settings()
    image = jax.ShapeDtypeStruct((h, w, 3), jnp.float32)
    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    content_program, style_program = optimize._targets_programs(settings)
    targets = jax.eval_shape(lambda p, x: losses.assemble_targets(
        content_program(p, x), [style_program(p, x, (h, w))]), params, image)
    weights = settings.loss_weights()
    init, direct, evaluate = optimize._programs(optimize._program_key(settings), "single")
    state = jax.eval_shape(init, params, image, targets, weights)
    programs = [
        ("content features", content_program, (params, image)),
        ("style Grams", style_program, (params, image, (h, w))),
        ("init (one evaluation)", init, (params, image, targets, weights)),
        ("direction (L-BFGS)", direct, (state.opt_state, image, image)),
        ("evaluation", evaluate, (params, image, image, scalar, scalar, image, targets, weights)),
    ]
    print(f"image {w}x{h}")
    print("| program | temp MiB | arguments MiB | outputs MiB | aliased MiB |")
    print("|---|---|---|---|---|")
    for name, program, program_args in programs:
        m = program.lower(*program_args).compile().memory_analysis()
        print(f"| {name} | {m.temp_size_in_bytes / 2**20:.0f} | {m.argument_size_in_bytes / 2**20:.0f} | "
              f"{m.output_size_in_bytes / 2**20:.0f} | {m.alias_size_in_bytes / 2**20:.0f} |")


if __name__ == "__main__":
    main()
