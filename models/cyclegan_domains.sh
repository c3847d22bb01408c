#!/usr/bin/env bash
# The CycleGAN demo's two domains, with no download beyond `make photos photos-more` (Debian's):
#   DEST/a        3 views of each of 5 training photographs and 1-2 of each of the 12 in
#                 .photos/more (domain A: photos; 38 views in all)
#   DEST/b        2 views of each of the other 4, painted as The Starry Night by `jaxstyle batch`
#                 (domain B: paintings)
#   DEST/heldout  the 2 held-out photographs, never trained on (for the benchmark and the notebook)
# No photograph is in both domains. A view is the whole 16:10 wallpaper or a 1600x1000 window of
# it (1.6x closer; centred on the smaller MATE photos, skipped where they are smaller than that),
# always resized to fit 512x512 (512x320 for a 16:10 wallpaper): the size the benchmark translates
# at, so the paintings' brush strokes have the scale the generator is judged at.
# Usage: models/cyclegan_domains.sh [DEST] [JAXSTYLE] [STEPS]
set -euo pipefail
dest=${1:-.cyclegan}
jaxstyle=${2:-.venv/bin/jaxstyle}
steps=${3:-60}
size=512  # longest side of every domain image: 512x320
photos=.photos
a="BytheWater ColdRipple ColorfulCups DarkestHour FallenLeaf"
b="Grey Kite OneStandsOut summer_1am"
mkdir -p "$dest/a" "$dest/b_photos" "$dest/b" "$dest/heldout"
python=$(dirname "$jaxstyle")/python
views() {  # views SRC DSTDIR NAME WINDOW_X...: the whole photo, then 1600x1000 windows at each x
    "$python" - "$size" "$@" <<'PY'
import sys
from PIL import Image
size, src, dst, name, *xs = sys.argv[1:]
size = int(size)
im = Image.open(src).convert("RGB")
w, h = im.size
xs = [(w - 1600) // 2 if x == "centre" else int(x) for x in xs if w >= 1600 and h >= 1000]
boxes = [(0, 0, w, h)] + [(x, (h - 1000) // 2, x + 1600, (h - 1000) // 2 + 1000) for x in xs]
for k, box in enumerate(boxes):
    view = im.crop(box)
    view.thumbnail((size, size), Image.LANCZOS)
    view.save(f"{dst}/{name}_{k}.jpg", quality=95)
PY
}
for name in $a; do views "$photos/train/$name.jpg" "$dest/a" "$name" 0 960; done
for f in "$photos"/more/*.jpg; do views "$f" "$dest/a" "$(basename "$f" .jpg)" centre; done
for name in $b; do views "$photos/train/$name.jpg" "$dest/b_photos" "$name" 480; done
for f in "$photos"/heldout/*.jpg; do cp "$f" "$dest/heldout/"; done
# The painted domain is itself a batch job: resumable, one vmapped program for every 4 views.
"$jaxstyle" batch --contents "$dest/b_photos" --style jaxstyle/data/starry_night.jpg -o "$dest/b" \
    --size "$size" --steps "$steps" --init content --batch-size 4
echo "cyclegan_domains.sh: $(ls "$dest/a" | wc -l) photos in $dest/a, $(ls "$dest"/b/*.png | wc -l) paintings in $dest/b"
