#!/usr/bin/env bash
# Fetches the photographs of Debian's plasma-workspace-wallpapers (LGPL-3; authors in
# models/PHOTOS.md) and splits them: DEST/train for training, DEST/heldout never trained on.
# Needs apt-get (Debian/Ubuntu); elsewhere, bring your own folder of photos.
set -euo pipefail
dest=${1:-.photos}
version="4:5.27.5-2"
sha256="32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b"
train="BytheWater ColdRipple ColorfulCups DarkestHour FallenLeaf Grey Kite OneStandsOut summer_1am"
heldout="EveningGlow Path"
mkdir -p "$dest/deb" "$dest/train" "$dest/heldout"
cd "$dest/deb"
if ! ls plasma-workspace-wallpapers_*.deb >/dev/null 2>&1; then
    command -v apt-get >/dev/null || { echo "photos.sh: apt-get not found; bring a folder of photos" >&2; exit 2; }
    apt-get download "plasma-workspace-wallpapers=$version"
fi
echo "$sha256  $(ls plasma-workspace-wallpapers_*.deb)" | sha256sum -c --quiet
dpkg-deb -x plasma-workspace-wallpapers_*.deb extracted
cd ..
for name in $train; do cp "deb/extracted/usr/share/wallpapers/$name/contents/images/2560x1600.jpg" "train/$name.jpg"; done
for name in $heldout; do cp "deb/extracted/usr/share/wallpapers/$name/contents/images/2560x1600.jpg" "heldout/$name.jpg"; done
rm -rf deb/extracted
echo "photos.sh: $(ls train | wc -l) training and $(ls heldout | wc -l) held-out photos in $dest"
