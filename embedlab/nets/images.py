"""Images as the uint8 arrays networks train on: decoded once, cached, face-cropped when needed.

FER-2013 faces are tight 48x48 grayscale crops. A portrait that is not such a
crop (a medium shot) is first cropped around its face the way FER crops are
framed (:func:`fer_crop_box`), then resized; the crops are kept on disk for
inspection. ``face_crop="align"`` aligns every face, FER's too, by its eyes to FER's
template instead (:mod:`embedlab.nets.alignment`).

>>> from embedlab.nets.images import fer_crop_box
>>> fer_crop_box((100, 200, 200, 100), 400, 400, scale=1.6, shift=0.0)
(70, 230, 230, 70)
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from embedlab.core.errors import ImageReadError, ModelError
from embedlab.core.io import atomic_write, atomic_write_text, file_digest
from embedlab.datasets.images import read_image, read_listed_image
from embedlab.features import dlib_resnet
from embedlab.features.base import FeatureExtractor
from embedlab.features.encoding import largest_box, model_files
from embedlab.features.facerec import hog_face_locations
from embedlab.nets import alignment

#: FER-2013 framing of a face, measured by bench/measure_fer_framing.py: dlib HOG
#: finds a face in few FER crops (they are tight and small; 23 of 1,000 after
#: padding and upscaling), and on those the crop's side is about FER_SCALE times
#: the HOG box side (median 1.28, mean 1.18) and the box's centre sits about
#: FER_SHIFT box sides below the crop's centre (median 0.056).
FER_SCALE = 1.25
FER_SHIFT = 0.05
#: Images whose longer side is at most this many times the network input are
#: taken as ready-made crops; larger ones are face-cropped first (``face_crop="auto"``).
CROP_RATIO = 2.0


def fer_crop_box(box: tuple[int, int, int, int], height: int, width: int,
                 scale: float = FER_SCALE, shift: float = FER_SHIFT) -> tuple[int, int, int, int]:
    """Square (top, right, bottom, left) crop framing a face box like FER-2013 does.

    The crop may reach past the image; :func:`crop_square` pads with the edge.
    """
    top, right, bottom, left = box
    side = max(bottom - top, right - left)
    cy = (top + bottom) / 2 - shift * side
    cx = (left + right) / 2
    half = scale * side / 2
    return (int(round(cy - half)), int(round(cx + half)), int(round(cy + half)), int(round(cx - half)))


def crop_square(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The pixels inside ``box``, edge-padded where the box leaves the image."""
    top, right, bottom, left = box
    h, w = image.shape[:2]
    pad = max(0, -top, -left, bottom - h, right - w)
    if pad:
        image = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return image[top + pad:bottom + pad, left + pad:right + pad]


def to_input(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Resize an RGB uint8 image to ``(size, size, channels)`` uint8 (1 = grayscale)."""
    from PIL import Image

    pil = Image.fromarray(image)
    if channels == 1:
        pil = pil.convert("L")
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.Resampling.BILINEAR if max(pil.size) >= size
                         else Image.Resampling.BICUBIC)
    arr = np.asarray(pil, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


class FaceCropper:
    """Finds the largest face (face_recognition HOG) and crops it: FER framing, dlib's chip, or
    aligned by the eyes to FER's template."""

    def __init__(self, upsample: int = 1):
        self.upsample = upsample

    def locate(self, image: np.ndarray) -> tuple[tuple[int, int, int, int] | None, int]:
        """The largest face's (top, right, bottom, left) box (None if none) and how many faces were found.

        As ``FaceEncoding(detector="hog").locate`` finds it, without loading the descriptor network.
        """
        boxes = hog_face_locations(image, self.upsample)
        return (largest_box(boxes) if boxes else None), len(boxes)

    def crop(self, image: np.ndarray, how: str = "fer") -> tuple[np.ndarray, bool]:
        """The face crop and whether a face was found; the central square when none is.

        ``how``: ``fer`` (FER framing of the HOG box), ``chip`` (dlib's aligned 150x150 face
        chip) or ``align`` (:func:`embedlab.nets.alignment.aligned_crop`: eyes level, placed
        by FER's template; small images are searched enlarged).
        """
        h, w = image.shape[:2]
        eyes = box = None
        if how == "align":
            eyes, _ = alignment.find_eyes(image, self.upsample)
        else:
            box, _ = self.locate(image)
        if box is None and eyes is None:
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            return image[top:top + side, left:left + side], False
        if eyes is not None:
            return alignment.aligned_crop(image, eyes), True
        if how == "chip":
            return dlib_resnet.face_chips(image, [box])[0], True
        return crop_square(image, fer_crop_box(box, h, w)), True


def sharpness(image: np.ndarray) -> float:
    """Standard deviation of the 4-neighbour Laplacian of a grey (or first-channel) image.

    >>> sharpness(np.zeros((8, 8, 1), np.uint8))
    0.0
    """
    a = image[..., 0].astype(np.float32)
    lap = 4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]
    return float(lap.std())


def match_blur(image: np.ndarray, sigma: float, above: float) -> tuple[np.ndarray, bool]:
    """Blur an input sharper than ``above`` with a Gaussian of ``sigma`` pixels.

    A network trained on blurred images (the FER-2013 training images shipped
    with this project are) sees sharp images as out of distribution; blurring
    them the same way brings them back. Images already that soft pass unchanged.
    """
    from PIL import Image, ImageFilter

    if sigma <= 0 or sharpness(image) <= above:
        return image, False
    channels = image.shape[2]
    pil = Image.fromarray(image[:, :, 0] if channels == 1 else image)
    out = np.asarray(pil.filter(ImageFilter.GaussianBlur(sigma)), dtype=np.uint8)
    return (out[:, :, None] if out.ndim == 2 else out), True


#: ``face_crop`` choices: ``never`` (the whole image), ``auto`` (FER framing for images much
#: larger than the input), ``always`` (FER framing), ``chip`` (dlib's aligned face chip: the
#: eyes and nose where dlib's face network expects them, the framing of every source the same),
#: ``align`` (every face, FER's too, rotated so the eyes are level and scaled and placed by
#: FER-2013's eye template: :mod:`embedlab.nets.alignment`)
FACE_CROPS = ("never", "auto", "always", "chip", "align")
#: what each face_crop does in FaceCropper.crop
CROP_KIND = {"auto": "fer", "always": "fer", "chip": "chip", "align": "align"}


def needs_face_crop(image: np.ndarray, size: int, face_crop: str) -> bool:
    if face_crop == "never":
        return False
    if face_crop in ("always", "chip", "align"):
        return True
    return max(image.shape[:2]) > CROP_RATIO * size


def input_array(image: np.ndarray, size: int, channels: int, face_crop: str, cropper: FaceCropper,
                blur: tuple[float, float] = (0.0, 0.0)) -> tuple[np.ndarray, dict]:
    """One decoded image as a network input: face-cropped when ``face_crop`` asks, resized, blurred.

    Returns ``(array (size, size, channels) uint8, {"face_cropped", "face_found", "blurred"})``; every
    way of preparing inputs (a set at once, or image by image in worker processes) goes through here.
    """
    made = {"face_cropped": False, "face_found": None, "blurred": False}
    if needs_face_crop(image, size, face_crop):
        image, found = cropper.crop(image, CROP_KIND[face_crop])
        made.update(face_cropped=True, face_found=found)
    arr, made["blurred"] = match_blur(to_input(image, size, channels), *blur)
    return arr, made


def save_crop(path: Path, arr: np.ndarray) -> None:
    """A network input saved as the PNG of its face crop (grey when it has one channel)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(path)


def framing(face_crop: str) -> dict:
    """The constants of a face crop: they change every input, so they key its caches."""
    if face_crop in ("auto", "always"):
        return {"scale": FER_SCALE, "shift": FER_SHIFT, "ratio": CROP_RATIO}
    if face_crop == "chip":
        return {"chip": [dlib_resnet.CHIP_SIZE, dlib_resnet.CHIP_PADDING]}
    if face_crop == "align":
        return {"align": {"eyes": [alignment.FER_EYES_X, alignment.FER_EYES_Y, alignment.FER_EYE_DISTANCE],
                          "landmarks": alignment.LANDMARKS, "search": [alignment.SMALL_SIDE, alignment.SEARCH_SIDE],
                          "upsample": 1}}
    return {}


@functools.lru_cache(maxsize=8)
def _digest(path: str) -> str:
    return file_digest(path)


class NetworkInput(FeatureExtractor):
    """A network's input made from one image (:func:`input_array`): the unit of work that worker
    processes and Dask workers do for a prediction, cached per image content and these settings.

    Its vector is the ``(size, size, channels)`` uint8 input itself; it is stored in an
    :class:`embedlab.compute.array_store.ArrayStore`, not in the feature cache.
    """

    name = "network-input"
    version = "1"

    def __init__(self, size: int = 48, channels: int = 1, face_crop: str = "never", blur_sigma: float = 0.0,
                 blur_above: float = 0.0):
        self.size = size
        self.channels = channels
        self.face_crop = face_crop
        self.blur_sigma = blur_sigma
        self.blur_above = blur_above

    def validate(self) -> None:
        if self.face_crop not in FACE_CROPS:
            raise ModelError(f"face_crop must be one of {', '.join(FACE_CROPS)}, got {self.face_crop!r}")
        if not isinstance(self.size, int) or self.size < 1 or self.channels not in (1, 3):
            raise ModelError(f"network input: size must be a positive integer and channels 1 or 3, "
                             f"got size={self.size!r}, channels={self.channels!r}")

    def cache_params(self):
        params = self.get_params()
        if self.blur_sigma <= 0:  # no blur: its threshold changes nothing
            params.update(blur_sigma=0.0, blur_above=0.0)
        return params

    def fingerprint(self):
        out = framing(self.face_crop)
        if self.face_crop in ("chip", "align"):
            landmarks = model_files()["landmarks_small" if self.face_crop == "chip" else
                                      f"landmarks_{alignment.LANDMARKS}"]
            out["landmarks"] = {Path(landmarks).name: _digest(landmarks)}
        return out

    @property
    def dim(self) -> int:
        return self.size * self.size * self.channels

    def prepare(self) -> None:
        self._cropper = FaceCropper()

    def extract(self, image: np.ndarray) -> tuple[np.ndarray, dict]:
        if not hasattr(self, "_cropper"):
            self.prepare()
        return input_array(image, self.size, self.channels, self.face_crop, self._cropper,
                           (self.blur_sigma, self.blur_above))


@dataclass(frozen=True)
class InputSettings:
    """How an image becomes a network input (:func:`input_array`): its side ``size`` in pixels, its
    ``channels`` (1 or 3), the ``face_crop`` (one of :data:`FACE_CROPS`) and the ``blur``
    ``(sigma, above)`` of :func:`match_blur`. Each of them changes the input, so together they key
    the cache of :func:`cached_inputs`.

    >>> InputSettings(48, 1, "auto")
    InputSettings(size=48, channels=1, face_crop='auto', blur=(0.0, 0.0))
    """

    size: int
    channels: int
    face_crop: str = "never"
    blur: tuple[float, float] = (0.0, 0.0)


def prepare_images(uris: Sequence[str], settings: InputSettings, crops_dir: str | os.PathLike | None = None,
                   names: Sequence[str] | None = None, images: Sequence[np.ndarray] | None = None,
                   on_progress: Callable[[int, int], None] | None = None,
                   hashes: Sequence[str] | None = None) -> tuple[np.ndarray, list[dict]]:
    """Decode (or take) images and make them network inputs as ``settings`` say.

    Returns ``(array (N, size, size, channels) uint8, info per image)``; info
    holds ``face_cropped``, ``face_found``, ``crop_path`` (the saved crop,
    when ``crops_dir`` is given and the image was face-cropped) and
    ``blurred`` (see :func:`match_blur`).
    An image that cannot be read is left black with ``reason`` and ``error``
    in its info, never an exception: one bad file does not stop a network. With ``hashes`` (the
    content hash each image was listed with), a file that holds other bytes now is such an image
    (``changed``), since the inputs are stored under those hashes.
    """
    size, channels, face_crop, blur = settings.size, settings.channels, settings.face_crop, settings.blur
    if face_crop not in FACE_CROPS:
        raise ModelError(f"face_crop must be one of {', '.join(FACE_CROPS)}, got {face_crop!r}")
    cropper = FaceCropper()
    out = np.zeros((len(uris), size, size, channels), np.uint8)
    info: list[dict] = []
    for i, uri in enumerate(uris):
        row = {"face_cropped": False, "face_found": None, "crop_path": None, "blurred": False}
        try:
            image = images[i] if images is not None else \
                read_listed_image(uri, hashes[i]) if hashes is not None else read_image(uri)
        except ImageReadError as exc:
            info.append({**row, "reason": exc.reason, "error": str(exc)})
            continue
        out[i], made = input_array(image, size, channels, face_crop, cropper, blur)
        row.update(made)
        if row["face_cropped"] and crops_dir is not None:
            path = Path(crops_dir) / crop_file_name(names[i] if names is not None else Path(str(uri)).stem)
            save_crop(path, out[i])
            row["crop_path"] = str(path)
        info.append(row)
        if on_progress is not None and (i + 1 == len(uris) or (i + 1) % 256 == 0):
            on_progress(i + 1, len(uris))
    return out, info


def crop_file_name(image_id: str) -> str:
    """A face crop's file name from its image's id: one name, never a path (no folder, no '..').

    >>> crop_file_name("../../etc/x.jpg"), crop_file_name("a/b.png")
    ('..__..__etc__x.png', 'a__b.png')
    """
    stem = image_id.rsplit(".", 1)[0] if "." in Path(image_id).name else image_id
    safe = stem.replace("/", "__").replace("\\", "__").replace("\0", "")
    if safe in ("", ".", ".."):
        safe = "image"
    if len(safe.encode()) > 200:  # file names have a length limit; keep them apart by a digest
        safe = safe.encode()[:180].decode(errors="ignore") + "-" + hashlib.sha256(stem.encode()).hexdigest()[:16]
    return f"{safe}.png"


def _crops_in(info: list[dict], crops_dir: Path) -> bool:
    """Whether every face crop of a cached entry is saved in ``crops_dir``."""
    return all(r["crop_path"] is not None and Path(r["crop_path"]).parent == crops_dir
               and Path(r["crop_path"]).is_file() for r in info if r["face_cropped"])


def cached_inputs(hashes: Sequence[str], uris: Sequence[str], settings: InputSettings,
                  cache_dir: str | os.PathLike | None, crops_dir: str | os.PathLike | None = None,
                  names: Sequence[str] | None = None,
                  on_progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, list[dict]]:
    """:func:`prepare_images`, memoised on disk by image content and preprocessing.

    The whole set is one ``.npy`` (FER-2013 train is 66 MB at 48x48x1), so a
    second run starts training at once instead of decoding 30,000 JPEGs again.
    """
    if cache_dir is None:
        return prepare_images(uris, settings, crops_dir, names, on_progress=on_progress, hashes=hashes)
    size, channels, face_crop, blur = settings.size, settings.channels, settings.face_crop, settings.blur
    frame = framing(face_crop)
    if blur[0] > 0:
        frame["blur"] = list(blur)
    how = {"v": 1, "size": size, "channels": channels, "face_crop": face_crop, **frame}
    ident = json.dumps({"v": 1, "hashes": list(hashes), **{k: v for k, v in how.items() if k != "v"}})
    key = hashlib.sha256(ident.encode()).hexdigest()[:20]
    folder = Path(cache_dir) / "network-inputs"
    arr_path, info_path = folder / f"{key}.npy", folder / f"{key}.json"
    if arr_path.is_file() and info_path.is_file():
        try:
            arr = np.load(arr_path)
            info = json.loads(info_path.read_text())
            if arr.shape == (len(uris), size, size, channels) and len(info) == len(uris):
                if crops_dir is None or _crops_in(info, Path(crops_dir)):
                    return arr, info
        except (OSError, ValueError):
            pass  # a damaged entry is recomputed below
    if crops_dir is None:  # another set prepared the same way may hold some of these images already
        arr, info = _from_other_sets(folder, how, hashes, uris, settings, names, on_progress)
    else:
        arr, info = prepare_images(uris, settings, crops_dir, names, on_progress=on_progress, hashes=hashes)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(arr_path, lambda tmp: save_array(tmp, arr))
    atomic_write_text(info_path, json.dumps(info))
    atomic_write_text(folder / f"{key}{INDEX_SUFFIX}", json.dumps({"settings": how, "hashes": list(hashes)}))
    return arr, info


#: beside each cached set, the content hashes of its rows and how they were prepared
INDEX_SUFFIX = ".index.json"


def _from_other_sets(folder: Path, how: dict, hashes: Sequence[str], uris: Sequence[str], settings: InputSettings,
                     names: Sequence[str] | None, on_progress: Callable[[int, int], None] | None):
    """The inputs of ``uris``, taking each image another cached set prepared the same way already holds
    (by content hash) and preparing only the others: a leave-one-out fold or a subsample of a set
    prepared before costs no decoding or face finding."""
    where: dict[str, tuple[Path, int]] = {}
    for index in sorted(folder.glob(f"*{INDEX_SUFFIX}")) if folder.is_dir() else []:
        try:
            held = json.loads(index.read_text())
        except (OSError, ValueError):
            continue
        if held.get("settings") != how:
            continue
        stem = index.name[:-len(INDEX_SUFFIX)]
        for row, h in enumerate(held.get("hashes") or []):
            where.setdefault(h, (folder / stem, row))
    size, channels = how["size"], how["channels"]
    out = np.zeros((len(uris), size, size, channels), np.uint8)
    info: list[dict | None] = [None] * len(uris)
    by_entry: dict[Path, list[tuple[int, int]]] = {}
    for i, h in enumerate(hashes):
        if h in where:
            by_entry.setdefault(where[h][0], []).append((i, where[h][1]))
    for stem, pairs in by_entry.items():
        try:
            arr = np.load(stem.with_suffix(".npy"), mmap_mode="r")
            rows = json.loads(stem.with_suffix(".json").read_text())
        except (OSError, ValueError):
            continue  # a damaged entry: its images are prepared again
        if arr.shape[1:] != out.shape[1:] or arr.shape[0] != len(rows):
            continue
        for i, row in pairs:
            if row < len(rows) and "reason" not in rows[row]:  # an image that failed is tried again
                out[i], info[i] = arr[row], rows[row]
    todo = [i for i, r in enumerate(info) if r is None]
    if todo:
        pick = lambda seq: None if seq is None else [seq[i] for i in todo]  # noqa: E731
        made, made_info = prepare_images(pick(uris), settings, None, pick(names), on_progress=on_progress,
                                         hashes=pick(hashes))
        for j, i in enumerate(todo):
            out[i], info[i] = made[j], made_info[j]
    elif on_progress is not None:
        on_progress(len(uris), len(uris))
    return out, info


def save_array(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would add ".npy" to a temporary name
        np.save(fh, arr)
