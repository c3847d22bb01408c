"""jaxstyle.io.torch_format on files this test writes the way torch.save does, without torch.

A throwaway `torch` module in sys.modules lets the standard `pickle.Pickler` emit the
globals torch.save emits; a `persistent_id` hook emits the storage ids. Expected arrays
come from NumPy index arithmetic on the storage, independent of the reader.
"""

import collections
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from jaxstyle.errors import JaxstyleError
from jaxstyle.io.torch_format import load_torch_file

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 8}}
STORAGE_NAMES = {
    np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage", np.dtype(np.uint8): "ByteStorage",
}


class Storage:
    def __init__(self, key: str, data: np.ndarray, numel: int | None = None):
        self.key, self.data = key, np.ascontiguousarray(data).ravel()
        self.numel = self.data.size if numel is None else numel  # What the file claims.


class Tensor:
    """Pickles as torch.Tensor does: `_rebuild_tensor_v2(storage, offset, size, stride, ...)`."""

    def __init__(self, storage, offset, shape, stride, parameter=False):
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)
        self.parameter = parameter

    def __reduce__(self):
        utils = sys.modules["torch._utils"]
        if self.parameter:
            data = Tensor(self.storage, self.offset, self.shape, self.stride)
            return utils._rebuild_parameter, (data, True, collections.OrderedDict())
        return utils._rebuild_tensor_v2, (
            self.storage, self.offset, self.shape, self.stride, False, collections.OrderedDict()
        )

    def expected(self) -> np.ndarray:
        """torch.as_strided(storage, shape, stride, offset), by explicit index arithmetic."""
        index = self.offset + sum(i * s for i, s in zip(np.indices(self.shape), self.stride))
        return self.storage.data[np.asarray(index, dtype=np.int64)]


def contiguous(key: str, array: np.ndarray) -> Tensor:
    strides = tuple(s // array.itemsize for s in np.ascontiguousarray(array).strides)
    return Tensor(Storage(key, array), 0, array.shape, strides)


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            storage_type = getattr(sys.modules["torch"], STORAGE_NAMES[obj.data.dtype])
            return ("storage", storage_type, obj.key, "cpu", obj.numel)
        return None


@pytest.fixture
def fake_torch(monkeypatch):
    """Just enough of `torch` for pickle to name torch's globals; nothing in it is ever called."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name in ("_rebuild_tensor_v2", "_rebuild_parameter"):
        def never_called(*args):
            raise AssertionError("the reader called a function from the file")
        never_called.__module__, never_called.__qualname__, never_called.__name__ = "torch._utils", name, name
        setattr(utils, name, never_called)
    for name in STORAGE_NAMES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


def storages_of(obj) -> list[Storage]:
    found = {}

    def walk(value):
        if isinstance(value, Tensor):
            found.setdefault(value.storage.key, value.storage)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    walk(obj)
    return list(found.values())


def pickled(obj, protocol=2) -> bytes:
    buf = io.BytesIO()
    TorchPickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def legacy_bytes(obj, protocol=2, main_pickle: bytes | None = None) -> bytes:
    """The legacy container: five pickles, then each storage as int64 count + raw bytes."""
    storages = storages_of(obj)
    parts = [pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC, 1001, SYS_INFO)]
    parts.append(main_pickle if main_pickle is not None else pickled(obj, protocol))
    parts.append(pickle.dumps([s.key for s in storages], protocol=2))
    for s in storages:
        parts += [struct.pack("<q", s.numel), s.data.astype(s.data.dtype.newbyteorder("<")).tobytes()]
    return b"".join(parts)


def zip_bytes(obj, protocol=2, main_pickle: bytes | None = None, prefix="archive") -> bytes:
    """The zip container: `<prefix>/data.pkl` plus `<prefix>/data/<key>` per storage."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", main_pickle if main_pickle is not None else pickled(obj, protocol))
        z.writestr(f"{prefix}/byteorder", "little")
        for s in storages_of(obj):
            z.writestr(f"{prefix}/data/{s.key}", s.data.astype(s.data.dtype.newbyteorder("<")).tobytes())
        z.writestr(f"{prefix}/version", "3\n")
    return buf.getvalue()


CONTAINERS = {"legacy": legacy_bytes, "zip": zip_bytes}


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def assorted_tensors() -> dict[str, Tensor]:
    rng = np.random.default_rng(0)
    shared = Storage("7", rng.standard_normal(40).astype(np.float32))
    return {
        "conv.weight": contiguous("0", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
        "codes": contiguous("1", rng.integers(0, 256, (6, 5), dtype=np.uint8)),
        "float64": contiguous("2", rng.standard_normal(5)),
        "half": contiguous("3", rng.standard_normal((2, 2)).astype(np.float16)),
        "long": contiguous("4", rng.integers(-(2**40), 2**40, 3, dtype=np.int64)),
        "int": contiguous("5", rng.integers(-1000, 1000, (3, 1), dtype=np.int32)),
        "scalar": Tensor(Storage("6", np.array([2.5], np.float32)), 0, (), ()),
        # Three views of one storage: transposed, offset with a gap, broadcast (stride 0).
        "transposed": Tensor(shared, 0, (4, 5), (1, 4)),
        "offset_gap": Tensor(shared, 3, (3, 4), (10, 2)),
        "broadcast": Tensor(shared, 39, (2, 3), (0, 0)),
        "empty": Tensor(Storage("8", np.zeros(0, np.float32)), 0, (0, 3), (3, 1)),
        "param": Tensor(Storage("9", np.arange(6, dtype=np.float32)), 1, (2, 2), (2, 1), parameter=True),
    }


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_round_trip(fake_torch, tmp_path, container, protocol):
    tensors = assorted_tensors()
    state = collections.OrderedDict(tensors)
    state._metadata = collections.OrderedDict({"": {"version": 1}})  # As state_dict() sets; pickled by BUILD.
    path = write(tmp_path / "t.pt", CONTAINERS[container](state, protocol))
    loaded = load_torch_file(path)
    assert list(loaded) == list(tensors)
    for name, tensor in tensors.items():
        expected = tensor.expected()
        assert loaded[name].dtype == expected.dtype, name
        assert loaded[name].flags.c_contiguous and loaded[name].flags.writeable, name
        np.testing.assert_array_equal(loaded[name], expected, err_msg=name)


def test_views_by_hand(fake_torch, tmp_path):
    """A transposed 2x3 view of [0..5] is [[0, 3], ...] by definition of strides."""
    storage = Storage("0", np.arange(6, dtype=np.float32))
    obj = {"t": Tensor(storage, 0, (3, 2), (1, 3)), "o": Tensor(storage, 4, (2,), (1,))}
    loaded = load_torch_file(write(tmp_path / "t.pt", zip_bytes(obj)))
    np.testing.assert_array_equal(loaded["t"], [[0, 3], [1, 4], [2, 5]])
    np.testing.assert_array_equal(loaded["o"], [4, 5])


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_nested_names_skip_non_tensors_and_keys_filter(fake_torch, tmp_path, container):
    a, b = np.ones((2, 2), np.float32), np.arange(3, dtype=np.uint8)
    obj = {"model": {"a": contiguous("0", a), "meta": "x"}, "b": contiguous("1", b), "epoch": 7}
    path = write(tmp_path / "t.pt", CONTAINERS[container](obj))
    loaded = load_torch_file(path)
    assert sorted(loaded) == ["b", "model.a"]
    np.testing.assert_array_equal(loaded["model.a"], a)
    only_b = load_torch_file(path, keys={"b", "not-there"})
    assert list(only_b) == ["b"]
    np.testing.assert_array_equal(only_b["b"], b)


def test_zip_with_another_prefix(fake_torch, tmp_path):
    obj = {"w": contiguous("0", np.arange(4, dtype=np.float32))}
    loaded = load_torch_file(write(tmp_path / "t.pth", zip_bytes(obj, prefix="vgg19-dcbb9e9d")))
    np.testing.assert_array_equal(loaded["w"], np.arange(4))


# --- Security: nothing a file names outside the allow-list may run ---------------------


def payloads(marker) -> dict[str, bytes]:
    """Pickles that, unpickled normally, create `marker`: written as opcodes by hand."""
    create = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(f"touch {marker}"))
        + f"touch {marker}".encode() + b"\x85R.",
        "posix.system": b"cposix\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR.",
        "builtins.eval": b"cbuiltins\neval\n(V" + create.encode() + b"\ntR.",
        "builtins.exec (STACK_GLOBAL)": b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93\x8c"
        + bytes([len(create)]) + create.encode() + b"\x85R.",
        "subprocess.Popen": b"csubprocess\nPopen\n((Vtouch\nV" + str(marker).encode() + b"\nltR.",
        # Hidden inside an otherwise ordinary state dict, after a tensor.
        "nested os.system": b"\x80\x02}(X\x01\x00\x00\x00acos\nsystem\n(V" + f"touch {marker}".encode()
        + b"\ntRu.",
    }


def test_payloads_are_real(tmp_path):
    """The payloads do create the marker when unpickled normally, so the next test means something."""
    for name, data in payloads(tmp_path / "marker").items():
        if "subprocess" in name or "system" in name:
            continue  # Running shell commands in a test is not needed to prove the point.
        pickle.loads(data)
        assert (tmp_path / "marker").exists(), name
        (tmp_path / "marker").unlink()


@pytest.mark.parametrize("container", ["legacy", "zip", "bare pickle"])
@pytest.mark.parametrize("payload", list(payloads("m")))
def test_refuses_code_execution(tmp_path, container, payload):
    marker = tmp_path / "marker"
    data = payloads(marker)[payload]
    if container == "legacy":
        data = legacy_bytes({}, main_pickle=data)
    elif container == "zip":
        data = zip_bytes({}, main_pickle=data)
    path = write(tmp_path / "evil.pt", data)
    with pytest.raises(JaxstyleError) as info:
        load_torch_file(path)
    assert str(path) in str(info.value)
    if data.startswith(b"\x80") or container != "bare pickle":  # Else: not even a torch file.
        global_name = payload.split()[-1] if payload.startswith("nested") else payload.split()[0]
        assert f"refused to load {path}: it asks to run `{global_name}`" in str(info.value)
    assert not marker.exists()


def test_refuses_calling_a_storage_type(tmp_path):
    data = b"\x80\x02ctorch\nFloatStorage\n)R."
    with pytest.raises(JaxstyleError, match="damaged"):
        load_torch_file(write(tmp_path / "t.pt", zip_bytes({}, main_pickle=data)))


def test_refuses_other_persistent_ids(tmp_path):
    data = b"\x80\x02(X\x06\x00\x00\x00moduleX\x01\x00\x00\x00xtQ."
    with pytest.raises(JaxstyleError, match="not a tensor storage"):
        load_torch_file(write(tmp_path / "t.pt", zip_bytes({}, main_pickle=data)))


def text(s: str) -> bytes:
    """The BINUNICODE opcode for `s`."""
    return b"X" + struct.pack("<I", len(s)) + s.encode()


@pytest.mark.parametrize("rewrite", [False, True], ids=["plain", "build-rewrites-shape"])
def test_build_cannot_rewrite_a_tensor(tmp_path, rewrite):
    """BUILD on a checked tensor must not enlarge it past its storage (as_strided reads anything)."""
    storage = b"(" + text("storage") + b"ctorch\nFloatStorage\n" + text("0") + text("cpu") + b"K\x04tQq\x01"
    tensor = b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + b"K\x00K\x04\x85K\x01\x85\x89)tR"
    if rewrite:  # BUILD with state (storage, 0, (4096,), (1,)), what a dataclass's __setstate__ would take.
        tensor += b"(h\x01K\x00M\x00\x10\x85K\x01\x85tb"
        tensor += b"N}" + text("shape") + b"M\x00\x10\x85s\x86b"  # And BUILD (None, {"shape": (4096,)}).
    data = b"\x80\x02}" + text("w") + tensor + b"s."
    obj = {"w": contiguous("0", np.arange(4, dtype=np.float32))}
    path = write(tmp_path / "t.pt", zip_bytes(obj, main_pickle=data))
    if rewrite:
        with pytest.raises(JaxstyleError, match="damaged"):
            load_torch_file(path)
    else:
        np.testing.assert_array_equal(load_torch_file(path)["w"], np.arange(4))


# --- Damaged files ---------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0005, 0.01, 0.05, 0.3, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_truncated(fake_torch, tmp_path, container, fraction):
    data = CONTAINERS[container](assorted_tensors())
    path = write(tmp_path / "cut.pt", data[: max(1, int(len(data) * fraction))])
    with pytest.raises(JaxstyleError, match="cannot read") as info:
        load_torch_file(path)
    assert str(path) in str(info.value)


def test_truncated_just_before_storage_data(fake_torch, tmp_path):
    obj = {"w": contiguous("0", np.arange(10, dtype=np.float32))}
    data = legacy_bytes(obj)
    for cut in (len(data) - 40 - 8, len(data) - 40 - 3, len(data) - 1):
        with pytest.raises(JaxstyleError, match="truncated"):
            load_torch_file(write(tmp_path / "cut.pt", data[:cut]))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)), "neither"),
        (b"hello, I am a text file\n", "neither"),
        (b"\x80\x02K\x07.", "magic number"),
        (b"\x80\x02\x8a", "damaged"),
        (b"PK\x03\x04" + b"\x00" * 100, "damaged"),
    ],
    ids=["empty", "random", "text", "other-pickle", "cut-pickle", "fake-zip"],
)
def test_garbage(tmp_path, data, message):
    path = write(tmp_path / "bad.pt", data)
    with pytest.raises(JaxstyleError, match=message) as info:
        load_torch_file(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(JaxstyleError, match="does not exist"):
        load_torch_file(tmp_path / "nope.pt")


def test_zip_without_data_pkl(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(JaxstyleError, match="not a PyTorch one"):
        load_torch_file(write(tmp_path / "t.zip", buf.getvalue()))


def test_not_a_dict(fake_torch, tmp_path):
    with pytest.raises(JaxstyleError, match="not a dict"):
        load_torch_file(write(tmp_path / "t.pt", zip_bytes({}, main_pickle=pickle.dumps([1, 2]))))


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_tensor_past_its_storage(fake_torch, tmp_path, container):
    obj = {"w": Tensor(Storage("0", np.zeros(5, np.float32)), 2, (2, 2), (2, 1))}
    with pytest.raises(JaxstyleError, match="past the end"):
        load_torch_file(write(tmp_path / "t.pt", CONTAINERS[container](obj)))


def test_legacy_huge_storage_claim_is_truncation(fake_torch, tmp_path):
    obj = {"w": Tensor(Storage("0", np.zeros(4, np.float32), numel=10**15), 0, (4,), (1,))}
    with pytest.raises(JaxstyleError, match="truncated"):
        load_torch_file(write(tmp_path / "t.pt", legacy_bytes(obj)))


def test_zip_storage_of_wrong_size(fake_torch, tmp_path):
    obj = {"w": contiguous("0", np.zeros(5, np.float32))}
    data = zip_bytes(obj)
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info)[:-4] if info.filename.endswith("data/0") else src.read(info))
    with pytest.raises(JaxstyleError, match="bytes"):
        load_torch_file(write(tmp_path / "t.pt", buf.getvalue()))


def test_big_endian_refused(fake_torch, tmp_path):
    obj = {"w": contiguous("0", np.zeros(2, np.float32))}
    big_endian = pickle.dumps({**SYS_INFO, "little_endian": False}, protocol=2)
    data = legacy_bytes(obj).replace(pickle.dumps(SYS_INFO, protocol=2), big_endian)
    with pytest.raises(JaxstyleError, match="little-endian"):
        load_torch_file(write(tmp_path / "t.pt", data))

