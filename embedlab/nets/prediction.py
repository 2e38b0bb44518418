"""A network's predictions on many images: inputs made image by image on every core, the network in
batches, both cached.

Three steps, each skipped where the cache already holds its result:

1. every image the outputs lack is made into the network's input (decoded, its face found and
   cropped: :class:`embedlab.nets.images.NetworkInput`) in the process pool that ``encode`` uses
   (:func:`embedlab.compute.extraction.compute_chunks`: the same chunks, worker-death retries and
   Dask backend), and each input is stored by image content and preprocessing
   (:class:`embedlab.compute.array_store.ArrayStore`), so another run that prepares images the
   same way reads no image;
2. the network runs on those inputs in batches, in this process (on CUDA when present);
3. its outputs go to the feature cache under a key holding the weights' digest and the input's
   key, so predicting again on the same images reads those rows and nothing else: no image, no
   PyTorch.

Saved face crops are written again only when the crop folder holds another image's crop under
that name (its ``.crops.json`` records which input each file shows).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from embedlab.compute.array_store import ArrayStore
from embedlab.compute.cache import FeatureCache
from embedlab.compute.extraction import IN_PROCESS_BELOW, compute_chunks, encode, feature_matrix, resolve_features
from embedlab.compute.workers import Task
from embedlab.core.errors import ModelError
from embedlab.core.io import atomic_write_bytes, file_digest
from embedlab.core.system import default_workers, import_in_background
from embedlab.nets.images import NetworkInput, crop_file_name, save_crop
from embedlab.nets.inputs import blur_setting
from embedlab.nets.training import MODEL_FILE, Inference, Inputs, run_model

log = logging.getLogger(__name__)

#: what each output row records beside the class probabilities
OUTPUT_INFO = {"face_cropped": "bool", "face_found": "bool", "blurred": "bool"}
#: images per chunk of work sent to a worker, as ``encode`` sends them
CHUNK_SIZE = 16
#: the file in a crop folder that says which input each crop shows
CROPS_MANIFEST = ".crops.json"
#: how the network's arithmetic is done; part of the outputs' key
PRECISION = "fp32"

Progress = Callable[[int, int], None]
Step = Callable[[str], None]


def input_maker(p: dict[str, Any]) -> NetworkInput:
    """The per-image preparation a network with settings ``p`` reads."""
    sigma, above = blur_setting(p)
    maker = NetworkInput(int(p["size"]), int(p["channels"]), p.get("face_crop", "never"), sigma, above)
    maker.validate()
    return maker


def output_key(run, maker: NetworkInput | None, encoder) -> tuple[str, dict[str, Any]]:
    """The feature cache key of a run's outputs: its weights and everything that makes its inputs.

    Not the device: CPU and CUDA agree to float rounding, as the encoding's engines do.
    """
    p = run.model_params
    ident = {"name": "network-output", "version": "1", "network": run.params["model"],
             "weights": file_digest(str(Path(run.path) / MODEL_FILE)), "task": run.params["task"],
             "classes": list(run.classes), "positive_index": run.positive_index,
             "tta_flip": bool(p.get("tta_flip")), "channels": int(p.get("channels", 1)), "precision": PRECISION,
             "input": maker.key() if maker is not None else None,
             "encoding": encoder.key() if encoder is not None else None}
    blob = json.dumps(ident, sort_keys=True, default=str).encode()
    return f"network-output-{hashlib.sha256(blob).hexdigest()[:16]}", ident


class InputBatch:
    """The inputs of one prediction: taken from the store, or made in workers and stored."""

    def __init__(self, store: ArrayStore):
        self.store = store
        self.arrays: dict[str, np.ndarray] = {}
        self.info: dict[str, dict] = {}
        self.failures: dict[str, dict] = {}

    def load(self, hashes: Sequence[str]) -> list[str]:
        """Take what the store holds of ``hashes``; returns those it lacks."""
        missing = []
        for h in hashes:
            stored = self.store.get(h)
            if stored is None or "input" not in stored:
                missing.append(h)
                continue
            self.arrays[h] = stored["input"]
            found = int(stored["face_found"])
            self.info[h] = {"face_cropped": bool(stored["face_cropped"]), "face_found": None if found < 0 else bool(found),
                            "blurred": bool(stored["blurred"])}
        return missing

    def commit(self, rows: list[list[dict]], n_images: int) -> None:
        for row in rows[0]:
            h = row["hash"]
            if not row.get("ok"):
                self.failures[h] = row
                continue
            info = {k: row[k] for k in OUTPUT_INFO}
            self.arrays[h], self.info[h] = np.asarray(row["vector"], np.uint8), info
            found = -1 if info["face_found"] is None else int(info["face_found"])
            self.store.put(h, {"input": self.arrays[h], "face_cropped": np.bool_(info["face_cropped"]),
                               "face_found": np.int8(found), "blurred": np.bool_(info["blurred"])})


# The run, the images, and where work, caches, crops and messages go: NetworkRun.predict's options.
def network_outputs(run, table: pd.DataFrame, cache_dir: str | os.PathLike, crops_dir: Path | None = None,
                    workers: int | None = None, scheduler: str | None = None,
                    on_progress: Progress | None = None, on_step: Step | None = None
                    ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Class probabilities of ``run`` for every row of ``table`` (listed with content hashes).

    Returns ``(proba (n, classes), usable (n,), info per row)`` as
    :func:`embedlab.nets.inputs.prepare_inputs` gives them: info holds ``face_cropped``,
    ``face_found``, ``crop_path`` and ``blurred``, and ``reason`` and ``error`` where a row has no
    prediction. ``workers`` and ``scheduler`` are ``encode``'s.
    """
    spec, p = run.spec, run.model_params
    say = on_step or (lambda message: None)
    cache = FeatureCache(cache_dir)
    maker = input_maker(p) if spec.uses_images else None
    encoder = None
    if spec.uses_encoding:
        encoder = resolve_features(p["encoding"])[0]
        if encoder.dim != 128:
            raise ModelError(f"network {spec.name!r} reads a 128-d encoding; feature {p['encoding']!r} "
                             f"has {encoder.dim}")
    key, ident = output_key(run, maker, encoder)
    cache.write_meta(key, {**ident, "dim": len(run.classes), "key": key})
    listed = table[table["hash"].notna()].drop_duplicates("hash")
    path_of = dict(zip(listed["hash"], listed["path"]))
    known = cache.read(key, hashes=path_of)
    todo = [h for h in path_of if h not in known.index]
    crops = CropFolder(crops_dir, maker) if crops_dir is not None and maker is not None \
        and maker.face_crop != "never" else None
    redo_crops = crops.stale(table, known) if crops is not None else set()
    say(f"{len(table):,} image(s): {len(known):,} with cached outputs, {len(todo):,} to predict")

    batch = None
    if todo:  # the network's framework loads while the faces are found
        import_in_background("torch")
    if maker is not None and (todo or redo_crops):
        batch = InputBatch(ArrayStore(cache.root / "network-inputs", maker.key()))
        batch.store.write_meta(maker.describe())
        wanted = set(todo) | redo_crops
        missing = batch.load([h for h in path_of if h in wanted])
        prepare(missing, path_of, maker, batch, workers, scheduler, on_progress, say)
    elif on_progress is not None:
        on_progress(0, 0)
    encodings, unencoded = encodings_of(todo, path_of, encoder, cache_dir, workers, scheduler)
    new_rows, uncached = predict_missing(run, todo, path_of, batch, encodings, unencoded, say)
    committed = [r for r in new_rows if r.pop("cacheable", True)]
    if committed:
        cache.append(key, committed, len(run.classes), OUTPUT_INFO)
        cache.compact(key)
    rows: dict[str, Any] = known.to_dict(orient="index")
    rows.update((r["hash"], r) for r in new_rows)
    rows.update((r["hash"], r) for r in uncached)
    forget_changed(cache, [path_of[h] for h, r in rows.items() if r.get("reason") == "changed"])
    proba, usable, info = assemble(table, rows, len(run.classes))
    if crops is not None:
        crops.write(table, info, batch)
    return proba, usable, info


def prepare(missing: list[str], path_of: dict[str, str], maker: NetworkInput, batch: InputBatch,
            workers: int | None, scheduler: str | None, on_progress: Progress | None, say: Step) -> None:
    """Make the inputs of ``missing`` in worker processes (or here, for a few), storing each."""
    tasks = [Task(h, path_of[h], [0]) for h in missing]
    if workers is None:
        workers = 0 if len(tasks) < IN_PROCESS_BELOW else default_workers()
    if tasks:
        where = (f"on the Dask scheduler {scheduler}" if scheduler is not None else "in this process"
                 if workers == 0 else f"in {min(workers, len(tasks))} worker process(es)")
        what = "finding and cropping faces" if maker.face_crop != "never" else "decoding images"
        say(f"{what} for {len(tasks):,} image(s) {where}")
    done = {"n": 0}

    def commit(rows: list[list[dict]], n_images: int) -> None:
        batch.commit(rows, n_images)
        done["n"] += n_images
        if on_progress is not None:
            on_progress(done["n"], len(tasks))

    if on_progress is not None:
        on_progress(0, len(tasks))
    # chunks no larger than needed to give every worker some: 20 images on 2 workers are 10 and 10
    size = CHUNK_SIZE if scheduler is not None or workers == 0 else max(1, min(CHUNK_SIZE, -(-len(tasks) // workers)))
    compute_chunks([tasks[s:s + size] for s in range(0, len(tasks), size)], [maker], workers, scheduler, commit)


def encodings_of(todo: list[str], path_of: dict[str, str], encoder, cache_dir, workers: int | None,
                 scheduler: str | None) -> tuple[dict[str, np.ndarray] | None, dict[str, dict]]:
    """The face encodings of the images in ``todo`` for a network that reads one (``encoder``; None
    for the others), computed as ``encode`` computes them: ``({hash: encoding}, {hash: failure row})``."""
    if not todo or encoder is None:
        return None, {}
    frame = pd.DataFrame({"hash": todo, "path": [path_of[h] for h in todo]})
    frame["image_id"], frame["label"], frame["split"] = frame["path"], None, None
    df = encode(frame, [encoder], cache_dir=cache_dir, workers=workers, scheduler=scheduler)
    X, ok = feature_matrix(df, [encoder.name])
    failed = {}
    for h, good, reason, error in zip(todo, ok, df[f"{encoder.name}.reason"], df[f"{encoder.name}.error"]):
        if not good:
            # not cached here: encode's own cache holds the encoding's failures
            failed[h] = {"hash": h, "ok": False, "reason": reason or "missing features", "error": error}
    return dict(zip(todo, np.nan_to_num(X).astype(np.float32))), failed


def predict_missing(run, todo: list[str], path_of: dict[str, str], batch: InputBatch | None,
                    encodings: dict[str, np.ndarray] | None, unencoded: dict[str, dict],
                    say: Step) -> tuple[list[dict], list[dict]]:
    """Output rows for the images in ``todo``: ``(rows, rows never to cache)``; ``encodings`` and
    ``unencoded`` are what :func:`encodings_of` gave for them.

    A failure that follows from an image's bytes (it does not decode) is cached like an output;
    one that may pass next time (a worker died, the file changed) is not.
    """
    if not todo:
        return [], []
    failed: dict[str, dict] = {}
    if batch is not None:
        failed.update((h, batch.failures[h]) for h in todo if h in batch.failures)
    for h, row in unencoded.items():  # a failure of the input itself comes first
        failed.setdefault(h, row)
    if run.spec.reads_native:  # crops of the pixels as decoded, streamed from the files
        return native_rows(run, todo, path_of, say)
    ready = [h for h in todo if h not in failed and (batch is None or h in batch.arrays)]
    rows: list[dict] = []
    if ready:
        import torch

        p = run.model_params
        say(f"running the network on {len(ready):,} image(s) ({run.module_device})")
        images = torch.from_numpy(np.stack([batch.arrays[h] for h in ready])) if batch is not None else None
        encoded = torch.from_numpy(np.stack([encodings[h] for h in ready])) if encodings is not None else None
        how = Inference(int(p.get("channels", 1)), run.params["task"], positive_index=run.positive_index,
                        tta_flip=bool(p.get("tta_flip")))
        proba = run_model(run.module, Inputs(images, encoded), run.module_device, how)
        blank = dict.fromkeys(OUTPUT_INFO)
        rows = [{"hash": h, "ok": True, "vector": proba[i], **(batch.info[h] if batch is not None else blank)}
                for i, h in enumerate(ready)]
    never = []
    for h, row in failed.items():
        out = {"hash": h, "ok": False, "reason": row.get("reason"), "error": row.get("error"),
               "face_cropped": False, "face_found": None, "blurred": False}
        if row.get("cacheable", False):
            rows.append(out)
        else:
            never.append(out)
    return rows, never


def native_rows(run, todo: list[str], path_of: dict[str, str], say: Step) -> tuple[list[dict], list[dict]]:
    """Output rows of a native-resolution network (:mod:`embedlab.nets.native`): its crops are cut
    from the files as the network reads them, so there is no input to prepare or store first."""
    from embedlab.nets.inputs import native_inputs

    p = run.model_params
    frame = pd.DataFrame({"hash": todo, "path": [path_of[h] for h in todo], "label": None})
    inputs, usable, info = native_inputs(p, frame, run.classes)
    say(f"running the network on {int(usable.sum()):,} image(s) ({run.module_device})")
    how = Inference(int(p.get("channels", 3)), run.params["task"], positive_index=run.positive_index,
                    tta_flip=bool(p.get("tta_flip")))
    proba = run_model(run.module, inputs, run.module_device, how) if usable.any() else []
    blank = dict.fromkeys(OUTPUT_INFO)
    good = iter(proba)
    rows, never = [], []
    for h, ok, row in zip(todo, usable, info):
        if ok:
            rows.append({"hash": h, "ok": True, "vector": next(good), **blank})
        else:  # a file that does not decode fails the same way next time: cached like an output
            (never if row.get("reason") == "changed" else rows).append(
                {"hash": h, "ok": False, "reason": row.get("reason"), "error": row.get("error"),
                 "face_cropped": False, "face_found": None, "blurred": False})
    return rows, never


def assemble(table: pd.DataFrame, rows: dict[str, Any], n_classes: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Per table row: the probabilities, whether there are any, and the info ``predict`` reports."""
    proba = np.full((len(table), n_classes), np.nan)
    usable = np.zeros(len(table), bool)
    info: list[dict] = []
    reasons = table["read_reason"] if "read_reason" in table else pd.Series([None] * len(table))
    errors = table["read_error"] if "read_error" in table else pd.Series([None] * len(table))
    for i, (h, path, read_reason, read_error) in enumerate(zip(table["hash"], table["path"], reasons, errors)):
        base = {"face_cropped": False, "face_found": None, "crop_path": None, "blurred": False}
        row = rows.get(h) if isinstance(h, str) else None
        if row is None:  # no image when it was listed
            info.append({**base, "reason": read_reason or "unreadable", "error": read_error})
            continue
        if not bool(row.get("ok")):
            error = row.get("error")
            if isinstance(error, str) and not error.startswith(f"{path}: "):
                error = f"{path}: {row.get('reason')} (the same bytes as another file: {error})"
            info.append({**base, "reason": row.get("reason") or "unknown", "error": error})
            continue
        proba[i] = row["vector"]
        usable[i] = True
        found = row.get("face_found")
        info.append({**base, "face_cropped": bool(row.get("face_cropped")),
                     "face_found": None if found is None or pd.isna(found) else bool(found),
                     "blurred": bool(row.get("blurred"))})
    return proba, usable, info


def forget_changed(cache: FeatureCache, paths: list[str]) -> None:
    """Files that held other bytes than they were listed with leave the file hash index (as in ``encode``)."""
    if paths:
        index = cache.file_index()
        index.forget(os.path.abspath(p) for p in paths)
        index.save()


class CropFolder:
    """The face crops of one run's predictions, named after their images, and which input each shows."""

    def __init__(self, folder: Path, maker: NetworkInput):
        self.folder = Path(folder)
        self.input_key = maker.key()
        try:
            self.manifest: dict[str, str] = json.loads((self.folder / CROPS_MANIFEST).read_text())
        except (OSError, ValueError):
            self.manifest = {}

    def shows(self, name: str, content: str) -> bool:
        return self.manifest.get(name) == f"{self.input_key}:{content}" and (self.folder / name).is_file()

    def stale(self, table: pd.DataFrame, known: pd.DataFrame) -> set[str]:
        """Images whose outputs are cached but whose crop this folder lacks (or holds another's)."""
        cropped = set(known.index[known["face_cropped"].fillna(False).astype(bool)]) \
            if "face_cropped" in known and len(known) else set()
        return {h for h, image_id in zip(table["hash"], table["image_id"].astype(str))
                if h in cropped and not self.shows(crop_file_name(image_id), h)}

    def write(self, table: pd.DataFrame, info: list[dict], batch: InputBatch | None) -> None:
        """Save the crops this folder lacks and fill each cropped row's ``crop_path``."""
        changed = False
        for h, image_id, row in zip(table["hash"], table["image_id"].astype(str), info):
            if not row["face_cropped"]:
                continue
            name = crop_file_name(image_id)
            if not self.shows(name, h):
                if batch is None or h not in batch.arrays:
                    continue  # no input to show (it was not stored): the row keeps no crop path
                save_crop(self.folder / name, batch.arrays[h])
                self.manifest[name] = f"{self.input_key}:{h}"
                changed = True
            row["crop_path"] = str(self.folder / name)
        if changed:
            atomic_write_bytes(self.folder / CROPS_MANIFEST, json.dumps(self.manifest, sort_keys=True).encode())
