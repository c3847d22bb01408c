"""Settings of one stylisation: the paper's defaults, their validation, and which of them shape a program.

Fields marked `_program` decide the compiled programs (layers, pooling, optimiser, its memory)
and fields marked `_loop` the Python loop around them (scales, line search): only images that
agree on both share a batch. Every other field (weights, seed, init, step size, steps, sizes,
styles) is per-image data inside a batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxstyle import color, losses, vgg
from jaxstyle.errors import JaxstyleError

INITS = ("noise", "content", "style")
OPTIMIZERS = ("lbfgs", "adam")
MIN_SIDE = vgg.MIN_SIDE


def _program(default):
    return dataclasses.field(default=default, metadata={"group": "program"})


def _loop(default):
    return dataclasses.field(default=default, metadata={"group": "loop"})


class ProgramKey(NamedTuple):
    """The settings that decide the compiled programs; hashable, so it keys their cache."""

    optimizer: str
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    pooling: str
    lbfgs_memory: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything that decides the picture. Defaults are the paper's unless a comment says otherwise.

    content_weight / style_weight are the paper's alpha / beta (alpha/beta = 1e-3, Fig. 3).
    Layer weights of None mean equal weights summing to one (the paper's w_l = 1/5).
    init is "noise", "content", "style", or the path of an image file.
    """

    size: int = 256  # longest side in px; the paper shows 512 (see README: CPU time).
    steps: int = 80
    optimizer: str = _program("lbfgs")
    content_weight: float = 1e-3
    style_weight: float = 1.0
    tv_weight: float = 0.0
    content_layers: tuple[str, ...] = _program(losses.CONTENT_LAYERS)
    style_layers: tuple[str, ...] = _program(losses.STYLE_LAYERS)
    content_layer_weights: tuple[float, ...] | None = None
    style_layer_weights: tuple[float, ...] | None = None
    pooling: str = _program("avg")
    style_blend: tuple[float, ...] | None = None  # one weight per style image; None: 1/S each.
    style_scale: float = 1.0  # style image size relative to the content's (the paper: 1).
    preserve_colors: str = "none"  # "luminance" or "histogram" (Gatys et al. 2016/2017).
    scales: int = _loop(1)  # coarse-to-fine: optimise at size / 2^(scales-1), ..., size; steps per scale.
    # Departure: the paper starts from white noise; the content image reaches a good
    # picture in far fewer steps (the paper's Fig. 6 shows both work).
    init: str = "content"
    seed: int = 0
    learning_rate: float = 0.02  # Adam only, for pixels in [0, 1].
    lbfgs_memory: int = _program(10)
    linesearch_steps: int = _loop(10)  # most halvings of an L-BFGS step that fails Armijo's condition.

    def __post_init__(self):
        if isinstance(self.style_layers, str):  # a preset name, e.g. "upto-conv3_1"
            if self.style_layers not in losses.STYLE_PRESETS:
                raise JaxstyleError(f"unknown style-layer preset {self.style_layers!r}; "
                                    f"choose from {', '.join(losses.STYLE_PRESETS)} or list layers")
            object.__setattr__(self, "style_layers", losses.STYLE_PRESETS[self.style_layers])
        for name in ("content_layers", "style_layers", "content_layer_weights", "style_layer_weights",
                     "style_blend"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        validate(self)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Settings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise JaxstyleError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def program_key(self) -> ProgramKey:
        return ProgramKey(**{f.name: getattr(self, f.name) for f in _group("program")})

    def batch_key(self) -> tuple:
        """Settings two images must share to be optimised in one batch: the program's and the loop's."""
        return self.program_key(), tuple(getattr(self, f.name) for f in _group("loop"))

    def initial_stepsize(self) -> float:
        """The first step tried along each direction: L-BFGS's natural step 1, or Adam's learning rate."""
        return self.learning_rate if self.optimizer == "adam" else 1.0

    def layer_weights(self) -> tuple[dict[str, float], dict[str, float]]:
        """({content layer: weight}, {style layer: weight})."""
        return (_weights_for(self.content_layers, self.content_layer_weights),
                _weights_for(self.style_layers, self.style_layer_weights))

    def loss_weights(self) -> losses.LossWeights:
        return losses.LossWeights(content=self.content_weight, style=self.style_weight, tv=self.tv_weight)


def _group(name: str) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(Settings) if f.metadata.get("group") == name]


def _weights_for(layers: tuple[str, ...], weights: tuple[float, ...] | None) -> dict[str, float]:
    if weights is None:
        return losses.equal_weights(layers) if layers else {}
    return dict(zip(layers, weights))


def validate(settings: Settings) -> None:
    """Raises JaxstyleError naming the first setting that cannot work."""
    s = settings
    problems = []
    if s.optimizer not in OPTIMIZERS:
        problems.append(f"optimizer must be one of {OPTIMIZERS}, got {s.optimizer!r}")
    if s.pooling not in vgg.POOLINGS:
        problems.append(f"pooling must be one of {vgg.POOLINGS}, got {s.pooling!r}")
    if s.steps < 0:
        problems.append(f"steps must be >= 0, got {s.steps}")
    if s.size < MIN_SIDE:
        problems.append(f"size must be at least {MIN_SIDE} px, got {s.size}")
    for name in ("content_weight", "style_weight", "tv_weight", "learning_rate"):
        value = getattr(s, name)
        if not (np.isfinite(value) and value >= 0):
            problems.append(f"{name} must be a finite number >= 0, got {value}")
    if not s.content_layers and not s.style_layers:
        problems.append("give at least one content or style layer")
    for kind in ("content", "style"):
        layers, weights = getattr(s, f"{kind}_layers"), getattr(s, f"{kind}_layer_weights")
        bad = [n for n in layers if n not in vgg.LAYER_NAMES]
        if bad:
            problems.append(f"unknown {kind} layer(s) {bad}; choose from {', '.join(vgg.LAYER_NAMES)}")
        if weights is not None and len(weights) != len(layers):
            problems.append(f"{kind}_layer_weights has {len(weights)} values for {len(layers)} layers")
    if s.preserve_colors not in color.PRESERVE_COLORS:
        problems.append(f"preserve_colors must be one of {color.PRESERVE_COLORS}, got {s.preserve_colors!r}")
    if not (np.isfinite(s.style_scale) and s.style_scale > 0):
        problems.append(f"style_scale must be a number > 0, got {s.style_scale}")
    if s.scales < 1 or s.size // 2 ** (s.scales - 1) < MIN_SIDE:
        problems.append(f"scales must be >= 1 and leave the coarsest size >= {MIN_SIDE} px, got {s.scales} "
                        f"at size {s.size}")
    if s.style_blend is not None and (not s.style_blend or min(s.style_blend) < 0):
        problems.append(f"style_blend needs one weight >= 0 per style image, got {s.style_blend}")
    if s.init not in INITS and not Path(s.init).is_file():
        problems.append(f"init must be one of {INITS} or an image file, got {s.init!r}")
    if problems:
        raise JaxstyleError("; ".join(problems))


