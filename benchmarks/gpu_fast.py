"""Fast networks on an accelerator: training images/s at 256 px and apply ms per image.

    bash benchmarks/gpu.sh      # runs this after the L-BFGS check

Training crops come from the bundled images (no photo folder travels to the device machine):
throughput, not quality.
"""

import argparse
import statistics
import time

import jax
import numpy as np

from jaxstyle import data_path
from jaxstyle.io import image_io, weights
from jaxstyle.nets import fast, training, transform
from jaxstyle.nets.photos import PhotoFolder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="training crop side")
    parser.add_argument("--apply-sizes", default="512,1024")
    args = parser.parse_args()
    params = weights.load_params(args.weights)
    style = image_io.load_image(data_path("starry_night.jpg"))
    photos = PhotoFolder(data_path("tubingen.jpg").parent, size=args.size)
    settings = training.TrainSettings(size=args.size, steps=args.steps, batch_size=args.batch)
    times = []
    result = training.train(params, [style], photos, settings, style_names=["starry_night"],
                            callback=lambda p: times.append(p.seconds))
    step_s = statistics.median(np.diff(times)[2:])
    batch = training.batch_size_for(settings, jax.local_devices())
    print(f"train {args.size} px, width 16, batch {batch} on {len(jax.local_devices())} device(s): "
          f"{step_s * 1e3:.1f} ms/step, {batch / step_s:.1f} img/s, final loss {result.losses['total']:.4g}")
    photo = image_io.load_image(data_path("tubingen.jpg"))
    for size in map(int, args.apply_sizes.split(",")):
        for batch in (1, 8):
            images = [image_io.resize_longest(photo, size)] * batch
            fast.apply(result.model, images, batch_size=batch)
            runs = []
            for _ in range(5):
                t = time.perf_counter()
                fast.apply(result.model, images, batch_size=batch)
                runs.append(time.perf_counter() - t)
            per = statistics.median(runs) / batch
            gflop = transform.flops_per_pixel(result.model.config) * size * size * 0.75 / 1e9
            print(f"apply {size} px (4:3), batch {batch}: {per * 1e3:.2f} ms/img, {gflop:.1f} GFLOP/img")


if __name__ == "__main__":
    main()
