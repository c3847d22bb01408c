"""The paper's normalised VGG-19 (jaxstyle.io.normalize), checked with the NumPy reference forward pass."""

import copy
import hashlib
import json

import numpy as np
import numpy_reference as ref
import pytest
from conftest import DATA, REAL_WEIGHTS, random_params
from PIL import Image

from jaxstyle import cli, vgg
from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io, normalize, weights

SHAPES = ((32, 40), (40, 36))  # different sizes on purpose; conv5 sees 2x2 positions.


def random_images(seed, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [rng.random((*shape, 3), dtype=np.float32) for shape in shapes]


def reference_means(params, images, pooling, upto="conv5_4"):
    """Each image's per-channel mean over positions, averaged over images, in float64 NumPy."""
    acts = [ref.forward(params, image, pooling, upto=upto) for image in images]
    return {name: np.mean([a[name].mean(axis=(0, 1)) for a in acts], axis=0) for name in acts[0]}


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_normalised_means_are_one_and_features_are_rescaled(pooling):
    params, images = random_params(seed=3), random_images(0)
    before = copy.deepcopy(params)
    means = normalize.mean_activations(params, images, pooling=pooling)
    original = reference_means(params, images, pooling)
    for name in ref.CONVS:
        np.testing.assert_allclose(means[name], original[name], rtol=1e-4, atol=1e-7, err_msg=name)

    new = normalize.normalize_params(params, means)
    got = reference_means(new, images, pooling)
    for name in ref.CONVS:
        expected = np.where(original[name] > 0, 1.0, 0.0)
        np.testing.assert_allclose(got[name], expected, rtol=1e-4, atol=1e-7, err_msg=name)
    assert sum(int(np.sum(m > 0)) for m in original.values()) > 0.8 * 16 * 4  # else the check says little

    # On an image the means were not measured on, every layer is the original over d.
    other = np.random.default_rng(9).random((35, 29, 3), dtype=np.float32)
    plain = ref.forward(params, other, pooling, upto="conv5_4")
    scaled = ref.forward(new, other, pooling, upto="conv5_4")
    d = normalize.divisors(means)
    conv_of = {**{c: c for c in ref.CONVS}, **{pool: conv for conv, pool in vgg.POOL_AFTER.items()}}
    for name in plain:
        expected = plain[name] / d[conv_of[name]]
        np.testing.assert_allclose(scaled[name], expected, rtol=1e-4, atol=1e-6, err_msg=name)

    assert new["input"] is params["input"]
    for name in before:  # normalize_params is pure
        for key in before[name]:
            np.testing.assert_array_equal(params[name][key], before[name][key])


def test_dead_filter_keeps_factor_one():
    params, images = random_params(seed=3), random_images(0)
    params["conv2_1"]["bias"][1] = -1e4  # never fires
    means = normalize.mean_activations(params, images)
    assert means["conv2_1"][1] == 0
    new = normalize.normalize_params(params, means)
    assert all(np.isfinite(v).all() for layer in new.values() for v in layer.values())
    assert normalize.divisors(means)["conv2_1"][1] == 1
    assert new["conv2_1"]["bias"][1] == params["conv2_1"]["bias"][1]
    previous = normalize.divisors(means)["conv1_2"]
    np.testing.assert_allclose(
        new["conv2_1"]["kernel"][..., 1], params["conv2_1"]["kernel"][..., 1] * previous, rtol=1e-6
    )
    got = reference_means(new, images, "avg", upto="conv2_2")
    assert got["conv2_1"][1] == 0 and np.isfinite(got["conv2_2"]).all()
    np.testing.assert_allclose(np.delete(got["conv2_1"], 1), 1.0, rtol=1e-4)


def test_image_files_keeps_what_pillow_reads_sorted(tmp_path):
    for name in ("b.png", "a.jpg"):
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in normalize.image_files(tmp_path)] == ["a.jpg", "b.png"]


@pytest.mark.parametrize("make", [lambda d: None, lambda d: (d / "readme.md").write_text("hi")])
def test_cli_refuses_a_folder_without_images(tmp_path, capsys, make):
    folder = tmp_path / "images"
    folder.mkdir()
    make(folder)
    code = cli.main(["weights", "normalize", "--images", str(folder), "--output", str(tmp_path / "n.h5")])
    err = capsys.readouterr().err
    assert code == 2 and "holds no image" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "n.h5").exists()


@pytest.fixture(scope="module")
def real_normalized(tmp_path_factory):
    images = [DATA / "tubingen.jpg", DATA / "starry_night.jpg"]
    out = tmp_path_factory.mktemp("normalized") / "vgg19_normalized.h5"
    path, report = normalize.normalize_file(REAL_WEIGHTS, out, images=images, size=64)
    return path, report, images


@pytest.mark.real_weights
def test_real_weights_normalised_means_are_one(real_normalized):
    path, report, images = real_normalized
    params = weights.load_params(path)
    layers = ("conv1_1", "conv3_1", "conv5_1")
    # vgg.features rather than the NumPy reference: the same check, many times faster at VGG's width.
    acts = [vgg.features(params, image_io.load_image(image, size=64), layers=layers) for image in images]
    means = {name: np.mean([np.asarray(a[name]).mean(axis=(0, 1)) for a in acts], axis=0) for name in layers}
    for name in layers:
        dead = means[name] == 0
        assert dead.sum() == report["dead_per_layer"][name], name
        np.testing.assert_allclose(means[name][~dead], 1.0, rtol=1e-3, err_msg=name)
    assert report["layers"] == 16 and 0 < report["min_factor"] <= report["max_factor"]


@pytest.mark.real_weights
def test_real_weights_provenance_and_no_double_normalisation(real_normalized, tmp_path):
    path, report, images = real_normalized
    attrs, source = weights.read_attrs(path), weights.read_attrs(REAL_WEIGHTS)
    for key in ("source_format", "source_sha256", "input_convention"):
        assert attrs[key] == source[key], key
    assert attrs["normalized"] is True
    assert attrs["normalized_from_sha256"] == hashlib.sha256(REAL_WEIGHTS.read_bytes()).hexdigest()
    assert json.loads(attrs["normalization_images"]) == [image.name for image in images]
    assert attrs["normalization_size"] == 64 and attrs["normalization_pooling"] == "avg"
    with pytest.raises(JaxstyleError, match="already normalised"):
        normalize.normalize_file(path, tmp_path / "again.h5", images=images, size=64)


@pytest.mark.real_weights
def test_real_weights_too_small_an_image_is_refused(tmp_path):
    images = [DATA / "starry_night.jpg"]  # 48x30 px at size 48: under vgg.MIN_SIDE (32)
    with pytest.raises(JaxstyleError, match=f"too small.*at least {vgg.MIN_SIDE} px"):
        normalize.normalize_file(REAL_WEIGHTS, tmp_path / "n.h5", images=images, size=48)


@pytest.mark.real_weights
def test_real_weights_cli(tmp_path, capsys):
    out = tmp_path / "cli.h5"
    # 64 px: the widest bundled image (starry_night.jpg, 1024x640) is then 40 px high, over vgg.MIN_SIDE.
    code = cli.main(["weights", "normalize", "--weights", str(REAL_WEIGHTS), "--output", str(out), "--size", "64"])
    printed = capsys.readouterr().out
    assert code == 0 and "16 layers on 4 images at 64 px" in printed and str(out) in printed
    attrs = weights.read_attrs(out)
    assert json.loads(attrs["normalization_images"]) == list(normalize.BUNDLED_IMAGES)
    assert attrs["normalization_size"] == 64
