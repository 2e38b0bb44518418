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

import pandas as pd

from embedlab import nets
from embedlab.classifiers import CLASSIFIERS
from embedlab.classifiers.fit import fit_classifier
from embedlab.classifiers.run import ClassifierRun, load_classifier_run
from embedlab.compute.array_store import ArrayStore
from embedlab.compute.cache import FeatureCache
from embedlab.compute.extraction import ProgressCallback, compute_chunks, encode, feature_matrix, images_for_cache
from embedlab.compute.workers import Task
from embedlab.core.system import default_workers
from embedlab.core.defaults import DEFAULT_CACHE_DIR, DEFAULT_RUNS_DIR
from embedlab.core.errors import OptionError, UnknownNameError
from embedlab.features.faces import FaceCrops, crop_with_margin
from embedlab.nets import NETWORKS, NetworkRun, fit_network, load_network_run
from embedlab.nets.prediction import CHUNK_SIZE, IN_PROCESS_BELOW
from embedlab.runs.folder import read_run
from embedlab.runs.scoring import TARGET_FPR
from embedlab.stacking import StackedRun, fit_stack, load_stacked_run

__all__ = ["crop_with_margin", "encode", "feature_matrix", "fit", "load_run", "model_names", "nets", "predict_faces"]

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
             load_model_files: bool = True) -> ClassifierRun | NetworkRun | StackedRun:
    """Open a run folder (or a run name under ``runs_dir``) of either kind, model included.

    A network's weights load when first used.
    """
    folder, params, _ = read_run(path, runs_dir)
    if params["kind"] == "network":
        return load_network_run(folder)
    if params["kind"] == "stacked":
        return load_stacked_run(folder)
    return load_classifier_run(folder, load_model_files=load_model_files)


# A run, the images, and how faces are found and framed; the rest goes to the run's predict.
def predict_faces(run: ClassifierRun | NetworkRun, images: Any, *, detector: str = "hog", upsample: int = 1,
                  margin: float = 0.25, **predict_options: Any) -> pd.DataFrame:
    """One row per face of each image: ``face`` (0, 1, ... from the largest), its box
    (``top``, ``right``, ``bottom``, ``left``, pixels of the image) and the run's prediction on the
    face cropped with ``margin`` (a share of the box's side) around it.

    ``images`` as :meth:`predict` takes them (paths, folders, arrays, PIL images). Faces are found by
    face_recognition's ``detector`` (hog or cnn) in the run's worker processes (``workers``,
    ``scheduler``), and what is found is cached per image content under ``cache_dir``. An image with
    no face keeps one row, with no box and the reason ``no face found`` (or why it could not be read).
    ``predict_options`` go to the run's ``predict``.
    """
    cache_dir = predict_options.get("cache_dir") or DEFAULT_CACHE_DIR
    table = images_for_cache(images, cache_dir)
    found_faces = find_faces(table, FaceCrops(detector, upsample, margin), cache_dir,
                             predict_options.get("workers"), predict_options.get("scheduler"),
                             predict_options.get("on_progress"))
    crops, rows = [], []
    for image_id, path, digest in zip(table["image_id"], table["path"], table["hash"]):
        boxes, face_crops, reason = found_faces.get(digest, (None, None, "unreadable"))
        if boxes is None or not len(boxes):
            rows.append({"image_id": image_id, "path": path, "face": None, **dict.fromkeys(BOX_COLUMNS),
                         "reason": reason or "no face found"})
        for i, box in enumerate(boxes if boxes is not None else []):
            crops.append(face_crops[i])
            rows.append({"image_id": image_id, "path": path, "face": i,
                         **dict(zip(BOX_COLUMNS, map(int, box))), "reason": None})
    faces = pd.DataFrame(rows, columns=["image_id", "path", "face", *BOX_COLUMNS, "reason"])
    found = faces["face"].notna().to_numpy()
    predicted = run.predict(crops, **predict_options) if crops else pd.DataFrame()
    extra = [c for c in predicted.columns if c not in ("image_id", "path", "hash", "label", "split")]
    out = faces.drop(columns="reason").astype({"face": "Int64", **{c: "Int64" for c in BOX_COLUMNS}})
    for col in extra:
        out[col] = None
        if len(predicted):
            out.loc[found, col] = predicted[col].to_numpy()
    out.loc[~found, "reason"] = faces.loc[~found, "reason"]
    return out


def find_faces(table: pd.DataFrame, finder: FaceCrops, cache_dir, workers: int | None, scheduler: str | None,
               on_progress: ProgressCallback | None) -> dict[str, tuple]:
    """``{content hash: (boxes, crops, reason)}`` for the listed images of ``table``: from the store
    of found faces, else found in worker processes and stored (a failure is not stored)."""
    store = ArrayStore(FeatureCache(cache_dir).root / "face-crops", finder.key())
    store.write_meta(finder.describe())
    out: dict[str, tuple] = {}
    listed = table[table["hash"].notna()].drop_duplicates("hash")
    tasks = []
    for digest, path in zip(listed["hash"], listed["path"]):
        stored = store.get(digest)
        if stored is None:
            tasks.append(Task(digest, path, [0]))
        else:
            out[digest] = (stored["boxes"], [stored[f"crop_{i}"] for i in range(len(stored["boxes"]))], None)

    def commit(rows: list[list[dict]], n_images: int) -> None:
        for row in rows[0]:
            if not row["ok"]:
                out[row["hash"]] = (None, None, row["reason"])
                continue
            out[row["hash"]] = (row["vector"], row["crops"], None)
            store.put(row["hash"], {"boxes": row["vector"], **{f"crop_{i}": c for i, c in enumerate(row["crops"])}})
        done[0] += n_images
        if on_progress is not None:
            on_progress(done[0], len(tasks))

    done = [0]
    if workers is None:
        workers = 0 if len(tasks) < IN_PROCESS_BELOW else default_workers()
    size = max(1, min(CHUNK_SIZE, -(-len(tasks) // max(workers, 1))))
    compute_chunks([tasks[s:s + size] for s in range(0, len(tasks), size)], [finder], workers, scheduler, commit)
    return out
