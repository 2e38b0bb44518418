"""dlib's HOG face detector (``get_frontal_face_detector``), read from dlib's own serialisation and
run in PyTorch.

The detector face_recognition uses by default (``face_locations(model="hog")``) is an
``object_detector<scan_fhog_pyramid<pyramid_down<6>>>``: five linear filters (front,
left, right and two turned views) of 10x10 cells over dlib's 31-channel fHOG features,
scanned over an image pyramid that shrinks by 5/6 a level. dlib saves it to a file
(``dlib.get_frontal_face_detector().save(path)``); this module reads that file with a
check of every field and repeats every step dlib takes:

- the optional 2x upsampling and each pyramid level are dlib's bilinear ``resize_image``
  (:func:`embedlab.features.dlib_mmod.resize_batch`), to the pixel;
- the fHOG features (``extract_fhog_features``) in float32 in dlib's order of
  operations: the strongest colour channel's gradient (with the tie rules of dlib's
  vector and scalar loops), its snapped orientation, the bilinear votes into 8x8 cells,
  the four block normalisations truncated at 0.2 and the four texture sums;
- each filter as dlib applies it: its singular value decomposition with the small
  singular values dropped (``build_fhog_filterbank``), summed back into one filter and
  run as one convolution over the zero-padded feature planes;
- the windows at or above each filter's threshold become boxes through dlib's
  ``fhog_to_image`` and ``rect_up``, and go through the same greedy non-max suppression.

Images of one size go through every step together, as batched tensor operations.

>>> detector = load_face_detector()
>>> detector.detect([np.zeros((120, 120, 3), np.uint8)], upsample=0)
[[]]
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from embedlab.core.errors import FeatureError
from embedlab.features.dlib_format import Stream, check_file_end, read_model_bytes
from embedlab.features.dlib_mmod import (box_iou, boxes_overlap, images_by_shape, rect_down, resize_batch,
                                         upsample_batch)
from embedlab.features.dlib_resnet import import_torch
from embedlab.features.facerec import FRONTAL_DETECTOR_SHA256, _dlib_model

__all__ = ["HogDetector", "box_iou", "dlib_detections", "fhog_features", "load_face_detector",
           "parse_detector", "read_detector_file"]

#: SHA-256 of what ``dlib.get_frontal_face_detector().save(path)`` writes (checked with dlib 20.0)
OFFICIAL_SHA256 = FRONTAL_DETECTOR_SHA256
MODEL_NAME = "dlib's HOG frontal face detector"
#: fHOG planes: 18 contrast-sensitive orientations, 9 contrast-insensitive ones, 4 texture sums
PLANES = 31
#: the pyramid each level of which is 5/6 of the one above (``pyramid_down<6>``)
PYRAMID_RATE = 6
#: images per batch of tensor operations (a 512x512 image at upsample 1 is about 40 MB of tensors)
BATCH_SIZE = 8
#: gradients are differences of uint8 values; (gx, gy) -> gx * GRADIENTS + gy indexes the orientation table
GRADIENTS = 512
#: gradient orientations dlib snaps to, as the float32 unit vectors of fhog.h
DIRECTIONS = np.array([(1.0000, 0.0000), (0.9397, 0.3420), (0.7660, 0.6428), (0.500, 0.8660),
                       (0.1736, 0.9848), (-0.1736, 0.9848), (-0.5000, 0.8660), (-0.7660, 0.6428),
                       (-0.9397, 0.3420)], np.float32)


@dataclass
class HogWeights:
    """What :func:`read_detector_file` found: the scanner's settings, the overlap test and the filters."""

    path: str
    sha256: str
    cell_size: int
    padding: int                    # cells of context around the detection window in each filter
    window: tuple[int, int]         # detection window (width, height), in pixels of a pyramid level
    max_levels: int
    min_level_size: tuple[int, int]  # (width, height) below which the pyramid stops
    nms_iou: float
    nms_covered: float
    weights: np.ndarray             # (filters, planes * height * width + 1): dlib's w, threshold last

    @property
    def filter_size(self) -> tuple[int, int]:
        """(height, width) of a filter in cells."""
        return fhog_window_size(self.window, self.cell_size, self.padding)

    @property
    def thresholds(self) -> np.ndarray:
        return self.weights[:, -1]


def _cdiv(a: int, b: int) -> int:
    """C++ integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def centered_rect(x: int, y: int, width: int, height: int) -> tuple[int, int, int, int]:
    """dlib's ``centered_rect(point(x, y), width, height)``: (left, top, right, bottom)."""
    left, top = x - width // 2, y - height // 2
    return left, top, left + width - 1, top + height - 1


def fhog_window_size(window: tuple[int, int], cell_size: int, padding: int) -> tuple[int, int]:
    """(height, width) in cells of a filter over ``window`` pixels: ``compute_fhog_window_size``."""
    left, top, right, bottom = centered_rect(0, 0, *window)
    # image_to_fhog with no filter padding: one pixel of border, then one cell of border
    lo = [_cdiv(v - 1, cell_size) - 1 for v in (left, top)]
    hi = [_cdiv(v - 1, cell_size) - 1 for v in (right, bottom)]
    return hi[1] - lo[1] + 1 + 2 * padding, hi[0] - lo[0] + 1 + 2 * padding


def read_detector_file(path: str | os.PathLike, *, sha256: str | None = OFFICIAL_SHA256) -> HogWeights:
    """Read and check a saved ``fhog_object_detector`` shaped like dlib's frontal face detector.

    Every version tag and setting must be those of a ``scan_fhog_pyramid`` with
    dlib's default fHOG features, the filters must fill the window's cells, and
    the file must end right after the last filter; unless ``sha256`` is None its
    content must be what dlib saves. A mismatch raises :class:`FeatureError`
    naming the file and what was wrong.
    """
    path = str(path)
    return parse_detector(read_model_bytes(path), path, sha256=sha256)


def parse_detector(data: bytes, path: str = "<bytes>", *, sha256: str | None = OFFICIAL_SHA256) -> HogWeights:
    """:func:`read_detector_file` on the file's bytes; ``path`` names it in errors."""
    s = Stream(data, path, MODEL_NAME)
    s.version("object detector", (2,))
    s.version("fHOG scanner", (1,))
    # the default feature extractor stores nothing; then the scanner's (empty) feature pyramid
    if s.uint("feature pyramid capacity") or s.uint("feature pyramid size"):
        raise s.fail("a saved detector holds no feature pyramid")
    cell_size, padding = s.int("cell size", 4), s.uint("padding")
    window = (s.uint("detection window width"), s.uint("detection window height"))
    max_levels = s.uint("maximum pyramid levels")
    min_size = (s.uint("minimum pyramid level width"), s.uint("minimum pyramid level height"))
    s.real("nuclear norm regularisation strength")
    dims = s.int("feature dimensions")
    if not (0 < cell_size <= 64 and padding <= 16 and 0 < window[0] <= 4096 and 0 < window[1] <= 4096
            and max_levels > 0 and min(min_size) > 0):
        raise s.fail(f"implausible scanner settings: cell {cell_size}, padding {padding}, window {window}")
    height, width = fhog_window_size(window, cell_size, padding)
    if dims != PLANES * height * width:
        raise s.fail(f"{dims} feature dimensions where {PLANES} planes of {height}x{width} cells have "
                     f"{PLANES * height * width}")
    nms_iou, nms_covered = s.real("overlap IoU threshold"), s.real("overlap covered fraction")
    if not (0 <= nms_iou <= 1 and 0 <= nms_covered <= 1):
        raise s.fail(f"overlap thresholds {nms_iou}, {nms_covered} outside [0, 1]")
    count = s.uint("filter count")
    if not 0 < count <= 64:
        raise s.fail(f"implausible filter count {count}")
    weights = np.empty((count, dims + 1), np.float64)
    for i in range(count):
        # dlib writes a matrix's sizes negated (its newer format), then the values row by row
        nr, nc = abs(s.int(f"rows of filter {i}")), abs(s.int(f"columns of filter {i}"))
        if (nr, nc) != (dims + 1, 1):
            raise s.fail(f"filter {i} has {nr}x{nc} weights, expected {dims + 1}x1")
        weights[i] = [s.real(f"weight of filter {i}") for _ in range(nr)]
    digest = check_file_end(s, data, path, sha256, MODEL_NAME)
    return HogWeights(path, digest, cell_size, padding, window, max_levels, min_size, nms_iou, nms_covered,
                      weights)


def separable_filters(weights: HogWeights) -> np.ndarray:
    """The filters dlib scans with, ``(filters, planes, height, width)`` float32.

    ``build_fhog_filterbank`` splits each plane's filter by its singular value
    decomposition and keeps the terms whose singular value is at least
    ``max(1e-4, 0.001 * largest)``; the terms' float32 row and column filters,
    summed back, make the filter that dlib's separable filtering applies.
    """
    height, width = weights.filter_size
    out = np.zeros((len(weights.weights), PLANES, height, width), np.float32)
    for d, w in enumerate(weights.weights):
        planes = w[:-1].reshape(PLANES, height, width)
        for i, f in enumerate(planes):
            u, sv, vt = np.linalg.svd(f)
            keep = sv >= max(1e-4, sv.max() * 0.001)
            cols = (u[:, keep] * np.sqrt(sv[keep])).astype(np.float32).astype(np.float64)
            rows = (vt[keep].T * np.sqrt(sv[keep])).astype(np.float32).astype(np.float64)
            out[d, i] = (cols @ rows.T).astype(np.float32)
    return out


# -- dlib's geometry --------------------------------------------------------------
def pyramid_levels(nr: int, nc: int, weights: HogWeights) -> int:
    """How many pyramid levels ``scan_fhog_pyramid`` makes of an nr x nc image."""
    ratio = (PYRAMID_RATE - 1.0) / PYRAMID_RATE
    left, top, right, bottom = 0, 0, nc - 1, nr - 1
    levels = 0
    while True:
        left, top, right, bottom = (math.floor((v - 0.3) * ratio + 0.5) for v in (left, top, right, bottom))
        levels += 1
        if not (right - left + 1 >= weights.min_level_size[0] and bottom - top + 1 >= weights.min_level_size[1]
                and levels < weights.max_levels):
            return levels


def pyramid_down_size(nr: int, nc: int) -> tuple[int, int]:
    """``pyramid_down<6>``'s output size: 5/6 of each side, rounded down."""
    return (PYRAMID_RATE - 1) * nr // PYRAMID_RATE, (PYRAMID_RATE - 1) * nc // PYRAMID_RATE


def _fhog_to_image(v: np.ndarray, cell_size: int, filter_padding: int) -> np.ndarray:
    """dlib's ``fhog_to_image`` on one coordinate: feature cell -> the centre pixel of that cell."""
    p = (v + 1 - (filter_padding - 1) // 2) * cell_size + 1
    return p + np.where(p >= 0, cell_size // 2, -(cell_size // 2))


# -- fHOG ---------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _cell_plan(n: int, cell_size: int):
    """Along one side of n pixels: cells, the pixels that vote, and each pixel's two cells and weights."""
    cells = int(n / cell_size + 0.5)
    visible = min(cells * cell_size, n) - 1
    pos = np.arange(1, max(visible, 1), dtype=np.float64)
    p = ((pos + 0.5) / cell_size - 0.5).astype(np.float32)
    first = np.floor(p).astype(np.int64)
    frac1 = (p - first.astype(np.float32)).astype(np.float32)  # weight of the second cell
    frac0 = (np.float32(1) - frac1).astype(np.float32)
    return cells, visible, first + 1, frac0, frac1  # cell indices count a border cell first


def orientation_table() -> tuple[np.ndarray, np.ndarray]:
    """dlib's orientation bin (0-17) and gradient length for every integer gradient ``(gx, gy)``,
    indexed by ``gx * GRADIENTS + gy`` (negative indices wrap, as numpy and torch wrap them).

    Each is computed as dlib computes it, in float32: the dot product with each of the
    nine directions, the first of the largest (o for a positive dot, o + 9 for a
    negative one), and the square root of the squared length.
    """
    g = np.arange(-255, 256, dtype=np.float32)
    gx, gy = np.meshgrid(g, g, indexing="ij")
    best = np.zeros(gx.shape, np.float32)
    orient = np.zeros(gx.shape, np.int64)
    for o, (d0, d1) in enumerate(DIRECTIONS):
        dot = gx * d0 + gy * d1  # float32: each product rounded, then the sum
        for value, label in ((dot, o), (-dot, o + 9)):
            better = value > best
            best = np.where(better, value, best)
            orient = np.where(better, label, orient)
    length = np.sqrt(gx * gx + gy * gy)
    table_o = np.zeros(GRADIENTS * GRADIENTS, np.int64)
    table_v = np.zeros(GRADIENTS * GRADIENTS, np.float32)
    index = (gx.astype(np.int64) * GRADIENTS + gy.astype(np.int64)).ravel()
    table_o[index], table_v[index] = orient.ravel(), length.ravel()
    return table_o, table_v


@lru_cache(maxsize=4)
def _orientation_table(device: str):
    torch = import_torch()
    table_o, table_v = orientation_table()
    return torch.from_numpy(table_o).to(device), torch.from_numpy(table_v).to(device)


def fhog_features(images, cell_size: int = 8):
    """dlib's ``extract_fhog_features`` of uint8 RGB images ``(N, H, W, 3)`` (a tensor): ``(N, 31, h, w)`` float32.

    ``h, w`` are the image's cells less one at each border (dlib's size); None when
    the image has fewer than three cells a side.
    """
    torch = import_torch()
    n, nr, nc = images.shape[:3]
    cells_r, vis_r, cy, wy0, wy1 = _cell_plan(nr, cell_size)
    cells_c, vis_c, cx, wx0, wx1 = _cell_plan(nc, cell_size)
    hog_r, hog_c = cells_r - 2, cells_c - 2
    if hog_r <= 0 or hog_c <= 0:
        return None
    dev = images.device
    img = images[:, :vis_r + 1, :vis_c + 1].to(torch.int32)                 # (N, H, W, 3)
    gx = img[:, 1:vis_r, 2:vis_c + 1] - img[:, 1:vis_r, 0:vis_c - 1]
    gy = img[:, 2:vis_r + 1, 1:vis_c] - img[:, 0:vis_r - 1, 1:vis_c]
    # the channel with the longest gradient, and that gradient as an index into the orientation
    # table; dlib's 8-wide loop keeps the later channel on a tie, its scalar loop over the last
    # columns the earlier one: the channel's rank breaks ties in a sortable key
    mag = gx * gx + gy * gy
    grad = gx * GRADIENTS + gy
    tail = 1 + 8 * max(0, -(-(vis_c - 8) // 8)) - 1  # first column (of gx) of the scalar loop
    rank = torch.tensor([0, 1, 2], dtype=torch.int32, device=dev).expand(vis_c - 1, 3).clone()
    rank[tail:] = torch.tensor([2, 1, 0], dtype=torch.int32, device=dev)
    key = mag * 4 + rank                                                       # distinct per channel
    best = torch.maximum(torch.maximum(key[..., 0], key[..., 1]), key[..., 2])
    grad = torch.where(best == key[..., 0], grad[..., 0], torch.where(best == key[..., 1], grad[..., 1], grad[..., 2]))
    table_o, table_v = _orientation_table(str(dev))
    flat_grad = grad.flatten() % (GRADIENTS * GRADIENTS)  # index_select takes no negative indices
    orient = table_o.index_select(0, flat_grad).view(grad.shape)
    v = table_v.index_select(0, flat_grad).view(grad.shape)
    # bilinear votes into 8x8 cells (with a border cell all round), along columns first
    ix = torch.from_numpy(cx).to(dev)
    fx0, fx1 = torch.from_numpy(wx0).to(dev), torch.from_numpy(wx1).to(dev)
    ncx = cells_c + 2
    key = orient * ncx + ix
    flat = torch.zeros((n, vis_r - 1, 18 * ncx), dtype=torch.float32, device=dev)
    flat.scatter_add_(2, key, v * fx0)
    flat.scatter_add_(2, key + 1, v * fx1)
    wy = np.zeros((cells_r + 2, vis_r - 1), np.float32)
    rows = np.arange(vis_r - 1)
    wy[cy, rows] = wy0
    wy[cy + 1, rows] = wy1
    hist = torch.from_numpy(wy).to(dev) @ flat                                # (N, cells_r + 2, 18 * ncx)
    hist = hist.view(n, cells_r + 2, 18, ncx).permute(0, 2, 1, 3)[:, :, 1:-1, 1:-1]  # (N, 18, cells_r, cells_c)
    both = hist[:, :9] + hist[:, 9:]
    norm = both[:, 0] * both[:, 0]
    for o in range(1, 9):
        norm = norm + both[:, o] * both[:, o]
    # the four blocks of 2x2 cells around each cell, in dlib's lane order
    z = [norm[:, a:a + hog_r, c:c + hog_c] for a, c in ((1, 1), (0, 1), (1, 0), (0, 0))]
    z2 = [norm[:, a:a + hog_r, c:c + hog_c] for a, c in ((1, 2), (0, 2), (1, 1), (0, 1))]
    z3 = [norm[:, a:a + hog_r, c:c + hog_c] for a, c in ((2, 1), (1, 1), (2, 0), (1, 0))]
    z4 = [norm[:, a:a + hog_r, c:c + hog_c] for a, c in ((2, 2), (1, 2), (2, 1), (1, 1))]
    lanes = torch.stack([((z[k] + z2[k]) + z3[k]) + z4[k] for k in range(4)], 1)  # (N, 4, h, w)
    nn_ = (lanes + np.float32(0.0001)).sqrt() * np.float32(0.2)
    scale = np.float32(0.1) / nn_
    centre = hist[:, :, 1:1 + hog_r, 1:1 + hog_c]                             # (N, 18, h, w)
    sens = torch.minimum(centre[:, :, None], nn_[:, None]) * scale[:, None]    # (N, 18, 4, h, w)
    insens_in = centre[:, :9] + centre[:, 9:]
    insens = torch.minimum(insens_in[:, :, None], nn_[:, None]) * scale[:, None]
    t = torch.zeros_like(lanes)
    for o in range(0, 18, 3):
        t = t + ((sens[:, o] + sens[:, o + 1]) + sens[:, o + 2])
    t = t * np.float32(2 * 0.2357)

    def lane_sum(x):
        return (x[:, :, 0] + x[:, :, 1]) + (x[:, :, 2] + x[:, :, 3])

    return torch.cat([lane_sum(sens), lane_sum(insens), t], 1)


# -- the detector -------------------------------------------------------------------
class HogDetector:
    """dlib's HOG face detector in PyTorch; :meth:`detect` is ``fhog_object_detector.run``.

    Built by :func:`load_face_detector`. ``detect`` takes a list of uint8 RGB
    images and returns, for each, the ``(left, top, right, bottom, score)`` of
    the faces found, in dlib's inclusive pixel coordinates, best first.
    """

    def __init__(self, weights: HogWeights, filters, device: str = "cpu"):
        self.weights, self.filters, self.device = weights, filters, device

    def score_maps(self, images):
        """Per pyramid level of same-size uint8 images ``(N, H, W, 3)`` (a tensor): the filters'
        scores ``(N, filters, h, w)``, or None where the level is too small for features."""
        torch = import_torch()
        F = torch.nn.functional
        fh, fw = self.weights.filter_size
        n, nr, nc = images.shape[:3]
        out = []
        level = images
        for lv in range(pyramid_levels(nr, nc, self.weights)):
            if lv:
                level = resize_batch(level, *pyramid_down_size(*level.shape[1:3]))
            feats = fhog_features(level, self.weights.cell_size)
            if feats is None:
                out.append(None)
                continue
            # dlib zero-pads the feature planes so that windows may hang over the edges
            padded = F.pad(feats, ((fw - 1) // 2, fw // 2, (fh - 1) // 2, fh // 2))
            out.append(F.conv2d(padded, self.filters))
        return out

    def _boxes(self, maps: list, adjust_threshold: float) -> list[tuple[int, int, int, int, float]]:
        """One image's score maps (per level, ``(filters, h, w)``) -> boxes after non-max suppression."""
        w = self.weights
        fh, fw = w.filter_size
        box_h, box_w = fh - 2 * w.padding, fw - 2 * w.padding
        thresholds = w.thresholds
        ratio = PYRAMID_RATE / (PYRAMID_RATE - 1.0)
        found = []
        for lv, scores in enumerate(maps):
            if scores is None:
                continue
            limit = _as_tensor(scores, thresholds + adjust_threshold)
            hits = (scores.double() >= limit[:, None, None]).nonzero().cpu().numpy()
            if not len(hits):
                continue
            vals = scores[tuple(hits.T)].double().cpu().numpy()
            d, r, c = hits.T
            r, c = r + fh // 2, c + fw // 2     # the saliency image's row and column
            left, top = c - box_w // 2, r - box_h // 2
            box = np.stack([_fhog_to_image(left, w.cell_size, fw), _fhog_to_image(top, w.cell_size, fh),
                            _fhog_to_image(left + box_w - 1, w.cell_size, fw),
                            _fhog_to_image(top + box_h - 1, w.cell_size, fh)], 1).astype(np.float64)
            for _ in range(lv):
                box = box * ratio + 0.3
            box = np.floor(box + 0.5).astype(np.int64)
            found += [(float(s - thresholds[k]), k, b) for s, k, b in zip(vals, d, box)]
        found.sort(key=lambda t: -t[0])
        kept: list[tuple[int, int, int, int, float]] = []
        for conf, _, b in found:
            if not any(boxes_overlap(k, b, w.nms_iou, w.nms_covered) for k in kept):
                kept.append((int(b[0]), int(b[1]), int(b[2]), int(b[3]), conf))
        return kept

    def detect(self, images: Sequence[np.ndarray], upsample: int = 0, adjust_threshold: float = 0.0,
               batch_size: int = BATCH_SIZE) -> list[list[tuple[int, int, int, int, float]]]:
        """Faces in each uint8 RGB image: ``(left, top, right, bottom, score)``, best first.

        ``upsample`` doubles the images that many times first (dlib's
        ``pyramid_up``), to find smaller faces; boxes are given in the original
        image. ``adjust_threshold`` is added to each filter's threshold, as in
        dlib's ``run``. Images of the same size are scanned together.
        """
        torch = import_torch()
        results: list = [None] * len(images)
        groups = images_by_shape(images)
        with torch.inference_mode():
            for shape, idx in groups.items():
                for start in range(0, len(idx), batch_size):
                    part = idx[start:start + batch_size]
                    batch = torch.from_numpy(np.stack([np.asarray(images[i]) for i in part])).to(self.device)
                    if min(shape[:2]) < 2:
                        for i in part:
                            results[i] = []
                        continue
                    for _ in range(upsample):
                        batch = upsample_batch(batch)
                    maps = self.score_maps(batch)
                    for j, i in enumerate(part):
                        boxes = self._boxes([None if m is None else m[j] for m in maps], adjust_threshold)
                        results[i] = [rect_down(b, upsample) for b in boxes]
        return results


def _as_tensor(ref, values: np.ndarray):
    """``values`` as a float64 tensor on the device of ``ref``."""
    torch = import_torch()
    return torch.from_numpy(np.asarray(values, np.float64)).to(ref.device)


def build_face_detector(weights: HogWeights, device: str = "cpu") -> HogDetector:
    """A :class:`HogDetector` on ``device`` from what :func:`read_detector_file` read."""
    torch = import_torch()
    return HogDetector(weights, torch.from_numpy(separable_filters(weights)).to(device), device)


def default_detector_bytes() -> bytes:
    """What ``dlib.get_frontal_face_detector().save(path)`` writes."""
    import dlib

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "frontal_face_detector.svm")
        dlib.get_frontal_face_detector().save(path)
        return read_model_bytes(path)


def load_face_detector(path: str | os.PathLike | None = None, *, device: str = "cpu",
                       sha256: str | None = OFFICIAL_SHA256) -> HogDetector:
    """dlib's frontal face detector (or a saved one at ``path``) as a ready :class:`HogDetector`."""
    if path is None:
        weights = parse_detector(default_detector_bytes(), "dlib.get_frontal_face_detector()", sha256=sha256)
    else:
        weights = read_detector_file(path, sha256=sha256)
    return build_face_detector(weights, device)


def dlib_detections(images: Sequence[np.ndarray], upsample: int = 0,
                    adjust_threshold: float = 0.0) -> list[list[tuple[int, int, int, int, float]]]:
    """dlib's own frontal face detector on each image (the reference the torch detector must match)."""
    detector = _dlib_detector()
    out = []
    for image in images:
        rects, scores, _ = detector.run(np.ascontiguousarray(image), upsample, adjust_threshold)
        out.append([(r.left(), r.top(), r.right(), r.bottom(), float(s)) for r, s in zip(rects, scores)])
    return out


def _dlib_detector():
    return _dlib_model("hog")  # the detector face finding loaded, or loads now
