"""The paper's losses against NumPy references written here, under jax.jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle import losses

SHAPES = [(1, 1, 1), (5, 7, 3), (16, 12, 64), (9, 4, 130)]


def rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES)
def test_gram(shape):
    f = rand(shape, 0)
    expected = np.einsum("hwc,hwd->cd", f.astype(np.float64), f.astype(np.float64))
    np.testing.assert_allclose(jax.jit(losses.gram)(f), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
def test_gram_derivatives(shape):
    # The paper's eq. 6: dE/dF = F (G - A) / (N^2 M^2), here for the unnormalised
    # E = sum((G - A)^2), whose gradient is 4 F (G - A) with G symmetric.
    f, s = rand(shape, 5), rand(shape, 6)
    f64 = f.astype(np.float64).reshape(-1, shape[-1])
    g = f64.T @ f64
    a = np.einsum("hwc,hwd->cd", s.astype(np.float64), s.astype(np.float64))
    expected = (4 * f64 @ (g - a)).reshape(shape)
    got = jax.jit(jax.grad(lambda x: jnp.sum(jnp.square(losses.gram(x) - a.astype(np.float32)))))(f)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())
    # Forward mode: dG = F^T dF + dF^T F.
    df = rand(shape, 7)
    df64 = df.astype(np.float64).reshape(f64.shape)
    _, tangent = jax.jvp(losses.gram, (f,), (df,))
    np.testing.assert_allclose(tangent, f64.T @ df64 + df64.T @ f64, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
def test_content_loss(shape):
    f, p = rand(shape, 1), rand(shape, 2)
    expected = 0.5 * sum((a - b) ** 2 for a, b in zip(f.ravel().tolist(), p.ravel().tolist()))
    np.testing.assert_allclose(jax.jit(losses.content_loss)(f, p), expected, rtol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_style_layer_loss(shape):
    f, s = rand(shape, 3), rand(shape, 4)
    h, w, n = shape
    g = np.einsum("hwc,hwd->cd", f.astype(np.float64), f.astype(np.float64))
    a = np.einsum("hwc,hwd->cd", s.astype(np.float64), s.astype(np.float64))
    expected = ((g - a) ** 2).sum() / (4 * n**2 * (h * w) ** 2)
    got = jax.jit(losses.style_layer_loss)(f, a.astype(np.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_style_normaliser_does_not_overflow_at_real_sizes():
    """4 N^2 M^2 at conv1_1 of a 256x192 image is 4e13 > 2^31; the loss must stay exact."""
    f = np.full((192, 256, 64), 0.5, np.float32)
    a = np.zeros((64, 64), np.float32)
    # G_ij = M * 0.25 everywhere, so E = N^2 (M/4)^2 / (4 N^2 M^2) = 1/64 exactly.
    np.testing.assert_allclose(jax.jit(losses.style_layer_loss)(f, a), 1 / 64, rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1, 3), (4, 5, 3), (13, 8, 3)])
def test_total_variation(shape):
    x = rand(shape, 5).astype(np.float64)
    expected = 0.0
    h, w, c = shape
    for i in range(h):
        for j in range(w):
            if i + 1 < h:
                expected += ((x[i + 1, j] - x[i, j]) ** 2).sum()
            if j + 1 < w:
                expected += ((x[i, j + 1] - x[i, j]) ** 2).sum()
    np.testing.assert_allclose(jax.jit(losses.total_variation)(x.astype(np.float32)), expected, rtol=1e-5, atol=1e-6)
    # The same image in the top-left corner of a larger canvas, noise around it.
    canvas = rand((h + 3, w + 2, c), 8)
    canvas[:h, :w] = x
    valid = np.array([h, w], np.int32)
    np.testing.assert_allclose(jax.jit(losses.total_variation)(canvas, valid), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_style_loss_per_position_with_masks(shape):
    """sum_s b_s/(4 N^2) ||G_s - A_s||^2 with G_s = sum_k m_sk^2 F_k F_k^T / sum_k m_sk^2 (guided, per position)."""
    h, w, n = shape
    f, masks = rand(shape, 9), np.abs(rand((2, h, w), 10))
    grams, blend = rand((2, n, n), 11) / 10, np.array([0.3, 0.7], np.float32)
    f64 = f.astype(np.float64).reshape(-1, n)
    expected = 0.0
    for m, a, b in zip(masks.astype(np.float64).reshape(2, -1), grams, blend):
        g = (f64 * m[:, None] ** 2).T @ f64 / np.sum(m**2)
        expected += b * np.sum((g - a) ** 2) / (4 * n**2)
    got = jax.jit(lambda *a: losses.style_loss(*a, positions=float(h * w)))(f, grams, blend, masks)
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_targets_and_total_loss(tiny_params):
    rng = np.random.default_rng(6)
    content, style, image = (rng.random((24, 20, 3), dtype=np.float32) for _ in range(3))
    cw = {"conv4_2": 1.0}
    sw = losses.equal_weights(losses.STYLE_LAYERS)
    assert sw == {name: 0.2 for name in ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")}
    targets = losses.make_targets(tiny_params, content, style)
    assert set(targets.content) == {"conv4_2"} and set(targets.style) == set(sw)

    fn = jax.jit(lambda x, t, w: losses.total_loss(
        tiny_params, x, t, w, content_layer_weights=cw, style_layer_weights=sw))
    weights = losses.LossWeights(content=1e-3, style=1.0, tv=0.5)
    total, parts = fn(image, targets, weights)
    np.testing.assert_allclose(total, 1e-3 * parts.content + parts.style + 0.5 * parts.tv, rtol=1e-6)
    # The content image has zero content loss; the style image has zero style loss.
    assert parts.content > 0 and parts.style > 0
    assert fn(content, targets, weights)[1].content < 1e-9 * parts.content
    assert fn(style, targets, weights)[1].style < 1e-6 * parts.style
    # The whole-image call is the mask-free case of the canvas form.
    canvas = losses.canvas_targets(tiny_params, content, style[None], np.ones(1, np.float32))
    for a, b in zip(fn(image, canvas, weights)[1], parts):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_temporal_loss_is_the_masked_sum_of_squares():
    rng = np.random.default_rng(7)
    image, target = (rng.random((10, 12, 3), dtype=np.float32) for _ in range(2))
    mask = (rng.random((10, 12)) > 0.4).astype(np.float32)
    d = image.astype(np.float64) - target
    expected = sum(d[y, x, c] ** 2 for y in range(10) for x in range(12) for c in range(3) if mask[y, x])
    np.testing.assert_allclose(jax.jit(losses.temporal_loss)(image, target, mask), expected, rtol=1e-5)
    assert losses.temporal_loss(target, target, mask) == 0
