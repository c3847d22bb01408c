"""Model files (fast networks, CycleGAN): parameters, architecture and names, without pickle.

A model file is one msgpack map (flax's serialisation: arrays are typed buffers, nothing
is ever executed on load)::

    {"format": "jaxstyle-fast-network", "version": 1,
     "config": {"width": 16, "residual_blocks": 5, "num_styles": 1},
     "styles": ["starry_night"], "dtype": "float32" | "float16",
     "params": <msgpack of the params pytree>, "params_sha256": <hex digest of those bytes>}

A CycleGAN model file is the same map with "format": "jaxstyle-cyclegan", "config":
{"width", "residual_blocks", "disc_width"}, "domains": [name A, name B] and params
{"g_ab", "g_ba"} (the discriminators are only in training checkpoints).

The digest makes a damaged file (truncated, or bytes changed in place) one clear error
instead of a network of garbage, and every array's shape is checked against the config.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
from flax import serialization

from jaxstyle.errors import JaxstyleError
from jaxstyle.io.files import atomic_write_bytes
from jaxstyle.nets import gan, transform

FORMAT = "jaxstyle-fast-network"
VERSION = 1


class FastModel(NamedTuple):
    """A trained style network: its architecture, its style names and its params pytree."""

    config: transform.NetworkConfig
    styles: tuple[str, ...]
    params: Mapping


def to_bytes(model: FastModel, *, dtype: str = "float32") -> bytes:
    """The model file's bytes; dtype "float16" halves the file (params are cast back on load)."""
    if len(model.styles) != model.config.num_styles:
        raise ValueError(f"{len(model.styles)} style names for a network of {model.config.num_styles} styles")
    return _encode(FORMAT, {"config": model.config.to_dict(), "styles": list(model.styles)}, model.params, dtype)


def _encode(kind: str, header: Mapping, params: Mapping, dtype: str) -> bytes:
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
    params = jax.tree.map(lambda x: np.asarray(x, dtype), serialization.to_state_dict(params))
    payload = serialization.msgpack_serialize(params)
    record = {"format": kind, "version": VERSION, **header, "dtype": dtype, "params": payload,
              "params_sha256": hashlib.sha256(payload).hexdigest()}
    return serialization.msgpack_serialize(record)


def save(path: str | os.PathLike, model: FastModel, *, dtype: str = "float32") -> Path:
    """Writes the model file atomically (readers see the old file or the new one)."""
    return atomic_write_bytes(path, to_bytes(model, dtype=dtype))


def _read(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise JaxstyleError(f"cannot read model file {path} ({e.strerror or e}); check the path") from None


def load(path: str | os.PathLike) -> FastModel:
    """Reads and checks a model file.

    Raises:
      JaxstyleError: missing or unreadable file, not a jaxstyle fast-network file (a CycleGAN
        model or VGG weights, say), another format version, damaged bytes, or params whose
        shapes do not match the recorded architecture.
    """
    return from_bytes(_read(path), where=str(path))


def from_bytes(data: bytes, *, where: str = "model") -> FastModel:
    """`load` for bytes in memory."""
    record, params = _decode(data, where, FORMAT, "fast-network model", "`jaxstyle train`")
    try:
        config = transform.NetworkConfig.from_dict(record["config"])
        styles = tuple(str(s) for s in record["styles"])
    except Exception as e:  # noqa: BLE001
        raise JaxstyleError(f"{where} is damaged or incomplete ({type(e).__name__}: {e}); copy it again") from None
    _check_params(params, jax.eval_shape(lambda: transform.init_params(config, jax.random.key(0))),
                  config.to_dict(), where)
    if len(styles) != config.num_styles:
        raise JaxstyleError(f"{where} names {len(styles)} styles for a network of {config.num_styles}")
    return FastModel(config, styles, jax.tree.map(lambda x: np.asarray(x, np.float32), params))


def _decode(data: bytes, where: str, kind: str, label: str, writer: str) -> tuple[dict, Mapping]:
    """(the record, its params) of a model file of format `kind`, its checksum verified."""
    try:
        record = serialization.msgpack_restore(data)
    except Exception:  # noqa: BLE001 - msgpack reports damage with many exception types
        raise JaxstyleError(f"{where} is not a jaxstyle model file, or it is damaged (cannot be decoded); "
                            f"write one with {writer} or copy it again") from None
    if not isinstance(record, dict) or record.get("format") != kind:
        other = record.get("format") if isinstance(record, dict) else None
        raise JaxstyleError(f"{where} is not a jaxstyle {label}" + (f" (it is a {other!r} file)" if other else "")
                            + f"; give a file written by {writer}")
    if record.get("version") != VERSION:
        raise JaxstyleError(f"{where} has model format version {record.get('version')!r}; this jaxstyle reads "
                            f"version {VERSION}: retrain it, or use the jaxstyle that wrote it")
    try:
        payload = bytes(record["params"])
        if hashlib.sha256(payload).hexdigest() != record["params_sha256"]:
            raise JaxstyleError(f"{where} is damaged (its parameters do not match their checksum); copy it again")
        params = serialization.msgpack_restore(payload)
    except JaxstyleError:
        raise
    except Exception as e:  # noqa: BLE001
        raise JaxstyleError(f"{where} is damaged or incomplete ({type(e).__name__}: {e}); copy it again") from None
    return record, params


def _check_params(params, expected, config: Mapping, where: str) -> None:
    """Raises JaxstyleError unless `params` has exactly the leaves and shapes of `expected`."""
    want = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(expected)}
    try:
        got = {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree_util.tree_leaves_with_path(params)}
    except Exception:  # noqa: BLE001
        got = {}
    if got != want:
        missing = sorted(set(want) - set(got))[:3]
        wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])[:3]
        raise JaxstyleError(f"{where}: parameters do not match its architecture {dict(config)} "
                            f"(missing {missing}, wrong shape {wrong}); the file is damaged or from another tool")


def find_style(model: FastModel, name: str) -> int:
    """The index of the model's style called `name`, or a unique part of its name ("scream"), or written
    as its index ("1")."""
    if name in model.styles:
        return model.styles.index(name)
    close = [k for k, style in enumerate(model.styles) if name and name.lower() in style.lower()]
    if len(close) == 1:
        return close[0]
    if len(close) > 1:
        raise JaxstyleError(f"--style {name!r} is part of several style names: "
                            f"{', '.join(model.styles[k] for k in close)}; give more of the name")
    if name.isdigit():
        if int(name) >= len(model.styles):
            raise JaxstyleError(f"--style {name} is out of range: the model holds {len(model.styles)} style(s), "
                                f"0..{len(model.styles) - 1} ({', '.join(model.styles)})")
        return int(name)
    raise JaxstyleError(f"--style {name!r}: the model holds no such style; its styles are "
                        f"{', '.join(model.styles)} (or their index, 0..{len(model.styles) - 1})")


def style_weights(model: FastModel, *, style_index: int | None = None,
                  mix: Sequence[float] | None = None) -> np.ndarray:
    """f32[S] weights of the conditional instance norm: one-hot for `style_index`, normalised `mix`.

    Raises:
      JaxstyleError: both given, `style_index` out of range, or `mix` with the wrong count, a
        negative weight or a zero sum.
    """
    n = model.config.num_styles
    if style_index is not None and mix is not None:
        raise JaxstyleError("give either a style index or a mix of styles, not both")
    if mix is not None:
        mix = np.asarray(mix, np.float64)
        if mix.shape != (n,):
            raise JaxstyleError(f"--mix needs {n} weight(s), one per style of the model "
                                f"({', '.join(model.styles)}), got {mix.size}")
        if np.any(mix < 0) or not np.all(np.isfinite(mix)) or mix.sum() <= 0:
            raise JaxstyleError(f"--mix weights must be non-negative with a positive sum, got {mix.tolist()}")
        return (mix / mix.sum()).astype(np.float32)
    style_index = 0 if style_index is None else style_index
    if not 0 <= style_index < n:
        raise JaxstyleError(f"--style-index {style_index} is out of range: the model holds {n} style(s), "
                            f"0..{n - 1} ({', '.join(model.styles)})")
    return np.eye(n, dtype=np.float32)[style_index]


# --- CycleGAN models: both generators, no discriminators ----------------------------------------------

CYCLEGAN_FORMAT = "jaxstyle-cyclegan"


class CycleGANModel(NamedTuple):
    """A trained translation: config, the two domains' names, and {"g_ab": A->B, "g_ba": B->A} params."""

    config: gan.CycleGANConfig
    domains: tuple[str, str]
    params: Mapping


def save_cyclegan(path: str | os.PathLike, model: CycleGANModel, *, dtype: str = "float32") -> Path:
    """Writes a CycleGAN model file atomically (msgpack, as the fast networks')."""
    generators = {k: model.params[k] for k in ("g_ab", "g_ba")}
    header = {"config": model.config.to_dict(), "domains": list(model.domains)}
    return atomic_write_bytes(path, _encode(CYCLEGAN_FORMAT, header, generators, dtype))


def load_cyclegan(path: str | os.PathLike) -> CycleGANModel:
    """Reads and checks a CycleGAN model file (same checks as `load`)."""
    where = str(path)
    record, params = _decode(_read(path), where, CYCLEGAN_FORMAT, "CycleGAN model", "`jaxstyle cyclegan train`")
    try:
        config = gan.CycleGANConfig.from_dict(record["config"])
        domains = tuple(str(d) for d in record["domains"])
        assert len(domains) == 2
    except Exception as e:  # noqa: BLE001
        raise JaxstyleError(f"{where} is damaged or incomplete ({type(e).__name__}: {e}); copy it again") from None
    generator = jax.eval_shape(lambda: gan.ResnetGenerator(config).init(
        jax.random.key(0), jax.numpy.zeros((32, 32, 3)))["params"])
    _check_params(params, {"g_ab": generator, "g_ba": generator}, config.to_dict(), where)
    return CycleGANModel(config, domains, jax.tree.map(lambda x: np.asarray(x, np.float32), params))
