"""Colour control for style transfer (Gatys et al., "Preserving Color in Neural
Artistic Style Transfer", 2016; "Controlling Perceptual Factors in Neural Style
Transfer", CVPR 2017, section 5).

Two ways to keep the content's colours:

* "histogram": before the transfer, each style image is recoloured by an affine
  map so that its pixels have the content's colour mean and covariance.
* "luminance": the transfer runs on luminance only (gray images), and the
  content's chroma is put back on the result afterwards.

NumPy only. Images are float32 ``[h, w, 3]`` RGB in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxstyle.errors import JaxstyleError

PRESERVE_COLORS: tuple[str, ...] = ("none", "luminance", "histogram")

# NTSC (FCC 1953) RGB -> YIQ. The I and Q rows sum to zero, so gray has no chroma.
_RGB_TO_YIQ = np.array(
    [
        [0.299, 0.587, 0.114],
        [0.596, -0.274, -0.322],
        [0.211, -0.523, 0.312],
    ]
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)

# Added to (co)variances so a flat image gives a finite map instead of dividing by
# zero. Far below the variance of one 8-bit step, (1/255)^2 ~ 1.5e-5, so it leaves
# the statistics of real images (even low-contrast ones) matched to ~1e-4 relative.
_EPS = 1e-7


def _check_rgb(image: np.ndarray, name: str) -> None:
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"{name} must have shape [h, w, 3], got {image.shape}")


def to_yiq(rgb: np.ndarray) -> np.ndarray:
    """Converts RGB to NTSC YIQ.

    Args:
      rgb: f32[h, w, 3] in [0, 1].

    Returns:
      f32[h, w, 3]: Y (luminance, in [0, 1]), I and Q (chroma, zero for gray).
    """
    rgb = np.asarray(rgb)
    _check_rgb(rgb, "rgb")
    return (rgb @ _RGB_TO_YIQ.T).astype(np.float32)


def from_yiq(yiq: np.ndarray) -> np.ndarray:
    """Converts NTSC YIQ back to RGB with the exact inverse of `to_yiq`.

    Args:
      yiq: f32[h, w, 3].

    Returns:
      f32[h, w, 3] RGB, not clipped.
    """
    yiq = np.asarray(yiq)
    _check_rgb(yiq, "yiq")
    return (yiq @ _YIQ_TO_RGB.T).astype(np.float32)


def _sym_power(matrix: np.ndarray, power: float) -> np.ndarray:
    """`matrix ** power` for a symmetric positive definite matrix, via eigendecomposition."""
    eigvals, eigvecs = np.linalg.eigh(matrix)
    eigvals = np.maximum(eigvals, _EPS)  # rounding can push the smallest just below eps
    return (eigvecs * eigvals**power) @ eigvecs.T


def _mean_cov(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour mean f64[3] and population covariance f64[3, 3] (plus eps on the diagonal)."""
    pixels = image.reshape(-1, 3).astype(np.float64)
    mean = pixels.mean(axis=0)
    centred = pixels - mean
    cov = centred.T @ centred / len(pixels) + _EPS * np.eye(3)
    return mean, cov


def match_color_histogram(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Recolours the style image to the content's colour mean and covariance.

    x' = A (x - mu_s) + mu_c with A = Sigma_c^{1/2} Sigma_s^{-1/2} (symmetric
    square roots), so that A Sigma_s A^T = Sigma_c: the paper's "image
    analogies" variant of the colour transfer.

    Args:
      style: f32[hs, ws, 3] in [0, 1].
      content: f32[hc, wc, 3] in [0, 1]; its size may differ from the style's.

    Returns:
      f32[hs, ws, 3], clipped to [0, 1].
    """
    style, content = np.asarray(style), np.asarray(content)
    _check_rgb(style, "style")
    _check_rgb(content, "content")
    mean_s, cov_s = _mean_cov(style)
    mean_c, cov_c = _mean_cov(content)
    transform = _sym_power(cov_c, 0.5) @ _sym_power(cov_s, -0.5)
    matched = (style.astype(np.float64) - mean_s) @ transform.T + mean_c
    return np.clip(matched, 0.0, 1.0).astype(np.float32)


def _gray(luminance: np.ndarray) -> np.ndarray:
    """f32[h, w] -> f32[h, w, 3] with the value in all three channels."""
    return np.repeat(luminance[..., None], 3, axis=-1).astype(np.float32)


def luminance_only(style: np.ndarray, content: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The gray inputs of luminance-only transfer.

    The style's luminance is mapped affinely to the content's luminance mean and
    standard deviation, L' = sigma_c / sigma_s (L - mu_s) + mu_c, so that the
    style's brightness and contrast do not leak into the result.

    Args:
      style: f32[hs, ws, 3] in [0, 1].
      content: f32[hc, wc, 3] in [0, 1]; its size may differ from the style's.

    Returns:
      (style_gray f32[hs, ws, 3], content_gray f32[hc, wc, 3]): luminance in all
      three channels, in [0, 1].
    """
    lum_s = to_yiq(style)[..., 0].astype(np.float64)
    lum_c = to_yiq(content)[..., 0].astype(np.float64)
    scale = np.sqrt((lum_c.var() + _EPS) / (lum_s.var() + _EPS))
    matched = (lum_s - lum_s.mean()) * scale + lum_c.mean()
    return _gray(np.clip(matched, 0.0, 1.0)), _gray(lum_c)


def recombine_luminance(result: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The result's luminance with the content's chroma.

    Args:
      result: f32[h, w, 3], the stylised (gray) image.
      content: f32[h, w, 3], the original colour content at the result's size.

    Returns:
      f32[h, w, 3] RGB, clipped to [0, 1].

    Raises:
      ValueError: the shapes differ.
    """
    result, content = np.asarray(result), np.asarray(content)
    if result.shape != content.shape:
        raise ValueError(f"result {result.shape} and content {content.shape} must have the same shape")
    yiq = to_yiq(content)
    yiq[..., 0] = to_yiq(result)[..., 0]
    return np.clip(from_yiq(yiq), 0.0, 1.0)


def _check_mode(mode: str) -> None:
    if mode not in PRESERVE_COLORS:
        raise JaxstyleError(
            f"Unknown colour mode {mode!r}: choose one of {', '.join(PRESERVE_COLORS)}."
        )


def prepare_colors(
    mode: str, content: np.ndarray, styles: Sequence[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Applies a colour mode's preprocessing to the transfer's inputs.

    Args:
      mode: one of `PRESERVE_COLORS`.
      content: f32[h, w, 3] in [0, 1].
      styles: style images f32[hs, ws, 3] in [0, 1], any sizes.

    Returns:
      (content, styles) to run the transfer on: unchanged for "none"; styles
      recoloured to the content for "histogram"; all replaced by gray luminance
      images (styles matched to the content's luminance) for "luminance".

    Raises:
      JaxstyleError: `mode` is not one of `PRESERVE_COLORS`.
    """
    _check_mode(mode)
    if mode == "histogram":
        return content, [match_color_histogram(style, content) for style in styles]
    if mode == "luminance":
        pairs = [luminance_only(style, content) for style in styles]
        content_gray = _gray(to_yiq(content)[..., 0])
        return content_gray, [style_gray for style_gray, _ in pairs]
    return content, list(styles)


def finish_colors(mode: str, result: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Applies a colour mode's postprocessing to the transfer's result.

    Args:
      mode: one of `PRESERVE_COLORS`.
      result: f32[h, w, 3], the stylised image.
      content: f32[h, w, 3], the original colour content at the result's size.

    Returns:
      f32[h, w, 3]: `result` unchanged, or for "luminance" its luminance with the
      content's chroma.

    Raises:
      JaxstyleError: `mode` is not one of `PRESERVE_COLORS`.
    """
    _check_mode(mode)
    if mode == "luminance":
        return recombine_luminance(result, content)
    return result
