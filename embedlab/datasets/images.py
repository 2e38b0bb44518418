"""Reading images safely, whatever users throw at the toolkit.

Every reader returns an ``(H, W, 3)`` ``uint8`` RGB array, the form
face_recognition and torchvision expect, or raises :class:`ImageReadError`
with the file at fault and one of the :data:`READ_REASONS`. Handled on
purpose: EXIF rotation, CMYK, 16-bit and 32-bit integer greyscale, palette
and alpha images, truncated and zero-byte files, non-images, folders and
broken or looping symbolic links with image names, unreadable files, and
files or images too large to decode safely.

Two limits bound what one worker holds in memory, and a user can set both
(:func:`limits`): a file larger than ``EMBEDLAB_MAX_FILE_MB`` (default 50)
is refused before a byte of it is read, and an image larger than
``EMBEDLAB_MAX_PIXELS`` (default 16 million) is decoded at 1/2, 1/4 or 1/8
of its size when it is a JPEG (Pillow's ``draft``), and refused otherwise.

Images can also live inside a FER-2013 ``fer2013.csv``: such an image is
addressed as ``/path/fer2013.csv#row=N`` (N counts data rows from 0).

>>> from embedlab.datasets.images import read_image
>>> read_image("data/sample/face-photos/obama.jpg").shape[2]
3
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import warnings
from functools import lru_cache

import numpy as np

from embedlab.core.errors import ImageReadError
from embedlab.datasets.fer_csv import read_fer_csv
from embedlab.datasets.hash_index import FileHashIndex
from embedlab.datasets.names import disk_path, shown_path

#: the default limits (see :func:`limits`): a file's bytes, and an image's decoded pixels
MAX_FILE_BYTES = 50 * 2**20
MAX_PIXELS = 16_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
#: image files embedlab cannot decode: listed with the reason "unsupported format", never dropped
OTHER_IMAGE_SUFFIXES = {".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".jfif", ".svg", ".ico", ".psd",
                        ".raw", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf", ".xcf"}
CSV_ROW_MARK = "#row="
#: why a file gives no image: the ``reason`` of its failure row
READ_REASONS = ("unreadable", "not a file", "broken link", "unsupported format", "too large", "decode error",
                "changed")


def limits() -> tuple[int, int]:
    """``(largest file in bytes, largest decoded image in pixels)`` an image may have.

    Read from ``EMBEDLAB_MAX_FILE_MB`` and ``EMBEDLAB_MAX_PIXELS`` at each call, so that worker
    processes (which inherit the environment) apply the limits the user set.
    """
    def number(name: str, default: float) -> float:
        raw = os.environ.get(name, "").strip()
        try:
            value = float(raw) if raw else default
        except ValueError:
            value = default
        return value if value > 0 else default

    return int(number("EMBEDLAB_MAX_FILE_MB", MAX_FILE_BYTES / 2**20) * 2**20), \
        int(number("EMBEDLAB_MAX_PIXELS", MAX_PIXELS))


def content_hash(data: bytes) -> str:
    """Hex digest that keys every cache entry: same bytes, same features."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def is_csv_row(uri: str) -> bool:
    return CSV_ROW_MARK in uri


def split_csv_row(uri: str) -> tuple[str, int]:
    path, _, row = uri.rpartition(CSV_ROW_MARK)
    return path, int(row)


def read_listed_image(uri: str, content: str | None) -> np.ndarray:
    """The image at ``uri``, which was listed with the content hash ``content``: refused ("changed") if
    the file holds other bytes now, since whatever is computed from it is stored under that hash.
    A file listed with no hash (it gave no image then) is read as it is, to say why again."""
    if not isinstance(content, str) or is_csv_row(uri) or "://" in uri:  # None, or NaN from a table
        return read_image(uri)
    data = read_file(uri)
    if content_hash(data) != content:
        raise ImageReadError(f"{uri}: changed since it was listed (its bytes no longer match); "
                             "run again to use its new content", "changed")
    return decode_image(data, name=uri)


def read_image(uri: str | os.PathLike) -> np.ndarray:
    """Decode an image file (or a FER-2013 CSV row) to an RGB ``uint8`` array."""
    uri = shown_path(uri)
    if is_csv_row(uri):
        path, row = split_csv_row(uri)
        grey = fer_csv_pixels(path)[row]
        return np.repeat(grey[:, :, None], 3, axis=2)
    if "://" in uri:  # an fsspec URL (s3://, gs://, http://, file://): read where the code runs
        return decode_image(_read_url(uri), name=uri)
    return decode_image(read_file(uri), name=uri)


def read_file(uri: str | os.PathLike) -> bytes:
    """The bytes of an image file, checked before reading: a regular file, readable, not too large.

    A symbolic link is followed (a loop or a missing target is a "broken link");
    a folder, FIFO or device with an image name is "not a file".
    """
    return read_file_stat(uri)[0]


def read_file_stat(uri: str | os.PathLike) -> tuple[bytes, os.stat_result]:
    """:func:`read_file`, with the status of the very file read, taken once it was opened and before
    it was read (so a write during the read leaves a later change time than the one returned)."""
    uri = shown_path(uri)  # named in messages as tables show it
    on_disk = disk_path(uri)  # and opened by the bytes of its name
    max_bytes, _ = limits()
    try:
        info = os.stat(on_disk)
    except OSError as exc:
        raise _stat_error(uri, exc) from None
    if stat.S_ISDIR(info.st_mode) and not os.access(on_disk, os.R_OK | os.X_OK):
        raise ImageReadError(f"{uri}: unreadable (a folder that cannot be listed: permission denied; "
                             "the images in it are not counted)", "unreadable")
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ImageReadError(f"{uri}: not a file ({kind} with an image name)", "not a file")
    if info.st_size > max_bytes:
        raise ImageReadError(f"{uri}: too large ({info.st_size:,} bytes; the limit is {max_bytes:,}, "
                             "set by EMBEDLAB_MAX_FILE_MB)", "too large")
    try:
        with open(on_disk, "rb") as fh:
            opened = os.fstat(fh.fileno())
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ImageReadError(f"{uri}: unreadable ({exc.strerror or exc})", "unreadable") from None
    if len(data) > max_bytes:  # grew since it was checked
        raise ImageReadError(f"{uri}: too large (over {max_bytes:,} bytes)", "too large")
    return data, opened


def _stat_error(uri: str, exc: OSError) -> ImageReadError:
    on_disk = disk_path(uri)
    if exc.errno == errno.ELOOP:
        return ImageReadError(f"{uri}: broken link (a loop of symbolic links)", "broken link")
    if exc.errno == errno.ENOENT and os.path.islink(on_disk):
        target = shown_path(os.readlink(on_disk))
        return ImageReadError(f"{uri}: broken link (its target {target!r} does not exist)", "broken link")
    if exc.errno == errno.ENOENT:
        return ImageReadError(f"{uri}: unreadable (file not found)", "unreadable")
    return ImageReadError(f"{uri}: unreadable ({exc.strerror or exc})", "unreadable")


def _read_url(uri: str) -> bytes:
    try:
        import fsspec
    except ImportError:
        raise ImageReadError(f"{uri}: unreadable (reading URLs needs fsspec: pip install 'embedlab[dask]')",
                             "unreadable") from None
    try:
        with fsspec.open(uri, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ImageReadError(f"{uri}: unreadable (file not found)", "unreadable") from None
    except (OSError, ValueError, ImportError) as exc:  # ImportError: the protocol's package (s3fs...)
        raise ImageReadError(f"{uri}: unreadable ({exc})", "unreadable") from None


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes; see :func:`read_image`."""
    from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

    # face_recognition switches this on at import; a truncated file must fail, not decode half-grey.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    # Pillow's own pixel limit would refuse images quoting its limit, not EMBEDLAB_MAX_PIXELS, and before
    # a large JPEG could be decoded at a reduced scale: within_pixel_limit applies the user's limit
    # to every image before it is decoded.
    Image.MAX_IMAGE_PIXELS = None
    if not data:
        raise ImageReadError(f"{name}: decode error (empty file, 0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
            within_pixel_limit(img, name)
            img.load()
        except ImageReadError:
            raise
        except UnidentifiedImageError:
            raise ImageReadError(f"{name}: unsupported format (not an image Pillow can read)",
                                 "unsupported format") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageReadError(f"{name}: too large (a decompression bomb: {exc})", "too large") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageReadError(f"{name}: decode error (truncated or corrupt: {exc})") from None
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not lose an otherwise good image
        pass
    return _to_rgb(img, name)


def within_pixel_limit(img, name: str) -> None:
    """Make an opened image decode to at most the pixel limit: a JPEG at a reduced scale, others refused."""
    _, max_pixels = limits()
    w, h = img.size
    if w * h <= max_pixels:
        return
    if img.format == "JPEG":
        scale = next((s for s in (2, 4, 8) if -(-w // s) * -(-h // s) <= max_pixels), None)
        if scale is not None:
            img.draft(None, (max(1, w // scale), max(1, h // scale)))  # draft rounds the scale down
            if img.size[0] * img.size[1] <= max_pixels:
                return
    raise ImageReadError(f"{name}: too large ({w}x{h} pixels; the limit is {max_pixels:,} decoded pixels, "
                         "set by EMBEDLAB_MAX_PIXELS)", "too large")


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
        raise ImageReadError(f"{name}: decode error (cannot convert mode {mode} to RGB: {exc})") from None
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
    return content_hash(read_file(uri))


def is_image_file_name(name: str) -> bool:
    """Whether a file name says it is an image, one embedlab reads or not (hidden files aside).

    >>> [is_image_file_name(n) for n in ("a.JPG", "b.avif", ".c.jpg", "d.txt", "e.")]
    [True, True, False, False, False]
    """
    if name.startswith("."):
        return False
    suffix = os.path.splitext(name)[1].lower()
    return suffix in IMAGE_SUFFIXES or suffix in OTHER_IMAGE_SUFFIXES


def file_status(uri: str, index: FileHashIndex | None = None,
                max_bytes: int | None = None) -> tuple[str | None, str | None, str | None]:
    """``(hash, reason, error)`` of one listed image: its content hash, or why it gives no image.

    Only the file is checked here (and read, to hash it); decoding happens where features are computed.
    With an ``index``, a regular file it remembers unchanged is not read again, and a file read
    here is remembered. ``max_bytes`` is ``limits()[0]``, passed by callers that check many files.
    """
    suffix = os.path.splitext(uri)[1]
    if not is_csv_row(uri) and suffix.lower() in OTHER_IMAGE_SUFFIXES:
        return None, "unsupported format", f"{uri}: unsupported format ({suffix} files are not read)"
    try:
        if index is None or is_csv_row(uri) or "://" in uri:
            return image_hash(uri), None, None
        key = os.path.abspath(uri)
        on_disk = disk_path(uri)
        try:
            info = os.stat(on_disk)
        except OSError:
            info = None
        if info is not None and stat.S_ISREG(info.st_mode) \
                and info.st_size <= (limits()[0] if max_bytes is None else max_bytes) and os.access(on_disk, os.R_OK):
            known = index.lookup(key, info)
            if known is not None:
                return known, None, None
        data, opened = read_file_stat(uri)
    except ImageReadError as exc:
        return None, exc.reason, str(exc)
    content = content_hash(data)
    index.remember(key, opened, content)  # the identity of the file actually read
    return content, None, None
