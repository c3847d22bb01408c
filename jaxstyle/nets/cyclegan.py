"""CycleGAN (Zhu et al. 2017): unpaired translation between two folders of images.

Two generators G: A -> B and F: B -> A and two PatchGAN discriminators D_A, D_B
(`gan.ResnetGenerator`, `gan.PatchDiscriminator`), trained as in the paper:

    L_G = (D_B(G(a)) - 1)^2 + (D_A(F(b)) - 1)^2                        least-squares GAN
          + lambda (|F(G(a)) - a|_1 + |G(F(b)) - b|_1)                 cycle consistency
          + identity * lambda (|G(b) - b|_1 + |F(a) - a|_1)            identity (keeps colours)
    L_D = 1/2 [(D(real) - 1)^2 + D(pool(fake))^2]                      per discriminator

with means over pixels and patches, Adam(2e-4, beta1 0.5), a learning rate constant for
the first `decay_from` steps and then decayed linearly to zero, and for each
discriminator a pool of the last `pool_size` generated images (half of the fakes it sees
are older ones). L1 distances are taken in the paper's [-1, 1] pixel units (twice those
of jaxstyle's [0, 1] pixels), so lambda = 10 weighs the same as there.

One jitted step updates the generators, then the discriminators (on the fakes of that
generator pass, as the reference code does); the pools live in the training state, so a
checkpoint holds everything and a resumed run is bit-identical. The batch is sharded over
the local devices along its first axis, everything else replicated. File I/O stays
outside: the command (`jaxstyle cyclegan train`) checkpoints around `train`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import lazy, runtime
from jaxstyle.errors import JaxstyleError
from jaxstyle.fields import SEED_MAX, check_fields, option_name, setting
from jaxstyle.io import image_io
from jaxstyle.nets import gan, layers, model_file, runs, tiles
from jaxstyle.nets.photos import PhotoFolder

optax = lazy.module("optax")  # imported at first use (`jaxstyle.lazy`)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CycleGANSettings:
    """Everything that decides the trained model; the defaults are the paper's 256 px recipe."""

    size: int = setting(256, min=32)  # crop side in px; the discriminator needs 32
    steps: int = setting(200_000, min=1)  # the paper: 200 epochs of ~1000 images at batch 1
    decay_from: int | None = setting(None, min=0)  # step where the linear decay to 0 starts (default: steps // 2)
    batch_size: int = setting(1, min=1)  # the paper: 1; rounded up to a multiple of the device count
    learning_rate: float = setting(2e-4, above=0)
    beta1: float = setting(0.5, min=0, max=0.999)
    cycle_weight: float = setting(10.0, min=0)  # lambda
    # If set, lambda moves linearly from cycle_weight at step 0 to this at the last step (not in the paper).
    cycle_weight_end: float | None = setting(None, min=0)
    identity_weight: float = setting(0.5, min=0)  # relative to lambda
    pool_size: int = setting(50, min=0)
    # Before cropping, a photo's shorter side is scaled to a random length in
    # [min_scale x size, max_scale x size]. Departure: the paper resizes to a 286 x 286 square
    # (1.12 x 256, distorting the aspect), which this keeps undistorted.
    max_scale: float = setting(286 / 256, min=1)
    min_scale: float = setting(1.0, min=1)
    width: int = setting(64, min=1)
    residual_blocks: int = setting(9, min=1)
    disc_width: int = setting(64, min=1)
    # random: the papers' start (the default, with the paper's weights); identity: the network starts as
    # the identity, a zero residual on the photo. Under the paper's lambda 10 that start stays the photo;
    # the demo (`make cyclegan-model`) pairs it with lambda ramped from 0.5 to 2 and no identity term
    # (docs/benchmarks.md).
    start: str = setting("random", choices=("random", "identity"))
    seed: int = setting(0, min=0, max=SEED_MAX)

    def __post_init__(self):
        check_fields(self)
        if self.min_scale > self.max_scale:
            raise JaxstyleError(f"{option_name('min_scale')} must be at most max_scale ({self.max_scale}), "
                                f"got {self.min_scale}")

    def replace(self, **changes) -> "CycleGANSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config(self) -> gan.CycleGANConfig:
        return gan.CycleGANConfig(width=self.width, residual_blocks=self.residual_blocks,
                                  disc_width=self.disc_width, identity=int(self.start == "identity"))

    def cycle_weight_at(self, step: jax.Array) -> jax.Array:
        """lambda at `step` i32[] (constant unless `cycle_weight_end` is set)."""
        if self.cycle_weight_end is None:
            return jnp.asarray(self.cycle_weight, jnp.float32)
        fraction = jnp.clip(step / max(1, self.steps - 1), 0.0, 1.0)
        return self.cycle_weight + (self.cycle_weight_end - self.cycle_weight) * fraction

    def schedule(self) -> optax.Schedule:
        """Constant learning rate until `decay_from` (default steps // 2), then linearly to 0 at `steps`."""
        start = self.steps // 2 if self.decay_from is None else min(self.decay_from, self.steps)
        return optax.join_schedules([
            optax.constant_schedule(self.learning_rate),
            optax.linear_schedule(self.learning_rate, 0.0, max(1, self.steps - start))], [start])


class Pool(NamedTuple):
    """Past generated images for one discriminator: images f32[P, h, w, 3], count i32[] stored."""

    images: jax.Array
    count: jax.Array


class CycleGANState(NamedTuple):
    """A training run's state: params {"g_ab", "g_ba", "d_a", "d_b"}; the generators' and the
    discriminators' Adam states; the two pools; step i32[]. (Its own NamedTuple: the fast
    networks' `training.CycleGANState` has one optimiser and no pools.)"""

    params: Any
    g_opt: Any
    d_opt: Any
    pool_a: Pool
    pool_b: Pool
    step: jax.Array


LOSS_NAMES = ("generator", "discriminator", "adversarial", "cycle", "identity")


def _optimizer(settings: CycleGANSettings) -> optax.GradientTransformation:
    return optax.adam(settings.schedule(), b1=settings.beta1, b2=0.999)


def _generators(params):
    return {k: params[k] for k in ("g_ab", "g_ba")}


def _discriminators(params):
    return {k: params[k] for k in ("d_a", "d_b")}


def init_state(settings: CycleGANSettings) -> CycleGANState:
    """Fresh networks from `settings.seed`, Adam's zero states and empty pools."""
    params = gan.init_cyclegan_params(settings.config(), jax.random.key(settings.seed))
    optimizer = _optimizer(settings)

    def empty():  # two buffers: the step donates both pools
        return Pool(jnp.zeros((settings.pool_size, settings.size, settings.size, 3), jnp.float32),
                    jnp.zeros((), jnp.int32))

    return CycleGANState(params, optimizer.init(_generators(params)), optimizer.init(_discriminators(params)),
                      empty(), empty(), jnp.zeros((), jnp.int32))


def query_pool(pool: Pool, fakes: jax.Array, key: jax.Array) -> tuple[Pool, jax.Array]:
    """The images a discriminator is shown for `fakes` f32[B, h, w, 3], and the updated pool.

    Image by image: while the pool is not full, the fake is stored and shown; after that,
    with probability 1/2 a random stored image is shown and the fake takes its place,
    otherwise the fake itself is shown (Shrivastava et al. 2017, as CycleGAN uses it).
    """
    size = pool.images.shape[0]
    if size == 0:
        return pool, fakes

    def one(pool: Pool, item):
        fake, k = item
        k_swap, k_slot = jax.random.split(k)
        filling = pool.count < size
        swap = jax.random.bernoulli(k_swap) & ~filling
        slot = jnp.where(filling, pool.count, jax.random.randint(k_slot, (), 0, size))
        shown = jnp.where(swap, pool.images[slot], fake)
        store = filling | swap
        images = pool.images.at[slot].set(jnp.where(store, fake, pool.images[slot]))
        return Pool(images, jnp.minimum(pool.count + filling.astype(jnp.int32), size)), shown

    return jax.lax.scan(one, pool, (fakes, jax.random.split(key, fakes.shape[0])))


def _l1(x, y):
    return 2.0 * jnp.mean(jnp.abs(x - y))  # in [-1, 1] pixel units, as the paper's lambda assumes


def generator_loss(gen_params, disc_params, a, b, *, config, settings: CycleGANSettings, step=0):
    """(L_G, (terms f32[3] = adversarial, cycle, identity, unweighted; fake_b, fake_a)) at `step` i32[]."""
    fake_b = gan.generate_batch(config, gen_params["g_ab"], a)
    fake_a = gan.generate_batch(config, gen_params["g_ba"], b)
    adversarial = (jnp.mean(jnp.square(gan.discriminate_batch(config, disc_params["d_b"], fake_b) - 1.0))
                   + jnp.mean(jnp.square(gan.discriminate_batch(config, disc_params["d_a"], fake_a) - 1.0)))
    cycle = (_l1(gan.generate_batch(config, gen_params["g_ba"], fake_b), a)
             + _l1(gan.generate_batch(config, gen_params["g_ab"], fake_a), b))
    if settings.identity_weight > 0:
        identity = (_l1(gan.generate_batch(config, gen_params["g_ab"], b), b)
                    + _l1(gan.generate_batch(config, gen_params["g_ba"], a), a))
    else:
        identity = jnp.zeros(())
    total = adversarial + settings.cycle_weight_at(step) * (cycle + settings.identity_weight * identity)
    return total, (jnp.stack([adversarial, cycle, identity]), fake_b, fake_a)


def discriminator_loss(disc_params, a, b, shown_a, shown_b, *, config):
    """L_D_A + L_D_B: each 1/2 [mean (D(real) - 1)^2 + mean D(shown fake)^2]."""

    def one(params, real, fake):
        return 0.5 * (jnp.mean(jnp.square(gan.discriminate_batch(config, params, real) - 1.0))
                      + jnp.mean(jnp.square(gan.discriminate_batch(config, params, fake))))

    return one(disc_params["d_a"], a, shown_a) + one(disc_params["d_b"], b, shown_b)


@functools.lru_cache(maxsize=8)
def make_train_step(settings: CycleGANSettings) -> Callable:
    """(state, a f32[B, s, s, 3], b f32[B, s, s, 3]) -> (state, losses f32[5] in LOSS_NAMES order).

    Jitted, state donated. The generators' step, then the discriminators' on the pooled fakes.
    """
    config, optimizer = settings.config(), _optimizer(settings)

    def step(state: CycleGANState, a, b):
        params = state.params
        gen, disc = _generators(params), _discriminators(params)
        (g_loss, (terms, fake_b, fake_a)), g_grads = jax.value_and_grad(generator_loss, has_aux=True)(
            gen, disc, a, b, config=config, settings=settings, step=state.step)
        updates, g_opt = optimizer.update(g_grads, state.g_opt, gen)
        gen = optax.apply_updates(gen, updates)

        key_a, key_b = jax.random.split(jax.random.fold_in(jax.random.key(settings.seed), state.step))
        pool_a, shown_a = query_pool(state.pool_a, jax.lax.stop_gradient(fake_a), key_a)
        pool_b, shown_b = query_pool(state.pool_b, jax.lax.stop_gradient(fake_b), key_b)
        d_loss, d_grads = jax.value_and_grad(discriminator_loss)(disc, a, b, shown_a, shown_b, config=config)
        updates, d_opt = optimizer.update(d_grads, state.d_opt, disc)
        disc = optax.apply_updates(disc, updates)
        state = CycleGANState({**gen, **disc}, g_opt, d_opt, pool_a, pool_b, state.step + 1)
        return state, jnp.concatenate([jnp.stack([g_loss, d_loss]), terms])

    return jax.jit(step, donate_argnums=0)


def batch_size_for(settings: CycleGANSettings, devices: Sequence[jax.Device]) -> int:
    """The batch rounded up to a multiple of the device count."""
    return runtime.round_up(settings.batch_size, len(devices))


def photo_folders(a, b, settings: CycleGANSettings) -> tuple[PhotoFolder, PhotoFolder]:
    """Both domains' folders with independent crops; one clear error for the same folder twice."""
    if Path(a).resolve() == Path(b).resolve():
        raise JaxstyleError(f"--a and --b are the same folder ({a}); give one folder per domain")
    shortest, longest = (max(settings.size, round(settings.size * s))
                         for s in (settings.min_scale, settings.max_scale))
    return tuple(PhotoFolder(folder, size=settings.size, seed=2 * settings.seed + k, min_short_side=shortest,
                             max_short_side=longest) for k, folder in enumerate((a, b)))


def train(domain_a: PhotoFolder, domain_b: PhotoFolder, settings: CycleGANSettings, *,
          names: tuple[str, str] = ("a", "b"), resume: CycleGANState | None = None,
          callback: Callable[[runs.Progress], None] | None = None,
          devices: Sequence[jax.Device] | None = None) -> model_file.CycleGANModel:
    """Trains both generators and discriminators for `settings.steps` steps.

    Args:
      domain_a, domain_b: the two folders (`photo_folders`), cropped at `settings.size`.
      names: the domains' names stored in the model (e.g. the folders' names).
      resume: a state from a checkpoint: training continues after its step.
      callback: called after every step with a `runs.Progress`.
      devices: where each batch is sharded (default: all local devices).

    Returns:
      The model (both generators). Raises JaxstyleError if a loss becomes NaN or infinite.
    """
    devices = list(devices or jax.local_devices())
    batch = batch_size_for(settings, devices)
    state = resume if resume is not None else init_state(settings)
    start, step_fn = int(state.step), make_train_step(settings)
    batches = zip(domain_a.batches(start, settings.steps, batch), domain_b.batches(start, settings.steps, batch))
    state, _ = runs.run_steps(lambda state, ab: step_fn(state, *ab), state, batches, steps=settings.steps,
                              batch_size=batch, loss_names=LOSS_NAMES, devices=devices, callback=callback)
    params = jax.tree.map(np.asarray, _generators(state.params))
    return model_file.CycleGANModel(settings.config(), tuple(names), params)


@functools.partial(jax.jit, static_argnums=0)
def _generate_tiles(config: gan.CycleGANConfig, params, stats, windows):
    """One image's statistics, its windows f32[n, h, w, 3] -> f32[n, h, w, 3]."""
    return jax.vmap(lambda x: gan.generate(config, params, x, stats=stats))(windows)


def _program(model: model_file.CycleGANModel, direction: str):
    """(the jitted generator pass, its arguments before the images) for `direction`."""
    if direction not in ("a2b", "b2a"):
        raise JaxstyleError(f"--direction must be a2b or b2a, got {direction!r}")
    params = jax.device_put(model.params["g_ab" if direction == "a2b" else "g_ba"])
    return gan.generate_batch, (model.config, params)


def _plan(model: model_file.CycleGANModel, images: Sequence[np.ndarray], *, direction, size, batch_size, tile,
          thumbnail) -> tuple[int, int | None, tuple]:
    """(`tiles.plan`'s tile side and estimate, the generator's arguments before the images)."""
    forward, args = _program(model, direction)
    chosen, need = tiles.plan(forward, gan.generator_stats, _generate_tiles, args, layers.sized_shapes(images, size),
                              batch_size=batch_size, tile=tile, halo=tiles.halo_for(gan.generator_radius(model.config)),
                              thumbnail=thumbnail)
    return chosen, need, args


def apply(model: model_file.CycleGANModel, images: Sequence[np.ndarray], *, direction: str = "a2b",
          size: int | None = None, batch_size: int = 4, tile: int | None = None, thumbnail: int = tiles.THUMBNAIL,
          progress: Callable[[tiles.TileProgress], None] | None = None) -> list[np.ndarray]:
    """Translates each image f32[h, w, 3] in [0, 1] (A -> B for "a2b", B -> A for "b2a").

    Images are resized first so their longest side is `size` (if given), grouped by shape
    and run `batch_size` at a time (each shape compiles once). Returns f32[h', w', 3] each.
    `tile`, `thumbnail` and `progress` as `fast.apply`'s: by default an image too large to run whole
    runs in tiles. Sizes that would not fit in memory even so raise JaxstyleError before any image
    is resized.
    """
    tile, _, args = _plan(model, images, direction=direction, size=size, batch_size=batch_size, tile=tile,
                          thumbnail=thumbnail)
    if tile:
        return [result for result, _ in tiles.apply_each(
            functools.partial(gan.generator_stats, *args), functools.partial(_generate_tiles, *args), images,
            size=size, tile=tile, halo=tiles.halo_for(gan.generator_radius(model.config)), thumbnail=thumbnail,
            progress=progress)]
    inputs = [np.asarray(image_io.resize_longest(im, size) if size else im, np.float32) for im in images]
    return layers.map_by_shape(functools.partial(gan.generate_batch, *args), inputs, batch_size=batch_size)


def check_memory(model: model_file.CycleGANModel, images: Sequence[np.ndarray], *, direction: str = "a2b",
                 size: int | None = None, batch_size: int = 4, tile: int | None = None,
                 thumbnail: int = tiles.THUMBNAIL) -> int | None:
    """Raises JaxstyleError if `apply` with these arguments would not fit in memory, even tiled where
    `tile` allows it, before any work (`tiles.plan`); returns the estimated peak bytes (None off the
    CPU backend)."""
    return _plan(model, images, direction=direction, size=size, batch_size=batch_size, tile=tile,
                 thumbnail=thumbnail)[1]


def state_template(settings: CycleGANSettings) -> CycleGANState:
    """The structure a checkpoint is read into (shapes only; nothing is computed)."""
    return jax.eval_shape(lambda: init_state(settings))


def checkpoint_tag(settings: CycleGANSettings, batch: int, a: PhotoFolder, b: PhotoFolder) -> Mapping[str, Any]:
    """What a checkpoint must match to be resumed (not the step count: --steps may grow)."""
    return {"kind": model_file.CYCLEGAN_FORMAT, "settings": {**settings.to_dict(), "steps": None},
            "batch": batch, "a": [str(p) for p in a.files], "b": [str(p) for p in b.files]}
