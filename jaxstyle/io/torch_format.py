"""Reading PyTorch-serialised tensors without torch and without running any code.

``torch.save`` writes pickles, and an ordinary unpickler imports and calls whatever a
file names, so a hostile file can run code. Here a restricted unpickler resolves only
the handful of names a file of tensors uses, to inert stand-ins, and refuses every
other name the moment the pickle mentions it, before anything can be called.

Two containers are read, told apart by their first bytes:

* legacy (torch < 1.6, or ``_use_new_zipfile_serialization=False``): five pickles in
  a row -- magic number, protocol version 1001, system info, the saved object, the
  list of storage keys -- then each storage's bytes in key-list order, each preceded
  by its element count as a little-endian int64;
* zip (torch >= 1.6): ``<prefix>/data.pkl`` is the saved object and
  ``<prefix>/data/<key>`` holds each storage's little-endian bytes.

In both, a tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, ...)`` and a storage as the persistent id
``("storage", storage_type, key, location, numel)``.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from jaxstyle.errors import JaxstyleError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype(np.float32),
    "DoubleStorage": np.dtype(np.float64),
    "HalfStorage": np.dtype(np.float16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ByteStorage": np.dtype(np.uint8),
}


class _FormatError(ValueError):
    """The file is readable but not a well-formed tensor file; says what is wrong."""


# The stand-ins below are handed to untrusted pickles, whose BUILD opcode can rewrite
# the fields of most objects, frozen dataclasses included, but not of a NamedTuple.
class _StorageType(NamedTuple):
    """What ``torch.FloatStorage`` and friends resolve to: just a dtype."""

    name: str
    dtype: np.dtype


class _Storage(NamedTuple):
    """A storage a pickle refers to, before its bytes have been read."""

    key: str
    dtype: np.dtype
    numel: int


class _Tensor(NamedTuple):
    """A strided view of a storage, as ``_rebuild_tensor_v2`` describes it (in elements)."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _non_negative_ints(values: Any, what: str) -> tuple[int, ...]:
    if not isinstance(values, tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values
    ):
        raise _FormatError(f"a tensor's {what} is {values!r:.60}, not a tuple of non-negative integers")
    return values


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of a file of tensors.

    ``find_class`` maps each allowed ``(module, name)`` to a stand-in and raises
    ``JaxstyleError`` for anything else; REDUCE, BUILD and friends can only call what
    ``find_class`` returned, so nothing outside the allow-list can ever run.
    ``persistent_load`` turns storage ids into ``_Storage`` records, collected in
    ``self.storages``.
    """

    def __init__(self, file: BinaryIO, path: Path):
        super().__init__(file)
        self._path = path
        self.storages: dict[str, _Storage] = {}
        # Bound methods, so that a pickle's BUILD cannot set their __defaults__.
        self._allowed: dict[tuple[str, str], Any] = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
        }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            shown = f"{module}.{name}"
            if len(shown) > 80 or not shown.isprintable():
                shown = ascii(shown[:80])
            raise JaxstyleError(
                f"refused to load {self._path}: it asks to run `{shown}`, which a file of "
                "tensors never needs, so it may be malicious; only load files from sources you trust."
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise _FormatError(f"it refers to {pid!r:.60}, which is not a tensor storage")
        storage_type, key, _location, numel = pid[1:5]
        if len(pid) == 6 and pid[5] is not None:
            raise _FormatError("it uses storage views (torch < 0.4), which are not supported")
        if not isinstance(storage_type, _StorageType):
            raise _FormatError(f"storage {key!r:.40} has type {storage_type!r:.40}, not a storage type")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise _FormatError(f"storage id {pid!r:.80} is malformed")
        storage = _Storage(key, storage_type.dtype, numel)
        if self.storages.setdefault(key, storage) != storage:
            raise _FormatError(f"storage {key!r} is declared twice with different types or sizes")
        return storage

    def _rebuild_tensor_v2(
        self, storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
    ) -> _Tensor:
        del requires_grad, backward_hooks, metadata  # Irrelevant to the values.
        if not isinstance(storage, _Storage):
            raise _FormatError("a tensor's storage is not a storage")
        (offset,) = _non_negative_ints((storage_offset,), "storage offset")
        shape = _non_negative_ints(size, "size")
        strides = _non_negative_ints(stride, "stride")
        if len(shape) != len(strides):
            raise _FormatError(f"a tensor has size {shape} but stride {strides}")
        return _Tensor(storage, offset, shape, strides)

    def _rebuild_parameter(self, data, requires_grad=False, backward_hooks=None) -> _Tensor:
        del requires_grad, backward_hooks
        if not isinstance(data, _Tensor):
            raise _FormatError("a parameter does not hold a tensor")
        return data


def _tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, _Tensor]]:
    """Yields ``(dotted name, tensor)`` for the tensors in nested dicts; skips other values."""
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, _Tensor):
            yield name, value
        elif isinstance(value, dict):
            yield from _tensors(value, f"{name}.")


def _select(obj: Any, keys: Collection[str] | None) -> dict[str, _Tensor]:
    if not isinstance(obj, dict):
        raise _FormatError(f"it holds a {type(obj).__name__}, not a dict of tensors")
    return {name: t for name, t in _tensors(obj) if keys is None or name in keys}


def _materialise(tensor: _Tensor, raw: bytes) -> np.ndarray:
    """``torch.as_strided(storage, size, stride, offset)`` as a contiguous NumPy array."""
    dtype = tensor.storage.dtype
    if not all(tensor.shape):
        return np.zeros(tensor.shape, dtype)
    data = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
    # as_strided does no bounds checking: this check is what keeps reads inside `raw`.
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride))
    if last >= data.size:
        raise _FormatError(
            f"a tensor of size {tensor.shape} reaches past the end of storage {tensor.storage.key!r} "
            f"({data.size} elements)"
        )
    view = np.lib.stride_tricks.as_strided(
        data[tensor.offset:],
        shape=tensor.shape,
        strides=tuple(s * dtype.itemsize for s in tensor.stride),
        writeable=False,
    )
    return np.array(view, dtype=dtype, order="C")  # A C-ordered copy in native byte order.


def _arrays(tensors: dict[str, _Tensor], raw: dict[str, bytes]) -> dict[str, np.ndarray]:
    return {name: _materialise(t, raw[t.storage.key]) for name, t in tensors.items()}


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise _FormatError(f"it is truncated: {what} ends early")
    return data


def _load_legacy(path: Path, f: BinaryIO, keys: Collection[str] | None) -> dict[str, np.ndarray]:
    def unpickle() -> Any:
        return _RestrictedUnpickler(f, path).load()

    file_size = os.fstat(f.fileno()).st_size

    if unpickle() != _LEGACY_MAGIC:
        raise _FormatError("it starts with a pickle but not with PyTorch's magic number")
    protocol = unpickle()
    if protocol != _LEGACY_PROTOCOL:
        raise _FormatError(f"it has serialisation protocol {protocol!r:.20}, not {_LEGACY_PROTOCOL}")
    sys_info = unpickle()
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise _FormatError("it was not saved on a little-endian machine")
    unpickler = _RestrictedUnpickler(f, path)
    tensors = _select(unpickler.load(), keys)
    storage_keys = unpickle()
    if (
        not isinstance(storage_keys, list)
        or len(storage_keys) != len(unpickler.storages)
        or set(storage_keys) != set(unpickler.storages)
    ):
        raise _FormatError("its list of storages does not match the storages its tensors use")
    needed = {t.storage.key for t in tensors.values()}
    raw = {}
    for key in storage_keys:
        storage = unpickler.storages[key]
        (count,) = struct.unpack("<q", _read_exact(f, 8, f"storage {key!r}"))
        if count != storage.numel:
            raise _FormatError(
                f"storage {key!r} holds {count} elements, but its tensors expect {storage.numel}"
            )
        nbytes = count * storage.dtype.itemsize
        if f.tell() + nbytes > file_size:  # Checked before reading, so a bogus count allocates nothing.
            raise _FormatError(f"it is truncated: storage {key!r} ends early")
        if key in needed:
            raw[key] = _read_exact(f, nbytes, f"storage {key!r}")
        else:
            f.seek(nbytes, os.SEEK_CUR)
    return _arrays(tensors, raw)


def _load_zip(path: Path, f: BinaryIO, keys: Collection[str] | None) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(f) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise _FormatError("it is a zip file but not a PyTorch one (no single <name>/data.pkl)")
        prefix = pickles[0].removesuffix("data.pkl")
        if f"{prefix}byteorder" in archive.namelist():
            if archive.read(f"{prefix}byteorder").strip() != b"little":
                raise _FormatError("it was not saved on a little-endian machine")
        unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), path)
        tensors = _select(unpickler.load(), keys)
        raw = {}
        for key in {t.storage.key for t in tensors.values()}:
            storage = unpickler.storages[key]
            try:
                info = archive.getinfo(f"{prefix}data/{key}")
            except KeyError:
                raise _FormatError(f"storage {key!r} is missing from the zip") from None
            if info.file_size != storage.numel * storage.dtype.itemsize:
                raise _FormatError(
                    f"storage {key!r} has {info.file_size} bytes, but its tensors expect "
                    f"{storage.numel} elements of {storage.dtype.itemsize} bytes"
                )
            raw[key] = archive.read(info)
    return _arrays(tensors, raw)


def _unreadable(path: Path, what: str) -> JaxstyleError:
    return JaxstyleError(
        f"cannot read {path} as a PyTorch file: {what}; check that it is the right file, "
        "or download it again."
    )


def load_torch_file(path: str | os.PathLike, *, keys: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """Reads the tensors of a file written by ``torch.save``, without torch or executing code.

    The container (zip or legacy) is detected from the first bytes. The saved object
    must be a dict, such as a ``state_dict``; tensors in nested dicts get dotted names
    (``{"a": {"b": t}}`` gives ``"a.b"``) and values that are not tensors are skipped.

    Args:
      path: the file.
      keys: if given, only tensors with these (dotted) names are read; storages no
        wanted tensor uses are skipped. Names not in the file are ignored.

    Returns:
      ``{name: array}``, each array a contiguous copy with the tensor's shape and the
      storage's dtype (float32, float64, float16, int64, int32 or uint8).

    Raises:
      JaxstyleError: the file is missing, empty, truncated or malformed, or its pickle
        names anything beyond tensors, storages and ``OrderedDict`` (refused as soon as
        it is named, before anything is called).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(0)
            if not head:
                raise _unreadable(path, "it is empty")
            if head == _ZIP_MAGIC:
                return _load_zip(path, f, keys)
            if head.startswith(_PICKLE_PROTO):
                return _load_legacy(path, f, keys)
            raise _unreadable(path, "it is neither a zip nor a legacy PyTorch file")
    except JaxstyleError:
        raise
    except FileNotFoundError:
        raise JaxstyleError(f"{path} does not exist; check the path.") from None
    except OSError as e:
        raise JaxstyleError(
            f"cannot read {path}: {e.strerror or e}; check the path and its permissions."
        ) from e
    except _FormatError as e:
        raise _unreadable(path, str(e)) from e
    except Exception as e:  # A damaged file can fail inside pickle, zipfile or numpy in many ways.
        raise _unreadable(path, f"it is damaged or truncated ({type(e).__name__}: {e})") from e
