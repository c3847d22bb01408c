"""Tiled apply (issue 25): peak RSS and seconds of `jaxstyle apply --size N`, a crop across tile borders,
and how far tiles stray from the whole image.

    .venv/bin/python -m benchmarks.tiled_apply_bench [--sizes 4096,8192] [--compare 2048] [--crop out.png]

Each apply runs in its own process (peak RSS from wait4); the comparison runs here: at `--compare` px,
the committed model with the statistics of a 1024 px thumbnail, in 512 px tiles and whole (the most
any pixel differs, f32), and tiled against today's whole-image run with the image's own statistics.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL, PHOTO = REPO / "jaxstyle" / "data" / "paintings.msgpack", REPO / "jaxstyle" / "data" / "tubingen.jpg"


def run_apply(size: int, out: Path, extra: list[str]) -> tuple[float, float]:
    """(peak RSS in GiB, seconds) of one `jaxstyle apply` process."""
    argv = [sys.executable, "-m", "jaxstyle", "apply", str(MODEL), str(PHOTO), "-o", str(out), "--size", str(size),
            "--quiet", *extra]
    t0 = time.perf_counter()
    process = subprocess.Popen(argv, cwd=REPO)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed")
    return usage.ru_maxrss / 2**20, seconds  # ru_maxrss: KiB on Linux


def compare(size: int) -> tuple[float, float, float]:
    """(max |tiled - whole| with the same thumbnail statistics, max and mean |tiled - today's whole|, in
    8-bit levels) at `size` px."""
    from jaxstyle.io import image_io
    from jaxstyle.nets import fast, tiles, transform

    model = fast.load_model(MODEL)
    image = image_io.resize_longest(image_io.load_image(PHOTO), size)
    _, _, args = fast._plan(model, [image], style_index=None, mix=None, size=None, batch_size=1, tile=0,
                            thumbnail=tiles.THUMBNAIL)
    stats_fn, tile_fn = functools.partial(fast._thumbnail_stats, *args), functools.partial(fast._forward_tiles, *args)
    halo = tiles.halo_for(transform.radius(model.config))
    tiled = tiles.apply_tiled(stats_fn, tile_fn, image, tile=512, halo=halo)
    stats = stats_fn(image_io.resize_longest(image, tiles.THUMBNAIL))
    pad = [(0, -n % 4) for n in image.shape[:2]]
    whole = np.asarray(tile_fn(stats, np.pad(image, [*pad, (0, 0)], mode="reflect")[None]))[0][:image.shape[0],
                                                                                               :image.shape[1]]
    today = fast.apply(model, [image], tile=0)[0]
    own = np.abs(tiled - today) * 255
    return float(np.abs(tiled - whole).max()), float(own.max()), float(own.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4096,8192")
    parser.add_argument("--compare", type=int, default=2048)
    parser.add_argument("--crop", type=Path, default=Path(tempfile.gettempdir()) / "tiled_seam_crop.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            out = Path(tmp) / f"x{size}.png"
            for extra in ([], ["--tile", "512"]) if size <= 4096 else ([],):
                rss, seconds = run_apply(size, out, extra)
                how = " ".join(extra) or "auto"
                print(f"apply --size {size} ({how}): peak RSS {rss:.2f} GiB, {seconds:.1f} s", flush=True)
            if size == max(int(s) for s in args.sizes.split(",")):
                from PIL import Image

                # 512 px tiles: borders at multiples of 512; the crop straddles (1024, 1536) and (1536, 2048)
                Image.open(out).crop((1536 - 128, 1024 - 128, 2048 + 128, 1536 + 128)).save(args.crop)
                print(f"crop across tile borders (x 1536, 2048; y 1024, 1536): {args.crop}")
    same, worst, mean = compare(args.compare)
    print(f"--size {args.compare}, 512 px tiles against whole, same 1024 px thumbnail statistics: max {same:.2e}")
    print(f"--size {args.compare}, tiled (thumbnail statistics) against today's whole run (own statistics): "
          f"max {worst:.1f}, mean {mean:.2f} 8-bit levels")


if __name__ == "__main__":
    main()
