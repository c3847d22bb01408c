"""Training photos from a folder: random crops and flips, decoded in a background thread.

What a step sees is a pure function of (seed, step): which photos, where the crop lies,
whether it is flipped. So a training run that is killed and resumed at step t is fed the
very batches an uninterrupted run would have seen. A file that cannot be decoded, or whose
shorter side is under `MIN_PHOTO_SIDE`, is skipped (counted in `PhotoFolder.skipped`) and
its draw goes to the next usable file in the listing, which is also deterministic.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from jaxstyle.errors import JaxstyleError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
MIN_PHOTO_SIDE = 64  # smaller photos are skipped: a crop would be mostly upsampling blur.


class PhotoFolder:
    """The image files under a folder (recursively), sampled as training batches.

    Args:
      folder: a folder of photos (any format Pillow reads; e.g. COCO train2014).
      size: crop side in px.
      seed: decides every crop; the same seed gives the same batches.
      max_short_side: before cropping, a photo's shorter side is scaled to a random length
        in [min_short_side, max_short_side] (default 2 x size, at least size), so crops show
        whole objects as well as details, at the scales the network will later be applied at.
      min_short_side: the lower end of that range (default: size).

    Raises:
      JaxstyleError: the folder is missing, or holds no usable photo (checked before any
        training: files are probed until the first usable one), or min_short_side is outside
        [size, max_short_side].
    """

    def __init__(self, folder: str | Path, *, size: int, seed: int = 0, max_short_side: int | None = None,
                 min_short_side: int | None = None):
        self.folder, self.size, self.seed = Path(folder), int(size), int(seed)
        self.max_short_side = max(self.size, int(max_short_side or 2 * self.size))
        self.min_short_side = int(min_short_side or self.size)
        if not self.size <= self.min_short_side <= self.max_short_side:
            raise JaxstyleError(f"min_short_side must be within [size, max_short_side] = [{self.size}, "
                                f"{self.max_short_side}], got {self.min_short_side}")
        if not self.folder.is_dir():
            raise JaxstyleError(f"photo folder {self.folder} does not exist or is not a folder")
        self.files = sorted(p for p in self.folder.rglob("*")
                            if p.suffix.lower() in EXTENSIONS and p.is_file())
        self._bad: set[int] = set()
        self._lock = threading.Lock()
        if not any(self._probe(i) for i in range(len(self.files))):
            raise JaxstyleError(
                f"no usable photo in {self.folder} ({len(self.files)} image file(s), none readable with "
                f"a shorter side of at least {MIN_PHOTO_SIDE} px); give a folder of photos such as COCO train2014")

    @property
    def skipped(self) -> int:
        """Files found unreadable or too small so far."""
        return len(self._bad)

    def _probe(self, index: int) -> bool:
        try:
            with Image.open(self.files[index]) as img:
                if min(img.size) < MIN_PHOTO_SIDE:
                    raise ValueError("too small")
                ok = min(img.size) >= MIN_PHOTO_SIDE
        except Exception:  # noqa: BLE001 - any failure to read a header means "skip this file"
            ok = False
        if not ok:
            with self._lock:
                self._bad.add(index)
        return ok

    def _load(self, index: int, short: float, u: float, v: float, flip: bool) -> np.ndarray | None:
        """The crop f32[size, size, 3] of file `index` after scaling its shorter side to `short`,
        at relative position (u, v) in [0, 1), mirrored if `flip`; None if the file is unusable.

        A file that failed before is tried again: whether a damaged file decodes can depend on
        the scale it is drafted at, and the answer must not depend on what earlier steps saw.
        """
        try:
            with Image.open(self.files[index]) as img:
                if min(img.size) < MIN_PHOTO_SIDE:
                    raise ValueError("too small")
                # JPEG decodes at 1/2, 1/4 or 1/8 scale for free when that is still large enough.
                img.draft("RGB", (int(img.size[0] * short / min(img.size)) + 1,
                                  int(img.size[1] * short / min(img.size)) + 1))
                img = ImageOps.exif_transpose(img).convert("RGB")
                scale = short / min(img.size)
                w, h = max(self.size, round(img.size[0] * scale)), max(self.size, round(img.size[1] * scale))
                img = img.resize((w, h), Image.BILINEAR, reducing_gap=2.0)
                x, y = int(u * (w - self.size + 1)), int(v * (h - self.size + 1))
                crop = np.asarray(img.crop((x, y, x + self.size, y + self.size)), np.float32) / 255.0
        except Exception:  # noqa: BLE001 - a bad file is skipped and counted, never a crash
            with self._lock:
                self._bad.add(index)
            return None
        return crop[:, ::-1] if flip else crop

    def batch(self, step: int, batch_size: int) -> np.ndarray:
        """The crops of training step `step`: f32[batch_size, size, size, 3] in [0, 1]."""
        rng = np.random.default_rng([self.seed, step])
        picks = rng.integers(0, len(self.files), batch_size)
        crops = []
        for pick in picks:
            # Drawn once per item, whatever happens next: a skipped file must not shift the
            # draws of later crops, or a resumed run would see other crops than a whole one.
            short, u, v = rng.uniform(self.min_short_side, self.max_short_side), rng.random(), rng.random()
            flip = bool(rng.random() < 0.5)
            for offset in range(len(self.files)):
                crop = self._load(int(pick + offset) % len(self.files), short, u, v, flip)
                if crop is not None:
                    break
            else:
                raise JaxstyleError(f"every photo in {self.folder} has become unreadable")
            crops.append(crop)
        return np.stack(crops)

    def batches(self, start: int, stop: int, batch_size: int, *, prefetch: int = 4) -> Iterator[np.ndarray]:
        """Batches of steps start .. stop-1, decoded `prefetch` steps ahead in a background thread."""
        out: queue.Queue = queue.Queue(maxsize=prefetch)
        stop_event = threading.Event()

        def work():
            try:
                for step in range(start, stop):
                    item = self.batch(step, batch_size)
                    while not stop_event.is_set():
                        try:
                            out.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop_event.is_set():
                        return
            except BaseException as e:  # handed to the consumer, raised there
                out.put(e)

        thread = threading.Thread(target=work, daemon=True, name="jaxstyle-photos")
        thread.start()
        try:
            for _ in range(start, stop):
                item = out.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop_event.set()
