"""Opening a network run folder: its figures, its predictions, and the network itself.

>>> from embedlab.nets import load_network_run
>>> run = load_network_run("embedlab/pretrained/emotion")
>>> run.params["model"], len(run.classes)
('dlib-resnet', 7)
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from embedlab.compute.distributed import parse_scheduler
from embedlab.compute.extraction import images_for_cache
from embedlab.core.defaults import DEFAULT_CACHE_DIR, DEFAULT_CROPS_DIR
from embedlab.core.errors import ModelError, OptionError
from embedlab.datasets import images_of
from embedlab.nets.images import prepare_images
from embedlab.nets.inputs import input_settings, prepare_inputs
from embedlab.nets.models import NETWORKS, build_module
from embedlab.nets.prediction import network_outputs
from embedlab.nets.training import MODEL_FILE, Inference, Inputs, memory_format_for, resolve_device, run_model
from embedlab.runs.folder import HISTORY_FILE, PARAMS_FILE, Run, read_optional_table, read_run, run_kind


@dataclass
class NetworkRun(Run):
    """A trained network run: ``params``, ``metrics``, stored predictions, and the network.

    ``predict`` prepares images the way the network was trained (face crop for
    portraits when the network reads tight crops) and returns the predicted
    label and ``proba_<class>`` per image; ``embed`` returns the penultimate layer.
    """

    device: str = "auto"
    _module: Any = field(default=None, repr=False)

    @property
    def spec(self):
        return NETWORKS.create(self.params["model"])

    @property
    def positive_index(self) -> int:
        """Which class a binary network's single output scores."""
        positive = self.params.get("positive_class")
        return self.classes.index(positive) if positive in self.classes else 1

    @property
    def model_params(self) -> dict[str, Any]:
        """The network's settings, checked like a --param (types, ranges): a run folder is untrusted input."""
        try:
            return self.spec.resolve(self.params.get("model_params") or {})
        except OptionError as exc:
            raise ModelError(f"{self.path / PARAMS_FILE}: {exc}") from None

    def history(self) -> pd.DataFrame:
        history = read_optional_table(self.path / HISTORY_FILE)
        if history is None:
            raise ModelError(f"{self.path / HISTORY_FILE}: missing")
        return history

    @property
    def module(self):
        """The network with its best weights, loaded on first use (``weights_only``)."""
        if self._module is None:
            import torch

            p = self.model_params
            n_out = 1 if self.params["task"] == "binary" else len(self.classes)
            module = build_module(self.spec, {**p, "weights": "random"} if "weights" in p else p, n_out)
            path = self.path / MODEL_FILE
            if not path.is_file():
                raise ModelError(f"{path}: missing; the run has no trained weights")
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                module.load_state_dict(state)
            except Exception as exc:
                raise ModelError(f"{path}: cannot load the network weights ({exc})") from None
            dev = resolve_device(self.device)
            module.to(dev)
            module.to(memory_format=memory_format_for(module))
            self._module = module.eval()
        return self._module

    def _inputs(self, table: pd.DataFrame, cache_dir, crops_dir, workers, on_progress):
        return prepare_inputs(self.spec, self.model_params, table, self.classes, cache_dir,
                              crops_dir=crops_dir, workers=workers, on_progress=on_progress)

    # The keyword options every run's predict takes, as ClassifierRun.predict does (embedlab.predict_faces
    # and the CLI pass the same ones to either kind); features is there to be refused with the reason.
    def predict(self, data: pd.DataFrame | str | os.PathLike | Iterable[str | os.PathLike], *,
                cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR,
                crops_dir: str | os.PathLike | None = DEFAULT_CROPS_DIR, workers: int | None = None,
                on_progress: Callable[[int, int], None] | None = None,
                features: str | None = None, threshold: float | None = None, scheduler: str | None = None,
                on_step: Callable[[str], None] | None = None) -> pd.DataFrame:
        """Predicted label and ``proba_<class>`` per image of ``data`` (a table, files or folders).

        Portraits given to a network that reads tight face crops are cropped
        around their face first; the crops are saved under ``crops_dir``
        (column ``crop_path``), ``face_found`` says whether a face was found.
        ``features`` exists for the interface classifier runs share: a network
        prepares its own inputs, so giving it is an error. A binary run's
        ``pred`` is the label at ``threshold``, by default the one saved by fit.

        Each image is prepared (decoded, face-cropped) in ``workers`` processes as ``encode``
        computes features (default: all cores, or this process for fewer than
        :data:`embedlab.nets.prediction.IN_PROCESS_BELOW` images), or on the Dask ``scheduler``;
        the network runs here, in batches. Inputs and outputs are cached under ``cache_dir``
        (see :mod:`embedlab.nets.prediction`): predicting again reads neither images nor weights.
        ``on_step`` hears a line about each stage as it starts.
        """
        if features is not None:
            raise ModelError(f"run {self.name} is a network: it prepares its own inputs, so --features does not apply")
        if scheduler is not None:
            parse_scheduler(scheduler)  # a bad address is a usage error before any work
        with ExitStack() as stack:
            if cache_dir is None:  # nothing kept: a cache that lives as long as this call
                cache_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="embedlab-predict-"))
            table = images_for_cache(data, cache_dir)
            crops = Path(crops_dir) / crop_folder_name(self.path) if crops_dir is not None else None
            proba, usable, info = network_outputs(self, table, cache_dir, crops, workers=workers, scheduler=scheduler,
                                                  on_progress=on_progress, on_step=on_step)
        out = self.prediction_table(table, proba, usable,
                                    [None if ok else r.get("reason", "missing features") for ok, r in zip(usable, info)],
                                    threshold=threshold)
        out["error"] = [r.get("error") for r in info]
        if self.spec.uses_images:
            out["face_cropped"] = [bool(r.get("face_cropped")) for r in info]
            out["face_found"] = [r.get("face_found") for r in info]
            out["crop_path"] = [r.get("crop_path") for r in info]
            out["blurred"] = [bool(r.get("blurred")) for r in info]
        return out

    def embed(self, data: pd.DataFrame | str | os.PathLike | Iterable[str | os.PathLike], *,
              cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR) -> tuple[np.ndarray, np.ndarray]:
        """Penultimate-layer features: ``(X float32 [n, dim], ok bool [n])``."""
        table = images_of(data)
        inputs, usable, _ = self._inputs(table, cache_dir, None, None, None)
        how = Inference(int(self.model_params.get("channels", 1)), self.params["task"])
        feats = run_model(self.module, inputs, self.module_device, how, embed=True)
        X = np.full((len(table), self.embedding_dim), np.nan, np.float32)
        if usable.any():
            X[usable] = feats
        return X, usable

    def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        """Penultimate-layer features of decoded RGB images (image networks only)."""
        import torch

        if self.spec.uses_encoding:
            raise ModelError(f"run {self.name}: network {self.params['model']!r} also reads the face "
                             "encoding; use NetworkRun.embed on image files")
        p = self.model_params
        arr, _ = prepare_images([""] * len(images), input_settings(p), images=images)
        return run_model(self.module, Inputs(torch.from_numpy(arr)), self.module_device,
                         Inference(int(p["channels"]), self.params["task"]), embed=True)

    @property
    def module_device(self):
        return next(self.module.parameters()).device

    @property
    def embedding_dim(self) -> int:
        head = self.module.head
        linear = [m for m in head.modules() if hasattr(m, "in_features")]
        return int(linear[0].in_features)


def crop_folder_name(run_folder: str | os.PathLike) -> str:
    """The folder face crops of a run go to, under the crops folder: the run folder's own name.

    Never the ``name`` written in ``params.json``, which a run folder from elsewhere could set to a path.
    """
    return Path(run_folder).resolve().name or "run"


def load_network_run(path: str | os.PathLike, device: str = "auto") -> NetworkRun:
    """Open a network run folder; the weights load when first needed."""
    folder, params, metrics = read_run(path, kind="network")
    if params.get("model") not in NETWORKS:
        raise ModelError(f"{folder}: unknown network {params.get('model')!r}; known: {', '.join(NETWORKS.names())}")
    run = NetworkRun(folder, params, metrics, device=device)
    run.model_params  # noqa: B018  (checked now: a bad value is an error on opening, not halfway through)
    return run


def is_network_run(path: Any) -> bool:
    """True when ``path`` is a folder holding a network run."""
    return run_kind(path) == "network"
