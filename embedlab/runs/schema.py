"""Run folders are untrusted input: their JSON files are bounded and checked before anything uses them.

A run folder may come from someone else (a download, a shared drive). Before a value of its
``params.json`` or ``metrics.json`` is used, :func:`read_checked` makes sure that the file is not
too large, parses, nests at most :data:`MAX_DEPTH` deep with no container over
:data:`MAX_ITEMS` entries, and that the fields embedlab relies on have the right types and sizes
(:func:`check_params`, :func:`check_metrics`). Anything else is a :class:`ModelError` that names
the file and the field.

>>> check_params({"kind": "classifier", "classes": 12345}, "params.json")
Traceback (most recent call last):
...
embedlab.core.errors.ModelError: params.json: "classes" must be a list of 1 to 1,000 class names
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from embedlab.core.errors import ModelError

#: the largest params.json / metrics.json read (bytes)
MAX_JSON_BYTES = 32 * 2**20
MAX_DEPTH = 32
MAX_ITEMS = 200_000
MAX_CLASSES = 1_000
KINDS = ("classifier", "network", "stacked")
TASKS = ("binary", "multiclass")


def read_checked(path: str | os.PathLike, check: Callable[[dict, str], None] | None = None) -> dict[str, Any]:
    """The JSON object in ``path``, bounded in size and shape, and ``check``-ed; else a ModelError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ModelError(f"{path}: {size:,} bytes, more than a run's JSON file may hold ({MAX_JSON_BYTES:,})")
        with open(path, "rb") as fh:
            data = json.loads(fh.read(MAX_JSON_BYTES + 1).decode("utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: missing; is {path.parent} a run folder?") from None
    except RecursionError:
        raise ModelError(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object, found {type(data).__name__}")
    check_shape(data, str(path))
    if check is not None:
        check(data, str(path))
    return data


def check_shape(data: Any, where: str) -> None:
    """At most :data:`MAX_DEPTH` levels of nesting and :data:`MAX_ITEMS` entries per container."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise ModelError(f"{where}: nested deeper than {MAX_DEPTH} levels")
            if len(value) > MAX_ITEMS:
                raise ModelError(f"{where}: a list or object of {len(value):,} entries (at most {MAX_ITEMS:,})")
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))


def _need(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ModelError(f"{where}: {message}")


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 1000


def check_params(params: dict[str, Any], where: str) -> None:
    """The fields of ``params.json`` that embedlab uses, with their types and sizes."""
    _need(params.get("kind") in KINDS, where, f'"kind" must be one of {", ".join(KINDS)}')
    classes = params.get("classes")
    _need(isinstance(classes, list) and 0 < len(classes) <= MAX_CLASSES and all(map(_is_name, classes)),
          where, f'"classes" must be a list of 1 to {MAX_CLASSES:,} class names')
    _need(len(set(classes)) == len(classes), where, '"classes" names a class twice')
    # what each kind needs to predict: a classifier its feature specs, a network its model and task
    needed = {"classifier": ("features",), "network": ("model", "task"),
              "stacked": ("components", "combiner", "task")}[params["kind"]]
    missing = [key for key in needed if key not in params]
    _need(not missing, where, f"no {', '.join(repr(k) for k in missing)}: a {params['kind']} run needs "
          + {"classifier": "the feature specs it was fitted on", "network": "its network and task",
             "stacked": "its components, their combiner and its task"}[params["kind"]])
    if params["kind"] == "stacked":
        comps, combiner = params["components"], params["combiner"]
        _need(isinstance(comps, list) and 2 <= len(comps) <= 16
              and all(isinstance(c, dict) and _is_name(c.get("name")) and Path(str(c["name"])).name == c["name"]
                      and c["name"] not in (".", "..") for c in comps), where,
              '"components" must list 2 to 16 component runs by folder name')
        coef = combiner.get("coef") if isinstance(combiner, dict) else None
        _need(isinstance(coef, list) and len(coef) == 2 * len(comps)
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v == v for v in coef)
              and isinstance(combiner.get("intercept"), (int, float)), where,
              '"combiner" must hold "coef" (two numbers per component) and "intercept"')
    if params["kind"] == "classifier":
        _need(isinstance(params["features"], list) and params["features"], where,
              '"features" must name the feature specs the classifier was fitted on')
    if "task" in params:
        _need(params["task"] in TASKS, where, f'"task" must be one of {", ".join(TASKS)}')
    if params.get("positive_class") is not None:
        _need(params["positive_class"] in classes, where, '"positive_class" must be one of "classes"')
    for key in ("name", "model"):
        if key in params:
            _need(_is_name(params[key]), where, f'"{key}" must be a short text')
    for key in ("model_params", "feature_keys", "feature_dims", "data", "param_overrides"):
        if params.get(key) is not None:
            _need(isinstance(params[key], dict), where, f'"{key}" must be an object')
    for key in ("features", "eval_features", "model_files"):
        if params.get(key) is not None:
            _need(isinstance(params[key], list) and all(map(_is_name, params[key])), where,
                  f'"{key}" must be a list of texts')
    for name in params.get("model_files") or []:
        _need(Path(name).name == name and name not in (".", ".."), where,
              f'"model_files" must name files inside the run folder, not {name!r}')
    dims = params.get("feature_dims") or {}
    _need(all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1_000_000 for v in dims.values()),
          where, '"feature_dims" must be whole numbers from 1 to 1,000,000')
    threshold = params.get("threshold")
    if threshold is not None:
        _need(isinstance(threshold, dict) and _is_probability(threshold.get("value")), where,
              '"threshold" must be an object whose "value" is a probability')


def _is_probability(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1)


def check_metrics(metrics: dict[str, Any], where: str) -> None:
    """``metrics.json``: ``sets`` maps set names to objects whose counts and figures are numbers."""
    sets = metrics.get("sets", {})
    _need(isinstance(sets, dict), where, '"sets" must be an object')
    for name, figures in sets.items():
        _need(isinstance(figures, dict), where, f'set {name!r} must be an object')
        n = figures.get("n")
        _need(n is None or (isinstance(n, int) and not isinstance(n, bool) and n >= 0), where,
              f'set {name!r}: "n" must be a count')
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "average_precision", "brier"):
            value = figures.get(key)
            _need(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)), where,
                  f'set {name!r}: "{key}" must be a number')
        labels = figures.get("labels", [])
        _need(isinstance(labels, list) and len(labels) <= MAX_CLASSES and all(map(_is_name, labels)), where,
              f'set {name!r}: "labels" must be a list of at most {MAX_CLASSES:,} class names')
        matrix = figures.get("confusion_matrix")
        if matrix is not None:
            _need(isinstance(matrix, list) and len(matrix) == len(labels)
                  and all(isinstance(r, list) and len(r) == len(labels)
                          and all(isinstance(c, int) and not isinstance(c, bool) for c in r) for r in matrix),
                  where, f'set {name!r}: "confusion_matrix" must be a labels x labels table of counts')
