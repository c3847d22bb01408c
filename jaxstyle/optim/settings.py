"""Settings of one stylisation: the paper's defaults, their validation, and which of them shape a program.

Fields of group "program" decide the compiled programs (layers, pooling, optimiser, its memory)
and fields of group "loop" the Python loop around them (scales, line search): only images that
agree on both share a batch. Every other field (weights, seed, init, step size, steps, sizes,
styles) is per-image data inside a batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from jaxstyle import color, losses, vgg
from jaxstyle.errors import JaxstyleError
from jaxstyle.fields import SEED_MAX, check_fields, from_mapping, option_name, setting

INITS = ("noise", "content", "style")
OPTIMIZERS = ("lbfgs", "adam")
MIN_SIDE = vgg.MIN_SIDE


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

    size: int = setting(256, min=MIN_SIDE)  # longest side in px; the paper shows 512 (see README: CPU time).
    steps: int = setting(80, min=0)
    optimizer: str = setting("lbfgs", group="program", choices=OPTIMIZERS)
    content_weight: float = setting(1e-3, min=0)
    style_weight: float = setting(1.0, min=0)
    tv_weight: float = setting(0.0, min=0)
    content_layers: tuple[str, ...] = setting(losses.CONTENT_LAYERS, group="program")
    style_layers: tuple[str, ...] = setting(losses.STYLE_LAYERS, group="program")
    content_layer_weights: tuple[float, ...] | None = setting(None, min=0)
    style_layer_weights: tuple[float, ...] | None = setting(None, min=0)
    pooling: str = setting("avg", group="program", choices=vgg.POOLINGS)
    style_blend: tuple[float, ...] | None = setting(None, min=0)  # one weight per style image; None: 1/S each.
    style_scale: float = setting(1.0, above=0)  # style image size relative to the content's (the paper: 1).
    preserve_colors: str = setting("none", choices=color.PRESERVE_COLORS)  # "luminance" or "histogram" (Gatys et al. 2016/2017).
    scales: int = setting(1, group="loop", min=1)  # coarse-to-fine: optimise at size / 2^(scales-1), ..., size; steps per scale.
    # Departure: the paper starts from white noise; the content image reaches a good
    # picture in far fewer steps (the paper's Fig. 6 shows both work).
    init: str = "content"
    seed: int = setting(0, min=0, max=SEED_MAX)
    learning_rate: float = setting(0.02, above=0)  # Adam only, for pixels in [0, 1].
    lbfgs_memory: int = setting(10, group="program", min=1)
    linesearch_steps: int = setting(10, group="loop", min=0)  # most halvings of an L-BFGS step that fails Armijo's condition.
    # Tiles of this side (px) for an image too large for one pass; 0: only when one pass would
    # not fit in memory (tiles of 512). The loss and gradient are the same either way.
    tile: int = setting(0, group="loop", min=0)

    def __post_init__(self):
        if isinstance(self.style_layers, str):  # a preset name, e.g. "upto-conv3_1"
            if self.style_layers not in losses.STYLE_PRESETS:
                raise JaxstyleError(f"unknown style-layer preset {self.style_layers!r}; "
                                    f"choose from {', '.join(losses.STYLE_PRESETS)} or list layers")
            object.__setattr__(self, "style_layers", losses.STYLE_PRESETS[self.style_layers])
        check_fields(self)
        validate(self)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> "Settings":
        """Settings from {name: value} (a sidecar's or a manifest's); `source` names it in errors."""
        return from_mapping(cls, data, source=source)

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
    """Raises JaxstyleError naming the settings that cannot work together (each field's own type
    and range are checked by `fields.check_fields`)."""
    s = settings
    problems = []
    if not s.content_layers and not s.style_layers:
        problems.append("give at least one content or style layer")
    for kind in ("content", "style"):
        layers, weights = getattr(s, f"{kind}_layers"), getattr(s, f"{kind}_layer_weights")
        bad = [n for n in layers if n not in vgg.LAYER_NAMES]
        if bad:
            problems.append(f"unknown {kind} layer(s) {bad}; choose from {', '.join(vgg.LAYER_NAMES)}")
        if weights is not None and len(weights) != len(layers):
            problems.append(f"{kind}_layer_weights has {len(weights)} values for {len(layers)} layers")
    if s.size // 2 ** (s.scales - 1) < MIN_SIDE:
        problems.append(f"{option_name('scales')} {s.scales} at size {s.size} makes the coarsest size "
                        f"{s.size // 2 ** (s.scales - 1)} px; it must stay >= {MIN_SIDE} px")
    halo = vgg.tile_halo([*s.content_layers, *s.style_layers]) if not problems else 0
    if s.tile and (s.tile % 16 or s.tile < halo):
        problems.append(f"{option_name('tile')} must be a multiple of 16 and at least the halo of the deepest "
                        f"layer ({halo} px), got {s.tile}")
    if s.style_blend is not None and (not s.style_blend or sum(s.style_blend) <= 0):
        problems.append(f"{option_name('style_blend')} needs one weight >= 0 per style image, not all 0, "
                        f"got {s.style_blend}")
    if s.init not in INITS and not Path(s.init).is_file():
        problems.append(f"{option_name('init')} must be one of {', '.join(INITS)} or an image file, got {s.init!r}")
    if problems:
        raise JaxstyleError("; ".join(problems))
