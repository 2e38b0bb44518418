"""What a network reads: image arrays (cached, face-cropped when asked) and face encodings."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from embedlab.compute.extraction import encode, feature_matrix, resolve_features
from embedlab.core.errors import ModelError
from embedlab.nets.images import InputSettings, cached_inputs
from embedlab.nets.models import NetworkSpec
from embedlab.nets.native import NativeCropSet, NativeCrops, check_images
from embedlab.nets.training import Inputs


def blur_setting(p: dict[str, Any]) -> tuple[float, float]:
    return float(p.get("input_blur") or 0.0), float(p.get("input_blur_above") or 0.0)


def input_settings(p: dict[str, Any]) -> InputSettings:
    """How the images of a network with resolved parameters ``p`` become its inputs."""
    return InputSettings(int(p["size"]), int(p["channels"]), p.get("face_crop", "never"), blur_setting(p))


# Seven inputs of one preparation, the last three optional: the network, its settings, the rows,
# the class order, and where cached inputs, face crops and progress go.
def prepare_inputs(spec: NetworkSpec, p: dict[str, Any], frame: pd.DataFrame, classes: Sequence[str],
                   cache_dir, crops_dir=None, workers: int | None = None,
                   on_progress=None) -> tuple[Inputs, np.ndarray, list[dict]]:
    """Network inputs for ``frame``: returns ``(inputs of usable rows, usable mask, per-row info)``.

    The info of an unusable row holds its ``reason`` and ``error`` (unreadable file, no face found...).
    """
    import torch

    n = len(frame)
    usable = np.ones(n, bool)
    info: list[dict] = [{} for _ in range(n)]
    images = encodings = None
    if spec.reads_native:
        return native_inputs(p, frame, classes)
    if spec.uses_images:
        arr, info = cached_inputs(frame["hash"].tolist(), frame["path"].tolist(), input_settings(p), cache_dir,
                                  crops_dir=crops_dir, names=frame["image_id"].astype(str).tolist(),
                                  on_progress=on_progress)
        images = torch.from_numpy(arr)
        usable &= np.array([not r.get("reason") for r in info], bool)
    if spec.uses_encoding:
        extractor = resolve_features(p["encoding"])[0]
        if extractor.dim != 128:
            raise ModelError(f"network {spec.name!r} reads a 128-d encoding; feature {p['encoding']!r} has {extractor.dim}")
        df = encode(frame, [extractor], cache_dir=cache_dir, workers=workers)
        X, ok = feature_matrix(df, [extractor.name])
        for i in np.flatnonzero(~ok & usable):  # the first failure of an image says why
            info[i] = {**info[i], "reason": df[f"{extractor.name}.reason"].iloc[i] or "missing features",
                       "error": df[f"{extractor.name}.error"].iloc[i]}
        usable &= ok
        encodings = torch.from_numpy(np.nan_to_num(X).astype(np.float32))
    labels, groups = label_groups(frame, classes)
    keep = torch.from_numpy(np.flatnonzero(usable))
    inputs = Inputs(images[keep] if images is not None else None,
                    encodings[keep] if encodings is not None else None, labels[keep], groups[keep.numpy()])
    return inputs, usable, info


def label_groups(frame: pd.DataFrame, classes: Sequence[str]):
    """Each row's class index (-1 for a label the classes lack) and its (label, source) group number."""
    import torch

    index = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([index.get(str(v), -1) for v in frame["label"]], dtype=torch.long)
    sources = frame["source"] if "source" in frame.columns else pd.Series([None] * len(frame), index=frame.index)
    groups = pd.factorize(frame["label"].astype(str) + "/" + sources.fillna("").astype(str))[0]
    return labels, groups


def native_inputs(p: dict[str, Any], frame: pd.DataFrame, classes: Sequence[str]) -> tuple[NativeCrops, np.ndarray,
                                                                                             list[dict]]:
    """Native-resolution crops of ``frame``'s images, streamed: each file is decoded once here to
    find the unreadable ones, then again whenever a crop of it is drawn."""
    import torch

    hashes = frame["hash"].tolist() if "hash" in frame.columns else [None] * len(frame)
    info = check_images(frame["path"].tolist(), hashes)
    usable = np.array([not r.get("reason") for r in info], bool)
    labels, groups = label_groups(frame, classes)
    keep = np.flatnonzero(usable)
    crops = NativeCropSet([frame["path"].iloc[i] for i in keep], [hashes[i] for i in keep], int(p["crop"]),
                          int(p["eval_crops"]), p)
    return NativeCrops(crops, labels[torch.from_numpy(keep)], groups[keep],
                       loader_workers=int(p["loader_workers"])), usable, info


def input_metrics(info: list[dict] | None, usable: np.ndarray) -> dict[str, Any]:
    """What happened to the scored images on the way in: face crops found, inputs blurred."""
    out: dict[str, Any] = {"n_skipped": int((~usable).sum())}
    if info and any(r.get("face_cropped") for r in info):
        kept = [r for r, u in zip(info, usable) if u]
        out["face_crops"] = {"cropped": sum(bool(r.get("face_cropped")) for r in kept),
                             "face_found": sum(bool(r.get("face_found")) for r in kept)}
    if info and any(r.get("blurred") for r in info):
        out["inputs_blurred"] = sum(bool(r.get("blurred")) for r, u in zip(info, usable) if u)
    return out
