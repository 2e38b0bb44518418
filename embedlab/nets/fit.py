"""``fit_network``: train a registered network on a dataset and write its run folder.

The dataset's own splits are used (see :func:`embedlab.fitting.assign_splits`);
when it has no ``valid`` split, ``valid_fraction`` of ``train`` (stratified,
seeded) is held out to pick the best epoch and stop early, so ``test`` is
never looked at during training. Every ``eval_on`` dataset is scored whole.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from embedlab.cache import DEFAULT_CACHE_DIR
from embedlab.errors import DatasetError, ModelError
from embedlab.nets.images import cached_inputs
from embedlab.nets.models import NETWORKS, NetworkSpec, build_module
from embedlab.nets.training import (MODEL_FILE, POSITIVE_CLASS, Inputs, resolve_device, run_model,
                                    seed_everything, train_loop)

DEFAULT_RUNS_DIR = Path("results") / "runs"
#: parameters a resumed run may change: how it computes, not what it learns (input_blur
#: only touches inputs sharper than the training images, so a finished run can take it up)
RESUME_SETTINGS = ("workers_threads", "bf16", "input_blur", "input_blur_above", "tta_flip")


def _load_table(data) -> pd.DataFrame:
    from embedlab import datasets

    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True)
    return datasets.load(data)


def split_roles(table: pd.DataFrame, valid_fraction: float, seed: int) -> tuple[pd.Series, dict]:
    """train/valid/test per row: the dataset's splits, a stratified valid share carved from train."""
    from embedlab.fitting import assign_splits

    roles, how = assign_splits(table, seed=seed)
    roles = roles.astype(object).copy()
    if not (roles == "valid").any():
        pool = roles.index[roles == "train"]
        labels = table.loc[pool, "label"].astype(str)
        n_valid = max(int(round(valid_fraction * len(pool))), labels.nunique())
        rng = np.random.default_rng(seed)
        picked = []
        # stratified without sklearn's two-per-class rule: tiny classes keep at least one train image
        for label, idx in labels.groupby(labels).groups.items():
            idx = np.array(sorted(idx))
            k = min(len(idx) - 1, max(1, int(round(n_valid * len(idx) / len(pool)))))
            picked.extend(rng.choice(idx, size=max(k, 0), replace=False).tolist())
        roles[picked] = "valid"
        how = {**how, "valid": {"source": "stratified", "fraction": valid_fraction, "seed": seed}}
    return roles, how


def blur_setting(p: dict[str, Any]) -> tuple[float, float]:
    return float(p.get("input_blur") or 0.0), float(p.get("input_blur_above") or 0.0)


def prepare_inputs(spec: NetworkSpec, p: dict[str, Any], frame: pd.DataFrame, classes: Sequence[str],
                   cache_dir, crops_dir=None, workers: int | None = None,
                   on_progress=None) -> tuple[Inputs, np.ndarray, list[dict]]:
    """Network inputs for ``frame``: returns ``(inputs of usable rows, usable mask, per-row info)``."""
    import torch

    n = len(frame)
    usable = np.ones(n, bool)
    info: list[dict] = [{} for _ in range(n)]
    images = encodings = None
    if spec.uses_images:
        arr, info = cached_inputs(frame["hash"].tolist(), frame["path"].tolist(), int(p["size"]),
                                  int(p["channels"]), p.get("face_crop", "never"), cache_dir,
                                  crops_dir=crops_dir, names=frame["image_id"].astype(str).tolist(),
                                  on_progress=on_progress, blur=blur_setting(p))
        images = torch.from_numpy(arr)
    if spec.uses_encoding:
        from embedlab.extraction import encode, feature_matrix, resolve_features

        extractor = resolve_features(p["encoding"])[0]
        if extractor.dim != 128:
            raise ModelError(f"network {spec.name!r} reads a 128-d encoding; feature {p['encoding']!r} has {extractor.dim}")
        df = encode(frame, [extractor], cache_dir=cache_dir, workers=workers)
        X, ok = feature_matrix(df, [extractor.name])
        usable &= ok
        encodings = torch.from_numpy(np.nan_to_num(X).astype(np.float32))
    index = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([index.get(str(v), -1) for v in frame["label"]], dtype=torch.long)
    keep = torch.from_numpy(np.flatnonzero(usable))
    inputs = Inputs(images[keep] if images is not None else None,
                    encodings[keep] if encodings is not None else None, labels[keep])
    return inputs, usable, info


def score_set(proba: np.ndarray, frame: pd.DataFrame, usable: np.ndarray, classes: list[str], task: str,
              positive: str | None, set_name: str, role: str, dataset: str, seed: int,
              info: list[dict] | None = None) -> tuple[dict, pd.DataFrame]:
    """metrics.json entry and prediction rows for one set."""
    from embedlab.evaluation import evaluate

    rows = frame[usable]
    metrics = {"role": role, "dataset": dataset,
               **evaluate(rows["label"].tolist(), proba, classes,
                          positive_class=positive if task == "binary" else None, seed=seed)}
    metrics["n_skipped"] = int((~usable).sum())
    if info and any(r.get("face_cropped") for r in info):
        kept = [r for r, u in zip(info, usable) if u]
        metrics["face_crops"] = {"cropped": sum(bool(r.get("face_cropped")) for r in kept),
                                 "face_found": sum(bool(r.get("face_found")) for r in kept)}
    if info and any(r.get("blurred") for r in info):
        metrics["inputs_blurred"] = sum(bool(r.get("blurred")) for r, u in zip(info, usable) if u)
    pred = [classes[i] for i in proba.argmax(axis=1)] if len(proba) else []
    out = pd.DataFrame({"set": set_name, "image_id": rows["image_id"].astype(str).values,
                        "path": rows["path"].astype(str).values, "hash": rows["hash"].astype(str).values,
                        "label": rows["label"].astype(object).values, "pred": pred})
    out["correct"] = out["label"].astype(str).str.strip().str.lower() == out["pred"].astype(str).str.lower()
    for i, c in enumerate(classes):
        out[f"proba_{c}"] = proba[:, i] if len(proba) else []
    return metrics, out


def _default_name(network: str, data_name: str, runs_dir: Path) -> str:
    import re

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = re.sub(r"[^A-Za-z0-9]+", "-", f"{data_name}-{network}-{stamp}").strip("-").lower()
    name, k = base, 2
    while (runs_dir / name).exists():
        name, k = f"{base}-{k}", k + 1
    return name


def _write_json(path: Path, obj: Any) -> None:
    from embedlab.runs import _json_default

    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default))
    os.replace(tmp, path)


def fit_network(data, network: str, params: dict[str, Any] | None = None,
                eval_on: Iterable[str | os.PathLike] = (), runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR,
                name: str | None = None, cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, seed: int = 0,
                device: str = "auto", epochs: int | None = None, resume: bool = False,
                on_progress: Callable | None = None, command: str | None = None):
    """Train ``network`` (a name in :data:`NETWORKS`) on ``data``; returns the loaded run.

    ``params`` overrides the network's defaults (``NETWORKS.create(network).resolve()``
    lists them); ``epochs`` overrides ``params["epochs"]``. With ``resume``, the
    run ``name`` continues from its ``last.pt`` with the parameters it was started with.
    """
    import torch

    from embedlab.nets.run import load_network_run
    from embedlab.runs import data_fingerprint, library_versions

    spec = NETWORKS.create(network)
    runs_dir = Path(runs_dir)
    if resume:
        if not name:
            raise ModelError("resume needs the run name (--name) of the run to continue")
        folder = runs_dir / name
        if not (folder / "params.json").is_file():
            raise ModelError(f"{folder}: no run to resume (params.json missing)")
        started = json.loads((folder / "params.json").read_text())
        if started.get("model") != network:
            raise ModelError(f"run {name} trains {started.get('model')!r}, not {network!r}")
        p = spec.resolve(started["model_params"])
        # only settings that leave the trained network unchanged may differ on resume
        p.update({k: v for k, v in (params or {}).items() if k in RESUME_SETTINGS})
        if epochs is not None:
            p["epochs"] = int(epochs)
        seed = int(started.get("seed", seed))
    else:
        p = spec.resolve(params)
        if epochs is not None:
            p["epochs"] = int(epochs)
    if int(p["epochs"]) < 1:
        raise ModelError(f"epochs must be at least 1, got {p['epochs']}")
    dev = resolve_device(device)
    if p["workers_threads"]:
        torch.set_num_threads(int(p["workers_threads"]))
    if p["bf16"] and dev.type == "cpu" and not torch.backends.mkldnn.is_available():
        p["bf16"] = False

    table = _load_table(data)
    if table["label"].isna().any():
        raise DatasetError(f"{table.attrs.get('root', 'data')}: {int(table['label'].isna().sum())} images have no label")
    roles, how = split_roles(table, float(p["valid_fraction"]), seed)
    classes = sorted(table.loc[roles == "train", "label"].astype(str).unique())
    if len(classes) < 2:
        raise ModelError(f"{table.attrs.get('root', 'data')}: a network needs at least two classes in train")
    task = "binary" if len(classes) == 2 else "multiclass"
    positive = (POSITIVE_CLASS if POSITIVE_CLASS in classes else classes[1]) if task == "binary" else None
    pos_index = classes.index(positive) if positive else 1  # a binary network's one output is this class
    name = name or _default_name(network, table.attrs.get("name", "data"), runs_dir)
    folder = runs_dir / name
    if not resume:
        if folder.exists() and any(folder.iterdir()):
            raise ModelError(f"run {folder} already exists; choose another name or pass resume=True")
        folder.mkdir(parents=True, exist_ok=True)

    features = [p["encoding"]] if spec.uses_encoding else []
    feature_keys = {}
    if features:
        from embedlab.features import create_extractor

        ex = create_extractor(features[0])
        feature_keys = {ex.name: ex.key()}
    eval_on = [str(e) for e in eval_on]
    params_json = {
        "name": name, "kind": "network", "task": task, "classes": classes, "positive_class": positive,
        "model": network, "model_params": p, "features": features, "feature_keys": feature_keys,
        "data": {"path": str(table.attrs.get("root", data if not isinstance(data, pd.DataFrame) else "")),
                 "layout": table.attrs.get("layout"), "name": table.attrs.get("name"),
                 "fingerprint": data_fingerprint(table), "n_images": int(len(table))},
        "splits": {**how, "counts": {r: int((roles == r).sum()) for r in ("train", "valid", "test")}},
        "eval_on": eval_on, "versions": library_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]), "seed": seed,
        "device": dev.type, "model_files": [MODEL_FILE],
    }
    if resume:
        params_json["created"] = started.get("created", params_json["created"])
        params_json["command"] = started.get("command", params_json["command"])
        earlier = started.get("resumed_with") or []
        earlier = [earlier] if isinstance(earlier, str) else list(earlier)
        params_json["resumed_with"] = earlier + [command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])]
    _write_json(folder / "params.json", params_json)

    seed_everything(seed)
    frames = {r: table[roles == r].reset_index(drop=True) for r in ("train", "valid", "test")}
    prepared = {r: prepare_inputs(spec, p, f, classes, cache_dir) for r, f in frames.items() if len(f)}
    train_inputs = prepared["train"][0]
    if len(train_inputs) == 0:
        raise ModelError(f"{name}: no usable training images")
    n_out = 1 if task == "binary" else len(classes)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module = build_module(spec, p, n_out)
    summary = train_loop(module, spec, p, task, len(classes), train_inputs, prepared["valid"][0],
                         folder, seed, dev, resume, on_progress, pos_index)

    metrics, predictions = {"sets": {}}, []
    dataset_path = params_json["data"]["path"]
    for role, (inputs, usable, info) in prepared.items():
        proba = run_model(module, inputs, dev, int(p.get("channels", 1)), task,
                          positive_index=pos_index, tta_flip=bool(p["tta_flip"]))
        m, rows = score_set(proba, frames[role], usable, classes, task, positive, role, role, dataset_path, seed, info)
        metrics["sets"][role] = m
        predictions.append(rows)
    for path in eval_on:
        from embedlab import datasets

        frame = datasets.load(path).reset_index(drop=True)
        set_name = frame.attrs.get("name") or Path(path).name
        inputs, usable, info = prepare_inputs(spec, p, frame, classes, cache_dir,
                                              crops_dir=folder / "crops" / set_name)
        proba = run_model(module, inputs, dev, int(p.get("channels", 1)), task,
                          positive_index=pos_index, tta_flip=bool(p["tta_flip"]))
        m, rows = score_set(proba, frame, usable, classes, task, positive, set_name, "eval", str(path), seed, info)
        metrics["sets"][set_name] = m
        predictions.append(rows)
    metrics["training"] = summary
    pd.concat(predictions, ignore_index=True).to_parquet(folder / "predictions.parquet", index=False)
    _write_json(folder / "metrics.json", metrics)
    params_json["training"] = summary
    _write_json(folder / "params.json", params_json)
    return load_network_run(folder)
