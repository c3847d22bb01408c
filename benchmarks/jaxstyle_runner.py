"""Runs jaxstyle for the side-by-side benchmark; prints one JSON line like pastiche_runner.py."""

import argparse
import json
import resource
import time

parser = argparse.ArgumentParser()
parser.add_argument("--content", required=True)
parser.add_argument("--style", required=True)
parser.add_argument("--size", type=int, required=True)
parser.add_argument("--steps", type=int, required=True)
parser.add_argument("--scales", type=int, default=1)
parser.add_argument("--batch", type=int, default=0, help="vmap this many copies of the content (0: single)")
parser.add_argument("--weights", default=None)
parser.add_argument("--alpha-beta", type=float, default=1e-3)
parser.add_argument("--output", required=True)
args = parser.parse_args()

t0 = time.perf_counter()
import numpy as np  # noqa: E402

from jaxstyle import optim
from jaxstyle.io import image_io, weights

params = weights.load_params(args.weights)
content, style = image_io.load_image(args.content), image_io.load_image(args.style)
# The paper's settings, with pooling and init as in pastiche_runner.py.
settings = optim.Settings(size=args.size, steps=args.steps, init="content", pooling="avg", scales=args.scales,
                             content_weight=args.alpha_beta)
stamps, step_evaluations, last = [], [], {}


def callback(progress):
    """Times each step and counts its evaluations; a scale's first step includes its initial one."""
    stamps.append(time.perf_counter())
    step_evaluations.append(progress.evaluations - last.get(progress.scale, 0))
    last[progress.scale] = progress.evaluations


start = time.perf_counter()
if args.batch:
    result = optim.stylize_batch(params, [content] * args.batch, style, settings, callback=callback)
    image = result.image[0]
else:
    result = optim.stylize(params, content, style, settings, callback=callback)
    image = result.image
image_io.save_image(args.output, image)
steps = np.diff([start, *stamps]).tolist()
print(json.dumps({
    "tool": "jaxstyle", "size": args.size, "shape": list(image.shape[:2]), "steps": result.steps,
    "evaluations": result.evaluations, "step_seconds": steps,
    "step_evaluations": step_evaluations, "setup_seconds": start - t0,
    "wall_seconds": time.perf_counter() - t0, "optimise_seconds": stamps[-1] - start if stamps else 0.0,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "output": args.output,
    "batch": args.batch,
}))
