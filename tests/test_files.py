"""jaxstyle.io.files: the one file hash and the one atomic writer."""

import hashlib
import os
import stat

import h5py
import numpy as np
import pytest

from jaxstyle.errors import JaxstyleError
from jaxstyle.io import files


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_file_sha256_matches_hashlib_across_chunks(tmp_path):
    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)  # spans several 1 MiB reads
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert files.file_sha256(path) == hashlib.sha256(data).hexdigest()
    assert files.file_sha256(str(path)) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert files.file_sha256(empty) == hashlib.sha256(b"").hexdigest()


def test_cached_hash_sees_a_changed_file(tmp_path):
    path = tmp_path / "style.png"
    path.write_bytes(b"first")
    assert files.cached_file_sha256(path) == hashlib.sha256(b"first").hexdigest()
    path.write_bytes(b"second, longer")
    assert files.cached_file_sha256(path) == hashlib.sha256(b"second, longer").hexdigest()
    # Same size, restored mtime: only the mtime_ns of the edit tells the versions apart.
    stat = path.stat()
    path.write_bytes(b"SECOND, LONGER")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert files.cached_file_sha256(path) == hashlib.sha256(b"SECOND, LONGER").hexdigest()


def test_atomic_path_moves_the_finished_file_into_place(tmp_path):
    target = tmp_path / "w.h5"
    target.write_bytes(b"old")
    with files.atomic_path(target) as temp, h5py.File(temp, "w") as f:
        assert temp.parent == tmp_path and temp != target and target.read_bytes() == b"old"
        f["x"] = np.arange(3)
    with h5py.File(target, "r") as f:
        np.testing.assert_array_equal(f["x"][()], np.arange(3))
    assert _listing(tmp_path) == ["w.h5"]


def test_atomic_path_failure_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "w.h5"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with files.atomic_path(target) as temp:
            temp.write_bytes(b"half")
            raise RuntimeError("boom")
    with pytest.raises(JaxstyleError, match="w.h5.*disk space"):
        with files.atomic_path(target):
            raise OSError(28, "No space left on device")
    assert target.read_bytes() == b"old" and _listing(tmp_path) == ["w.h5"]


def test_atomic_writes_refuse_a_missing_folder(tmp_path):
    with pytest.raises(JaxstyleError, match="does not exist"):
        files.atomic_write_text(tmp_path / "no" / "x.json", "{}")
    assert _listing(tmp_path) == []


def test_failed_write_removes_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    target.write_text("old")

    def fail(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(JaxstyleError, match="result.json"):
        files.atomic_write_text(target, "new")

    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["result.json"]


def test_atomic_write_text_and_bytes_replace_content(tmp_path):
    target = tmp_path / "meta.json"

    files.atomic_write_text(target, '{"a": 1}\n')
    assert target.read_text() == '{"a": 1}\n'
    files.atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert _listing(tmp_path) == ["meta.json"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_written_files_get_umask_permissions_not_private_ones(tmp_path):
    umask = os.umask(0o022)
    try:
        path = files.atomic_write_text(tmp_path / "shared.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_full_disk_leaves_no_output_without_its_sidecar(tmp_path, monkeypatch):
    from jaxstyle.io import sidecars

    output = tmp_path / "out.png"
    output.write_bytes(b"an output")

    def disk_full(path, text):
        raise JaxstyleError(f"Could not write {path} (No space left on device); check free disk space.")

    monkeypatch.setattr(sidecars, "atomic_write_text", disk_full)
    with pytest.raises(JaxstyleError, match="No space left") as caught:
        sidecars.write_sidecar(output, {})
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_check_outputs_sees_the_same_file_by_link_and_path(tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"x")
    (tmp_path / "hard.jpg").hardlink_to(photo)
    (tmp_path / "soft.jpg").symlink_to(photo)
    (tmp_path / "sub").mkdir()
    for same in ("hard.jpg", "soft.jpg", "sub/../photo.jpg"):
        with pytest.raises(JaxstyleError, match="would overwrite the photo"):
            files.check_outputs([("-o", tmp_path / same)], [("the photo", photo)])
    with pytest.raises(JaxstyleError, match="are the same file"):
        files.check_outputs([("-o", tmp_path / "a.png"), ("--loss-plot", tmp_path / "sub" / ".." / "a.png")], [])
    files.check_outputs([("-o", tmp_path / "a.png"), ("--loss-plot", tmp_path / "b.png")], [("the photo", photo)])
