"""Tests for jaxstyle.color against statistics computed here with NumPy on synthetic images."""

import numpy as np
import pytest

from jaxstyle import color
from jaxstyle.errors import JaxstyleError

# ITU-R BT.601 / NTSC luma coefficients, written out independently of the module.
LUMA = np.array([0.299, 0.587, 0.114])


def _uniform(seed, shape, low=0.2, high=0.8):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def _correlated(seed, shape):
    """Colours with correlated channels, well inside (0.35, 0.65): convex mixes of uniforms."""
    mix = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]])
    return (0.35 + 0.3 * _uniform(seed, shape, 0.0, 1.0) @ mix.T).astype(np.float32)


def _stats(image):
    pixels = image.reshape(-1, 3).astype(np.float64)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False, bias=True)


def _luma(image):
    return image.astype(np.float64) @ LUMA


def test_yiq_round_trip_is_identity():
    rgb = _uniform(0, (9, 7, 3), 0.0, 1.0)
    np.testing.assert_allclose(color.from_yiq(color.to_yiq(rgb)), rgb, atol=1e-6)


@pytest.mark.parametrize(
    "rgb, luma", [((1, 1, 1), 1.0), ((0, 0, 0), 0.0), ((1, 0, 0), 0.299), ((0, 1, 0), 0.587), ((0, 0, 1), 0.114)]
)
def test_yiq_luminance_of_primaries(rgb, luma):
    yiq = color.to_yiq(np.full((2, 3, 3), rgb, np.float32))
    np.testing.assert_allclose(yiq[..., 0], luma, atol=1e-6)


def test_yiq_gray_has_no_chroma():
    gray = np.full((2, 2, 3), 0.4, np.float32)
    np.testing.assert_allclose(color.to_yiq(gray)[..., 1:], 0.0, atol=1e-6)


@pytest.mark.parametrize("style_shape, content_shape", [((16, 16, 3), (16, 16, 3)), ((17, 23, 3), (31, 11, 3))])
def test_histogram_matches_content_mean_and_covariance(style_shape, content_shape):
    style, content = _uniform(1, style_shape), _correlated(2, content_shape)
    matched = color.match_color_histogram(style, content)
    assert matched.shape == style_shape and matched.dtype == np.float32
    assert 0.0 < matched.min() and matched.max() < 1.0  # nothing clipped, so the match is exact
    mean_m, cov_m = _stats(matched)
    mean_c, cov_c = _stats(content)
    np.testing.assert_allclose(mean_m, mean_c, atol=1e-6)
    np.testing.assert_allclose(cov_m, cov_c, atol=1e-6)  # entries ~1e-3 to 4e-3


def test_histogram_output_is_clipped_to_unit_range():
    style = _uniform(3, (12, 12, 3), 0.0, 1.0)
    content = np.random.default_rng(4).choice([0.0, 1.0], (12, 12, 3)).astype(np.float32)
    matched = color.match_color_histogram(style, content)
    assert matched.min() >= 0.0 and matched.max() <= 1.0


def test_luminance_only_matches_content_luminance_and_is_gray():
    style, content = _uniform(5, (13, 19, 3)), _uniform(6, (21, 8, 3), 0.4, 0.6)
    style_gray, content_gray = color.luminance_only(style, content)
    assert style_gray.shape == style.shape and content_gray.shape == content.shape
    for gray in (style_gray, content_gray):
        assert gray.dtype == np.float32
        np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
        np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    np.testing.assert_allclose(content_gray[..., 0], _luma(content), atol=1e-6)
    lum_s, lum_c = style_gray[..., 0].astype(np.float64), _luma(content)
    np.testing.assert_allclose(lum_s.mean(), lum_c.mean(), atol=1e-6)
    np.testing.assert_allclose(lum_s.std(), lum_c.std(), rtol=2e-4)  # eps shifts it by ~3e-5


def test_recombine_keeps_result_luminance_and_content_chroma():
    result = _uniform(7, (10, 12, 3), 0.4, 0.6)
    content = _uniform(8, (10, 12, 3), 0.4, 0.6)
    out = color.recombine_luminance(result, content)
    assert out.shape == content.shape and out.dtype == np.float32
    np.testing.assert_allclose(_luma(out), _luma(result), atol=1e-5)
    np.testing.assert_allclose(color.to_yiq(out)[..., 1:], color.to_yiq(content)[..., 1:], atol=1e-5)
    # Changing only Y moves all three channels equally (gray carries no chroma).
    expected = content + (_luma(result) - _luma(content))[..., None]
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_recombine_rejects_different_shapes():
    with pytest.raises(ValueError, match="same shape"):
        color.recombine_luminance(np.zeros((4, 4, 3), np.float32), np.zeros((4, 5, 3), np.float32))


@pytest.mark.parametrize("flat", ["style", "content", "both"])
def test_constant_colour_images_stay_finite(flat):
    constant = np.full((6, 6, 3), (0.7, 0.2, 0.4), np.float32)
    varied = _uniform(9, (6, 6, 3))
    style = constant if flat in ("style", "both") else varied
    content = constant if flat in ("content", "both") else varied
    outputs = [color.match_color_histogram(style, content), *color.luminance_only(style, content)]
    outputs.append(color.recombine_luminance(outputs[0], content))
    for out in outputs:
        assert np.isfinite(out).all()
    if flat == "style":  # a flat style can only become the content's mean colour
        np.testing.assert_allclose(outputs[0], np.broadcast_to(varied.mean(axis=(0, 1)), style.shape), atol=1e-6)


def test_prepare_and_finish_colors():
    content, styles = _correlated(10, (8, 8, 3)), [_uniform(11, (9, 7, 3)), _uniform(12, (5, 6, 3))]

    same_content, same_styles = color.prepare_colors("none", content, styles)
    assert same_content is content and all(a is b for a, b in zip(same_styles, styles))

    hist_content, hist_styles = color.prepare_colors("histogram", content, styles)
    assert hist_content is content
    for style, matched in zip(styles, hist_styles):
        np.testing.assert_allclose(matched, color.match_color_histogram(style, content))

    lum_content, lum_styles = color.prepare_colors("luminance", content, styles)
    np.testing.assert_allclose(lum_content, np.repeat(_luma(content)[..., None], 3, -1), atol=1e-6)
    for style, gray in zip(styles, lum_styles):
        np.testing.assert_allclose(gray, color.luminance_only(style, content)[0])

    result = _uniform(13, (8, 8, 3))
    assert color.finish_colors("none", result, content) is result
    assert color.finish_colors("histogram", result, content) is result
    np.testing.assert_allclose(color.finish_colors("luminance", result, content),
                               color.recombine_luminance(result, content))


@pytest.mark.parametrize("call", [
    lambda c: color.prepare_colors("sepia", c, [c]),
    lambda c: color.finish_colors("sepia", c, c),
])
def test_unknown_mode_raises(call):
    with pytest.raises(JaxstyleError, match="none, luminance, histogram"):
        call(np.zeros((4, 4, 3), np.float32))
