"""Lease-based claims on work units in a shared folder: no coordinator, dead holders are taken over.

Each unit `key` has at most one claim file `FOLDER/<key>.claim`, created with O_CREAT|O_EXCL and
holding {"owner", "lease_seconds"}. Its mtime is the lease: a daemon thread touches every claim we
hold each lease_seconds/4. A claim untouched for longer than its lease belongs to a dead (or stalled)
process and is taken over: holding a short-lived `<key>.takeover` lock (O_EXCL; it keeps two takers
that both saw the old claim expired from renaming each other's fresh claims), look again, rename the
claim to a unique tombstone (only one renamer of a file wins), check the renamed file is the expired
one, delete it and create ours with O_EXCL. A finished unit has a `<key>.done` marker, never reclaimed.

Remaining race: a holder that stalls past its lease (suspended, overloaded, NFS hiccup) may renew
just as another process renames its claim away. The takeover wins; the old holder's renewal then
finds the file gone or naming someone else and forgets the key, so `holds(key)` turns False. This is
harmless as long as the caller checks `holds(key)` right before writing its outputs: a process that
lost its claim never writes. (In the instant between that check and the write both may write; outputs
written atomically and deterministically make that duplicate work, not corruption.) A process killed
mid-takeover leaves a `.takeover` lock, broken once older than a lease, or a `.stale.*` tombstone
(inert clutter).

A claim whose owner was a process on this host that no longer exists lapses at once.

Leases compare this host's clock with file mtimes, which on NFS come from the server: keep the
hosts' clocks synchronised (NTP) and lease_seconds far above any skew and any expected stall.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
import uuid
from pathlib import Path

from jaxstyle.io.files import atomic_write_text

_KEY = re.compile(r"[A-Za-z0-9_.-]+")
_EXCL = os.O_CREAT | os.O_EXCL | os.O_WRONLY


class Claims:
    """Claims on work units in a shared folder, each with a lease the holder renews."""

    def __init__(self, folder: Path, *, lease_seconds: float = 60.0, owner: str | None = None):
        if not lease_seconds > 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lease_seconds = float(lease_seconds)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="jaxstyle-claims", daemon=True)
        self._thread.start()

    def try_claim(self, key: str) -> bool:
        """True if we now hold `key` (fresh claim, expired lease taken over, or already ours);
        False if another owner holds a live lease, a concurrent claimer won, or `key` is finished."""
        path = self._path(key)
        if self._stop.is_set():
            raise RuntimeError("Claims object is closed")
        if self.is_finished(key):
            return False
        for _ in range(3):  # retry if the claim vanishes between our steps (released meanwhile)
            try:
                self._create(path)
                break
            except FileExistsError:
                pass
            try:
                owner, lease, st = self._inspect(path)
            except FileNotFoundError:
                continue
            if owner == self.owner:
                break
            if not _lapsed(owner, lease, st) or not self._take_over(key, path):
                return False
            break
        else:
            return False
        with self._lock:
            self._held.add(key)
        if self.is_finished(key):  # finished by its last holder just before we claimed it
            self.release(key)
            return False
        return True

    def holds(self, key: str) -> bool:
        """True while `key` is claimed by us and the claim file on disk still names us."""
        path = self._path(key)
        if key not in self._held:
            return False
        try:
            if self._owner_of(path) == self.owner:
                return True
        except OSError:
            return False
        with self._lock:
            self._held.discard(key)
        return False

    def finish(self, key: str) -> None:
        """Mark `key` finished (an atomic `<key>.done` marker), then drop our claim on it."""
        atomic_write_text(self._path(key, "done"), json.dumps({"owner": self.owner, "finished": time.time()}))
        self.release(key)

    def release(self, key: str) -> None:
        """Give up our claim on `key` without finishing it; others may claim it at once."""
        path = self._path(key)
        with self._lock:
            self._held.discard(key)
        if self._owner_of(path) == self.owner:
            _unlink(path)

    def is_finished(self, key: str) -> bool:
        """True if `key` has been finished by anyone."""
        return self._path(key, "done").exists()

    def reopen(self, key: str) -> None:
        """Remove `key`'s finished marker, so the unit can be claimed again (its outputs were lost)."""
        _unlink(self._path(key, "done"))

    def held_by_others(self, key: str) -> bool:
        """True if another owner holds a live (unexpired) claim on `key`."""
        try:
            owner, lease, st = self._inspect(self._path(key))
        except FileNotFoundError:
            return False
        return owner != self.owner and time.time() - st.st_mtime <= lease

    def close(self) -> None:
        """Stop renewing and release every claim we hold. Safe to call twice."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        for key in list(self._held):
            try:
                self.release(key)
            except OSError:
                pass

    def __enter__(self) -> Claims:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _path(self, key: str, suffix: str = "claim") -> Path:
        if not isinstance(key, str) or not _KEY.fullmatch(key) or key in (".", ".."):
            raise ValueError(f"bad claim key {key!r}: use letters, digits, '_', '.', '-'")
        return self.folder / f"{key}.{suffix}"

    def _inspect(self, path: Path) -> tuple[str | None, float, os.stat_result]:
        """(owner, or None while unreadable; lease seconds; stat) of a claim file. Raises OSError.
        Opening before fstat makes NFS revalidate the attributes (close-to-open consistency)."""
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            try:
                data = json.loads(f.read())
                return str(data["owner"]), float(data["lease_seconds"]), st
            except (ValueError, KeyError, TypeError):  # being written, or half-written by a crash
                return None, self.lease_seconds, st

    def _owner_of(self, path: Path) -> str | None:
        try:
            return self._inspect(path)[0]
        except FileNotFoundError:
            return None

    def _create(self, path: Path) -> None:
        """Create a claim file naming us; FileExistsError if a claim is there."""
        fd = os.open(path, _EXCL, 0o644)
        try:
            os.write(fd, json.dumps({"owner": self.owner, "lease_seconds": self.lease_seconds}).encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def _take_over(self, key: str, path: Path) -> bool:
        """Replace the expired claim at `path` by ours; False if anyone else acted first."""
        lock = self._path(key, "takeover")
        try:
            os.close(os.open(lock, _EXCL, 0o644))
        except FileExistsError:  # another taker is at work, or died at work long ago
            try:
                if time.time() - os.stat(lock).st_mtime > self.lease_seconds:
                    _unlink(lock)
            except FileNotFoundError:
                pass
            return False
        tomb = self.folder / f"{key}.stale.{uuid.uuid4().hex}"
        try:
            owner, lease, st = self._inspect(path)  # look again: no other taker can act now
            if owner == self.owner or not _lapsed(owner, lease, st):
                return False
            os.rename(path, tomb)
            now = os.stat(tomb)
            if (now.st_ino, now.st_mtime_ns) != (st.st_ino, st.st_mtime_ns):  # renewed: put it back
                with contextlib.suppress(OSError):  # fails if a claim was created meanwhile
                    os.link(tomb, path)
                return False
            _unlink(tomb)
            self._create(path)
            return True
        except (FileNotFoundError, FileExistsError):  # released, or claimed afresh, meanwhile
            return False
        finally:
            _unlink(tomb)
            _unlink(lock)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_seconds / 4):
            for key in list(self._held):
                path = self.folder / f"{key}.claim"
                try:
                    if self._owner_of(path) == self.owner:
                        os.utime(path)
                    else:  # taken over, or removed: no longer ours
                        with self._lock:
                            self._held.discard(key)
                except OSError:
                    pass  # transient (e.g. NFS); retry next round


def _lapsed(owner: str | None, lease: float, st: os.stat_result) -> bool:
    """A claim lapses when its lease expires, or at once when its owner was a process on this host
    that no longer exists (a rerun after a crash need not wait out the lease)."""
    if time.time() - st.st_mtime > lease:
        return True
    host, _, rest = (owner or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by another user
        return False
    return False


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
