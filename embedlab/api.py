"""fit / load_run / encode: the one place that knows both kinds of model.

Classifiers (:mod:`embedlab.classifiers`) and networks (:mod:`embedlab.nets`)
stand side by side and never import each other; what picks one of them by
name or by run folder lives here. Importing this module also plugs network
runs into the ``cnn`` feature, so :func:`encode` reads ``cnn:RUN_FOLDER``.

>>> from embedlab.api import load_run, model_names
>>> "svm" in model_names() and "emotion-cnn" in model_names()
True
>>> load_run("embedlab/pretrained/emotion").params["kind"]
'network'
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from embedlab import nets
from embedlab.classifiers import CLASSIFIERS
from embedlab.classifiers.fit import fit_classifier
from embedlab.classifiers.run import ClassifierRun, load_classifier_run
from embedlab.compute.extraction import ProgressCallback, encode, feature_matrix
from embedlab.core.defaults import DEFAULT_CACHE_DIR, DEFAULT_RUNS_DIR
from embedlab.core.errors import OptionError, UnknownNameError
from embedlab.datasets import images_of
from embedlab.datasets.images import read_image
from embedlab.features.facerec import import_face_recognition
from embedlab.nets import NETWORKS, NetworkRun, fit_network, load_network_run
from embedlab.runs.folder import read_run
from embedlab.runs.scoring import TARGET_FPR

__all__ = ["encode", "feature_matrix", "fit", "load_run", "model_names", "nets", "predict_faces"]

#: face box columns of :func:`predict_faces`, in pixels of the image, face_recognition's order
BOX_COLUMNS = ["top", "right", "bottom", "left"]


def model_names() -> list[str]:
    """Every name ``fit`` accepts: the classifiers, then the networks."""
    names = CLASSIFIERS.names()
    return names + [n for n in NETWORKS.names() if n not in names]  # a classifier name wins


# The classifier options and the network options meet here, each passed on to its own
# fit unchanged: the CLI's `fit` command calls this with all of them.
def fit(data: str | os.PathLike | pd.DataFrame, features: str | Sequence[str] = "encoding",
        model: str = "svm", params: dict[str, Any] | None = None, search: bool = False,
        class_weight: str | None = None, eval_on: Iterable[str | os.PathLike] = (),
        runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR, name: str | None = None,
        cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, seed: int = 0, workers: int | None = None,
        on_progress: ProgressCallback | None = None, *, device: str = "auto", epochs: int | None = None,
        resume: bool = False, target_fpr: float = TARGET_FPR, leave_out: str | None = None,
        **options: Any) -> ClassifierRun | NetworkRun:
    """Fit ``model`` on ``data``: a classifier on features, or a network on images.

    Classifiers go to :func:`embedlab.classifiers.fit.fit_classifier` (``options``
    passed on); a name from ``embedlab.nets.NETWORKS`` goes to
    :func:`embedlab.nets.fit_network` with ``device``, ``epochs``, ``resume``
    and ``command`` (the classifiers' other options do not apply and are
    left aside, as the CLI passes them all). An unknown name lists both
    kinds; network options given to a classifier, or a scheduler given to a
    network, are refused. Both kinds take ``target_fpr`` (the false-positive
    rate on reals a binary run's decision threshold is chosen for on
    validation) and ``leave_out`` (a source of fakes kept out of training
    and scored on test).
    """
    if model in CLASSIFIERS:
        if epochs is not None or resume or device != "auto":
            raise OptionError(f"device, epochs and resume apply to networks only; {model!r} is a classifier")
        return fit_classifier(data, features, model, params=params, search=search, class_weight=class_weight,
                              eval_on=eval_on, runs_dir=runs_dir, name=name, cache_dir=cache_dir, seed=seed,
                              workers=workers, on_progress=on_progress, target_fpr=target_fpr,
                              leave_out=leave_out, **options)
    if model in NETWORKS:
        refuse_for_networks(model, search=search, class_weight=class_weight, **options)
        return fit_network(data, network=model, params=params, eval_on=eval_on, runs_dir=runs_dir,
                           name=name, cache_dir=cache_dir, seed=seed, device=device, epochs=epochs,
                           resume=resume, on_progress=on_progress, command=options.get("command"),
                           target_fpr=target_fpr, leave_out=leave_out, per_class=options.get("per_class"),
                           layout=options.get("layout", "auto"), missing=options.get("missing", "drop"))
    raise UnknownNameError("model", model, model_names())


def refuse_for_networks(model: str, *, search: bool, class_weight: str | None, **options: Any) -> None:
    """The classifier options a network cannot honour, refused with the reason rather than ignored."""
    reasons = {
        "scheduler": "--scheduler trains the xgboost classifier on a Dask cluster; networks train here "
                     "(--device cuda for a GPU)",
        "eval_features": "--eval-features chooses the features of the --eval-on sets for a classifier; a "
                         "network reads the images of those sets itself (encoding-mlp and the fusion networks "
                         "take their encoding from -p encoding=SPEC)",
        "search": "--search is a grid search over a classifier's parameters; for a network set them with -p",
        "class_weight": "--class-weight is a classifier option; networks weight classes by default "
                         "(-p balance=weights|sampler|sources|none)",
    }
    given = {**options, "search": search or None,
             "class_weight": None if class_weight in (None, "none") else class_weight}
    for key, reason in reasons.items():
        if given.get(key) is not None:
            raise OptionError(f"{reason}; {model!r} is a network")


def load_run(path: str | os.PathLike, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR, *,
             load_model_files: bool = True) -> ClassifierRun | NetworkRun:
    """Open a run folder (or a run name under ``runs_dir``) of either kind, model included.

    A network's weights load when first used.
    """
    folder, params, _ = read_run(path, runs_dir)
    if params["kind"] == "network":
        return load_network_run(folder)
    return load_classifier_run(folder, load_model_files=load_model_files)


# A run, the images, and how faces are found and framed; the rest goes to the run's predict.
def predict_faces(run: ClassifierRun | NetworkRun, images: Any, *, detector: str = "hog", upsample: int = 1,
                  margin: float = 0.25, **predict_options: Any) -> pd.DataFrame:
    """One row per face of each image: ``face`` (0, 1, ... from the largest), its box
    (``top``, ``right``, ``bottom``, ``left``, pixels of the image) and the run's prediction on the
    face cropped with ``margin`` (a share of the box's side) around it.

    ``images`` as :meth:`predict` takes them (paths, folders, arrays, PIL images). Faces are found by
    face_recognition's ``detector`` (hog or cnn). An image with no face keeps one row, with no box and
    the reason ``no face found``. ``predict_options`` go to the run's ``predict``.
    """
    table = images_of(images)
    fr = import_face_recognition()
    crops, rows = [], []
    for image_id, path in zip(table["image_id"], table["path"]):
        image = read_image(path)
        boxes = fr.face_locations(image, number_of_times_to_upsample=upsample, model=detector)
        boxes.sort(key=lambda b: (b[2] - b[0]) * (b[1] - b[3]), reverse=True)
        if not boxes:
            rows.append({"image_id": image_id, "path": path, "face": None, **dict.fromkeys(BOX_COLUMNS)})
        for i, box in enumerate(boxes):
            crops.append(crop_with_margin(image, box, margin))
            rows.append({"image_id": image_id, "path": path, "face": i, **dict(zip(BOX_COLUMNS, map(int, box)))})
    faces = pd.DataFrame(rows, columns=["image_id", "path", "face", *BOX_COLUMNS])
    found = faces["face"].notna().to_numpy()
    predicted = run.predict(crops, **predict_options) if crops else pd.DataFrame()
    extra = [c for c in predicted.columns if c not in ("image_id", "path", "hash", "label", "split")]
    out = faces.astype({"face": "Int64", **{c: "Int64" for c in BOX_COLUMNS}})
    for col in extra:
        out[col] = None
        if len(predicted):
            out.loc[found, col] = predicted[col].to_numpy()
    if "reason" in out:
        out.loc[~found, "reason"] = "no face found"
    else:
        out["reason"] = np.where(found, None, "no face found")
    return out


def crop_with_margin(image: np.ndarray, box: tuple[int, int, int, int], margin: float) -> np.ndarray:
    """``image`` cut to ``box`` (top, right, bottom, left) grown by ``margin`` of its side, within the image."""
    top, right, bottom, left = box
    pad_y, pad_x = int(round((bottom - top) * margin)), int(round((right - left) * margin))
    h, w = image.shape[:2]
    return image[max(0, top - pad_y):min(h, bottom + pad_y), max(0, left - pad_x):min(w, right + pad_x)].copy()
