"""Optical flow, warping, the consistency mask and the warping error (jaxstyle.video), against known
translations, NumPy indexing and hand-made flows."""

import numpy as np
import pytest
from video_clips import moving_frames

from jaxstyle.video import flow, metrics


def _texture(h=64, w=96, seed=0) -> np.ndarray:
    """A smooth random RGB texture f32[h, w, 3] in [0, 1] (periodic, so np.roll is a true translation)."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.standard_normal((h, w, 3)), axes=(0, 1))
    fy, fx = np.fft.fftfreq(h)[:, None, None], np.fft.fftfreq(w)[None, :, None]
    image = np.real(np.fft.ifft2(spectrum * np.exp(-(fx**2 + fy**2) * 2 * 4.0**2 * np.pi**2), axes=(0, 1)))
    return ((image - image.min()) / (image.max() - image.min())).astype(np.float32)


@pytest.mark.parametrize("dx, dy, method", [(3, -2, "dis-medium"), (-5, 1, "dis-medium"), (0, 0, "dis-medium"),
                                            (3, -2, "dis-fast"), (3, -2, "farneback")])
def test_flow_of_a_translation_is_that_translation_and_its_warp_recovers_the_frame(dx, dy, method):
    a = _texture()
    b = np.roll(a, (dy, dx), axis=(0, 1))  # b[y + dy, x + dx] = a[y, x]
    f = flow.optical_flow(a, b, method=method)
    inner = (slice(8, -8), slice(8, -8))
    np.testing.assert_allclose(np.median(f[inner], axis=(0, 1)), [dx, dy], atol=0.1)
    assert np.abs(f[inner] - [dx, dy]).mean() < 0.2
    assert np.abs(flow.warp(b, f)[inner] - a[inner]).mean() < 0.01


def test_warp_by_an_integer_flow_is_numpy_indexing():
    rng = np.random.default_rng(1)
    image = rng.random((12, 16, 3), dtype=np.float32)
    f = rng.integers(-3, 4, (12, 16, 2)).astype(np.float32)
    ys, xs = np.mgrid[0:12, 0:16]
    expected = image[np.clip(ys + f[..., 1].astype(int), 0, 11), np.clip(xs + f[..., 0].astype(int), 0, 15)]
    np.testing.assert_allclose(flow.warp(image, f), expected, atol=1e-6)
    half = np.full((12, 16, 2), [0.5, 0], np.float32)  # bilinear: halfway between two columns
    np.testing.assert_allclose(flow.warp(image, half)[:, :-1], (image[:, :-1] + image[:, 1:]) / 2, atol=1e-6)


def test_the_mask_drops_the_disoccluded_strip_and_the_motion_boundaries():
    """A 16x16 square moves 6 px right over a still background between frames t-1 and t."""
    h, w, x0, y0, side, move = 48, 64, 20, 16, 16, 6
    forward = np.zeros((h, w, 2), np.float32)  # from t-1: the square's pixels go 6 px right
    forward[y0:y0 + side, x0:x0 + side, 0] = move
    backward = np.zeros((h, w, 2), np.float32)  # from t: the square's new pixels came from 6 px left
    backward[y0:y0 + side, x0 + move:x0 + move + side, 0] = -move
    mask = flow.consistency_mask(backward, forward)
    rows = slice(y0 + 2, y0 + side - 2)
    # Disoccluded: background at t where the square was at t-1 (x0 .. x0 + 6): the forward flow there says
    # "moved 6 px right", the backward flow "stayed": they do not cancel.
    assert (mask[rows, x0:x0 + move] == 0).all()
    assert (mask[rows, x0 + move + 2:x0 + move + side - 2] == 1).all()  # inside the square: consistent
    assert (mask[y0 - 1:y0 + 1, x0 + move + 2:x0 + move + side - 2] == 0).all()  # its top edge: a boundary
    assert (mask[:y0 - 2] == 1).all() and (mask[:, x0 + move + side + 2:] == 1).all()  # still background


def test_a_static_clip_has_no_warping_error_and_a_flickering_one_has():
    frames = [f.astype(np.float32) / 255 for f in moving_frames(count=4, height=40, width=56)]
    still = [frames[0]] * 4
    assert metrics.warping_error(still, still) == 0.0
    assert metrics.warping_error(frames, frames) < 2e-3  # moving content, followed by the flow
    flicker = [np.clip(f + (0.1 if t % 2 else -0.1), 0, 1) for t, f in enumerate(frames)]
    expected = 3 * 0.2**2  # |O_t - O_{t-1}| = 0.2 in each of the 3 channels, wherever nothing is clipped
    assert metrics.warping_error(flicker, frames) == pytest.approx(expected, rel=0.2)
    errors = list(metrics.frame_errors(flicker, frames))
    assert len(errors) == 3


def test_the_warping_error_is_the_mean_over_kept_pixels_of_the_squared_difference():
    """Against the definition, written here: still originals (flow 0, mask 1), so warp(O_{t-1}) = O_{t-1}."""
    rng = np.random.default_rng(2)
    original = _texture(32, 48)
    outputs = [rng.random((32, 48, 3), dtype=np.float32) for _ in range(3)]
    expected = np.mean([np.mean(np.sum((outputs[t] - outputs[t - 1]) ** 2, axis=-1)) for t in (1, 2)])
    assert metrics.warping_error(outputs, [original] * 3) == pytest.approx(expected, rel=1e-5)


def test_a_cut_between_unrelated_frames_is_left_out_of_the_mean(monkeypatch):
    rng = np.random.default_rng(6)
    scene = [f.astype(np.float32) / 255 for f in moving_frames(count=3, seed=7)]
    cut = [*scene, *[f.astype(np.float32) / 255 for f in moving_frames(count=3, seed=8)]]
    outputs = [np.clip(f + rng.normal(0, 0.03, f.shape), 0, 1).astype(np.float32) for f in cut]
    mask = np.zeros((32, 48), np.float32)
    mask[0, :10] = 1  # what the flow happens to match across a cut: 10 pixels of 1536, under 1%
    real_mask = flow.consistency_mask
    calls = []

    def mask_with_a_cut(backward, forward):
        calls.append(1)
        return mask if len(calls) == 3 else real_mask(backward, forward)

    monkeypatch.setattr(flow, "consistency_mask", mask_with_a_cut)
    errors = list(metrics.frame_errors(outputs, cut))
    assert np.isnan(errors[2]) and np.isfinite(errors).sum() == 4
    calls.clear()
    assert metrics.warping_error(outputs, cut) == pytest.approx(np.nanmean(errors))


def test_smoothing_a_static_clip_is_the_running_blend_of_its_outputs():
    from jaxstyle.video import temporal

    still = [moving_frames(count=1, seed=3)[0].astype(np.float32) / 255] * 4
    rng = np.random.default_rng(4)
    outputs = [np.clip(still[0] + rng.normal(0, 0.05, still[0].shape), 0, 1).astype(np.float32) for _ in still]
    got = list(temporal.smoothed(outputs, still, 0.6))
    want = [outputs[0]]
    for output in outputs[1:]:  # no motion: the flow is 0 and the mask keeps every pixel
        want.append(output + 0.6 * (want[-1] - output))
    np.testing.assert_allclose(np.stack(got), np.stack(want), atol=2.5 / 255)
    assert np.abs(np.diff(np.stack(got), axis=0)).mean() < 0.6 * np.abs(np.diff(np.stack(outputs), axis=0)).mean()
    np.testing.assert_array_equal(np.stack(list(temporal.smoothed(outputs, still, 0.0))),
                                  np.round(np.stack(outputs) * 255) / 255)


def test_smoothing_carries_moving_content_along_the_flow_so_it_leaves_no_ghost():
    from jaxstyle.video import temporal

    frames = [f.astype(np.float32) / 255 for f in moving_frames(count=6, seed=5)]
    got = np.stack(list(temporal.smoothed(frames, frames, 0.5)))  # an identity network
    plain = np.stack([frames[0]] + [f + 0.5 * (p - f) for p, f in zip(frames, frames[1:])])  # blend, no flow
    inner = np.s_[:, 4:-4, 4:-4]  # the strip entering at the left edge has no earlier frame
    ghost, kept = np.abs(plain - np.stack(frames))[inner].mean(), np.abs(got - np.stack(frames))[inner].mean()
    assert kept < 0.25 * ghost and kept < 0.01, (kept, ghost)
