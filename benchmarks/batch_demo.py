"""The batch issue's acceptance run: 50 small jobs across 2 styles, killed and resumed, then split
over 2 processes. Prints the figures.

    .venv/bin/python benchmarks/batch_demo.py [--jobs 50] [--size 64] [--steps 10] [--kills 5]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

DATA = Path(__file__).resolve().parents[1] / "jaxstyle" / "data"


def make_jobs(folder: Path, n: int, size: int) -> Path:
    photo = Image.open(DATA / "tubingen.jpg")
    lines = []
    for i in range(n):
        x, y = (i * 37) % 400, (i * 23) % 300
        photo.crop((x, y, x + 624, y + 468)).resize((size * 4 // 3, size)).save(folder / f"c{i:02d}.png")
        lines.append(json.dumps({"content": f"c{i:02d}.png", "style": ["starry_night.jpg", "the_scream.jpg"][i % 2]}))
    for name in ("starry_night.jpg", "the_scream.jpg"):
        Image.open(DATA / name).save(folder / name)
    (folder / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "jobs.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="jaxstyle-batch-"))
    manifest = make_jobs(folder, args.jobs, args.size)
    cmd = [sys.executable, "-m", "jaxstyle", "batch", str(manifest), "--size", str(args.size), "--steps",
           str(args.steps), "--batch-size", "8", "--checkpoint-every", "3", "--quiet", "--cache-dir",
           str(folder / "jit")]

    t = time.perf_counter()
    first = subprocess.run([*cmd, "-o", str(folder / "ref")], capture_output=True, text=True)
    seconds = time.perf_counter() - t
    print(f"uninterrupted: exit {first.returncode}, {seconds:.0f} s: {first.stderr.strip()}")
    t = time.perf_counter()
    again = subprocess.run([*cmd, "-o", str(folder / "ref")], capture_output=True, text=True)
    print(f"rerun: exit {again.returncode}, {time.perf_counter() - t:.1f} s: {again.stderr.strip()}")

    rng = random.Random(0)
    for k in range(args.kills):
        proc = subprocess.Popen([*cmd, "-o", str(folder / "killed")], stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1, 0.6 * seconds))  # each restart gets further: finished jobs are skipped
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = len(list((folder / "killed").glob("*.json")))
        checkpoints = len(list((folder / "killed").glob(".jaxstyle-checkpoints/*.npz")))
        print(f"kill {k + 1}: {done} jobs done, {checkpoints} checkpoint(s) on disk")
    final = subprocess.run([*cmd, "-o", str(folder / "killed")], capture_output=True, text=True)
    leftovers = [p.name for p in (folder / "killed").rglob("*") if p.suffix in (".tmp", ".npz")]
    print(f"after the kills: exit {final.returncode}: {final.stderr.strip()}; leftovers {leftovers}")
    same = sum((folder / "ref" / p.name).read_bytes() == p.read_bytes() for p in (folder / "killed").glob("*.png"))
    print(f"outputs identical to the uninterrupted run: {same} of {len(list((folder / 'ref').glob('*.png')))}")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([*cmd, "-o", str(folder / "two"), "--coordinator", f"127.0.0.1:{port}",
                               "--num-processes", "2", "--process-id", str(i)], stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate()[1].strip() for p in procs]
    sidecars = [json.loads(p.read_text()) for p in (folder / "two").glob("*.json")]
    per_process = [sum(s["process"] == i for s in sidecars) for i in range(2)]
    ids = [s["job_id"] for s in sidecars]
    print(f"2 processes: exits {[p.returncode for p in procs]}, jobs per process {per_process}, "
          f"{len(ids)} sidecars, {len(set(ids))} distinct jobs; {outs}")
    print(f"outputs in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
