"""``fit_network``: train a registered network on a dataset and write its run folder.

The dataset's own splits are used (:mod:`embedlab.datasets.splits`); when it
has no ``valid`` split, ``valid_fraction`` of ``train`` (stratified, seeded)
is held out to pick the best epoch and stop early, so ``test`` is never
looked at during training. Every ``eval_on`` dataset is scored whole.

The stages mirror a classifier's fit (:mod:`embedlab.classifiers.fit`):
:func:`resolve_params`, load and split (:func:`start_run`), inputs
(:func:`embedlab.nets.inputs.prepare_inputs`), train (:func:`embedlab.nets.training.train_loop`),
score (:func:`score_sets`, through :func:`embedlab.runs.scoring.score_set`)
and write (:mod:`embedlab.runs.folder`).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd

from embedlab.compute.extraction import table_for_cache
from embedlab.core.defaults import DEFAULT_CACHE_DIR, DEFAULT_RUNS_DIR
from embedlab.core.errors import DatasetError, ModelError, OptionError
from embedlab.core.system import native_bf16
from embedlab.datasets import sample_per_class
from embedlab.datasets.sources import fake_sources, leave_out_source
from embedlab.datasets.splits import SPLITS, split_roles
from embedlab.features import create_extractor
from embedlab.nets import parallel
from embedlab.nets.inputs import input_metrics, prepare_inputs
from embedlab.nets.models import NETWORKS, NetworkSpec, build_module
from embedlab.nets.run import NetworkRun, load_network_run
from embedlab.nets.training import (MODEL_FILE, Inference, Training, resolve_device, run_model, seed_everything,
                                    train_loop)
from embedlab.runs.folder import (PARAMS_FILE, check_run_name, default_run_name, failure_table, read_json,
                                  write_params, write_results)
from embedlab.runs.provenance import command_line, data_record, library_versions, portable_path, utc_now
from embedlab.runs.scoring import TARGET_FPR, ScoredSet, Scoring, score_set, task_of, threshold_from

log = logging.getLogger(__name__)

#: parameters a resumed run may change: how it computes, not what it learns (input_blur
#: only touches inputs sharper than the training images, so a finished run can take it up)
RESUME_SETTINGS = ("workers_threads", "bf16", "input_blur", "input_blur_above", "tta_flip")


@dataclass(frozen=True)
class RunSettings:
    """The settings of one network run besides the network and its parameters, as ``fit_network``
    takes them (a resumed run's own seed, ``leave_out`` and ``per_class`` already in): where the run
    folder goes and under what ``name``, the feature cache, the seed, the command recorded, the
    ``eval_on`` datasets, and how the data is read (``layout``, ``per_class``, ``leave_out``)."""

    runs_dir: Path
    name: str | None = None
    cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR
    seed: int = 0
    command: str | None = None
    eval_on: Sequence[str] = ()
    leave_out: str | None = None
    per_class: int | None = None
    layout: str = "auto"


@dataclass
class NetworkFit:
    """One network training: what it is, on what, where it goes."""

    spec: NetworkSpec
    p: dict[str, Any]
    table: pd.DataFrame
    roles: pd.Series
    classes: list[str]
    task: str
    positive: str | None
    folder: Path
    params_json: dict[str, Any]
    seed: int
    device: Any

    @property
    def positive_index(self) -> int:
        """The class a binary network's single output scores."""
        return self.classes.index(self.positive) if self.positive else 1


# -- stage 1: the parameters ---------------------------------------------------------
def resolve_params(spec: NetworkSpec, params: dict[str, Any] | None, epochs: int | None,
                   started: dict[str, Any] | None) -> dict[str, Any]:
    """The network's settings: its defaults, ``params`` over them, or a resumed run's own."""
    if started is not None:
        p = spec.resolve(started["model_params"])
        # only settings that leave the trained network unchanged may differ on resume
        p.update({k: v for k, v in (params or {}).items() if k in RESUME_SETTINGS})
    else:
        p = spec.resolve(params)
    if epochs is not None:
        p["epochs"] = int(epochs)
    if int(p["epochs"]) < 1:
        raise OptionError(f"epochs must be at least 1, got {p['epochs']}")
    return p


def run_to_resume(runs_dir: Path, name: str | None, network: str) -> dict[str, Any]:
    """``params.json`` of the run to continue, checked to train ``network``."""
    if not name:
        raise OptionError("resume needs the run name (--name) of the run to continue")
    folder = runs_dir / check_run_name(name)
    if not (folder / PARAMS_FILE).is_file():
        raise ModelError(f"{folder}: no run to resume (params.json missing)")
    started = read_json(folder / PARAMS_FILE)
    if started.get("model") != network:
        raise ModelError(f"run {name} trains {started.get('model')!r}, not {network!r}")
    return started


def check_no_missing(prepared: dict[str, tuple], p: dict[str, Any]) -> None:
    """``missing="error"``: stop when any image of a split has no input the network reads."""
    lost = {role: int((~usable).sum()) for role, (_, usable, _) in prepared.items() if not usable.all()}
    if lost:
        raise ModelError(f"{', '.join(f'{r}: {n}' for r, n in lost.items())} images have no "
                         f"{p.get('encoding', 'input')} features; --missing drop leaves them out")


def set_up_device(device: str, p: dict[str, Any]):
    import torch

    dev = resolve_device(device)
    if p["workers_threads"]:
        torch.set_num_threads(int(p["workers_threads"]))
    if p["bf16"] and dev.type == "cpu" and not torch.backends.mkldnn.is_available():
        p["bf16"] = False
    elif p["bf16"] and dev.type == "cpu" and native_bf16() is False:
        # emulated bfloat16 is slower than float32, not faster: the run records that it trained in float32
        log.warning("bf16 is off: this CPU has no native bfloat16 (avx512_bf16 or AMX), where it is slower "
                    "than float32")
        p["bf16"] = False
    return dev


# -- stage 2: load, split, and open the run folder ---------------------------------------
def start_run(data, spec: NetworkSpec, p: dict[str, Any], settings: RunSettings, dev,
              started: dict[str, Any] | None) -> NetworkFit:
    """Load ``data`` (read as ``settings.layout``, at most ``per_class`` images per split and label)
    and split it (without ``leave_out``'s fakes in train and valid), make the run folder and write its
    ``params.json``. Files are listed with the file hash index of the cache at ``cache_dir``."""
    runs_dir, name, seed, command = settings.runs_dir, settings.name, settings.seed, settings.command
    leave_out, per_class, eval_on = settings.leave_out, settings.per_class, settings.eval_on
    table = table_for_cache(data, settings.cache_dir, settings.layout)
    if per_class:
        attrs = dict(table.attrs)
        table = sample_per_class(table, per_class, seed=seed).reset_index(drop=True)
        table.attrs.update(attrs)
    where = table.attrs.get("root", "data")
    if table["label"].isna().any():
        raise DatasetError(f"{where}: {int(table['label'].isna().sum())} images have no label")
    roles, how = split_roles(table, float(p["valid_fraction"]), seed)
    if leave_out is not None:
        roles = leave_out_source(table, roles, leave_out)
        kept = roles.notna().to_numpy()
        attrs = dict(table.attrs)
        table, roles = table[kept].reset_index(drop=True), roles[kept].reset_index(drop=True)
        table.attrs.update(attrs)
    classes = sorted(table.loc[roles == "train", "label"].astype(str).unique())
    if len(classes) < 2:
        raise ModelError(f"{where}: a network needs at least two classes in train")
    task, positive = task_of(classes)
    if task == "binary" and positive is None:
        positive = classes[1]  # a binary network's single output scores one class: the second
    name = parallel.on_main(lambda: check_run_name(
        name or default_run_name([table.attrs.get("name", "data"), spec.name], runs_dir)))
    folder = runs_dir / name
    if started is None:
        parallel.on_main(lambda: new_run_folder(folder))
    features = [p["encoding"]] if spec.uses_encoding else []
    feature_keys = {}
    if features:
        ex = create_extractor(features[0])
        feature_keys = {ex.name: ex.key()}
    params_json = {
        "name": name, "kind": "network", "task": task, "classes": classes, "positive_class": positive,
        "model": spec.name, "model_params": p, "features": features, "feature_keys": feature_keys,
        "data": {**data_record(table, table.attrs.get("root") or (None if isinstance(data, pd.DataFrame) else data),
                               folder), "per_class": per_class},
        "splits": {**how, "counts": {r: int((roles == r).sum()) for r in SPLITS}},
        "leave_out": leave_out,
        "sources": {r: fake_sources(table[roles == r]) for r in SPLITS if (roles == r).any()},
        # completed by score_sets with each set's name, layout, count and fingerprint
        "eval_on": [{"path": portable_path(e, folder), "relative_to": "run"} for e in eval_on],
        "versions": library_versions(), "created": utc_now(),
        "command": command or command_line(), "seed": seed, "device": dev.type, "model_files": [MODEL_FILE],
        "warnings": list(table.attrs.get("warnings", [])),
    }
    if started is not None:
        params_json["created"] = started.get("created", params_json["created"])
        params_json["command"] = started.get("command", params_json["command"])
        earlier = started.get("resumed_with") or []
        earlier = [earlier] if isinstance(earlier, str) else list(earlier)
        params_json["resumed_with"] = earlier + [command or command_line()]
    parallel.on_main(lambda: write_params(folder, params_json))
    return NetworkFit(spec, p, table, roles, classes, task, positive, folder, params_json, seed, dev)


def start_from(module, folder: str | os.PathLike, spec: NetworkSpec, classes: list[str]) -> None:
    """Load the weights of the run at ``folder`` into ``module``: fine-tuning starts where it ended.

    The run must be of the same network with the same classes, in the same order."""
    import torch

    earlier = load_network_run(folder)
    where = f"init_from={str(folder)!r}"
    if earlier.spec.name != spec.name:
        raise ModelError(f"{where}: that run trained {earlier.spec.name}, not {spec.name}")
    if list(earlier.classes) != list(classes):
        raise ModelError(f"{where}: that run's classes {list(earlier.classes)} differ from this data's {list(classes)}")
    path = Path(folder) / MODEL_FILE
    try:
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise ModelError(f"{where}: cannot load {path} into {spec.name} with these settings ({exc})") from None


def new_run_folder(folder: Path) -> None:
    """Make the folder of a new run; refuse one that holds a run (or a run stopped before its first epoch)."""
    if folder.exists() and any(folder.iterdir()):
        if is_unstarted_run(folder):
            raise ModelError(f"run {folder} was stopped before it finished an epoch, so it holds no model "
                             f"and nothing to resume (only {PARAMS_FILE}): remove that folder to reuse the "
                             "name, or choose another name; the features it computed are in the cache")
        raise ModelError(f"run {folder} already exists; choose another name or pass resume=True")
    folder.mkdir(parents=True, exist_ok=True)


# -- stage 5: score -----------------------------------------------------------------------
def network_proba(run: NetworkFit, module, prepared: tuple):
    inputs, _, _ = prepared
    return run_model(module, inputs, run.device, Inference(int(run.p.get("channels", 1)), run.task,
                                                           positive_index=run.positive_index,
                                                           tta_flip=bool(run.p["tta_flip"])))


def score_inputs(run: NetworkFit, module, frame: pd.DataFrame, prepared: tuple, which: ScoredSet,
                 threshold: float | None = None, proba=None) -> tuple[dict, pd.DataFrame]:
    _, usable, info = prepared
    if proba is None:
        proba = network_proba(run, module, prepared)
    scoring = Scoring(run.classes, run.positive if run.task == "binary" else None, seed=run.seed,
                      threshold=threshold)
    metrics, rows = score_set(proba, frame[usable], scoring, which)
    metrics.update(input_metrics(info, usable))
    return metrics, rows


def score_sets(run: NetworkFit, module, frames: dict[str, pd.DataFrame], prepared: dict[str, tuple],
               eval_on: list[str], cache_dir,
               target_fpr: float = TARGET_FPR
               ) -> tuple[dict, pd.DataFrame, dict[str, Any] | None, pd.DataFrame, list[dict[str, Any]]]:
    """Figures and prediction rows for every split, then every eval set, the decision threshold
    (binary tasks: chosen on ``valid``, or ``train`` when valid has no negatives), the
    images that could not be used, and how each eval set is named (``params.json``'s ``eval_on``)."""
    sets, predictions, failures = {}, [], []
    dataset = run.params_json["data"]["name"]
    eval_records = []
    probas = {role: network_proba(run, module, inputs) for role, inputs in prepared.items()}
    candidates = [(role, frames[role][prepared[role][1]]["label"].tolist(), probas[role])
                  for role in ("valid", "train") if role in probas]
    threshold = threshold_from(candidates, run.classes, run.positive if run.task == "binary" else None,
                               target_fpr)
    cut = threshold["value"] if threshold else None
    for role, inputs in prepared.items():
        sets[role], rows = score_inputs(run, module, frames[role], inputs, ScoredSet(role, role, dataset),
                                        threshold=cut, proba=probas[role])
        predictions.append(rows)
        failures.append(input_failures(frames[role], inputs, role))
    for path in eval_on:
        frame = table_for_cache(path, cache_dir)
        set_name = frame.attrs.get("name") or Path(path).name
        inputs = prepare_inputs(run.spec, run.p, frame, run.classes, cache_dir,
                                crops_dir=run.folder / "crops" / set_name)
        sets[set_name], rows = score_inputs(run, module, frame, inputs,
                                            ScoredSet(set_name, role="eval", dataset=set_name), threshold=cut)
        eval_records.append(data_record(frame, frame.attrs.get("root") or path, run.folder))
        predictions.append(rows)
        failures.append(input_failures(frame, inputs, set_name))
    return (sets, pd.concat(predictions, ignore_index=True), threshold, pd.concat(failures, ignore_index=True),
            eval_records)


def input_failures(frame: pd.DataFrame, prepared: tuple, set_name: str) -> pd.DataFrame:
    """The images of ``frame`` the network could not read, with the reason (``failures.csv``)."""
    _, usable, info = prepared
    return failure_table(frame, usable, [r.get("reason") for r in info], [r.get("error") for r in info], set_name)


def is_unstarted_run(folder: Path) -> bool:
    """Whether ``folder`` is a run folder that holds nothing but its ``params.json``."""
    return folder.is_dir() and {f.name for f in folder.iterdir()} == {PARAMS_FILE}


def remove_unstarted_run(folder: Path) -> None:
    """Remove a run folder that holds nothing but its ``params.json``: a fit that stopped before
    training began leaves no half-made run behind (and its name free for the next try)."""
    if is_unstarted_run(folder) or (folder.is_dir() and not any(folder.iterdir())):
        shutil.rmtree(folder, ignore_errors=True)


# -- the entry point ------------------------------------------------------------------------
# One keyword per setting, as embedlab.fit, the CLI, the tests and the benchmarks call it; they are
# checked here and travel on as a RunSettings (start_run) and a Training (train_loop).
def fit_network(data, network: str, params: dict[str, Any] | None = None,
                eval_on: Iterable[str | os.PathLike] = (), runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR,
                name: str | None = None, cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, seed: int = 0,
                device: str = "auto", epochs: int | None = None, resume: bool = False,
                on_progress: Callable | None = None, command: str | None = None,
                target_fpr: float = TARGET_FPR, leave_out: str | None = None, per_class: int | None = None,
                layout: str = "auto", missing: str = "drop") -> NetworkRun:
    """Train ``network`` (a name in :data:`NETWORKS`) on ``data``; returns the loaded run.

    ``params`` overrides the network's defaults (``NETWORKS.create(network).resolve()``
    lists them); ``epochs`` overrides ``params["epochs"]``. With ``resume``, the
    run ``name`` continues from its ``last.pt`` with the parameters it was started with.
    A binary run's decision threshold is chosen on ``valid`` for a false-positive
    rate of ``target_fpr`` on reals; ``leave_out`` keeps one source of fakes out of
    train and valid, to score it on test as a generator never seen. ``layout`` and ``per_class``
    read ``data`` as :func:`embedlab.datasets.load` and :func:`embedlab.datasets.sample_per_class` do.
    Images without the encoding a network reads (``encoding-mlp``, the fusion networks) are left out
    and counted (``missing="drop"``) or stop the fit (``missing="error"``).
    """
    import torch

    spec = NETWORKS.create(network)
    runs_dir = Path(runs_dir)
    started = run_to_resume(runs_dir, name, network) if resume else None
    if started is not None:
        seed = int(started.get("seed", seed))
    p = resolve_params(spec, params, epochs, started)
    dev = set_up_device(device, p)
    eval_on = [str(e) for e in eval_on]
    if not 0 <= target_fpr < 1:
        raise OptionError(f"target_fpr={target_fpr}: a false-positive rate at least 0 and below 1")
    if missing not in ("drop", "error"):
        raise OptionError(f"missing={missing!r}: choose drop or error")
    if started is not None:
        leave_out = started.get("leave_out", leave_out)
        per_class = (started.get("data") or {}).get("per_class", per_class)
    settings = RunSettings(runs_dir, name=name, cache_dir=cache_dir, seed=seed, command=command, eval_on=eval_on,
                           leave_out=leave_out, per_class=per_class, layout=layout)
    run = start_run(data, spec, p, settings, dev, started)

    seed_everything(seed)
    frames = {r: run.table[run.roles == r].reset_index(drop=True) for r in SPLITS}
    try:
        prepared = {r: prepare_inputs(spec, p, f, run.classes, cache_dir) for r, f in frames.items() if len(f)}
        if missing == "error":
            check_no_missing(prepared, p)
        train_inputs = prepared["train"][0]
        if len(train_inputs) == 0:
            raise ModelError(f"{run.params_json['name']}: no usable training images")
        n_out = 1 if run.task == "binary" else len(run.classes)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            module = build_module(spec, p, n_out)
        if p.get("init_from") and started is None:  # a resumed run continues from its own last.pt
            start_from(module, p["init_from"], spec, run.classes)
    except BaseException:
        if started is None and parallel.is_main():
            remove_unstarted_run(run.folder)
        raise
    setup = Training(spec, p, run.task, len(run.classes), run.folder, seed, dev, resume=resume,
                     positive_index=run.positive_index)
    summary = train_loop(module, setup, train_inputs, prepared["valid"][0], on_progress)

    def score_and_write():
        sets, predictions, threshold, failures, evaluated = score_sets(run, module, frames, prepared, eval_on,
                                                                       cache_dir, target_fpr)
        write_results(run.folder, {"sets": sets, "training": summary, "threshold": threshold}, predictions,
                      failures)
        write_params(run.folder, {**run.params_json, "eval_on": evaluated, "training": summary,
                                  "threshold": threshold})

    parallel.on_main(score_and_write)  # under torchrun the first process scores; the others read its run
    return load_network_run(run.folder)
