"""Reading images safely, whatever users throw at the toolkit.

Every reader returns an ``(H, W, 3)`` ``uint8`` RGB array, the form
face_recognition and torchvision expect, or raises :class:`ImageReadError`
with the reason and the file at fault. Handled on purpose: EXIF rotation,
CMYK, 16-bit and 32-bit integer greyscale, palette and alpha images,
truncated and zero-byte files, non-images and decompression bombs.

Images can also live inside a FER-2013 ``fer2013.csv``: such an image is
addressed as ``/path/fer2013.csv#row=N`` (N counts data rows from 0).

>>> from embedlab.datasets.images import read_image
>>> read_image("data/sample/face-photos/obama.jpg").shape[2]
3
"""

from __future__ import annotations

import hashlib
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from embedlab.core.errors import ImageReadError
from embedlab.datasets.fer_csv import read_fer_csv

# Larger images are refused rather than decoded: a 10k x 10k face photo is
# almost surely a decompression bomb, and would exhaust a worker's memory.
MAX_PIXELS = 80_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CSV_ROW_MARK = "#row="


def content_hash(data: bytes) -> str:
    """Hex digest that keys every cache entry: same bytes, same features."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def is_csv_row(uri: str) -> bool:
    return CSV_ROW_MARK in uri


def split_csv_row(uri: str) -> tuple[str, int]:
    path, _, row = uri.rpartition(CSV_ROW_MARK)
    return path, int(row)


def read_image(uri: str | os.PathLike) -> np.ndarray:
    """Decode an image file (or a FER-2013 CSV row) to an RGB ``uint8`` array."""
    uri = os.fspath(uri)
    if is_csv_row(uri):
        path, row = split_csv_row(uri)
        grey = fer_csv_pixels(path)[row]
        return np.repeat(grey[:, :, None], 3, axis=2)
    if "://" in uri:  # an fsspec URL (s3://, gs://, http://, file://): read where the code runs
        return decode_image(_read_url(uri), name=uri)
    path = Path(uri)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"{uri}: file not found") from None
    except OSError as exc:
        raise ImageReadError(f"{uri}: cannot read file ({exc.strerror or exc})") from None
    return decode_image(data, name=uri)


def _read_url(uri: str) -> bytes:
    try:
        import fsspec
    except ImportError:
        raise ImageReadError(f"{uri}: reading URLs needs fsspec (pip install 'embedlab[dask]')") from None
    try:
        with fsspec.open(uri, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ImageReadError(f"{uri}: file not found") from None
    except (OSError, ValueError, ImportError) as exc:  # ImportError: the protocol's package (s3fs...)
        raise ImageReadError(f"{uri}: cannot read file ({exc})") from None


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes; see :func:`read_image`."""
    from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

    # face_recognition switches this on at import; a truncated file must fail, not decode half-grey.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes)")
    import io

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageReadError(
                    f"{name}: {w}x{h} pixels exceeds the {MAX_PIXELS:,}-pixel limit "
                    "(possible decompression bomb)"
                )
            img.load()
        except ImageReadError:
            raise
        except UnidentifiedImageError:
            raise ImageReadError(f"{name}: not a recognised image format") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageReadError(f"{name}: refused as a decompression bomb ({exc})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageReadError(f"{name}: truncated or corrupt image ({exc})") from None
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not lose an otherwise good image
        pass
    return _to_rgb(img, name)


def _to_rgb(img, name: str) -> np.ndarray:
    from PIL import Image

    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
        grey = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    try:
        rgb = img.convert("RGB")
    except Exception as exc:
        raise ImageReadError(f"{name}: cannot convert mode {mode} to RGB ({exc})") from None
    return np.asarray(rgb, dtype=np.uint8).copy()


@lru_cache(maxsize=2)
def fer_csv_pixels(path: str) -> np.ndarray:
    """All images of a ``fer2013.csv`` as an ``(N, 48, 48)`` ``uint8`` array."""
    return read_fer_csv(path)[1]


def image_hash(uri: str) -> str:
    """Content hash of an image file's bytes (or of a CSV row's pixels)."""
    if is_csv_row(uri):
        path, row = split_csv_row(uri)
        return content_hash(fer_csv_pixels(path)[row].tobytes())
    return content_hash(Path(uri).read_bytes())
