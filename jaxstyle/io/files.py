"""Files on disk: the SHA-256 of a file, output checks (writable, never an input), and atomic writes.

Every file jaxstyle writes goes through ``atomic_path``: the data goes to a hidden
temporary file in the target's own folder (a rename is only atomic within one file
system), is flushed to disk, then renamed over the target, so readers see the old
file or the new one and an error or a crash never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

from jaxstyle.errors import JaxstyleError

PathLike = str | os.PathLike[str]

_CHUNK = 1 << 20  # 1 MiB


def file_sha256(path: PathLike) -> str:
    """The SHA-256 of a file's bytes, read now in 1 MiB chunks; returns 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_file_sha256(path: PathLike) -> str:
    """``file_sha256``, remembered per (resolved path, mtime, size); returns 64 hex digits.

    For files hashed again and again in one process (the weights and style images named
    in every sidecar of a batch); a file changed since is hashed again.
    """
    path = Path(path).resolve()
    stat = path.stat()
    return _sha256_of_version(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _sha256_of_version(path: Path, mtime_ns: int, size: int) -> str:
    return file_sha256(path)


def check_output_path(path: PathLike) -> Path:
    """Checks that ``path``'s folder exists and is writable (never creates it); returns ``path``.

    Raises:
      JaxstyleError: the folder is missing, not a folder, or not writable.
    """
    path = Path(path)
    directory = path.parent
    if not directory.exists():
        raise JaxstyleError(f"Cannot write {path}: folder {directory} does not exist; create it first.")
    if not directory.is_dir():
        raise JaxstyleError(f"Cannot write {path}: {directory} is not a folder.")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise JaxstyleError(f"Cannot write {path}: folder {directory} is not writable; check its permissions.")
    return path


def check_input_file(path: PathLike, what: str = "file") -> Path:
    """``path`` as a ``Path``; JaxstyleError if it is a folder or does not exist."""
    path = Path(path)
    if path.is_dir():
        raise JaxstyleError(f"{path} is a folder; give the path of the {what}.")
    if not path.is_file():
        raise JaxstyleError(f"{path} does not exist; check the path.")
    return path


def check_outputs(outputs: Sequence[tuple[str, PathLike]], inputs: Sequence[tuple[str, PathLike]]) -> None:
    """Refuses, before any work, an output that is one of the inputs or another output.

    Each item is (what it is for the user, path), e.g. ("--loss-plot", "c.jpg"), ("the content image",
    "c.jpg"). Two paths are the same file when they resolve alike (symbolic links, "..") or, for
    files that exist, when the OS says so (hard links, a case-insensitive disk).

    Raises:
      JaxstyleError: naming both paths and their roles.
    """
    inputs = [(role, Path(p)) for role, p in inputs]
    earlier: list[tuple[str, Path]] = []
    for role, path in ((role, Path(p)) for role, p in outputs):
        for other_role, other in inputs:
            if _same_file(path, other):
                raise JaxstyleError(f"{role} {path} would overwrite {other_role} {other}; inputs are never "
                                    f"overwritten: choose another path")
        for other_role, other in earlier:
            if _same_file(path, other):
                raise JaxstyleError(f"{role} {path} and {other_role} {other} are the same file; "
                                    f"give each output its own path")
        earlier.append((role, path))


def check_not_within(outputs: Sequence[tuple[str, PathLike]], folders: Sequence[tuple[str, PathLike]]) -> None:
    """Refuses an output inside one of the input folders (at any depth), where a rerun of the same
    command would read it as one more input. Items are (role, path) as for `check_outputs`."""
    for role, path in outputs:
        for folder_role, folder in folders:
            if Path(path).resolve().is_relative_to(Path(folder).resolve()):
                raise JaxstyleError(f"{role} {path} is inside {folder_role} {folder}; write it elsewhere, or a "
                                    f"rerun would read it as an input")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # either does not exist (yet)
        return False


@contextlib.contextmanager
def atomic_path(path: PathLike, *, folder: PathLike | None = None) -> Iterator[Path]:
    """Yields a new empty temporary file beside ``path`` (or in ``folder``, on the same file system) to
    write; moves it onto ``path`` on success.

    The temporary file is fsynced and ``os.replace``d onto ``path`` when the block ends
    without an error. On any error it is removed and an existing ``path`` is left
    untouched; an ``OSError`` (disk full, say) becomes a ``JaxstyleError`` naming ``path``.

    Raises:
      JaxstyleError: the folder is missing or unwritable, ``path`` is a folder, or the
        write failed.
    """
    path = check_output_path(path)
    if path.is_dir():
        raise JaxstyleError(f"Cannot write {path}: it is a folder; choose a file name.")
    temp_path = _create_temp_file(path, Path(folder) if folder is not None else path.parent)
    try:
        yield temp_path
        fd = os.open(temp_path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp_path, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_path)
        if isinstance(e, OSError):
            raise JaxstyleError(
                f"Could not write {path} ({e.strerror or e}); check free disk space and permissions."
            ) from e
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (see ``atomic_path``); returns ``path`` as a ``Path``."""
    with atomic_path(path) as temp_path:
        temp_path.write_bytes(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Writes ``text`` to ``path`` atomically, with no newline translation; returns ``path``."""
    return atomic_write_bytes(path, text.encode(encoding))


def _create_temp_file(path: Path, folder: Path) -> Path:
    """Creates a new, empty, hidden temporary file for ``path`` in ``folder``; returns its path.

    Unlike ``tempfile``, which makes files private (0600), ``os.open`` with 0666 lets
    the umask decide, so the output gets normal permissions.
    """
    while True:
        temp_path = folder / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        except OSError as e:
            raise JaxstyleError(
                f"Could not write {path} ({e.strerror or e}); check the folder's permissions."
            ) from e
        return temp_path


def _fsync_dir(directory: Path) -> None:
    """Makes a rename in ``directory`` durable; best effort, as not every OS allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
