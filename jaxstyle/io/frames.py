"""The frames folder beside a video output: a killed run resumes at its last finished frame.

OUT.mp4.frames/ holds frame_000000.png, frame_000001.png, ... (each written atomically, lossless, so
a resumed video is the one an uninterrupted run writes) and state.json, the run's record (the inputs'
sha256, the settings, the frame range). A run finds the finished frames of a folder whose record is
its own, paints the rest, writes the video, then removes the folder. A folder with another record is
reported and started over.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io
from jaxstyle.io.files import atomic_write_text

STATE = "state.json"


def frames_folder(output: Path) -> Path:
    """OUT.frames, beside the video OUT."""
    return Path(output).with_name(Path(output).name + ".frames")


class FramesFolder:
    """The frames folder of the video `output`, for a run recorded as `record` (JSON values)."""

    def __init__(self, output: Path, record: Mapping):
        self.path = frames_folder(output)
        self.record = json.loads(json.dumps(record))  # as it reads back: tuples are lists

    def check(self) -> None:
        """Before any work: refuses a path that is a file, or a folder that is not a frames folder."""
        if self.path.exists() and not self.path.is_dir():
            raise JaxstyleError(f"{self.path} is a file; the frames of a video run are kept in a folder of "
                                f"that name: move the file")
        if self.path.is_dir() and not (self.path / STATE).is_file() and any(self.path.iterdir()):
            raise JaxstyleError(f"{self.path} is a folder jaxstyle did not write (it has no {STATE}); move it, "
                                f"it is where a video run keeps its frames")

    def open(self) -> int:
        """Creates the folder, or resumes it: returns how many frames (0, 1, ...) are finished."""
        self.check()
        if self._state() == self.record:
            done = 0
            while self.frame_path(done).is_file():
                done += 1
            return done
        if self.path.is_dir():
            print(f"jaxstyle: {self.path} was written with other inputs or settings; starting over",
                  file=sys.stderr)
            for old in self.path.glob("frame_*.png"):
                old.unlink()
        image_io.ensure_output_dir(self.path)
        atomic_write_text(self.path / STATE, json.dumps(self.record, indent=2) + "\n")
        return 0

    def _state(self):
        try:
            return json.loads((self.path / STATE).read_text())
        except (OSError, ValueError):
            return None

    def frame_path(self, index: int) -> Path:
        return self.path / f"frame_{index:06d}.png"

    def save(self, index: int, image: np.ndarray) -> None:
        """Writes frame `index` (f32[h, w, 3] in [0, 1]) atomically."""
        image_io.save_image(self.frame_path(index), image, png_compression=1)  # read once, then removed

    def save_all(self, frames: Iterable[tuple[int, np.ndarray]]) -> None:
        """`save`s each (index, image) in turn (a `background.Pipe`'s consumer)."""
        for index, image in frames:
            self.save(index, image)

    def frames(self, count: int) -> Iterator[np.ndarray]:
        """Frames 0 .. count - 1 as f32[h, w, 3], read back in order."""
        for index in range(count):
            yield image_io.load_image(self.frame_path(index))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
