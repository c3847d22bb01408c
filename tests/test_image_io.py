"""Tests for jaxstyle.io.image_io: every expectation is built independently of the code under test."""

import os
import stat

import numpy as np
import pytest
from conftest import DATA
from PIL import Image, ImageFile

from jaxstyle.errors import JaxstyleError
from jaxstyle.io import image_io, plots

RED, BLUE = (255, 0, 0), (0, 0, 255)
EXIF_ORIENTATION = 0x0112


def _write(tmp_path, name, img, **options):
    path = tmp_path / name
    img.save(path, **options)
    return path


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def _palette_image():
    img = Image.new("P", (4, 3), 0)
    img.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    img.putpixel((1, 1), 1)
    return img


# --------------------------------------------------------------------------
# Mode conversion: each case writes a file whose RGB values we know.
# --------------------------------------------------------------------------

MODE_CASES = {
    # name: (image factory, file name, save options, {(row, col): expected RGB floats})
    "L": (lambda: Image.new("L", (4, 3), 128), "l.png", {}, {(0, 0): (128 / 255,) * 3}),
    "1-bit": (
        lambda: _put(Image.new("1", (4, 3), 0), (2, 1), 1),
        "bw.png",
        {},
        {(0, 0): (0, 0, 0), (1, 2): (1, 1, 1)},
    ),
    "LA": (
        lambda: Image.new("LA", (4, 3), (0, 128)),
        "la.png",
        {},
        {(0, 0): (1 - 128 / 255,) * 3},  # black at alpha 128/255 over white
    ),
    "L with tRNS": (
        lambda: _put(Image.new("L", (4, 3), 50), (0, 0), 0),
        "ltrns.png",
        {"transparency": 0},
        {(0, 0): (1, 1, 1), (2, 3): (50 / 255,) * 3},
    ),
    "I;16": (
        lambda: Image.fromarray(np.array([[65535, 32768], [0, 1]], dtype=np.uint16)),
        "i16.png",
        {},
        {(0, 0): (1, 1, 1), (0, 1): (32768 / 65535,) * 3, (1, 0): (0, 0, 0)},
    ),
    "I;16B": (
        lambda: Image.frombytes(
            "I;16B", (2, 1), np.array([65535, 13107], dtype=">u2").tobytes()
        ),
        "i16b.tif",
        {},
        {(0, 0): (1, 1, 1), (0, 1): (0.2, 0.2, 0.2)},
    ),
    "I 16-bit range": (
        lambda: Image.fromarray(np.array([[65535, 0, 13107]], dtype=np.int32)),
        "i32.tif",
        {},
        {(0, 0): (1, 1, 1), (0, 2): (0.2, 0.2, 0.2)},
    ),
    "I wide range": (
        lambda: Image.fromarray(np.array([[-100, 100, 300]], dtype=np.int32)),
        "i32wide.tif",
        {},
        {(0, 0): (0, 0, 0), (0, 1): (0.5, 0.5, 0.5), (0, 2): (1, 1, 1)},
    ),
    "F in [0, 1]": (
        lambda: Image.fromarray(np.array([[0.25, 1.0]], dtype=np.float32)),
        "f.tif",
        {},
        {(0, 0): (0.25,) * 3, (0, 1): (1, 1, 1)},
    ),
    "F wide range": (
        lambda: Image.fromarray(np.array([[-1.0, 1.0, 3.0]], dtype=np.float32)),
        "fwide.tif",
        {},
        {(0, 0): (0, 0, 0), (0, 1): (0.5, 0.5, 0.5), (0, 2): (1, 1, 1)},
    ),
    "P": (
        _palette_image,
        "p.png",
        {},
        {(0, 0): (10 / 255, 20 / 255, 30 / 255), (1, 1): (200 / 255, 100 / 255, 50 / 255)},
    ),
    "P with transparency": (
        _palette_image,
        "ptrns.png",
        {"transparency": 0},
        {(0, 0): (1, 1, 1), (1, 1): (200 / 255, 100 / 255, 50 / 255)},
    ),
    "P GIF with transparency": (
        _palette_image,
        "ptrns.gif",
        {"transparency": 0},
        {(0, 0): (1, 1, 1), (1, 1): (200 / 255, 100 / 255, 50 / 255)},
    ),
    "RGB": (
        lambda: Image.new("RGB", (4, 3), (10, 128, 250)),
        "rgb.png",
        {},
        {(2, 3): (10 / 255, 128 / 255, 250 / 255)},
    ),
    "RGBA": (
        lambda: _put(Image.new("RGBA", (4, 3), (255, 0, 0, 0)), (1, 0), (0, 0, 255, 255)),
        "rgba.png",
        {},
        {(0, 0): (1, 1, 1), (0, 1): (0, 0, 1)},
    ),
    "RGBA half": (
        lambda: Image.new("RGBA", (4, 3), (0, 0, 0, 51)),
        "rgbahalf.png",
        {},
        {(0, 0): (0.8, 0.8, 0.8)},
    ),
    "CMYK": (
        lambda: _put(Image.new("CMYK", (4, 3), (0, 255, 255, 0)), (3, 2), (0, 0, 0, 255)),
        "cmyk.tif",
        {},
        {(0, 0): (1, 0, 0), (2, 3): (0, 0, 0)},
    ),
}


def _put(img, xy, value):
    img.putpixel(xy, value)
    return img


@pytest.mark.parametrize("case", list(MODE_CASES), ids=list(MODE_CASES))
def test_modes_convert_to_known_rgb(tmp_path, case):
    factory, name, options, expected = MODE_CASES[case]
    source = factory()
    path = _write(tmp_path, name, source, **options)

    image = image_io.load_image(path)

    assert image.dtype == np.float32
    assert image.shape == (source.height, source.width, 3)
    assert image.min() >= 0.0 and image.max() <= 1.0
    for (row, col), rgb in expected.items():
        np.testing.assert_allclose(image[row, col], rgb, atol=1e-6, err_msg=f"pixel {(row, col)}")


def test_sixteen_bit_keeps_precision_beyond_8_bits(tmp_path):
    values = np.array([[1000, 1001, 1002]], dtype=np.uint16)
    path = _write(tmp_path, "fine.png", Image.fromarray(values))

    image = image_io.load_image(path)

    np.testing.assert_allclose(image[0, :, 0], values[0] / 65535, rtol=1e-6)
    assert len(np.unique(image[0, :, 0])) == 3  # 8-bit quantisation would merge them


def test_exif_orientation_6_rotates_clockwise(tmp_path):
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:] = BLUE
    stored[:10, :10] = RED  # top-left corner of the stored pixels
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # "rotate 90 degrees clockwise to display"
    path = _write(
        tmp_path, "rotated.jpg", Image.fromarray(stored), exif=exif, quality=100, subsampling=0
    )

    image = image_io.load_image(path)

    assert image.shape == (40, 20, 3)
    # Rotating clockwise carries the stored top-left corner to the top-right.
    np.testing.assert_allclose(image[2, -3], (1, 0, 0), atol=0.05)
    np.testing.assert_allclose(image[2, 2], (0, 0, 1), atol=0.05)
    np.testing.assert_allclose(image[-3, -3], (0, 0, 1), atol=0.05)
    expected = np.rot90(stored, k=-1).astype(np.float32) / 255
    assert np.abs(image - expected).mean() < 0.02


@pytest.mark.parametrize(
    "shape, size, expected",
    [((30, 40), 20, (15, 20)), ((40, 30), 20, (20, 15)), ((2, 1000), 10, (1, 10))],
)
def test_size_resizes_longest_side(tmp_path, shape, size, expected):
    path = _write(tmp_path, "img.png", Image.new("RGB", shape[::-1], (0, 128, 255)))

    image = image_io.load_image(path, size=size)

    assert image.shape == (*expected, 3)
    np.testing.assert_allclose(image[0, 0], (0, 128 / 255, 1), atol=1e-5)


@pytest.mark.parametrize("size", [0, -3, 2.5])
def test_bad_size_is_a_user_error(tmp_path, size):
    path = _write(tmp_path, "img.png", Image.new("RGB", (4, 4)))
    with pytest.raises(JaxstyleError, match="img.png"):
        image_io.load_image(path, size=size)


def test_real_photo_matches_pillow_and_resizes():
    path = DATA / "tubingen.jpg"
    expected = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255

    image = image_io.load_image(path)
    small = image_io.load_image(path, size=256)

    np.testing.assert_array_equal(image, expected)
    assert small.shape == (192, 256, 3)
    assert abs(small.mean() - image.mean()) < 0.01


def test_real_grayscale_photo_becomes_three_equal_channels(tmp_path):
    # A single-channel JPEG made from the bundled photo, as a black-and-white scan would be.
    path = _write(tmp_path, "gray.jpg", Image.open(DATA / "tubingen.jpg").convert("L"), quality=90)
    gray = np.asarray(Image.open(path), dtype=np.float32) / 255
    assert gray.ndim == 2  # the point of this test: the source is single-channel

    image = image_io.load_image(path)

    assert image.shape == (*gray.shape, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], gray)


# --------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------


def _truncated(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    return path


def _noise_png_bytes(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return _write(tmp_path, "full.png", Image.fromarray(noise)).read_bytes()


BAD_INPUTS = {
    "missing": lambda tmp: tmp / "nope.jpg",
    "directory": lambda tmp: _mkdir(tmp / "folder.jpg"),
    "empty": lambda tmp: _write_bytes(tmp / "empty.jpg", b""),
    "text named .jpg": lambda tmp: _write_bytes(tmp / "notes.jpg", b"hello, not an image\n"),
    "truncated JPEG": lambda tmp: _truncated(tmp, "cut.jpg", (DATA / "tubingen.jpg").read_bytes()),
    "truncated PNG": lambda tmp: _truncated(tmp, "cut.png", _noise_png_bytes(tmp)),
}


def _mkdir(path):
    path.mkdir()
    return path


def _write_bytes(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_raises_one_line_error_naming_the_file(tmp_path, case):
    path = BAD_INPUTS[case](tmp_path)

    with pytest.raises(JaxstyleError) as info:
        image_io.load_image(path)

    message = str(info.value)
    assert path.name in message
    assert "\n" not in message


def test_truncation_is_not_silently_padded():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = _write(tmp_path, "big.png", Image.new("RGB", (20, 20)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # 400 pixels > 2 * 50

    with pytest.raises(JaxstyleError, match="big.png"):
        image_io.load_image(path)


def test_permission_error_while_opening_is_a_user_error(tmp_path, monkeypatch):
    path = _write(tmp_path, "locked.png", Image.new("RGB", (4, 4)))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Image, "open", refuse)
    with pytest.raises(JaxstyleError, match="locked.png.*permissions"):
        image_io.load_image(path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = _write(tmp_path, "locked.png", Image.new("RGB", (4, 4)))
    path.chmod(0)
    try:
        with pytest.raises(JaxstyleError, match="locked.png"):
            image_io.load_image(path)
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


# --------------------------------------------------------------------------
# Resizing and conversion
# --------------------------------------------------------------------------


def test_resize_keeps_float_precision_and_constant_images():
    image = np.full((9, 13, 3), 0.3001, dtype=np.float32)  # 8-bit would give 77/255 = 0.30196

    out = image_io.resize(image, (20, 7))

    assert out.shape == (20, 7, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 0.3001, atol=1e-5)


def test_resize_preserves_mean_and_clips_overshoot():
    image = np.zeros((32, 32, 3), dtype=np.float32)
    image[:, 16:] = 1.0  # a hard edge makes Lanczos overshoot before clipping

    out = image_io.resize(image, (64, 48))

    assert out.min() >= 0.0 and out.max() <= 1.0
    assert abs(out.mean() - 0.5) < 0.01
    np.testing.assert_allclose(out[:, :20], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[:, -20:], 1.0, atol=1e-6)


def test_resize_rejects_wrong_shapes():
    with pytest.raises(ValueError):
        image_io.resize(np.zeros((4, 4), np.float32), (2, 2))
    with pytest.raises(ValueError):
        image_io.resize(np.zeros((4, 4, 3), np.float32), (0, 2))


def test_resize_longest():
    out = image_io.resize_longest(np.zeros((50, 20, 3), np.float32), 25)
    assert out.shape == (25, 10, 3)


def test_to_uint8_rounds_and_clips():
    values = np.array([-0.2, 0.0, 0.4 / 255, 0.6 / 255, 0.5, 1.0, 1.7], dtype=np.float32)
    np.testing.assert_array_equal(image_io.to_uint8(values), [0, 0, 0, 1, 128, 255, 255])
    assert image_io.to_uint8(values).dtype == np.uint8


# --------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------


def _random_image(shape=(24, 32, 3), seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def test_png_round_trip_is_exact_to_one_level(tmp_path):
    image = _random_image()

    saved = image_io.save_image(tmp_path / "out.png", image)
    loaded = image_io.load_image(saved)

    assert saved == tmp_path / "out.png"
    np.testing.assert_allclose(loaded, image, atol=0.5 / 255 + 1e-6)
    raw = np.asarray(Image.open(saved))
    np.testing.assert_array_equal(raw, np.clip(np.floor(image * 255 + 0.5), 0, 255))
    assert _listing(tmp_path) == ["out.png"]


def test_uint8_input_is_written_unchanged(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)

    path = image_io.save_image(tmp_path / "bytes.png", pixels)

    np.testing.assert_array_equal(np.asarray(Image.open(path)), pixels)


def test_out_of_range_values_are_clipped(tmp_path):
    image = np.zeros((2, 2, 3), dtype=np.float32)
    image[0] = -0.5
    image[1] = 1.5

    path = image_io.save_image(tmp_path / "clip.png", image)

    np.testing.assert_array_equal(np.asarray(Image.open(path))[:, 0, 0], [0, 255])


@pytest.mark.parametrize("name, fmt", [("out.jpg", "JPEG"), ("OUT.JPEG", "JPEG"), ("out.webp", "WEBP"),
                                       ("OUT.WEBP", "WEBP")])
def test_lossy_round_trip_is_close(tmp_path, name, fmt):
    y, x = np.mgrid[0:48, 0:64]
    image = np.stack([x / 63, y / 47, np.full_like(x, 0.5, dtype=float)], -1).astype(np.float32)

    path = image_io.save_image(tmp_path / name, image)

    assert Image.open(path).format == fmt
    assert np.abs(image_io.load_image(path) - image).mean() < 0.01


def test_unknown_extension_lists_supported_and_writes_nothing(tmp_path):
    with pytest.raises(JaxstyleError, match=r"out\.bmp.*\.png.*\.jpg.*\.jpeg.*\.webp"):
        image_io.save_image(tmp_path / "out.bmp", _random_image())
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("name", ["out.png", "out.JPG", "out.jpeg", "out.webp"])
def test_check_image_output_accepts_what_save_image_writes(tmp_path, name):
    assert image_io.check_image_output(tmp_path / name) == tmp_path / name
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("name", ["out.xyz", "out.bmp", "out", "out.json"])
def test_check_image_output_refuses_other_extensions_in_one_line(tmp_path, name):
    with pytest.raises(JaxstyleError) as info:
        image_io.check_image_output(tmp_path / name)
    message = str(info.value)
    assert name in message and ".png, .jpg, .jpeg, .webp" in message and "\n" not in message
    with pytest.raises(JaxstyleError, match="does not exist"):
        image_io.check_image_output(tmp_path / "missing" / "out.png")


def test_missing_folder_is_an_error_and_not_created(tmp_path):
    target = tmp_path / "missing" / "out.png"

    with pytest.raises(JaxstyleError, match="does not exist"):
        image_io.save_image(target, _random_image())

    assert _listing(tmp_path) == []


def test_parent_that_is_a_file_is_an_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(JaxstyleError, match="not a folder"):
        image_io.save_image(tmp_path / "file" / "out.png", _random_image())


def test_failed_rename_leaves_old_target_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(JaxstyleError, match="out.png"):
        image_io.save_image(target, _random_image())

    assert target.read_bytes() == b"previous result"
    assert _listing(tmp_path) == ["out.png"]


def test_failed_encoder_leaves_no_file(tmp_path, monkeypatch):
    def fail(self, *args, **kwargs):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(Image.Image, "save", fail)
    with pytest.raises(RuntimeError, match="encoder crashed"):
        image_io.save_image(tmp_path / "out.png", _random_image())

    assert _listing(tmp_path) == []


def test_writing_onto_a_folder_is_an_error(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(JaxstyleError, match="folder"):
        image_io.save_image(tmp_path / "out.png", _random_image())


def test_ensure_output_dir_creates_and_checks(tmp_path):
    nested = tmp_path / "a" / "b"
    assert image_io.ensure_output_dir(nested) == nested
    assert nested.is_dir()
    assert image_io.ensure_output_dir(nested) == nested  # already there is fine

    (tmp_path / "file").write_text("x")
    with pytest.raises(JaxstyleError, match="file"):
        image_io.ensure_output_dir(tmp_path / "file")


# --------------------------------------------------------------------------
# Contact sheet
# --------------------------------------------------------------------------


def test_contact_sheet_layout_for_three_images():
    images = [np.full((10, 16, 3), value, dtype=np.float32) for value in (0.0, 0.25, 0.5)]

    sheet = plots.contact_sheet(images, ["black", "dark", "mid"], label_height=20)

    assert sheet.shape == (2 * (10 + 20), 2 * 16, 3)  # 2x2 grid, fourth cell empty
    assert sheet.dtype == np.float32
    np.testing.assert_array_equal(sheet[0:10, 0:16], 0.0)
    np.testing.assert_array_equal(sheet[0:10, 16:32], 0.25)
    np.testing.assert_array_equal(sheet[30:40, 0:16], 0.5)
    np.testing.assert_array_equal(sheet[30:60, 16:32], 1.0)  # empty cell is white
    assert sheet[10:30, 0:16].min() < 0.5  # some label text was drawn
    assert sheet[10:30, 0:16].max() == 1.0  # on a white strip


def test_contact_sheet_columns_and_validation():
    images = [np.zeros((4, 5, 3), np.float32)] * 3
    assert plots.contact_sheet(images, "abc", columns=3, label_height=0).shape == (4, 15, 3)
    with pytest.raises(ValueError):
        plots.contact_sheet(images, ["a", "b"])
    with pytest.raises(ValueError):
        plots.contact_sheet([np.zeros((4, 5, 3)), np.zeros((5, 4, 3))], ["a", "b"])
