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

from jaxstyle import optim, vgg
from jaxstyle.io import image_io
from jaxstyle.optim import solver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="longest side of a 4:3 image")
    args = parser.parse_args()
    h, w = image_io.longest_side_shape((3, 4), args.size)
    rng = np.random.default_rng(0)
    params = {name: {"kernel": jnp.asarray(rng.standard_normal((3, 3, cin, cout)), jnp.float32),
                     "bias": jnp.zeros(cout)} for name, cin, cout in vgg.CONV_LAYERS}
    params["input"] = {"matrix": jnp.eye(3), "offset": jnp.zeros(3)}
    settings = optim.Settings()
    key = settings.program_key()
    p = solver.programs(key)
    f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)  # noqa: E731
    image, valid = f32(1, h, w, 3), jax.ShapeDtypeStruct((1, 2), jnp.int32)
    styles, style_valid = f32(1, 1, h, w, 3), jax.ShapeDtypeStruct((1, 1, 2), jnp.int32)
    targets = jax.eval_shape(p.targets, params, image, valid, styles, style_valid, f32(1, 1), None)
    weights = jax.eval_shape(lambda: jax.tree.map(lambda x: jnp.asarray(x)[None], optim._weights(settings)))
    opt_state = jax.eval_shape(p.init_opt, image)
    step = jax.ShapeDtypeStruct((1,), jnp.int32)
    programs = [
        ("content features + style Grams", p.targets, (params, image, valid, styles, style_valid, f32(1, 1), None)),
        ("direction (L-BFGS)", p.direct, (opt_state, image, image, image, image, step)),
        ("evaluation", p.evaluate, (params, image, image, f32(1), f32(1), image, valid, targets, weights)),
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
