#!/usr/bin/env bash
# Usage: models/photos.sh [DEST] [more]
# Fetches the photographs of Debian's plasma-workspace-wallpapers (LGPL-3; authors in
# models/PHOTOS.md) and splits them: DEST/train for training, DEST/heldout never trained on.
# With `more`, instead: DEST/more, the nature photographs of Debian's mate-backgrounds (GPL-2+),
# used only by the CycleGAN demo's domain A (DEST/train stays what the fast network was trained on).
# Needs apt-get (Debian/Ubuntu); elsewhere, bring your own folder of photos.
set -euo pipefail
dest=${1:-.photos}
part=${2:-}
[ -z "$part" ] || [ "$part" = more ] || { echo "photos.sh: the second argument is \"more\" or nothing, not \"$part\"" >&2; exit 2; }
version="4:5.27.5-2"
sha256="32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b"
train="BytheWater ColdRipple ColorfulCups DarkestHour FallenLeaf Grey Kite OneStandsOut summer_1am"
heldout="EveningGlow Path"
mate_version="1.26.0-1"
mate_sha256="7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04"
mkdir -p "$dest/deb"
cd "$dest/deb"
unpack() {  # unpack PACKAGE VERSION SHA256: download once, check, extract into ./extracted
    if ! ls "$1"_*.deb >/dev/null 2>&1; then
        command -v apt-get >/dev/null || { echo "photos.sh: apt-get not found; bring a folder of photos" >&2; exit 2; }
        apt-get download "$1=$2"
    fi
    echo "$3  $(ls "$1"_*.deb)" | sha256sum -c --quiet
    dpkg-deb -x "$1"_*.deb extracted
}
if [ "$part" = more ]; then
    unpack mate-backgrounds "$mate_version" "$mate_sha256"
    mkdir -p ../more
    cp extracted/usr/share/backgrounds/mate/nature/*.jpg ../more/
    rm -rf extracted
    echo "photos.sh: $(ls ../more | wc -l) more photos in $dest/more"
    exit 0
fi
unpack plasma-workspace-wallpapers "$version" "$sha256"
cd ..
mkdir -p train heldout
for name in $train; do cp "deb/extracted/usr/share/wallpapers/$name/contents/images/2560x1600.jpg" "train/$name.jpg"; done
for name in $heldout; do cp "deb/extracted/usr/share/wallpapers/$name/contents/images/2560x1600.jpg" "heldout/$name.jpg"; done
rm -rf deb/extracted
echo "photos.sh: $(ls train | wc -l) training and $(ls heldout | wc -l) held-out photos in $dest"
