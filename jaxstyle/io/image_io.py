"""Reading, resizing and writing images as float32 ``[h, w, 3]`` RGB arrays.

NumPy and Pillow only: the numeric code never sees a file, and this module
never sees JAX. Every image crosses the boundary as float32 RGB in ``[0, 1]``.

Writes are atomic (``jaxstyle.io.files.atomic_write_bytes``): an error or a crash never
leaves a half-written output behind. Contact sheets are drawn by ``jaxstyle.io.plots``.
"""

from __future__ import annotations

import io
import os
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jaxstyle.errors import JaxstyleError
from jaxstyle.io.files import atomic_write_bytes, check_output_path

PathLike = str | os.PathLike[str]

# The extensions save_image writes, and their Pillow formats.
_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_RESAMPLE = Image.Resampling.LANCZOS


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def data_path(name: str) -> Path:
    """Path of an image shipped with the package (tubingen.jpg, starry_night.jpg, the_scream.jpg, shipwreck.jpg)."""
    path = Path(str(resources.files("jaxstyle") / "data" / name))
    if not path.is_file():
        raise JaxstyleError(f"no bundled image {name!r}; see jaxstyle/data/ATTRIBUTION.md for the list")
    return path


def load_image(path: PathLike, *, size: int | None = None) -> np.ndarray:
    """Reads an image file as RGB floats.

    Any format Pillow reads is accepted. The EXIF orientation is applied, so
    the array is upright as a photo viewer shows it. Grayscale (8-, 16-,
    32-bit and float), palette, CMYK and 1-bit images become RGB; transparent
    pixels are composited onto white. Animated files give their first frame.

    Args:
      path: the image file.
      size: if given, the image is resized so that its longest side is
        ``size`` pixels, keeping the aspect ratio.

    Returns:
      float32 array ``[h, w, 3]`` with values in ``[0, 1]``.

    Raises:
      JaxstyleError: the file is missing, a folder, unreadable, empty, not an
        image, truncated or corrupt, too large to decode safely, or ``size``
        is not a positive integer.
    """
    path = Path(path)
    if size is not None and (not isinstance(size, int) or size < 1):
        raise JaxstyleError(
            f"Cannot load {path} with size={size!r}; give the longest side as a "
            "whole number of pixels, at least 1."
        )
    _check_readable_file(path)
    image = _to_rgb_float(_decode(path), path)
    if size is not None:
        image = resize_longest(image, size)
    return image


def _check_readable_file(path: Path) -> None:
    """Raises JaxstyleError unless ``path`` is a non-empty file we may read."""
    if not path.exists():
        raise JaxstyleError(f"Image file {path} does not exist; check the path.")
    if path.is_dir():
        raise JaxstyleError(f"{path} is a folder, not an image file; give the path of an image.")
    if not os.access(path, os.R_OK):
        raise JaxstyleError(f"Image file {path} is not readable; check its permissions.")
    if path.stat().st_size == 0:
        raise JaxstyleError(f"Image file {path} is empty; replace it with a valid image.")


def _decode(path: Path) -> Image.Image:
    """Opens, fully decodes and uprights an image, mapping failures to JaxstyleError."""
    try:
        with Image.open(path) as img:
            # Pillow decodes lazily; decoding everything now is what makes a
            # truncated file fail here. ImageFile.LOAD_TRUNCATED_IMAGES is left
            # at its default (False) so Pillow raises instead of padding.
            img.load()
            return ImageOps.exif_transpose(img)
    except FileNotFoundError:
        raise JaxstyleError(f"Image file {path} does not exist; check the path.") from None
    except PermissionError:
        raise JaxstyleError(f"Image file {path} is not readable; check its permissions.") from None
    except Image.DecompressionBombError:
        raise JaxstyleError(
            f"Image file {path} is too large to decode safely (over "
            f"{2 * Image.MAX_IMAGE_PIXELS} pixels); downscale it first."
        ) from None
    except UnidentifiedImageError:
        hint = " (HEIC/HEIF/AVIF, as phones save them: export it as JPEG first)" if path.suffix.lower() in (
            ".heic", ".heif", ".avif") else ""
        raise JaxstyleError(
            f"{path} is not an image Pillow can read{hint}; give a PNG or JPEG file."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        # Pillow reports truncated and corrupt data with all of these types.
        raise JaxstyleError(
            f"Image file {path} is truncated or corrupt ({e}); re-export or re-download it."
        ) from None


def _to_rgb_float(img: Image.Image, path: Path) -> np.ndarray:
    """Converts a decoded Pillow image of any mode to float32 RGB ``[h, w, 3]``.

    Raises:
      JaxstyleError: the mode cannot be converted or the pixels are not finite.
    """
    mode = img.mode
    if mode in ("P", "PA", "RGBa", "La") or (
        mode in ("L", "RGB") and "transparency" in img.info
    ):
        img, mode = img.convert("RGBA"), "RGBA"
    elif mode == "1":
        img, mode = img.convert("L"), "L"

    if mode in ("L", "LA", "RGB", "RGBA"):
        return _composite_on_white(np.asarray(img, dtype=np.float32) / 255.0)
    if mode.startswith("I;16"):
        gray = np.asarray(img).astype(np.float32) / 65535.0
    elif mode == "I":
        gray = _scale_int_gray(np.asarray(img))
    elif mode == "F":
        gray = _scale_float_gray(np.asarray(img), path)
    else:
        try:
            rgb = img.convert("RGB")
        except ValueError:
            raise JaxstyleError(
                f"Image file {path} has colour mode {mode}, which cannot be converted "
                "to RGB; save it as an RGB PNG or JPEG."
            ) from None
        return np.asarray(rgb, dtype=np.float32) / 255.0
    return np.repeat(gray[..., None], 3, axis=-1)


def _composite_on_white(pixels: np.ndarray) -> np.ndarray:
    """Flattens L, LA, RGB or RGBA floats ``[h, w, c]`` to RGB ``[h, w, 3]`` on white."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[-1] in (2, 4):
        colour, alpha = pixels[..., :-1], pixels[..., -1:]
        pixels = colour * alpha + (1.0 - alpha)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return np.ascontiguousarray(pixels, dtype=np.float32)


def _scale_int_gray(values: np.ndarray) -> np.ndarray:
    """Maps 32-bit integer grayscale ``[h, w]`` to float32 ``[0, 1]``.

    Values within ``[0, 65535]`` are taken as 16-bit data, which is what
    Pillow's mode "I" holds in practice (16-bit PNG and TIFF from older
    writers). Anything else has no agreed scale, so its own range is
    stretched to ``[0, 1]``.
    """
    values = values.astype(np.float64)
    lo, hi = values.min(), values.max()
    if lo >= 0 and hi <= 65535:
        return (values / 65535.0).astype(np.float32)
    return _stretch(values)


def _scale_float_gray(values: np.ndarray, path: Path) -> np.ndarray:
    """Maps float grayscale ``[h, w]`` to float32 ``[0, 1]``.

    Values already within ``[0, 1]`` are kept; any other range is stretched
    to ``[0, 1]``.

    Raises:
      JaxstyleError: some pixels are NaN or infinite.
    """
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise JaxstyleError(f"Image file {path} has NaN or infinite pixels; re-export it.")
    if values.min() >= 0.0 and values.max() <= 1.0:
        return values.astype(np.float32)
    return _stretch(values)


def _stretch(values: np.ndarray) -> np.ndarray:
    """Linearly maps the range of ``values`` onto ``[0, 1]`` (a constant image clips)."""
    lo, hi = values.min(), values.max()
    if hi > lo:
        return ((values - lo) / (hi - lo)).astype(np.float32)
    return np.clip(values, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------
# Resizing and conversion
# --------------------------------------------------------------------------


def resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resamples an RGB float image with a Lanczos filter, without 8-bit rounding.

    Each channel is resized as a 32-bit float Pillow image (mode "F"), so no
    precision is lost to quantisation; Lanczos overshoot is clipped away.

    Args:
      image: float array ``[h, w, 3]``.
      shape: the output ``(H, W)``, both at least 1.

    Returns:
      float32 array ``[H, W, 3]`` with values in ``[0, 1]``.

    Raises:
      ValueError: ``image`` is not ``[h, w, 3]`` or ``shape`` is not positive.
    """
    image = as_rgb_float(image)
    height, width = (int(n) for n in shape)
    if height < 1 or width < 1:
        raise ValueError(f"resize shape must be positive, got {shape}")
    if image.shape[:2] == (height, width):
        return np.clip(image, 0.0, 1.0)
    # One output array filled channel by channel and clipped in place: at 8192 px each copy is 0.6 GB.
    out = np.empty((height, width, 3), np.float32)
    for c in range(3):
        out[..., c] = np.asarray(Image.fromarray(image[..., c]).resize((width, height), _RESAMPLE))
    return np.clip(out, 0.0, 1.0, out=out)


def resize_longest(image: np.ndarray, size: int) -> np.ndarray:
    """Resizes so the longest side is ``size`` pixels, keeping the aspect ratio.

    Args:
      image: float array ``[h, w, 3]``.
      size: the new length of the longest side, at least 1.

    Returns:
      float32 array ``[H, W, 3]`` with ``max(H, W) == size``; the shorter side
      is rounded to the nearest pixel and is at least 1.
    """
    height, width = np.shape(image)[:2]
    return resize(image, longest_side_shape((height, width), size))


def longest_side_shape(shape: tuple[int, int], size: int) -> tuple[int, int]:
    """The ``(H, W)`` that scales ``shape`` so its longest side is ``size``.

    Args:
      shape: the current ``(h, w)``.
      size: the new longest side, at least 1.

    Returns:
      ``(H, W)``; the shorter side is rounded half up and is at least 1.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    height, width = shape
    longest = max(height, width)

    def scale(n: int) -> int:
        # Integer arithmetic: floor(n * size / longest + 1/2), exact for any size.
        return max(1, (2 * n * size + longest) // (2 * longest))

    return scale(height), scale(width)


_CHUNK = 2**22  # values per step of `to_uint8`


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Converts floats in ``[0, 1]`` to bytes, rounding to nearest and clipping.

    Args:
      image: float array of any shape (uint8 input is returned unchanged).

    Returns:
      uint8 array of the same shape.

    Raises:
      ValueError: the image contains NaN.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if np.isnan(image).any():
        raise ValueError("image contains NaN values and cannot be converted to uint8")
    # In chunks: float64 copies of a whole 8192 px image would take 1.2 GB each.
    source, out = image.reshape(-1), np.empty(image.shape, np.uint8)
    flat = out.reshape(-1)
    for start in range(0, source.size, _CHUNK):
        flat[start:start + _CHUNK] = np.clip(np.rint(source[start:start + _CHUNK].astype(np.float64) * 255.0), 0, 255)
    return out


def as_rgb_float(image: np.ndarray) -> np.ndarray:
    """Checks for shape ``[h, w, 3]`` and returns float32 (bytes are scaled by 1/255)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an RGB image of shape [h, w, 3], got {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32, copy=False)


# --------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------


def save_image(path: PathLike, image: np.ndarray, *, quality: int = 95, png_compression: int = 6) -> Path:
    """Writes an RGB image as PNG, JPEG or WebP, atomically.

    The format follows the extension (.png, .jpg, .jpeg, .webp). JPEGs are
    written without chroma subsampling, since stylised images are full of fine
    colour; WebP is lossy at ``quality`` (its encoder always halves chroma).

    Args:
      path: the output file; its folder must already exist and be writable
        (see ``ensure_output_dir``).
      image: ``[h, w, 3]`` floats in ``[0, 1]`` (outside values are clipped)
        or uint8.
      quality: JPEG and WebP quality, 1 to 100; ignored for PNG.
      png_compression: zlib level of a PNG, 0 to 9 (1: 3.7x faster to write than 6, 10% larger on 720p frames).

    Returns:
      ``path`` as a ``Path``.

    Raises:
      JaxstyleError: unsupported extension, missing or unwritable folder, or
        the write failed.
      ValueError: ``image`` is not ``[h, w, 3]``, contains NaN, or
        ``quality`` is out of range.
    """
    path = Path(path)
    image_format = _image_format(path)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    check_output_path(path)
    pixels = to_uint8(as_rgb_float(image))

    encoded = io.BytesIO()
    options = {"PNG": {"compress_level": png_compression}, "JPEG": {"quality": quality, "subsampling": 0},
               "WEBP": {"quality": quality}}
    Image.fromarray(np.ascontiguousarray(pixels)).save(encoded, format=image_format, **options[image_format])
    return atomic_write_bytes(path, encoded.getvalue())


def check_image_output(path: PathLike) -> Path:
    """Checks, before any work, that ``save_image`` can write ``path``; returns ``path`` as a ``Path``.

    Raises:
      JaxstyleError: the extension is not one ``save_image`` writes (the message
        lists those), or the folder is missing or not writable.
    """
    path = check_image_format(path)
    return check_output_path(path)


def check_image_format(path: PathLike) -> Path:
    """``path`` as a ``Path``; JaxstyleError unless its extension is one ``save_image`` writes."""
    path = Path(path)
    _image_format(path)
    return path


def _image_format(path: Path) -> str:
    """The Pillow format that ``path``'s extension names; JaxstyleError for any other extension."""
    image_format = _SAVE_FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise JaxstyleError(
            f"Cannot save {path}: extension {path.suffix or '(none)'!r} is not "
            f"supported; use one of {', '.join(_SAVE_FORMATS)}."
        )
    return image_format


def ensure_output_dir(directory: PathLike) -> Path:
    """Creates an output folder if needed and checks that it is writable.

    ``save_image`` never creates folders; callers that want missing folders
    created call this first.

    Args:
      directory: the folder, created with its parents if missing.

    Returns:
      ``directory`` as a ``Path``.

    Raises:
      JaxstyleError: the folder cannot be created, is a file, or is not writable.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise JaxstyleError(
            f"Cannot use {directory} as an output folder: it is a file; choose another path."
        ) from None
    except OSError as e:
        raise JaxstyleError(
            f"Cannot create output folder {directory} ({e.strerror or e}); check the path "
            "and permissions."
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise JaxstyleError(
            f"Output folder {directory} is not writable; check its permissions."
        )
    return directory
