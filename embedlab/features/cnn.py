"""Pooled penultimate-layer embeddings of torchvision backbones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from embedlab.core.errors import FeatureError
from embedlab.features.base import EXTRACTORS, FeatureExtractor, check_choice
from embedlab.core.io import file_digest

# backbone -> (torchvision weights enum name, embedding size)
BACKBONES = {
    "resnet18": ("ResNet18_Weights", 512),
    "resnet50": ("ResNet50_Weights", 2048),
    "vgg16": ("VGG16_Weights", 4096),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Backbones beyond torchvision's, plugged in by the packages that know them:
#: ``(accepts(backbone) -> bool, CnnEmbedding subclass)``. embedlab.nets adds network
#: run folders this way, so that features never import the networks.
BACKBONE_PLUGINS: list[tuple[Callable[[str], bool], type]] = []


def register_backbone(accepts: Callable[[str], bool], extractor: type) -> None:
    """Let ``extractor`` (a :class:`CnnEmbedding` subclass) handle the backbones ``accepts`` takes."""
    if (accepts, extractor) not in BACKBONE_PLUGINS:
        BACKBONE_PLUGINS.append((accepts, extractor))


def hub_checkpoint_dir() -> Path:
    """Where torch.hub keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(torch_home) / "hub" / "checkpoints"


def imagenet_weights_url(backbone: str) -> str:
    import torchvision.models as tvm

    enum_name, _ = BACKBONES[backbone]
    return getattr(tvm, enum_name).IMAGENET1K_V1.url


def resolve_weights(backbone: str, weights: str | None) -> Path | None:
    """Path of the weights file to load, None for random weights.

    ``weights`` is ``"imagenet"`` (look in the torch hub cache), ``"random"``
    (only when asked for explicitly) or a path to a ``.pth`` state dict.
    """
    if weights == "random":
        return None
    if weights not in (None, "imagenet"):
        path = Path(str(weights)).expanduser()
        if not path.is_file():
            raise FeatureError(f"feature 'cnn': weights file not found: {path}")
        return path
    url = imagenet_weights_url(backbone)
    path = hub_checkpoint_dir() / url.rsplit("/", 1)[-1]
    if not path.is_file():
        raise FeatureError(
            f"feature 'cnn': ImageNet weights for {backbone} are not on this machine. "
            f"Download {url} and put it at {path} (or pass cnn:{backbone}[weights=/path/to/file.pth]); "
            f"use cnn:{backbone}[weights=random] for untrained weights."
        )
    return path


@EXTRACTORS.register("cnn")
class CnnEmbedding(FeatureExtractor):
    """Global-average-pooled penultimate layer of a torchvision backbone.

    backbone: ``resnet18``, ``resnet50`` or ``vgg16``; or a network run folder
    (``cnn:results/runs/NAME``), whose penultimate layer is then the feature
    (:mod:`embedlab.nets.features` plugs that in; see :data:`BACKBONE_PLUGINS`).
    weights: ``imagenet`` (from the torch hub cache), a ``.pth`` file, or ``random``.
    size: the square input size the image is resized to.
    """

    name = "cnn"
    primary_param = "backbone"

    def __init__(self, backbone: str = "resnet18", weights: str = "imagenet", size: int = 224,
                 batch_size: int = 32):
        self.backbone = backbone
        self.weights = weights
        self.size = size
        self.batch_size = batch_size

    @classmethod
    def variant_for(cls, params: dict[str, Any]) -> type:
        backbone = str(params.get("backbone", "resnet18"))
        if backbone not in BACKBONES:
            for accepts, extractor in BACKBONE_PLUGINS:
                if accepts(backbone):
                    return extractor
        return cls

    def cache_params(self):
        params = self.get_params()
        params.pop("batch_size")  # does not change the output
        if params["weights"] not in ("imagenet", "random"):
            params["weights"] = "file"  # the file's content is in the fingerprint, not its path
        return params

    def validate(self) -> None:
        if self.backbone not in BACKBONES and (Path(str(self.backbone)) / "params.json").is_file():
            raise FeatureError(f"feature 'cnn': {self.backbone} is a run folder; network runs are read as "
                               "features once embedlab.nets is imported (embedlab.api and the CLI do so)")
        check_choice(self, "backbone", tuple(BACKBONES))
        resolve_weights(self.backbone, self.weights)

    def fingerprint(self) -> dict[str, Any]:
        path = resolve_weights(self.backbone, self.weights)
        return {"weights_sha256": file_digest(str(path)) if path else None}

    @property
    def dim(self) -> int:
        return BACKBONES[self.backbone][1]

    def prepare(self) -> None:
        import torch
        import torchvision.models as tvm

        path = resolve_weights(self.backbone, self.weights)
        with torch.random.fork_rng():
            torch.manual_seed(0)  # random weights, when asked for, are the same every time
            model = getattr(tvm, self.backbone)(weights=None)
        if path is not None:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                model.load_state_dict(state)
            except Exception as exc:
                raise FeatureError(f"feature 'cnn': cannot load weights from {path}: {exc}") from None
        if self.backbone.startswith("resnet"):
            model.fc = torch.nn.Identity()
        else:  # vgg16: keep the classifier up to its second 4096-d layer
            model.classifier = torch.nn.Sequential(*list(model.classifier.children())[:-1])
        self._model = model.eval()
        self._torch = torch

    def _tensor(self, image: np.ndarray):
        from PIL import Image

        pil = Image.fromarray(image).resize((self.size, self.size), Image.Resampling.BILINEAR)
        arr = np.asarray(pil, dtype=np.float32) / 255.0
        arr = (arr - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
        return self._torch.from_numpy(arr.transpose(2, 0, 1).copy())

    def extract_many(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, dict]]:
        if not hasattr(self, "_model"):
            self.prepare()
        out = []
        with self._torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = self._torch.stack([self._tensor(im) for im in images[start:start + self.batch_size]])
                feats = self._model(batch).numpy().astype(np.float32)
                out.extend((f, {}) for f in feats)
        return out

    def extract(self, image):
        return self.extract_many([image])[0]
