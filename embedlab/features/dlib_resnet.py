"""dlib's face descriptor network, read from dlib's own model file and run in PyTorch.

dlib computes its 128-d face encodings with a 29-layer ResNet stored in
``dlib_face_recognition_resnet_model_v1.dat`` (the file face_recognition_models
ships). This module reads that file, checking every field against the network
dlib defines (``anet_type`` in dlib's ``dnn_face_recognition_ex.cpp``), and
builds a :class:`FaceDescriptorNet` with the same layers and weights, which
runs aligned 150x150 face chips in batches on CPU threads or CUDA.

Face finding, landmarks and chip alignment stay in dlib (they are fast there);
:func:`face_chips` cuts the chips exactly as ``face_recognition.face_encodings``
does, so ``FaceDescriptorNet`` on them gives dlib's encodings.

>>> net = load_descriptor_net(device="cpu")
>>> net.encode(np.zeros((2, 150, 150, 3), np.uint8)).shape
(2, 128)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from embedlab.core.errors import FeatureError
from embedlab.core import system
from embedlab.features.dlib_format import (Layer, Stream, check_file_end, default_padding, read_layer_details,
                                          read_layer_state, read_model_bytes)
from embedlab.features.facerec import face_landmarks, import_face_recognition_models

#: SHA-256 of the model file dlib publishes and face_recognition_models ships.
OFFICIAL_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
CHIP_SIZE = 150
CHIP_PADDING = 0.25
#: largest per-dimension difference from dlib's own network accepted by :func:`check_against_dlib`
TOLERANCE = 1e-4

#: chips per forward pass; fixed, so that results do not depend on how images are grouped
BATCH_SIZE = 8
#: the network's stages, each named by where it ends in ``FaceDescriptorNet.blocks``
#: (stage1 at 35x35 for a 150 px chip, stage2 17x17, stage3 8x8, stage4 3x3, stage5 1x1)
STAGES = {"stage1": 3, "stage2": 7, "stage3": 10, "stage4": 13, "stage5": 14}
#: what :meth:`FaceDescriptorNet.trunk` can return: a stage's activations, averaged over
#: space, or the 128-d encoding
LAYER_DIMS = {"stage1": 32, "stage2": 64, "stage3": 128, "stage4": 256, "stage5": 256, "encoding": 128}
#: (in channels, out channels, halves the resolution) of each residual block
BLOCK_PLAN = ([(32, 32, False)] * 3 + [(32, 64, True)] + [(64, 64, False)] * 3 + [(64, 128, True)]
              + [(128, 128, False)] * 2 + [(128, 256, True)] + [(256, 256, False)] * 2 + [(256, 256, True)])


# -- the network dlib's file must hold -------------------------------------
def _architecture() -> list[Layer]:
    """dlib's ``anet_type``, outermost layer first, as the file nests it."""

    def block(n: int, stride: int) -> list[Layer]:
        return [Layer("affine"), Layer("con", (n, 3, 3, 1, 1)), Layer("relu"),
                Layer("affine"), Layer("con", (n, 3, 3, stride, stride))]

    def ares(n: int) -> list[Layer]:
        return [Layer("relu"), Layer("add_prev", (1,)), *block(n, 1), Layer("tag", (1,))]

    def ares_down(n: int) -> list[Layer]:
        return [Layer("relu"), Layer("add_prev", (2,)), Layer("avg_pool", (2, 2, 2, 2)),
                Layer("skip", (1,)), Layer("tag", (2,)), *block(n, 2), Layer("tag", (1,))]

    layers = [Layer("fc", (128,)), Layer("avg_pool", (0, 0, 1, 1))]
    layers += ares_down(256)
    layers += ares(256) + ares(256) + ares_down(256)
    layers += ares(128) + ares(128) + ares_down(128)
    layers += ares(64) + ares(64) + ares(64) + ares_down(64)
    layers += ares(32) + ares(32) + ares(32)
    layers += [Layer("max_pool", (3, 3, 2, 2)), Layer("relu"), Layer("affine"),
               Layer("con", (32, 7, 7, 2, 2))]
    return layers


@dataclass
class DescriptorWeights:
    """What :func:`read_model_file` found: input averages and the layers, input side first."""

    path: str
    sha256: str
    channel_means: tuple[float, float, float]
    layers: list[Layer]


def read_model_file(path: str | os.PathLike, *, sha256: str | None = OFFICIAL_SHA256) -> DescriptorWeights:
    """Read and check dlib's ``dlib_face_recognition_resnet_model_v1.dat``.

    Every version tag, layer kind, size and stride must be those of dlib's
    face recognition network, the file must end right after the network, and
    (unless ``sha256`` is None) its content must be the published file: a
    flipped byte inside the weights cannot be seen otherwise. Any mismatch
    raises :class:`FeatureError` naming the file and what was wrong.
    """
    path = str(path)
    data = read_model_bytes(path)
    return parse_model(data, path, sha256=sha256)


def parse_model(data: bytes, path: str = "<bytes>", *, sha256: str | None = OFFICIAL_SHA256) -> DescriptorWeights:
    """:func:`read_model_file` on the file's bytes; ``path`` names it in errors."""
    s = Stream(data, path)
    s.version("loss layer", (1,))
    if s.expect("metric loss layer", ("loss_metric_", "loss_metric_2")) == "loss_metric_2":
        s.real("loss margin")
        s.real("loss distance threshold")
    layers = _architecture()
    versions = []
    for i, layer in enumerate(layers):
        if layer.kind in ("tag", "skip"):
            allowed: tuple[int, ...] = (1,)
        else:
            allowed = (2, 3) if i == len(layers) - 1 else (1, 2)
        versions.append(s.version(f"{layer.kind} layer {i}", allowed))
    s.expect("input layer", ("input_rgb_image_sized",))
    means = (s.real("red average"), s.real("green average"), s.real("blue average"))
    size = (s.uint("input rows"), s.uint("input columns"))
    if size != (CHIP_SIZE, CHIP_SIZE):
        raise s.fail(f"input size {size}, expected {CHIP_SIZE}x{CHIP_SIZE}")

    channels = 3
    tags: dict[int, int] = {}
    for i in range(len(layers) - 1, -1, -1):  # the file holds the details input side first
        layer = layers[i]
        if layer.kind == "tag":
            tags[layer.args[0]] = channels
            continue
        if layer.kind == "skip":
            channels = tags[layer.args[0]]
            continue
        before = channels
        channels = read_layer_details(s, layer, channels)
        if layer.kind == "add_prev":
            channels = max(before, tags[layer.args[0]])
        read_layer_state(s, i, versions[i], last=i == len(layers) - 1)
    digest = check_file_end(s, data, path, sha256, "dlib's face recognition network")
    layers.reverse()
    return DescriptorWeights(path, digest, means, layers)


# -- the network in PyTorch -------------------------------------------------
def import_torch():
    """PyTorch, imported on first use; without it, a FeatureError that says what to install."""
    try:
        import torch
    except ImportError as exc:
        raise FeatureError(f"the torch engine of feature 'encoding' needs PyTorch ({exc}); "
                           "install torch or use engine=dlib") from None
    return torch


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``; a bad or missing device is a FeatureError."""
    import_torch()  # the torch engine's own message when PyTorch is missing
    return system.resolve_device(device, FeatureError)


# The torch classes of the network, together in one function so that they are defined only when
# first used (importing this module must stay light); each class is short.
@lru_cache(maxsize=None)
def _build_module():
    """The torch classes, defined on first use so that importing this module stays light."""
    torch = import_torch()
    nn = torch.nn
    F = torch.nn.functional

    def padded_sum(a, b):
        # dlib's add_prev adds tensors of different sizes as if both were
        # zero-padded at the end to the larger size (channels, rows, columns).
        if a.shape == b.shape:
            return a + b
        c, h, w = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:]))

        def pad(t):
            return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

        return pad(a) + pad(b)

    class Residual(nn.Module):
        """Two 3x3 convolutions (dlib's affine layers folded in) plus a shortcut."""

        def __init__(self, conv1, conv2, down: bool):
            super().__init__()
            self.conv1, self.conv2, self.down = conv1, conv2, down

        def forward(self, x):
            y = self.conv2(F.relu(self.conv1(x)))
            shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
            return F.relu(padded_sum(y, shortcut))

    class FaceDescriptorNet(nn.Module):
        """dlib's face recognition ResNet: uint8 RGB chips ``(N, 150, 150, 3)`` -> ``(N, 128)``."""

        def __init__(self, stem, blocks, fc, channel_means):
            super().__init__()
            self.stem, self.blocks, self.fc = stem, nn.ModuleList(blocks), fc
            self.register_buffer("channel_means", torch.tensor(channel_means, dtype=torch.float32))

        def forward(self, chips):
            return self.trunk(self.normalise(chips))

        def normalise(self, chips):
            """dlib's input layer: uint8 NHWC RGB -> (pixel - channel average) / 256, NCHW."""
            x = (chips.float() - self.channel_means) / 256.0
            return x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)

        def trunk(self, x, layer: str = "encoding"):
            """Normalised NCHW input -> ``layer`` (a stage averaged over space, or the encoding)."""
            x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
            for block in self.blocks[:STAGES.get(layer, len(self.blocks))]:
                x = block(x)
            x = x.mean(dim=(2, 3))
            return self.fc(x) if layer == "encoding" else x

        def freeze(self, upto: str) -> None:
            """Stop training the stem and every stage up to ``upto`` (``all``: the encoding layer too)."""
            frozen = [self.stem, *self.blocks[:STAGES.get(upto, len(self.blocks))]]
            if upto == "all":
                frozen.append(self.fc)
            for module in frozen:
                for prm in module.parameters():
                    prm.requires_grad_(False)

        @property
        def device(self):
            return self.channel_means.device

        def encode(self, chips: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
            """Encodings ``(N, 128)`` float32 of uint8 chips ``(N, 150, 150, 3)``.

            Every batch holds exactly ``batch_size`` chips (the last is padded):
            the kernels chosen, and so the last bits of each encoding, then do
            not depend on how many images came together or on thread counts.
            """
            chips = np.asarray(chips)
            if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3) or chips.dtype != np.uint8:
                raise FeatureError(f"face chips must be uint8 arrays of shape (N, {CHIP_SIZE}, {CHIP_SIZE}, 3), "
                                   f"got {chips.dtype} {chips.shape}")
            chips = np.ascontiguousarray(chips)
            out = np.empty((len(chips), 128), np.float32)
            # cuDNN would otherwise round convolutions to TF32 and miss dlib's values.
            with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
                for start in range(0, len(chips), batch_size):
                    batch = chips[start:start + batch_size]
                    n = len(batch)
                    if n < batch_size:
                        batch = np.concatenate([batch, np.zeros((batch_size - n, *batch.shape[1:]), np.uint8)])
                    x = torch.from_numpy(batch).to(self.device)
                    out[start:start + n] = self(x)[:n].float().cpu().numpy()
            return out

    return padded_sum, Residual, FaceDescriptorNet


def folded_conv(con: Layer, affine: Layer):
    """A Conv2d computing dlib's ``affine(con(x))`` in one step."""
    torch = import_torch()
    filters, nr, nc, sy, sx = con.args
    w, b = con.params["weight"], con.params["bias"]
    gamma, beta = affine.params["gamma"], affine.params["beta"]
    conv = torch.nn.Conv2d(w.shape[1], filters, (nr, nc), (sy, sx),
                           (default_padding(nr, sy), default_padding(nc, sx)), bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w * gamma[:, None, None, None]))
        conv.bias.copy_(torch.from_numpy(b * gamma + beta))
    return conv


def build_descriptor_net(weights: DescriptorWeights, device: str = "cpu"):
    """A :class:`FaceDescriptorNet` (eval mode, on ``device``) from what :func:`read_model_file` read."""
    torch = import_torch()
    _, Residual, FaceDescriptorNet = _build_module()
    layers = list(weights.layers)
    kinds = [layer.kind for layer in layers]

    def take(*expected: str) -> list[Layer]:
        got = [layers.pop(0) for _ in expected]
        assert [g.kind for g in got] == list(expected), (kinds, expected)
        return got

    con, affine, _, _ = take("con", "affine", "relu", "max_pool")
    if con.params["relu"]:
        raise FeatureError(f"model file {weights.path}: fused convolution+relu layers are not supported")
    stem = folded_conv(con, affine)
    blocks = []
    while layers[0].kind == "tag":
        _, con1, aff1, _, con2, aff2 = take("tag", "con", "affine", "relu", "con", "affine")
        down = layers[0].kind == "tag"
        take(*(("tag", "skip", "avg_pool", "add_prev", "relu") if down else ("add_prev", "relu")))
        if con1.params["relu"] or con2.params["relu"]:
            raise FeatureError(f"model file {weights.path}: fused convolution+relu layers are not supported")
        blocks.append(Residual(folded_conv(con1, aff1), folded_conv(con2, aff2), down))
    _, fc_layer = take("avg_pool", "fc")
    w = fc_layer.params["weight"]
    fc = torch.nn.Linear(w.shape[0], w.shape[1], bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
    net = FaceDescriptorNet(stem, blocks, fc, weights.channel_means).eval()
    net = net.to(memory_format=torch.channels_last)
    return net.to(device)


def stage_sizes(input_size: int) -> dict[str, int]:
    """The side of each stage's feature map for a square input (0: the input is too small).

    >>> stage_sizes(150)
    {'stage1': 35, 'stage2': 17, 'stage3': 8, 'stage4': 3, 'stage5': 1}
    """
    side = max((input_size - 7) // 2 + 1, 0)   # 7x7 convolution, stride 2, no padding
    side = max((side - 3) // 2 + 1, 0)          # 3x3 max pool, stride 2
    sizes, end = {}, 0
    for stage, stop in STAGES.items():
        for _, _, down in BLOCK_PLAN[end:stop]:
            if down:
                side = max((side - 3) // 2 + 1, 0)
        sizes[stage], end = side, stop
    return sizes


def check_input_size(input_size: int, layer: str) -> None:
    """Refuse an input too small for the network to reach ``layer``."""
    stage = "stage5" if layer == "encoding" else layer
    if stage_sizes(int(input_size)).get(stage, 0) < 1:
        smallest = next(n for n in range(16, 1025) if stage_sizes(n)[stage] >= 1)
        raise FeatureError(f"an input of {input_size} px is too small for dlib's network to reach {layer}: "
                           f"it needs at least {smallest} px (150 is what it was trained at)")


def untrained_descriptor_net(device: str = "cpu", seed: int = 0):
    """dlib's network with the same layers and PyTorch's default random weights.

    The shape a saved fine-tuned network loads into, and the ``weights=random`` baseline.
    """
    torch = import_torch()
    _, Residual, FaceDescriptorNet = _build_module()
    nn = torch.nn
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        stem = nn.Conv2d(3, 32, 7, 2, default_padding(7, 2))
        blocks = [Residual(nn.Conv2d(cin, cout, 3, 2 if down else 1, default_padding(3, 2 if down else 1)),
                           nn.Conv2d(cout, cout, 3, 1, 1), down) for cin, cout, down in BLOCK_PLAN]
        fc = nn.Linear(256, 128, bias=False)
    net = FaceDescriptorNet(stem, blocks, fc, (0.0, 0.0, 0.0)).to(memory_format=torch.channels_last)
    return net.to(device)


def default_model_path() -> str:
    """Where face_recognition_models keeps ``dlib_face_recognition_resnet_model_v1.dat``."""
    return import_face_recognition_models().face_recognition_model_location()


def load_descriptor_net(path: str | os.PathLike | None = None, *, device: str = "auto",
                        sha256: str | None = OFFICIAL_SHA256):
    """Read dlib's model file (default: face_recognition_models') into a ready :class:`FaceDescriptorNet`."""
    weights = read_model_file(path or default_model_path(), sha256=sha256)
    return build_descriptor_net(weights, resolve_device(device))


def reference_chips(n: int = 4) -> np.ndarray:
    """Fixed, varied uint8 chips (noise, gradients, flat grey) to compare engines on."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:CHIP_SIZE, 0:CHIP_SIZE]
    chips = [rng.integers(0, 256, (CHIP_SIZE, CHIP_SIZE, 3)),
             np.stack([xx * 255 // CHIP_SIZE, yy * 255 // CHIP_SIZE, (xx + yy) * 127 // CHIP_SIZE], -1),
             np.full((CHIP_SIZE, CHIP_SIZE, 3), 128),
             128 + 100 * np.sin(np.stack([xx / 7.0, yy / 11.0, (xx - yy) / 5.0], -1))]
    return np.stack([chips[i % len(chips)] for i in range(n)]).astype(np.uint8)


def dlib_encodings(chips: np.ndarray, path: str | os.PathLike | None = None) -> np.ndarray:
    """dlib's own network on aligned chips (the reference the torch network must match)."""
    model = _dlib_descriptor(str(Path(path or default_model_path()).resolve()))
    return np.array([np.array(model.compute_face_descriptor(np.ascontiguousarray(c)), np.float32)
                     for c in chips], dtype=np.float32).reshape(len(chips), 128)


@lru_cache(maxsize=2)
def _dlib_descriptor(path: str):
    """dlib's own descriptor network from ``path``, loaded once per process."""
    import dlib

    return dlib.face_recognition_model_v1(path)


def check_against_dlib(net, path: str | os.PathLike | None = None) -> float:
    """Raise :class:`FeatureError` unless ``net`` matches dlib's network within :data:`TOLERANCE`.

    Compares both on :func:`reference_chips`, once per network object: a guard
    against a platform or device whose arithmetic strays. Returns the largest
    difference found.
    """
    if getattr(net, "dlib_difference_", None) is not None:
        return net.dlib_difference_
    chips = reference_chips(2)  # noise and gradients: every layer's range gets exercised
    diff = float(np.abs(net.encode(chips) - dlib_encodings(chips, path)).max())
    if not diff <= TOLERANCE:
        raise FeatureError(
            f"the torch engine differs from dlib's network by {diff:.2g} (> {TOLERANCE}) on {net.device} "
            f"with {path or default_model_path()}; use engine=dlib")
    net.dlib_difference_ = diff
    return diff


def face_chips(image: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], landmarks: str = "small") -> np.ndarray:
    """Aligned 150x150 chips of the faces in ``boxes`` ((top, right, bottom, left)), as dlib cuts them.

    The same landmarks and ``get_face_chip`` settings as ``face_recognition.face_encodings``.
    """
    import dlib

    shapes = face_landmarks(image, list(boxes), model=landmarks)
    if not shapes:
        return np.empty((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    chips = dlib.get_face_chips(image, dlib.full_object_detections(shapes), size=CHIP_SIZE,
                                padding=CHIP_PADDING)
    return np.stack([np.asarray(c, dtype=np.uint8) for c in chips])
