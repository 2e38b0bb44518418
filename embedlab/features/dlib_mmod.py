"""dlib's MMOD CNN face detector, read from dlib's own model file and run in PyTorch.

``mmod_human_face_detector.dat`` (shipped in face_recognition_models) holds the
network dlib's ``cnn_face_detection_model_v1`` runs: three strided 5x5
convolutions, three 5x5 convolutions of 45 filters and a 9x9 scoring filter,
each followed by batch-norm-turned-affine and relu, scanned over a tiled
image pyramid (``input_rgb_image_pyramid<pyramid_down<6>>``) and read out
by ``loss_mmod`` (an 80x80 sliding window, then non-max suppression).

This module reads that file with the same checks as :mod:`embedlab.features.dlib_resnet`
and repeats every step dlib takes, so that the boxes and confidences match dlib's:

- the optional 2x upsampling (``pyramid_up`` with ``pyramid_down<2>``) is dlib's
  SSE bilinear resize, reproduced to the pixel;
- the pyramid levels are tiled into one image as dlib tiles them, each level
  resized from the one above in float with dlib's bilinear rule;
- the scores above 0 become boxes through the network's receptive field map and
  the pyramid's coordinate map, are rounded as dlib rounds them, and go
  through the same greedy non-max suppression.

Images of one size go through the network together, on CPU threads or CUDA.

>>> detector = load_face_detector(device="cpu")
>>> detector.detect([np.zeros((120, 120, 3), np.uint8)], upsample=0)
[[]]
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from embedlab.core.errors import FeatureError
from embedlab.features import dlib_resnet
from embedlab.features.dlib_resnet import folded_conv, import_torch
from embedlab.features.dlib_format import (Layer, Stream, check_file_end, read_layer_details, read_layer_state,
                                          read_model_bytes)
from embedlab.features.facerec import import_face_recognition_models

#: SHA-256 of ``mmod_human_face_detector.dat`` as dlib publishes it and face_recognition_models ships it.
OFFICIAL_SHA256 = "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6"
MODEL_NAME = "dlib's MMOD face detector"
#: the network, outermost layer first, as the file nests it (dlib's ``cnn_face_detector.cpp``)
ARCHITECTURE = (
    [Layer("con", (1, 9, 9, 1, 1))]
    + [Layer(k, a) for _ in range(3) for k, a in (("relu", ()), ("affine", ()), ("con", (45, 5, 5, 1, 1)))]
    + [Layer(k, a) for n in (32, 32, 16) for k, a in (("relu", ()), ("affine", ()), ("con", (n, 5, 5, 2, 2)))]
)
#: the pyramid each level of which is 5/6 of the one above (``pyramid_down<6>``)
PYRAMID_RATE = 6
#: smallest level height dlib keeps in the pyramid
MIN_LEVEL_HEIGHT = 5
#: images per forward pass on the CPU (on CUDA, all images of a size go at once up to this many)
BATCH_SIZE = 8


@dataclass
class DetectorWeights:
    """What :func:`read_detector_file` found: the readout settings, input averages and layers, input side first."""

    path: str
    sha256: str
    window: tuple[int, int]                 # detector window (width, height), in pixels of a pyramid level
    nms_iou: float                          # non-max suppression: overlap (IoU) above which a box is dropped
    nms_covered: float                      # ... or fraction of either box covered
    channel_means: tuple[float, float, float]
    padding: tuple[int, int]                # between pyramid levels, around the tiled image
    layers: list[Layer]


def _architecture() -> list[Layer]:
    return [Layer(layer.kind, layer.args) for layer in ARCHITECTURE]


def _read_mmod_options(s: Stream) -> dict:
    version = s.version("mmod options", (1, 2, 3, 4))
    if version == 1:
        windows = [(s.uint("detector window width"), s.uint("detector window height"))]
    else:
        windows = []
        for _ in range(s.uint("detector window count")):
            s.version("detector window", (1, 2))
            windows.append((s.uint("detector window width"), s.uint("detector window height")))
            if version >= 2:
                s.string("detector window label")
    options = {"windows": windows}
    for name in ("loss per false alarm", "loss per missed target", "truth match IoU"):
        s.real(name)
    options["nms_iou"], options["nms_covered"] = s.real("nms IoU"), s.real("nms covered fraction")
    s.real("ignore IoU"), s.real("ignore covered fraction")
    if version >= 3:
        s.take(1, "image pyramid flag")
    if version >= 4:
        if s.boolean("bounding box regression flag"):
            raise s.fail("bounding box regression is not used by the face detector")
        s.real("bounding box regression lambda")
    if len(windows) != 1:
        raise s.fail(f"{len(windows)} detector windows where the face detector has one")
    return options


def _read_affine(s: Stream, layer: Layer, channels: int) -> None:
    """dlib stores the trained net's batch norm (``bn_con2``); inference turns it into an affine map."""
    start = s.pos
    if s.string("affine layer") != "bn_con2":
        s.pos = start
        read_layer_details(s, layer, channels)
        return
    params = s.tensor("batch norm parameters").reshape(-1)
    g_shape, b_shape = s.alias("batch norm gamma"), s.alias("batch norm beta")
    s.tensor("batch norm means"), s.tensor("batch norm inverse deviations")
    running_means = s.tensor("batch norm running means").reshape(-1)
    running_vars = s.tensor("batch norm running variances").reshape(-1)
    s.uint("batch norm update count"), s.uint("batch norm window")
    for name in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        s.real(f"batch norm {name} multiplier")
    eps = s.real("batch norm epsilon")
    if g_shape != (1, channels, 1, 1) or b_shape != g_shape or params.size != 2 * channels \
            or running_means.size != channels or running_vars.size != channels:
        raise s.fail(f"batch norm layer (gamma {g_shape}, {params.size} parameters) does not fit {channels} channels")
    # dlib's affine_(const bn_&): gamma / sqrt(var + eps), beta - that * mean, in float
    gamma = params[:channels] / np.sqrt(running_vars + np.float32(eps))
    layer.params = {"gamma": gamma.astype(np.float32),
                    "beta": (params[channels:] - gamma * running_means).astype(np.float32)}


def read_detector_file(path: str | os.PathLike, *, sha256: str | None = OFFICIAL_SHA256) -> DetectorWeights:
    """Read and check dlib's ``mmod_human_face_detector.dat``.

    Every version tag, layer kind, size and stride must be those of dlib's
    face detector, the file must end right after the network, and (unless
    ``sha256`` is None) its content must be the published file. Any mismatch
    raises :class:`FeatureError` naming the file and what was wrong.
    """
    path = str(path)
    data = read_model_bytes(path)
    return parse_detector(data, path, sha256=sha256)


def parse_detector(data: bytes, path: str = "<bytes>", *, sha256: str | None = OFFICIAL_SHA256) -> DetectorWeights:
    """:func:`read_detector_file` on the file's bytes; ``path`` names it in errors."""
    s = Stream(data, path, MODEL_NAME)
    s.version("loss layer", (1,))
    s.expect("MMOD loss layer", ("loss_mmod_",))
    options = _read_mmod_options(s)
    layers = _architecture()
    versions = [s.version(f"{layer.kind} layer {i}", (2, 3) if i == len(layers) - 1 else (1, 2))
                for i, layer in enumerate(layers)]
    pyramid = s.expect("input layer", ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"))
    means = (s.real("red average"), s.real("green average"), s.real("blue average"))
    padding = (10, 11)  # dlib's defaults, stored only by the newer input layer
    if pyramid == "input_rgb_image_pyramid2":
        padding = (s.uint("pyramid padding"), s.uint("pyramid outer padding"))
    channels = 3
    for i in range(len(layers) - 1, -1, -1):  # the file holds the details input side first
        layer = layers[i]
        if layer.kind == "affine":
            _read_affine(s, layer, channels)
        else:
            channels = read_layer_details(s, layer, channels)
        if layer.kind == "con" and layer.params["relu"]:
            raise s.fail("fused convolution+relu layers are not supported")
        read_layer_state(s, i, versions[i], last=i == len(layers) - 1)
    digest = check_file_end(s, data, path, sha256, MODEL_NAME)
    layers.reverse()
    (width, height), = options["windows"]
    return DetectorWeights(path, digest, (width, height), options["nms_iou"], options["nms_covered"],
                           means, padding, layers)


# -- dlib's image geometry ---------------------------------------------------
def upsampled_size(nr: int, nc: int) -> tuple[int, int]:
    """Rows and columns of ``pyramid_up`` with ``pyramid_down<2>``: the rounded ``rect_up`` of the image."""
    bottom = math.floor((nr - 1 + 0.75) * 2 + 0.5)
    right = math.floor((nc - 1 + 1.25) * 2 + 0.5)
    return bottom + 1, right + 1


@lru_cache(maxsize=64)
def _resize_plan(h: int, w: int, nr: int, nc: int):
    """Gather indices and float32 weights of dlib's SSE bilinear resize (rgb images), h x w -> nr x nc.

    dlib walks 4 columns at a time in float32, truncating the sample position
    (``simd4i(simd4f)``) and the result; the columns left over after the
    last full group go through a double-precision loop that also truncates.
    """
    xs, ys = (w - 1) / max(nc - 1, 1), (h - 1) / max(nr - 1, 1)
    x0 = -4 * xs
    xv = np.array([x0, x0 + xs, x0 + 2 * xs, x0 + 3 * xs], np.float32)
    step = np.float32(4 * xs)
    lefts, fracs = [], []
    while True:
        xv = (xv + step).astype(np.float32)
        left = np.trunc(xv).astype(np.int64)
        if left[3] + 1 >= w:
            break
        lefts.append(left)
        fracs.append((xv - left.astype(np.float32)).astype(np.float32))
    n_simd = 4 * len(lefts)
    left = np.concatenate(lefts) if lefts else np.zeros(0, np.int64)
    frac = np.concatenate(fracs) if fracs else np.zeros(0, np.float32)
    # the rows: y accumulates in double, as in dlib
    tops, tbs, y = np.empty(nr, np.int64), np.empty(nr, np.float64), -ys
    for r in range(nr):
        y += ys
        tops[r] = math.floor(y)
        tbs[r] = y - tops[r]
    bottoms = np.minimum(tops + 1, h - 1)
    # the leftover columns, in double
    x = -xs + n_simd * xs
    tail_left, tail_frac = [], []
    for _ in range(n_simd, nc):
        x += xs
        tail_left.append(math.floor(x))
        tail_frac.append(x - math.floor(x))
    return left, frac, tops, bottoms, tbs, np.array(tail_left, np.int64), np.array(tail_frac)


def upsample_image(image: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_up(image, pyramid_down<2>)`` of a uint8 RGB image, to the pixel."""
    torch = import_torch()
    return upsample_batch(torch.from_numpy(np.ascontiguousarray(image))[None])[0].numpy()


def upsample_batch(images):
    """:func:`upsample_image` of a uint8 tensor ``(N, H, W, 3)``, on its device."""
    return resize_batch(images, *upsampled_size(*images.shape[1:3]))


def resize_batch(images, nr: int, nc: int):
    """dlib's ``resize_image`` (bilinear, rgb) of a uint8 tensor ``(N, H, W, 3)`` to ``nr x nc``, to the pixel."""
    torch = import_torch()
    n, h, w = images.shape[:3]
    plan = _resize_tensors(h, w, nr, nc, str(images.device))
    out = torch.empty((n, nr, nc, 3), dtype=torch.uint8, device=images.device)
    # the rows and columns are gathered as uint8, before the arithmetic: a quarter of the memory
    top, bottom = images.index_select(1, plan["tops"]), images.index_select(1, plan["bottoms"])
    simd = plan["left"].numel()
    if simd:
        # dlib's order of float32 operations: weight products first (in the plan), then the four
        # terms left to right; the result truncates to uint8 (it lies in [0, 256))
        li, ri = plan["left"], plan["right"]
        v = plan["tl"] * top.index_select(2, li).float() + plan["tr"] * top.index_select(2, ri).float()
        v += plan["bl"] * bottom.index_select(2, li).float()
        v += plan["br"] * bottom.index_select(2, ri).float()
        out[:, :, :simd] = v.to(torch.uint8)
    if plan["tail_left"].numel():  # the last few columns, in double
        li, ri = plan["tail_left"], plan["tail_right"]
        lr, tb64 = plan["tail_frac"], plan["tb64"]
        v = (1 - tb64) * ((1 - lr) * top.index_select(2, li).double() + lr * top.index_select(2, ri).double()) \
            + tb64 * ((1 - lr) * bottom.index_select(2, li).double() + lr * bottom.index_select(2, ri).double())
        out[:, :, simd:] = v.to(torch.int64).to(torch.uint8)
    return out


@lru_cache(maxsize=64)
def _resize_tensors(h: int, w: int, nr: int, nc: int, device: str) -> dict:
    """:func:`_resize_plan` as tensors on ``device``, with dlib's float32 weight products made once."""
    torch = import_torch()
    left, frac, tops, bottoms, tbs, tail_left, tail_frac = _resize_plan(h, w, nr, nc)

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    tb, itb = tbs.astype(np.float32)[:, None, None], (1 - tbs).astype(np.float32)[:, None, None]
    fr, ifr = frac[None, :, None], (np.float32(1) - frac)[None, :, None]
    return {"tops": t(tops), "bottoms": t(bottoms), "left": t(left), "right": t(left + 1),
            "tl": t(itb * ifr), "tr": t(itb * fr), "bl": t(tb * ifr), "br": t(tb * fr),
            "tail_left": t(tail_left), "tail_right": t(np.minimum(tail_left + 1, w - 1)),
            "tail_frac": t(tail_frac[None, :, None]), "tb64": t(tbs[:, None, None])}


def pyramid_down_size(nr: int, nc: int) -> tuple[int, int]:
    rate = (PYRAMID_RATE - 1.0) / PYRAMID_RATE
    return math.floor(rate * nr), math.floor(rate * nc)


@lru_cache(maxsize=64)
def tiled_pyramid(nr: int, nc: int, padding: int = 10, outer_padding: int = 11):
    """dlib's layout of an nr x nc image's pyramid in one image.

    Returns ``(rows, cols, rects)``: the tiled image's size and each level's
    ``(left, top, right, bottom)`` (inclusive), the full image first.
    """
    sizes = [(nr, nc)]
    while True:
        nr, nc = pyramid_down_size(nr, nc)
        if nr * nc == 0 or nr < MIN_LEVEL_HEIGHT:
            break
        sizes.append((nr, nc))
    total = sum(h + padding for h, _ in sizes) - 2 * padding
    first_h, width = sizes[0]
    height, prev_w = 0, 0
    for h, w in sizes:
        if w <= width - prev_w - padding and (height - first_h) * 2 >= total - first_h:
            break
        height += h + padding
        prev_w = w
    height -= padding
    rects = []
    y = outer_padding
    i = 0
    while y < height + outer_padding and i < len(sizes):
        h, w = sizes[i]
        rects.append((outer_padding, y, outer_padding + w - 1, y + h - 1))
        y += h + padding
        i += 1
    y -= padding
    first = rects[0]
    while i < len(sizes):
        h, w = sizes[i]
        right, bottom = outer_padding + width - 1, y - 1
        rect = (right - (w - 1), bottom - (h - 1), right, bottom)
        if not (rect[0] > first[2] or rect[2] < first[0] or rect[1] > first[3] or rect[3] < first[1]):
            break
        rects.append(rect)
        y -= h + padding
        i += 1
    return height + 2 * outer_padding, width + 2 * outer_padding, tuple(rects)


# -- the network ----------------------------------------------------------------
@lru_cache(maxsize=None)
def _module_class():
    torch = import_torch()
    nn = torch.nn
    F = torch.nn.functional

    class FaceDetectorNet(nn.Module):
        """dlib's MMOD face detector network: normalised NCHW pyramid images -> score maps (N, 1, h, w)."""

        def __init__(self, convs, head):
            super().__init__()
            self.convs, self.head = nn.ModuleList(convs), head

        def forward(self, x):
            for conv in self.convs:
                x = F.relu(conv(x))
            return self.head(x)

    return FaceDetectorNet


class FaceDetector:
    """dlib's CNN face detector in PyTorch; :meth:`detect` is ``cnn_face_detection_model_v1``'s call.

    Built by :func:`load_face_detector`. ``detect`` takes a list of uint8 RGB
    images and returns, for each, the ``(left, top, right, bottom, confidence)``
    of the faces found, in dlib's inclusive pixel coordinates, best first.
    """

    #: output pixel (c, r) looks at input pixel (8c + 14, 8r + 14): three 5x5 stride-2 convolutions
    STRIDE, OFFSET = 8, 14

    def __init__(self, weights: DetectorWeights, net, device: str):
        self.weights, self.net, self.device = weights, net, device

    # -- the tiled pyramid --------------------------------------------------
    def pyramid_tensor(self, images):
        """The normalised tiled pyramid of same-size uint8 images ``(N, H, W, 3)`` (a tensor on the device)."""
        torch = import_torch()
        F = torch.nn.functional
        n, h, w = images.shape[:3]
        rows, cols, rects = tiled_pyramid(h, w, *self.weights.padding)
        x = torch.zeros((n, 3, rows, cols), dtype=torch.float32, device=self.device)
        means = torch.tensor(self.weights.channel_means, dtype=torch.float32, device=self.device)
        left, top, right, bottom = rects[0]
        x[:, :, top:bottom + 1, left:right + 1] = ((images.float() - means) / 256.0).permute(0, 3, 1, 2)
        for (l0, t0, r0, b0), (l1, t1, r1, b1) in zip(rects, rects[1:]):
            # dlib resizes each level from the one above, bilinearly with the corners aligned
            x[:, :, t1:b1 + 1, l1:r1 + 1] = F.interpolate(
                x[:, :, t0:b0 + 1, l0:r0 + 1], size=(b1 - t1 + 1, r1 - l1 + 1), mode="bilinear", align_corners=True)
        return x.contiguous(memory_format=torch.channels_last), rects

    # -- the readout ---------------------------------------------------------
    def _boxes(self, scores: np.ndarray, rects) -> list[tuple[int, int, int, int, float]]:
        """Scores above 0 -> boxes in the (upsampled) image, best first, after non-max suppression."""
        rs, cs = np.nonzero(scores > 0)
        if not len(rs):
            return []
        conf = scores[rs, cs].astype(np.float64)
        order = np.argsort(-conf, kind="stable")
        rs, cs, conf = rs[order], cs[order], conf[order]
        px, py = cs * self.STRIDE + self.OFFSET, rs * self.STRIDE + self.OFFSET
        level = _nearest_rect(rects, px, py)
        origin = np.array(rects)[level]
        ww, wh = self.weights.window
        half_w, half_h = (ww - 1) / 2, (wh - 1) / 2
        box = np.stack([px - half_w - origin[:, 0], py - half_h - origin[:, 1],
                        px + half_w - origin[:, 0], py + half_h - origin[:, 1]], 1).astype(np.float64)
        ratio = PYRAMID_RATE / (PYRAMID_RATE - 1.0)
        for lv in range(1, int(level.max()) + 1):
            up = level >= lv
            box[up] = box[up] * ratio + 0.3
        box = np.floor(box + 0.5).astype(np.int64)
        kept: list[tuple[int, int, int, int, float]] = []
        for b, c in zip(box, conf):
            if not any(boxes_overlap(k, b, self.weights.nms_iou, self.weights.nms_covered) for k in kept):
                kept.append((int(b[0]), int(b[1]), int(b[2]), int(b[3]), float(c)))
        return kept

    def score_maps(self, images, batch_size: int = BATCH_SIZE, upsample: int = 0):
        """Score maps ``(N, h, w)`` of same-size uint8 images ``(N, H, W, 3)``, and the pyramid's level rectangles."""
        torch = import_torch()
        outs, rects = [], None
        with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            for start in range(0, len(images), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(self.device)
                for _ in range(upsample):
                    batch = upsample_batch(batch)
                x, rects = self.pyramid_tensor(batch)
                outs.append(self.net(x)[:, 0].float().cpu().numpy())
        return np.concatenate(outs), rects

    def detect(self, images: Sequence[np.ndarray], upsample: int = 0,
               batch_size: int | None = None) -> list[list[tuple[int, int, int, int, float]]]:
        """Faces in each uint8 RGB image: ``(left, top, right, bottom, confidence)``, best first.

        ``upsample`` doubles the images that many times first (dlib's
        ``pyramid_up``), to find smaller faces; boxes are given in the
        original image. Images of the same size are scanned together.
        """
        if batch_size is None:
            batch_size = BATCH_SIZE if self.device == "cpu" else 64
        results: list = [None] * len(images)
        groups = images_by_shape(images)
        for shape, idx in groups.items():
            if min(shape[:2]) < 2:
                for i in idx:
                    results[i] = []
                continue
            scores, rects = self.score_maps(np.stack([np.asarray(images[i]) for i in idx]), batch_size, upsample)
            for i, s in zip(idx, scores):
                results[i] = [rect_down(b, upsample) for b in self._boxes(s, rects)]
        return results


def _nearest_rect(rects, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """dlib's ``nearest_rect``: the first level containing the point, else the closest one."""
    r = np.array(rects, dtype=np.float64)
    dx = np.maximum(np.maximum(r[None, :, 0] - px[:, None], px[:, None] - r[None, :, 2]), 0)
    dy = np.maximum(np.maximum(r[None, :, 1] - py[:, None], py[:, None] - r[None, :, 3]), 0)
    return np.argmin(np.hypot(dx, dy), axis=1)  # first of the minima: a containing level has distance 0


def images_by_shape(images: Sequence) -> dict[tuple, list[int]]:
    """The positions of ``images`` grouped by shape, so that each group is scanned as one batch;
    each must be a uint8 RGB image."""
    groups: dict[tuple, list[int]] = {}
    for i, image in enumerate(images):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise FeatureError(f"the face detector takes uint8 RGB images (H, W, 3), got {image.dtype} {image.shape}")
        groups.setdefault(image.shape, []).append(i)
    return groups


def boxes_overlap(a, b, iou: float, covered: float) -> bool:
    """dlib's ``test_box_overlap`` on inclusive integer rectangles."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if w <= 0 or h <= 0:
        return False
    inner = float(w * h)
    area_a = float((a[2] - a[0] + 1) * (a[3] - a[1] + 1))
    area_b = float((b[2] - b[0] + 1) * (b[3] - b[1] + 1))
    return inner / (area_a + area_b - inner) > iou or inner / area_a > covered or inner / area_b > covered


def rect_down(box, levels: int):
    """Undo ``levels`` upsamplings: dlib's ``pyramid_down<2>.rect_down``, rounded."""
    left, top, right, bottom, conf = box
    for _ in range(levels):
        left, right = left / 2.0 - 1.25, right / 2.0 - 1.25
        top, bottom = top / 2.0 - 0.75, bottom / 2.0 - 0.75
    if levels:
        left, top, right, bottom = (math.floor(v + 0.5) for v in (left, top, right, bottom))
    return int(left), int(top), int(right), int(bottom), conf


def build_face_detector(weights: DetectorWeights, device: str = "cpu") -> FaceDetector:
    """A :class:`FaceDetector` on ``device`` from what :func:`read_detector_file` read."""
    layers = [layer for layer in weights.layers if layer.kind != "relu"]
    convs = [folded_conv(con, affine) for con, affine in zip(layers[0:-1:2], layers[1:-1:2])]
    head_layer = layers[-1]
    torch = import_torch()
    w = head_layer.params["weight"]
    head = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], 1, w.shape[2] // 2)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(w))
        head.bias.copy_(torch.from_numpy(head_layer.params["bias"]))
    net = _module_class()(convs, head).eval().to(device, memory_format=import_torch().channels_last)
    return FaceDetector(weights, net, device)


def default_detector_path() -> str:
    """Where face_recognition_models keeps ``mmod_human_face_detector.dat``."""
    return import_face_recognition_models().cnn_face_detector_model_location()


def load_face_detector(path: str | os.PathLike | None = None, *, device: str = "auto",
                       sha256: str | None = OFFICIAL_SHA256) -> FaceDetector:
    """Read dlib's face detector file (default: face_recognition_models') into a ready :class:`FaceDetector`."""
    weights = read_detector_file(path or default_detector_path(), sha256=sha256)
    return build_face_detector(weights, dlib_resnet.resolve_device(device))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes ``(left, top, right, bottom, ...)`` whose corners are
    both inside, as dlib's rectangles are.

    >>> box_iou((0, 0, 9, 9), (5, 0, 14, 9))
    0.3333333333333333
    """
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inner = max(w, 0) * max(h, 0)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inner / (area_a + area_b - inner)


def dlib_detections(images: Sequence[np.ndarray], upsample: int = 0,
                    path: str | os.PathLike | None = None) -> list[list[tuple[int, int, int, int, float]]]:
    """dlib's own ``cnn_face_detection_model_v1`` on each image (the reference the torch detector must match)."""
    import dlib

    model = _dlib_model(str(path or default_detector_path()))
    out = []
    for image in images:
        dets = model(np.ascontiguousarray(image), upsample)
        out.append([(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), float(d.confidence))
                    for d in dets])
    del dlib
    return out


@lru_cache(maxsize=2)
def _dlib_model(path: str):
    import dlib

    return dlib.cnn_face_detection_model_v1(path)
