"""Faces aligned as FER-2013 frames them: eyes level, scaled and placed by FER's own template.

FER-2013's crops come from its own face detector, so a face's size and place in them vary with
that detector. Aligning every face (FER's and a generated portrait's alike) by its eyes removes
that difference: dlib's 68 landmarks give both eye centres, the face is rotated so they are
level, scaled so that they lie :data:`FER_EYE_DISTANCE` crop sides apart, and placed with their
midpoint at (:data:`FER_EYES_X`, :data:`FER_EYES_Y`) of the crop: the medians measured on
FER-2013's training images by ``bench/measure_fer_alignment.py``.

FER crops are too small and too tight for dlib's HOG detector as they are; an image whose
longer side is under :data:`SMALL_SIDE` is searched padded by half its side (edge pixels) and
enlarged to about :data:`SEARCH_SIDE` pixels, and its landmarks are found there too.

>>> crop = aligned_crop(np.zeros((100, 100, 3), np.uint8), ((40.0, 50.0), (60.0, 50.0)))
>>> crop.shape[:2] == (round(20 / FER_EYE_DISTANCE),) * 2
True
"""

from __future__ import annotations

import math

import numpy as np

from embedlab.features.encoding import largest_box
from embedlab.features.facerec import face_landmarks, hog_face_locations

#: FER-2013's eye template: medians over the 2,985 of 4,000 training images where dlib found one
#: face and its landmarks (results/bench/fer_alignment.json) of the eye midpoint's x and y and
#: of the distance between the eye centres, in crop sides (quartiles 0.48-0.52, 0.37-0.42 and
#: 0.33-0.39). FER's own eyes are not level: 45% of them roll more than 5 degrees.
FER_EYES_X = 0.5
FER_EYES_Y = 0.397
FER_EYE_DISTANCE = 0.363
#: the landmark model (face_recognition's name) whose eye points are used
LANDMARKS = "large"
#: images smaller than this (longer side, pixels) are searched padded and enlarged
SMALL_SIDE = 128
SEARCH_SIDE = 384
#: the 68-point model's eye contours: the eye on the image's left, then the one on its right
LEFT_EYE, RIGHT_EYE = range(36, 42), range(42, 48)

Point = tuple[float, float]


def eye_centres(points: np.ndarray) -> tuple[Point, Point]:
    """The eye on the image's left and the one on its right, as (x, y), from 68 (x, y) landmarks."""
    left, right = points[list(LEFT_EYE)].mean(axis=0), points[list(RIGHT_EYE)].mean(axis=0)
    return (float(left[0]), float(left[1])), (float(right[0]), float(right[1]))


def search_view(image: np.ndarray) -> tuple[np.ndarray, float, int]:
    """The image as faces are searched in it: ``(view, factor, pad)``, the centre of view pixel
    (x, y) lying at ``((x + 0.5) / factor - 0.5 - pad, ...)`` of the image. Large images are
    searched as they are."""
    from PIL import Image

    h, w = image.shape[:2]
    if max(h, w) >= SMALL_SIDE:
        return image, 1.0, 0
    pad = max(h, w) // 2
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    factor = max(1, round(SEARCH_SIDE / padded.shape[0]))
    view = Image.fromarray(padded).resize((padded.shape[1] * factor, padded.shape[0] * factor),
                                          Image.Resampling.BICUBIC)
    return np.asarray(view), float(factor), pad


def find_eyes(image: np.ndarray, upsample: int = 1) -> tuple[tuple[Point, Point] | None, int]:
    """The eye centres of the largest face (None if no face) and how many faces were found.

    Large images are searched with HOG at ``upsample``; small ones (FER crops) in their
    :func:`search_view`, without upsampling (enlarging them did that already).
    """
    view, factor, pad = search_view(image)
    boxes = hog_face_locations(view, upsample if factor == 1.0 else 0)
    if not boxes:
        return None, 0
    shape = face_landmarks(view, [largest_box(boxes)], model=LANDMARKS)[0]
    points = (np.array([(p.x, p.y) for p in shape.parts()], dtype=float) + 0.5) / factor - 0.5 - pad
    return eye_centres(points), len(boxes)


def aligned_crop(image: np.ndarray, eyes: tuple[Point, Point], eyes_x: float = FER_EYES_X,
                 eyes_y: float = FER_EYES_Y, eye_distance: float = FER_EYE_DISTANCE) -> np.ndarray:
    """The square crop, at the image's own scale, that puts ``eyes`` level at the template's place.

    The crop's side is the eyes' distance over ``eye_distance``; where it reaches past the image,
    edge pixels fill it (as :func:`embedlab.nets.images.crop_square` pads).
    """
    from PIL import Image

    (lx, ly), (rx, ry) = eyes
    distance = max(math.hypot(rx - lx, ry - ly), 1.0)
    angle = math.atan2(ry - ly, rx - lx)
    side = distance / eye_distance
    out = max(1, int(round(side)))
    # a window around the eyes, edge-padded, holds the rotated crop whatever its angle
    half = int(math.ceil(side)) + 2
    mx, my = (lx + rx) / 2, (ly + ry) / 2
    top, left = int(math.floor(my)) - half, int(math.floor(mx)) - half
    window = _window(image, top, left, 2 * half)
    cx, cy = mx + 0.5 - left, my + 0.5 - top  # pixel centres: PIL maps continuous coordinates
    scale = side / out
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    # output pixel centre (u, v) -> window point: rotate about the eye midpoint by the eyes' angle
    u0, v0 = eyes_x * out, eyes_y * out
    a, b, d, e = cos, -sin, sin, cos
    c = cx - a * u0 - b * v0
    f = cy - d * u0 - e * v0
    pil = Image.fromarray(window).transform((out, out), Image.Transform.AFFINE, (a, b, c, d, e, f),
                                            resample=Image.Resampling.BICUBIC)
    return np.asarray(pil, dtype=np.uint8)


def _window(image: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    pad = max(0, -top, -left, top + side - h, left + side - w)
    if pad:
        image = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return np.ascontiguousarray(image[top + pad:top + pad + side, left + pad:left + pad + side])


def fer_eyes(side: int) -> tuple[Point, Point]:
    """Where the template puts the eye centres in a crop of ``side`` pixels (pixel indices, as
    landmarks are given).

    >>> (left, y), (right, y2) = fer_eyes(100)
    >>> y == y2 and round(right - left, 6) == round(FER_EYE_DISTANCE * 100, 6)
    True
    """
    half = FER_EYE_DISTANCE * side / 2
    x, y = FER_EYES_X * side - 0.5, FER_EYES_Y * side - 0.5
    return (x - half, y), (x + half, y)
