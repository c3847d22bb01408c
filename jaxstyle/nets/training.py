"""Training a fast style network with the paper's losses (Johnson et al. 2016; Dumoulin et al. 2017).

The loss of one training photo x painted as style s by the network f is jaxstyle's own:

    alpha L_content(f(x), x) + beta L_style(f(x), A_s) + tv L_tv(f(x)) [+ gamma L_temporal]

with the VGG-19 frozen, the content features of the photo itself as the content target and
the Gram matrices A_s of each style image computed once. One jitted step is value_and_grad,
an optax Adam update and its application; the batch is sharded along its first axis over
the local devices (data parallel), the network's params and VGG-19 replicated. A batch
holds several styles at once for a multi-style network (image k of step t paints style
(t * batch + k) mod S).

Stability on video (`temporal_weight` gamma > 0; no video data needed): each photo x is also moved by
a random small affine motion m (a shift of up to `motion` px, a zoom and a rotation of up to
motion / size; `random_motion`), which gives a second frame m(x) with a known flow, and
L_temporal = sum over the pixels m keeps inside the crop of |f(m(x)) - m(f(x))|^2 (a sum, like the
content loss and `losses.temporal_loss`): the network must paint a moved photo as the moved painting.
With `motion_noise` s > 0 the moved photo also gets Gaussian noise of std s, as a real clip's next
frame differs by sensor and codec noise too (Gupta et al. 2017 train for stability against noise).
This is the consistency loss of Huang et al. (2017) and ReCoNet (2018) with synthetic motion in place
of the flow of real clips.

File I/O stays outside the step and the loop: `runs.Checkpointer` and `write_sidecar` are
called by the command (or a notebook) around `train`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import lazy, losses, runtime, vgg
from jaxstyle.errors import JaxstyleError
from jaxstyle.fields import SEED_MAX, check_fields, setting
from jaxstyle.io import image_io, sidecars
from jaxstyle.io.files import file_sha256
from jaxstyle.nets import model_file, runs, transform
from jaxstyle.nets.photos import PhotoFolder

optax = lazy.module("optax")  # imported at first use (`jaxstyle.lazy`)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """Everything that decides the trained network. See README "Fast networks" for the measurements."""

    size: int = setting(256, min=32)  # crop side in px (Johnson et al.: 256); conv5_1 needs 32
    steps: int = setting(2000, min=1)
    batch_size: int = setting(4, min=1)  # Johnson et al.: 4; rounded up to a multiple of the device count
    # Adam. Departure from Johnson et al.'s 1e-3: the identity start's measured recipe (`make model`).
    learning_rate: float = setting(2e-3, above=0)
    # alpha. Departure from the paper's 1e-3: networks trained at 1e-3 (400 steps) and 5e-3 (250 steps)
    # had not lowered their content loss and painted the town away (README, Fast networks).
    content_weight: float = setting(2e-2, min=0)
    style_weight: float = setting(1.0, min=0)  # beta
    tv_weight: float = setting(100.0, min=0)  # a sum over pixels in [0, 1]: ~1% of the final loss
    # The style image's longest side for its Grams. Departure from Johnson et al. (style at
    # the crop size): 2x the crop size gives strokes at the scale of a 512 px picture.
    style_size: int = setting(512, min=32)
    content_layers: tuple[str, ...] = losses.CONTENT_LAYERS
    style_layers: tuple[str, ...] = losses.STYLE_LAYERS
    # Johnson et al.: 32. Width 8 was as good as 16 on held-out photos, at 0.41x the time per image
    # (docs/fast_benchmarks.md, recipes-models), so it is the default and the bundled model's.
    width: int = setting(8, min=1)
    residual_blocks: int = setting(5, min=1)
    # identity: the network starts as the identity, a zero residual on the photo (departure: measured
    # against the papers' random start, it kept 20-40% less content loss at the same steps; issue 26);
    # random: the papers' start.
    start: str = setting("identity", choices=("random", "identity"))
    temporal_weight: float = setting(0.0, min=0)  # gamma of the synthetic-motion consistency (0: none)
    motion: float = setting(4.0, min=0)  # px: the largest shift of the synthetic motion (see the module doc)
    # Std of Gaussian noise on the moved photo (pixels in [0, 1]): a real clip's next frame also differs by
    # sensor and codec noise, which synthetic motion alone does not teach the network to ignore.
    motion_noise: float = setting(0.0, min=0, max=1)
    seed: int = setting(0, min=0, max=SEED_MAX)

    def __post_init__(self):
        for name in ("content_layers", "style_layers"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, losses.STYLE_PRESETS[value] if value in losses.STYLE_PRESETS
                                   else tuple(v.strip() for v in value.split(",") if v.strip()))
        check_fields(self)
        try:
            vgg.check_layers(self.content_layers + self.style_layers)
        except ValueError as e:
            raise JaxstyleError(str(e)) from None

    def replace(self, **changes) -> "TrainSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def network_config(self, num_styles: int) -> transform.NetworkConfig:
        return transform.NetworkConfig(width=self.width, residual_blocks=self.residual_blocks,
                                      num_styles=num_styles, identity=int(self.start == "identity"))


class TrainState(NamedTuple):
    """params: the network's pytree. opt_state: Adam's. step: i32[] steps done."""

    params: Any
    opt_state: Any
    step: jax.Array


LOSS_NAMES = ("total", "content", "style", "tv", "temporal")


class StyleTargets(NamedTuple):
    """Gram matrices of every style, {layer: f32[S, N, N]}, rescaled to a crop's positions."""

    grams: dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    model: model_file.FastModel
    steps: int
    losses: dict[str, float]  # means over the last `runs.FINAL_WINDOW` steps (one batch is noisy)
    seconds: float
    history: list[dict]


def style_targets(vgg_params: Mapping, styles: Sequence[np.ndarray], settings: TrainSettings) -> StyleTargets:
    """Each style image at `style_size` (longest side), its Grams rescaled to a crop's positions."""
    per_style = []
    for style in styles:
        image = jnp.asarray(image_io.resize_longest(np.asarray(style), settings.style_size))
        per_style.append(losses.style_grams_jit(vgg_params, image, (settings.size, settings.size),
                                                style_layers=settings.style_layers))
    return StyleTargets({name: jnp.stack([g[name] for g in per_style]) for name in settings.style_layers})


def _image_loss(vgg_params, output, photo, style_id, targets: StyleTargets, settings: TrainSettings):
    """Unweighted (content, style, tv) of one painted crop f32[h, w, 3] against its photo."""
    content_w = losses.equal_weights(settings.content_layers)
    style_w = losses.equal_weights(settings.style_layers)
    p = vgg.features(vgg_params, photo, layers=settings.content_layers)
    t = losses.Targets(content=jax.lax.stop_gradient(p),
                       style={name: g[style_id][None] for name, g in targets.grams.items()},
                       blend=jnp.ones(1, jnp.float32))
    parts = losses.loss_parts(vgg_params, output, t, content_layer_weights=content_w,
                              style_layer_weights=style_w)
    return jnp.stack([parts.content, parts.style, parts.tv])


def random_motion(key: jax.Array, batch: int, size: int, motion: float) -> jax.Array:
    """f32[B, 2, 3] affine maps from a moved frame's pixel (y, x, 1) to where it comes from in the
    first frame: a shift of up to `motion` px, a zoom by up to 1 +- motion / size and a rotation by up
    to motion / size radians, each uniform, about the crop's centre (side `size`)."""
    shift_key, zoom_key, turn_key = jax.random.split(key, 3)
    shift = jax.random.uniform(shift_key, (batch, 2), minval=-motion, maxval=motion)
    zoom = 1.0 + jax.random.uniform(zoom_key, (batch,), minval=-1, maxval=1) * motion / size
    turn = jax.random.uniform(turn_key, (batch,), minval=-1, maxval=1) * motion / size
    cos, sin = jnp.cos(turn) / zoom, jnp.sin(turn) / zoom
    linear = jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)  # [B, 2, 2]
    centre = jnp.full(2, (size - 1) / 2.0)
    offset = centre[None] - jnp.einsum("bij,j->bi", linear, centre) + shift
    return jnp.concatenate([linear, offset[..., None]], -1)


def move(images: jax.Array, affine: jax.Array, margin: float = 2.0) -> tuple[jax.Array, jax.Array]:
    """Each image f32[B, h, w, C] moved by its map f32[B, 2, 3] (`random_motion`), bilinear: (the moved
    images f32[B, h, w, C], f32[B, h, w] 1 where the source lies `margin` px or more inside the image)."""
    h, w = images.shape[1:3]
    grid = jnp.stack(jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                                  indexing="ij") + [jnp.ones((h, w), jnp.float32)], -1)  # [h, w, 3]

    def one(image, a):
        source = jnp.einsum("ij,hwj->ihw", a, grid)  # [2, h, w]: (y, x) in the first frame
        sample = lambda channel: jax.scipy.ndimage.map_coordinates(channel, list(source), order=1, mode="nearest")  # noqa: E731
        moved = jax.vmap(sample, in_axes=-1, out_axes=-1)(image)
        inside = ((source[0] >= margin) & (source[0] <= h - 1 - margin)
                  & (source[1] >= margin) & (source[1] <= w - 1 - margin))
        return moved, inside.astype(image.dtype)

    return jax.vmap(one)(images, affine)


def temporal_loss(moved_output: jax.Array, output_moved: jax.Array, inside: jax.Array) -> jax.Array:
    """Mean over the batch of sum_x inside(x) |a(x) - b(x)|^2, summed over pixels and channels like the
    content loss (and `losses.temporal_loss`): a, b f32[B, h, w, 3], inside f32[B, h, w]."""
    return jnp.mean(jax.vmap(losses.temporal_loss)(moved_output, output_moved, inside))


def batch_loss(params, vgg_params, photos, style_ids, targets: StyleTargets, *,
               config: transform.NetworkConfig, settings: TrainSettings, first_style: int = 0,
               key: jax.Array | None = None):
    """Mean weighted loss of a batch, and the mean unweighted terms f32[4] (content, style, tv, temporal).

    photos: f32[B, h, w, 3] in [0, 1]; style_ids: i32[B], indices into `targets`; the network paints
    style first_style + id (the styles trained are the model's last ones when it extends a model).
    key: the synthetic motion's randomness, with settings.temporal_weight > 0 (else unused).
    """
    one_hot = jax.nn.one_hot(style_ids + first_style, config.num_styles, dtype=jnp.float32)
    outputs = transform.transform_batch(config, params, photos, one_hot)
    parts = jax.vmap(_image_loss, in_axes=(None, 0, 0, 0, None, None))(
        vgg_params, outputs, photos, style_ids, targets, settings)
    temporal = jnp.zeros((), jnp.float32)
    if settings.temporal_weight > 0:
        affine = random_motion(key, photos.shape[0], photos.shape[1], settings.motion)
        moved_photos, inside = move(photos, affine)
        if settings.motion_noise > 0:  # its own key: the motion stays the same with or without noise
            noise = jax.random.normal(jax.random.fold_in(key, 1), moved_photos.shape, moved_photos.dtype)
            moved_photos = jnp.clip(moved_photos + settings.motion_noise * noise, 0.0, 1.0)
        moved_outputs, _ = move(outputs, affine)
        temporal = temporal_loss(transform.transform_batch(config, params, moved_photos, one_hot), moved_outputs,
                                 inside)
    terms = jnp.concatenate([jnp.mean(parts, axis=0), temporal[None]])
    weights = jnp.array([settings.content_weight, settings.style_weight, settings.tv_weight,
                         settings.temporal_weight], jnp.float32)
    return jnp.dot(weights, terms), terms


def _is_norm(path, _) -> bool:
    return jax.tree_util.keystr(path).endswith(("['scale']", "['shift']"))


def make_optimizer(settings: TrainSettings, *, norms_only: bool = False) -> optax.GradientTransformation:
    """Adam; norms_only: on the conditional instance norms' scales and shifts alone, everything else
    frozen (how `train(..., base=)` learns new styles: Dumoulin et al. 2017)."""
    if not norms_only:
        return optax.adam(settings.learning_rate)
    return optax.multi_transform({"train": optax.adam(settings.learning_rate), "freeze": optax.set_to_zero()},
                                 lambda params: jax.tree_util.tree_map_with_path(
                                     lambda path, x: "train" if _is_norm(path, x) else "freeze", params))


def init_state(settings: TrainSettings, num_styles: int, base: model_file.FastModel | None = None,
               tune: model_file.FastModel | None = None) -> TrainState:
    """Fresh params from `settings.seed` and Adam's zero state; with `base`, its params with one
    more row per new style in every norm (each the mean of its styles: a start between them); with
    `tune`, its params as they are (all of them trained on)."""
    if tune is not None:
        params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tune.params)
        optimizer = make_optimizer(settings)
        return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))
    if base is None:
        params = transform.init_params(model_config(settings, num_styles), jax.random.key(settings.seed))
    else:
        def grow(path, x):  # float32 even from a float16 file: the new rows are trained
            x = jnp.asarray(x, jnp.float32)
            if not _is_norm(path, x):
                return x
            return jnp.concatenate([x, jnp.repeat(jnp.mean(x, 0, keepdims=True), num_styles, 0)])

        params = jax.tree_util.tree_map_with_path(grow, base.params)
    optimizer = make_optimizer(settings, norms_only=base is not None)
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))


def model_config(settings: TrainSettings, num_styles: int, base: model_file.FastModel | None = None,
                 tune: model_file.FastModel | None = None) -> transform.NetworkConfig:
    """The architecture trained: the settings' for `num_styles` styles, `base`'s holding that
    many more, or `tune`'s."""
    if tune is not None:
        return tune.config
    if base is None:
        return settings.network_config(num_styles)
    return dataclasses.replace(base.config, num_styles=base.config.num_styles + num_styles)


@functools.lru_cache(maxsize=8)
def make_train_step(settings: TrainSettings, config: transform.NetworkConfig, first_style: int = 0) -> Callable:
    """(state, vgg_params, photos, style_ids, targets) -> (state, f32[5] in LOSS_NAMES order); jitted, donating state.

    first_style > 0: the styles from that index on are trained, on their norms only (`train(..., base=)`).
    Cached, so a second run with the same settings in one process does not compile again.
    """
    optimizer = make_optimizer(settings, norms_only=first_style > 0)

    def step(state: TrainState, vgg_params, photos, style_ids, targets):
        key = jax.random.fold_in(jax.random.key(settings.seed), state.step)  # the step's motion, resumable
        (loss, terms), grads = jax.value_and_grad(batch_loss, has_aux=True)(
            state.params, vgg_params, photos, style_ids, targets, config=config, settings=settings,
            first_style=first_style, key=key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        state = TrainState(optax.apply_updates(state.params, updates), opt_state, state.step + 1)
        return state, jnp.concatenate([loss[None], terms])

    return runtime.jit(step, donate_argnums=0)


def batch_size_for(settings: TrainSettings, devices: Sequence[jax.Device]) -> int:
    """The batch rounded up to a multiple of the device count (each device gets whole images)."""
    return runtime.round_up(settings.batch_size, len(devices))


def style_ids(step: int, batch: int, num_styles: int) -> np.ndarray:
    """i32[batch]: style of each image at `step`; every style equally often over steps."""
    return ((step * batch + np.arange(batch)) % num_styles).astype(np.int32)


def checkpoint_tag(settings: TrainSettings, batch: int, style_paths: Sequence[Path], weights_path: Path,
                   photos: PhotoFolder) -> Mapping[str, Any]:
    """What a checkpoint must match to be resumed (not the step count: --steps may grow)."""
    return {"settings": {**settings.to_dict(), "steps": None}, "batch": batch,
            "styles": [file_sha256(p) for p in style_paths], "weights": file_sha256(weights_path),
            "photos": [str(p) for p in photos.files]}


def train(vgg_params: Mapping, styles: Sequence[np.ndarray], photos: PhotoFolder, settings: TrainSettings, *,
          style_names: Sequence[str], resume: TrainState | None = None,
          callback: Callable[[runs.Progress], None] | None = None,
          devices: Sequence[jax.Device] | None = None, base: model_file.FastModel | None = None,
          tune: model_file.FastModel | None = None) -> TrainResult:
    """Trains a network painting `styles` on crops from `photos`.

    Args:
      vgg_params: the frozen VGG-19 (`jaxstyle.io.weights.load_params`).
      styles: S style images f32[h, w, 3] in [0, 1]; S > 1 makes a multi-style network.
      photos: the training photos, cropped at `settings.size`.
      style_names: S names stored in the model (e.g. the files' stems).
      resume: a state from `Checkpointer.load`: training continues after its step.
      callback: called after every step with a `runs.Progress`.
      devices: where the batch is sharded (default: all local devices).
      base: a trained model to extend: `styles` are appended to its styles, and only their norms'
        scales and shifts are learnt (Dumoulin et al. 2017), the rest of the network frozen; its
        architecture is kept (settings.width etc. are not used).
      tune: a trained model to train further, all its params (e.g. with settings.temporal_weight, for
        video): `styles` are its styles, in its order; its architecture is kept.

    Returns:
      TrainResult with the model and the final losses.
    """
    if len(styles) != len(style_names) or not styles:
        raise JaxstyleError("give at least one style image, and one name per style")
    if tune is not None and (base is not None or tuple(style_names) != tuple(tune.styles)):
        raise JaxstyleError(f"a model trained further keeps its styles: give the images of {', '.join(tune.styles)}, "
                            f"in that order (and no model to extend)")
    devices = list(devices or jax.local_devices())
    replicated = runtime.shardings(devices).replicated
    config = model_config(settings, len(styles), base, tune)
    first_style = 0 if base is None else base.config.num_styles
    batch = batch_size_for(settings, devices)

    vgg_params = jax.device_put(vgg_params, replicated)
    targets = jax.device_put(style_targets(vgg_params, styles, settings), replicated)
    state = resume if resume is not None else init_state(settings, len(styles), base, tune)
    step_fn = make_train_step(settings, config, first_style)
    start = int(state.step)
    batches = ((crops, style_ids(step, batch, len(styles)))
               for step, crops in enumerate(photos.batches(start, settings.steps, batch), start))
    t0 = time.perf_counter()
    state, history = runs.run_steps(lambda state, b: step_fn(state, vgg_params, *b, targets), state, batches,
                                    steps=settings.steps, batch_size=batch, loss_names=LOSS_NAMES,
                                    devices=devices, callback=callback)
    params = jax.tree.map(np.asarray, state.params)
    model = model_file.FastModel(config, (*(base.styles if base else ()), *style_names), params)
    return TrainResult(model=model, steps=int(state.step), losses=runs.final_losses(history, LOSS_NAMES),
                       seconds=time.perf_counter() - t0, history=history)


def write_sidecar(model_path: Path, *, settings: TrainSettings, result: TrainResult,
                  style_paths: Sequence[Path], weights_path: Path, photos: PhotoFolder,
                  devices: int, extra: Mapping[str, Any] | None = None) -> Path:
    """MODEL.json: settings, styles' and weights' sha256, steps, final losses, seconds, provenance."""
    return sidecars.write_sidecar(model_path, {
        "kind": model_file.FORMAT,
        "config": result.model.config.to_dict(),
        "styles": [{"name": n, **sidecars.file_record(p)}  # the styles trained (the last ones of the model)
                   for n, p in zip(result.model.styles[len(result.model.styles) - len(style_paths):], style_paths)],
        "settings": settings.to_dict(),
        "weights": sidecars.file_record(weights_path),
        "photos": {"folder": str(photos.folder), "files": len(photos.files), "skipped": photos.skipped},
        "steps": result.steps,
        "final_losses": result.losses,
        "final_losses_window": runs.FINAL_WINDOW,
        "seconds": round(result.seconds, 1),
        "devices": devices,
        **(extra or {}),
    }, key="model")
