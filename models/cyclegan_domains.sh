#!/usr/bin/env bash
# The CycleGAN demo's two domains, with no download beyond `make photos` (Debian's wallpapers):
#   DEST/a        5 training photographs (domain A: photos)
#   DEST/b        the other 4, painted as The Starry Night by `jaxstyle batch` (domain B: paintings)
#   DEST/heldout  the 2 held-out photographs, never trained on (for the benchmark and the notebook)
# No photograph is in both domains. Usage: models/cyclegan_domains.sh [DEST] [JAXSTYLE] [STEPS]
set -euo pipefail
dest=${1:-.cyclegan}
jaxstyle=${2:-.venv/bin/jaxstyle}
steps=${3:-80}
size=320  # longest side of every domain image: 320x200
photos=.photos
a="BytheWater ColdRipple ColorfulCups DarkestHour FallenLeaf"
b="Grey Kite OneStandsOut summer_1am"
mkdir -p "$dest/a" "$dest/b_photos" "$dest/b" "$dest/heldout"
python=$(dirname "$jaxstyle")/python
resize() {  # resize SRC DST: longest side $size, as a high-quality JPEG
    "$python" -c "import sys; from PIL import Image; im = Image.open(sys.argv[1]).convert('RGB'); \
im.thumbnail(($size, $size), Image.LANCZOS); im.save(sys.argv[2], quality=95)" "$1" "$2"
}
for name in $a; do resize "$photos/train/$name.jpg" "$dest/a/$name.jpg"; done
for name in $b; do resize "$photos/train/$name.jpg" "$dest/b_photos/$name.jpg"; done
for f in "$photos"/heldout/*.jpg; do cp "$f" "$dest/heldout/"; done
# The painted domain is itself a batch job: resumable, one vmapped program for all four.
"$jaxstyle" batch --contents "$dest/b_photos" --style jaxstyle/data/starry_night.jpg -o "$dest/b" \
    --size "$size" --steps "$steps" --init content --batch-size 4
echo "cyclegan_domains.sh: $(ls "$dest/a" | wc -l) photos in $dest/a, $(ls "$dest"/b/*.png | wc -l) paintings in $dest/b"
