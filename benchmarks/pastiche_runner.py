"""Runs pastiche (PyTorch) for the side-by-side benchmark; executed with the benchmark venv's Python.

Prints one JSON line: per-step seconds, evaluations, peak RSS, output path. pastiche is set to
the paper's objective (1e-3 L_content + sum_l 0.2 E_l) so both tools minimise the same function.
"""

import argparse
import json
import resource
import time

import torch
from pastiche import pastiche

parser = argparse.ArgumentParser()
parser.add_argument("--content", required=True)
parser.add_argument("--style", required=True)
parser.add_argument("--size", type=int, required=True)
parser.add_argument("--steps", type=int, required=True)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--alpha", type=float, default=1e-3)
parser.add_argument("--output", required=True)
args = parser.parse_args()
torch.set_num_threads(args.threads)

t0 = time.perf_counter()
# pastiche's content term is w * mean((F - P)^2) = w * 2 L_content / (N M) at conv4_2 (N = 512
# filters, M positions); its style term per layer is w_l * mean((G - A)^2) / M^2 = 4 w_l E_l.
probe = pastiche.load_image(args.content, size=args.size)
h, w = probe.shape[2:]
m_conv4 = (h // 8) * (w // 8)
artist = pastiche.PasticheArtist(
    args.content, [args.style], pooling="avg", optimizer="lbfgs", device="cpu", size=args.size,
    content_layer_weights=[args.alpha * 512 * m_conv4 / 2], style_layer_weights=[0.05] * 5)
setup = time.perf_counter() - t0
times = []
for _ in range(args.steps):
    t = time.perf_counter()
    artist.draw()
    times.append(time.perf_counter() - t)
pastiche.save_image(artist.pastiche, args.output)
print(json.dumps({
    "tool": "pastiche", "size": args.size, "shape": [h, w], "steps": args.steps, "evaluations": args.steps,
    "step_seconds": times, "setup_seconds": setup, "wall_seconds": time.perf_counter() - t0,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "output": args.output,
}))
