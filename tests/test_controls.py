"""Artistic controls: style presets, blends, guided Grams, style scale, colours, coarse-to-fine."""

import jax
import numpy as np
import numpy_reference as ref
import pytest
from conftest import random_params

from jaxstyle import color, losses, optim
from jaxstyle.errors import JaxstyleError

PARAMS = random_params(seed=5, width=8)
RNG = np.random.default_rng(9)
CONTENT = RNG.random((40, 48, 3), dtype=np.float32)
STYLE_A = RNG.random((40, 48, 3), dtype=np.float32)
STYLE_B = RNG.random((40, 48, 3), dtype=np.float32) ** 3
BASE = optim.Settings(size=48, steps=4, init="noise", content_weight=1.0, style_weight=1e3)


def test_style_presets_are_the_papers_cumulative_rows():
    assert optim.Settings(style_layers="upto-conv1_1").style_layers == ("conv1_1",)
    assert optim.Settings(style_layers="upto-conv3_1").style_layers == ("conv1_1", "conv2_1", "conv3_1")
    assert optim.Settings(style_layers="upto-conv5_1").style_layers == losses.STYLE_LAYERS


def test_guided_gram_against_numpy():
    f = RNG.standard_normal((6, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(losses.guided_gram(f, np.ones((6, 5), np.float32)),
                               np.einsum("hwc,hwd->cd", f, f), rtol=1e-5, atol=1e-5)
    mask = np.zeros((6, 5), np.float32)
    mask[:, :2] = 1.0
    region = f[:, :2]
    expected = np.einsum("hwc,hwd->cd", region, region) * (30 / 12)
    np.testing.assert_allclose(losses.guided_gram(f, mask), expected, rtol=1e-5, atol=1e-5)


def test_blend_weights_weigh_each_styles_loss():
    cw, sw = {"conv4_2": 1.0}, losses.equal_weights(losses.STYLE_LAYERS)
    fn = jax.jit(lambda t: losses.loss_parts(PARAMS, CONTENT, t, content_layer_weights=cw,
                                             style_layer_weights=sw).style)
    only_a = fn(losses.make_targets(PARAMS, CONTENT, [STYLE_A]))
    only_b = fn(losses.make_targets(PARAMS, CONTENT, [STYLE_B]))
    mixed = fn(losses.make_targets(PARAMS, CONTENT, [STYLE_A, STYLE_B], blend=[0.25, 0.75]))
    np.testing.assert_allclose(mixed, 0.25 * only_a + 0.75 * only_b, rtol=1e-5)


def test_style_grams_of_another_size_are_rescaled_to_the_contents_positions():
    style = RNG.random((80, 96, 3), dtype=np.float32)
    targets = losses.make_targets(PARAMS, CONTENT, [style], style_layers=("conv1_1", "conv3_1"))
    expected = ref.forward(PARAMS, style, "avg", upto="conv3_1")
    for name, (h, w) in (("conv1_1", (40, 48)), ("conv3_1", (10, 12))):
        f = expected[name]
        a = np.einsum("hwc,hwd->cd", f, f) * (h * w) / (f.shape[0] * f.shape[1])
        np.testing.assert_allclose(targets.style[name][0], a, rtol=1e-3, atol=1e-3 * np.abs(a).max())


def test_style_scale_sets_the_style_size():
    problem = optim.prepare(optim.make_task(CONTENT, STYLE_A, BASE.replace(style_scale=1.5)), BASE.size)
    assert problem.content.shape == (40, 48, 3) and problem.styles[0].shape == (60, 72, 3)


def test_luminance_mode_keeps_the_contents_colours():
    settings = BASE.replace(preserve_colors="luminance", init="content", steps=3)
    content = 0.25 + 0.5 * CONTENT  # stays clear of clipping after recombination
    result = optim.stylize(PARAMS, content, STYLE_A, settings)
    np.testing.assert_allclose(color.to_yiq(result.image)[..., 1:], color.to_yiq(content)[..., 1:], atol=0.03)
    assert not np.allclose(result.image, content, atol=1e-3)


def test_histogram_mode_transfers_with_the_contents_colour_statistics():
    problem = optim.prepare(optim.make_task(CONTENT, STYLE_B, BASE.replace(preserve_colors="histogram")),
                               BASE.size)
    pixels = problem.styles[0].reshape(-1, 3)
    np.testing.assert_allclose(pixels.mean(0), CONTENT.reshape(-1, 3).mean(0), atol=0.03)


def test_coarse_to_fine_starts_each_scale_from_the_previous_result():
    # 96 px: the coarse scale is BASE's size, whose program the tests above compiled.
    single, multi = [], []
    optim.stylize(PARAMS, CONTENT, STYLE_A, BASE.replace(size=96, steps=3), callback=single.append)
    result = optim.stylize(PARAMS, CONTENT, STYLE_A, BASE.replace(size=96, steps=3, scales=2),
                              callback=multi.append)
    assert optim.scale_sizes(BASE.replace(size=96, scales=2)) == [48, 96]
    assert [p.step for p in multi] == [1, 2, 3, 1, 2, 3] and result.steps == 6
    assert result.image.shape == (80, 96, 3)
    # At full size, the multi-scale run starts from the upsampled coarse result, not from noise.
    assert float(multi[3].total[0]) < 0.8 * float(single[0].total[0])


def test_masks_need_one_per_style():
    with pytest.raises(JaxstyleError, match="one mask per style"):
        optim.make_task(CONTENT, [STYLE_A, STYLE_B], BASE, masks=[np.ones((4, 4))])


@pytest.mark.real_weights
def test_two_region_mask_paints_each_half_with_its_style(real_params):
    """Left half from a red texture, right half from a blue one: each half takes its colour."""
    gray = np.full((48, 48, 3), 0.5, np.float32)
    stripes = (np.indices((48, 48)).sum(0) % 8 < 4).astype(np.float32)[..., None]
    red = np.concatenate([0.5 + 0.5 * stripes, 0.1 * stripes, 0.1 * stripes], -1).astype(np.float32)
    blue = red[..., ::-1].copy()
    left = np.zeros((48, 48), np.float32)
    left[:, :24] = 1.0
    settings = optim.Settings(size=48, steps=40, init="noise")
    out = optim.stylize(real_params, gray, [red, blue], settings, masks=[left, 1 - left]).image
    lhs, rhs = out[:, 3:21].reshape(-1, 3).mean(0), out[:, 27:45].reshape(-1, 3).mean(0)
    assert lhs[0] > lhs[2] + 0.1 and rhs[2] > rhs[0] + 0.1, (lhs, rhs)
