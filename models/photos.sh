#!/usr/bin/env bash
# Usage: models/photos.sh [DEST] [more|wide]
# Fetches the photographs of Debian's plasma-workspace-wallpapers (LGPL-3; authors in
# models/PHOTOS.md) and splits them: DEST/train for training, DEST/heldout never trained on.
# With `more`, instead: DEST/more, the nature photographs of Debian's mate-backgrounds (GPL-2+),
# used only by the CycleGAN demo's domain A (DEST/train stays what the fast network was trained on).
# With `wide`, instead: DEST/wide, the photographs of lomiri-wallpapers-16.04/-20.04 (CC0, CC BY,
# CC BY-SA) and lxqt-themes (CC BY-SA 3.0), for the multi-style network (DEST/train untouched).
# Needs apt-get (Debian/Ubuntu); elsewhere, bring your own folder of photos.
set -euo pipefail
dest=${1:-.photos}
part=${2:-}
case "$part" in ""|more|wide) ;; *) echo "photos.sh: the second argument is \"more\", \"wide\" or nothing, not \"$part\"" >&2; exit 2;; esac
version="4:5.27.5-2"
sha256="32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b"
train="BytheWater ColdRipple ColorfulCups DarkestHour FallenLeaf Grey Kite OneStandsOut summer_1am"
heldout="EveningGlow Path"
mate_version="1.26.0-1"
mate_sha256="7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04"
lomiri_version="20.04.0-2"
lomiri16_sha256="a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab"
lomiri20_sha256="d44e89b8473aafe64a5b678f014862dc31335aaaf18665c544d985d854f1a709"
lxqt_version="1.2.0-1"
lxqt_sha256="d518df36b515b09d36cb00b12645dd8ce170bb82bb0966297741905ce3edc8e1"
lomiri="aitzgorri_by_Aitzol_Berasategi analogpattern_by_Peter_Nerlich Bridge_by_Sander_Klootwijk
    Dragonfly_by_Bolly free_by_Peter_Nerlich friends_by_Aitzol_Berasategi greentock_by_Peter_Nerlich
    life_by_Aitzol_Berasategi picosdeeuropa_by_Aitzol_Berasategi Picture_0B_by_freespace
    Picture_1A_by_freespace seeding_by_Clements_Engelhardt sunset_by_Aitzol_Berasategi
    Wine_by_Jakkub_Mede Kleiber_by_Lukas_Baubkus"
lxqt="after-the-rain.jpg appleflower.png butterfly.png Butterfly-Kenneth-Wimer.jpg cloud.png drop.png flowers.png"
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
if [ "$part" = wide ]; then
    unpack lomiri-wallpapers-16.04 "$lomiri_version" "$lomiri16_sha256"
    unpack lomiri-wallpapers-20.04 "$lomiri_version" "$lomiri20_sha256"
    unpack lxqt-themes "$lxqt_version" "$lxqt_sha256"
    mkdir -p ../wide
    for name in $lomiri; do cp "extracted/usr/share/backgrounds/$name.jpg" "../wide/lomiri_$name.jpg"; done
    for name in $lxqt; do cp "extracted/usr/share/lxqt/wallpapers/$name" "../wide/lxqt_$name"; done
    rm -rf extracted
    echo "photos.sh: $(ls ../wide | wc -l) wide photos in $dest/wide"
    exit 0
fi
unpack plasma-workspace-wallpapers "$version" "$sha256"
cd ..
mkdir -p train heldout
for name in $train; do cp "deb/extracted/usr/share/wallpapers/$name/contents/images/2560x1600.jpg" "train/$name.jpg"; done
for name in $heldout; do cp "deb/extracted/usr/share/wallpapers/$name/contents/images/2560x1600.jpg" "heldout/$name.jpg"; done
rm -rf deb/extracted
echo "photos.sh: $(ls train | wc -l) training and $(ls heldout | wc -l) held-out photos in $dest"
