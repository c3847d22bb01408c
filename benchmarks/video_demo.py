"""The README's video demo (issue 27): a few frames of Big Buck Bunny side by side, and the warping error
per frame of the optimisation painted frame by frame against `jaxstyle video`.

    make clips
    .venv/bin/python benchmarks/video_demo.py        # docs/video/demo.webp, docs/video/warping_error.png

Panels, left to right: the input; the bundled network frame by frame (The Starry Night); the same network
trained further for video (models/paintings_stable.msgpack, `make model-stable`, when present) and at
33x its temporal weight (models/paintings_steady.msgpack, `make model-steady`); the optimisation, each
frame alone (`stylize`, --steps steps); `jaxstyle video` (warped start and temporal loss, --steps for
frame 0, --steps-next after). Big Buck Bunny (c) Blender Foundation, CC BY 3.0
(models/CLIPS.md). Frames --frames at --size px on the long side; a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=ROOT / ".clips" / "bigbuckbunny.mp4")
    parser.add_argument("--frames", default="40:64", metavar="A:B")
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--steps-next", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "video")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from jaxstyle import optim
    from jaxstyle.cli.video import DEFAULT_TEMPORAL_WEIGHT
    from jaxstyle.io import image_io, plots, video, weights
    from jaxstyle.nets import fast
    from jaxstyle.video import metrics, temporal

    info = video.probe(args.clip, frames=video.parse_frames(args.frames))
    frames = list(video.read_frames(info, size=args.size))
    shape = frames[0].shape[:2]
    style = image_io.load_image(ROOT / "jaxstyle" / "data" / "starry_night.jpg")
    panels: dict[str, list[np.ndarray]] = {"input": frames}
    models = ROOT / "models"
    for label, path in [("network", fast.DEFAULT_MODEL),
                        ("network trained for video", models / "paintings_stable.msgpack"),
                        ("steadier (gamma 1e6)", models / "paintings_steady.msgpack")]:
        if path.is_file():
            panels[label] = fast.apply(fast.load_model(path), frames, batch_size=4)
    params = weights.load_params()
    settings = optim.Settings(size=args.size, steps=args.steps)
    t = time.perf_counter()
    panels["optimisation, each frame alone"] = [temporal.as_saved(optim.stylize(params, f, style, settings).image)
                                                for f in frames]
    print(f"each frame alone: {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    panels["jaxstyle video"] = [temporal.as_saved(r.image) for r in temporal.stylize_frames(
        params, frames, style, settings, steps_next=args.steps_next, temporal_weight=DEFAULT_TEMPORAL_WEIGHT)]
    print(f"jaxstyle video: {time.perf_counter() - t:.0f} s", flush=True)
    panels = {k: [image_io.resize(f, shape) for f in v] for k, v in panels.items()}

    args.out.mkdir(parents=True, exist_ok=True)
    sheets = [plots.contact_sheet([v[k] for v in panels.values()], list(panels), columns=len(panels), label_height=14)
              for k in range(len(frames))]
    images = [Image.fromarray(image_io.to_uint8(s)) for s in sheets]
    demo = args.out / "demo.webp"
    images[0].save(demo, save_all=True, append_images=images[1:], duration=round(1000 / float(info.rate)), loop=0,
                   quality=80, method=6)
    print(f"{demo}: {len(images)} frames, {demo.stat().st_size / 1e3:.0f} kB")

    fig, ax = plt.subplots(figsize=(7, 3.2))
    for label, outputs in panels.items():
        errors = list(metrics.frame_errors(outputs, frames))
        ax.plot(range(info.start + 1, info.stop), errors, label=f"{label} (mean {np.nanmean(errors):.4f})",
                color="gray" if label == "input" else None, linestyle="--" if label == "input" else "-")
    ax.set_yscale("log")
    ax.set_xlabel("frame of bigbuckbunny.mp4")
    ax.set_ylabel("warping error E_t")
    ax.set_title(f"Warping error per frame (Lai et al. 2018), {shape[1]}x{shape[0]} px", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    plot = args.out / "warping_error.png"
    fig.savefig(plot, dpi=100)
    print(plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
