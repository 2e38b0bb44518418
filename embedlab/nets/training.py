"""Training a network: seeded, validated every epoch, checkpointed, resumable.

One epoch's randomness (shuffling, augmentation, dropout) depends only on
``(seed, epoch)``, so a run interrupted after epoch k and resumed from its
``last.pt`` makes the same epochs as a run that was never interrupted.

>>> import tempfile
>>> from embedlab.nets import fit_network
>>> tmp = tempfile.mkdtemp()
>>> run = fit_network("data/sample/fer2013", "emotion-cnn", {"widths": [8, 8, 8, 8]}, epochs=1,
...                   runs_dir=tmp + "/runs", cache_dir=tmp + "/cache", name="demo")
>>> len(run.history())
1
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from embedlab.core import system
from embedlab.core.errors import ModelError
from embedlab.core.io import atomic_write
from embedlab.features.cnn import IMAGENET_MEAN, IMAGENET_STD
from embedlab.nets import parallel
from embedlab.nets.models import GRAY_MEAN, GRAY_STD, NetworkSpec
from embedlab.runs.folder import HISTORY_FILE

HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
MODEL_FILE = "model.pt"        # best weights (state_dict)
LAST_FILE = "last.pt"          # last epoch: weights, optimiser, history, early-stopping state


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an error's message, at most ``limit`` characters (torch's run to pages)."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return text if len(text) <= limit else text[:limit] + "..."


def resolve_device(device: str):
    import torch

    return torch.device(system.resolve_device(device, ModelError))


def seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_generator(seed: int, epoch: int):
    import torch

    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


# -- inputs -----------------------------------------------------------------
def normalise(batch, channels: int):
    """uint8 NHWC tensor -> float NCHW, standardised."""
    import torch

    x = batch.permute(0, 3, 1, 2).float().div_(255.0)
    if channels == 1:
        return (x - GRAY_MEAN) / GRAY_STD
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def augment(x, p: dict[str, Any], gen):
    """Random flips, small rotations/shifts/zooms, brightness/contrast and erasing, per image.

    ``x`` is a float NCHW batch in [0, 1]; all draws come from ``gen``.
    """
    import torch
    import torch.nn.functional as F

    n = x.shape[0]

    def uniform(lo, hi, *shape):
        return torch.rand(*(shape or (n,)), generator=gen) * (hi - lo) + lo

    if p["flip"]:
        flip = torch.rand(n, generator=gen) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)
    if p["rotate"] or p["shift"] or p["zoom"]:
        angle = uniform(-p["rotate"], p["rotate"]) * math.pi / 180
        scale = uniform(1 - p["zoom"], 1 + p["zoom"])
        tx, ty = uniform(-p["shift"], p["shift"]) * 2, uniform(-p["shift"], p["shift"]) * 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if p["jitter"]:
        j = p["jitter"]
        bright = uniform(-j / 2, j / 2).view(-1, 1, 1, 1).to(x.device)
        contrast = uniform(1 - j, 1 + j).view(-1, 1, 1, 1).to(x.device)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast + mean + bright).clamp_(0, 1)
    if p["erase"]:
        h, w = x.shape[2:]
        on = (torch.rand(n, generator=gen) < p["erase"]).view(-1, 1, 1)
        eh = (uniform(0.15, 0.4) * h).long().view(-1, 1, 1)
        ew = (uniform(0.15, 0.4) * w).long().view(-1, 1, 1)
        top = (torch.rand(n, generator=gen).view(-1, 1, 1) * (h - eh + 1)).long()
        left = (torch.rand(n, generator=gen).view(-1, 1, 1) * (w - ew + 1)).long()
        rows = torch.arange(h).view(1, -1, 1)
        cols = torch.arange(w).view(1, 1, -1)
        mask = on & (rows >= top) & (rows < top + eh) & (cols >= left) & (cols < left + ew)
        fill = torch.rand(n, generator=gen).view(-1, 1, 1, 1).to(x.device)
        x = torch.where(mask.unsqueeze(1).to(x.device), fill, x)
    return x


class Inputs:
    """What a network reads for a set of rows: uint8 images and/or encodings, labels."""

    def __init__(self, images=None, encodings=None, labels=None, groups=None):
        self.images = images        # uint8 tensor (N, H, W, C) or None
        self.encodings = encodings  # float32 tensor (N, 128) or None
        self.labels = labels        # int64 tensor (N,) or None
        self.groups = groups        # int array (N,): label and source of each row, or None

    def __len__(self):
        return len(self.images) if self.images is not None else len(self.encodings)

    def batch(self, idx, device, channels: int, params: dict | None = None, gen=None, memory_format=None):
        image = encoding = None
        if self.images is not None:
            raw = self.images[idx]
            if params is not None and params["augment"]:
                x = augment(raw.permute(0, 3, 1, 2).float().div_(255.0), params, gen)
                x = x.permute(0, 2, 3, 1).mul_(255.0)
                image = normalise(x, channels)
            else:
                image = normalise(raw, channels)
            image = image.to(device).contiguous(memory_format=memory_format or _contiguous())
        if self.encodings is not None:
            encoding = self.encodings[idx].to(device)
        return image, encoding

    def batches(self, order, batch_size: int, device, channels: int, params: dict | None = None, gen=None,
                memory_format=None):
        """``(rows, image, encoding)`` for each ``batch_size`` slice of the row indices ``order``."""
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield (idx, *self.batch(idx, device, channels, params, gen, memory_format))


def _contiguous():
    import torch

    return torch.contiguous_format


def memory_format_for(module):
    """channels_last (faster convolutions) unless a convolution is narrower than 16 channels.

    oneDNN's CPU kernels crash on channels_last convolutions this narrow (the
    tiny networks of the tests); wide networks keep the fast layout.
    """
    import torch

    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    narrow = any(c.out_channels < 16 or (c.in_channels < 16 and c.in_channels not in (1, 3)) for c in convs)
    return torch.contiguous_format if narrow or not convs else torch.channels_last


def _notify(callback, done: int, total: int, info: dict) -> None:
    if callback is None:
        return
    try:
        takes_info = len(inspect.signature(callback).parameters) >= 3
    except (TypeError, ValueError):
        takes_info = False
    if takes_info:
        callback(done, total, info)
    else:
        callback(done, total)


# -- losses and schedules ---------------------------------------------------
#: how training evens out classes: loss weights, a class-balanced sampler, a sampler that also
#: draws each source of fakes equally often, or nothing
BALANCE = ("weights", "sampler", "sources", "none")


def class_weights(labels: np.ndarray, n_classes: int, power: float) -> np.ndarray:
    """Per-class weights ``(N / (K * count)) ** power``, rescaled to average 1 over the images.

    >>> class_weights(np.array([0, 0, 0, 1]), 2, 1.0).round(3).tolist()
    [0.667, 2.0]
    """
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    w = np.where(counts > 0, (len(labels) / (n_classes * np.maximum(counts, 1))) ** power, 0.0)
    return w * len(labels) / max((w * counts).sum(), 1e-12)


def source_weights(labels: np.ndarray, groups: np.ndarray, n_classes: int, power: float,
                   source_power: float = 1.0) -> np.ndarray:
    """Per-row sampling weights: each class its ``class_weights`` share, split among its sources.

    ``groups`` numbers each row's (label, source). With ``source_power`` 1 a rare source is drawn as
    often as a common one; below 1 it is drawn more than its count alone gives, but less than
    evenly (a source's rows weigh ``(class rows / (sources * its rows)) ** source_power``).

    >>> w = source_weights(np.array([0, 0, 1, 1, 1, 1]), np.array([0, 0, 1, 1, 1, 2]), 2, 1.0)
    >>> (w / w.sum()).round(3).tolist()
    [0.25, 0.25, 0.083, 0.083, 0.083, 0.25]
    >>> w = source_weights(np.array([0, 0, 1, 1, 1, 1]), np.array([0, 0, 1, 1, 1, 2]), 2, 1.0, source_power=0.0)
    >>> (w / w.sum()).round(3).tolist()
    [0.25, 0.25, 0.125, 0.125, 0.125, 0.125]
    """
    per_class = class_weights(labels, n_classes, power)[labels]
    w = np.empty(len(labels))
    for c in np.unique(labels):
        rows = labels == c
        kinds, counts = np.unique(groups[rows], return_counts=True)
        share = dict(zip(kinds, (rows.sum() / (len(kinds) * counts)) ** source_power))
        per_row = np.array([share[g] for g in groups[rows]])
        w[rows] = per_class[rows] * per_row * rows.sum() / per_row.sum()  # the class keeps its share
    return w


def learning_rate(p: dict[str, Any], step: int, total: int, steps_per_epoch: int) -> float:
    """The learning rate at optimiser ``step`` of ``total``: a pure function, so resuming needs no state."""
    base = float(p["lr"])
    warm = int(float(p["warmup_epochs"]) * steps_per_epoch)
    if p["schedule"] == "constant":
        return base * min(1.0, (step + 1) / warm) if warm else base
    if p["schedule"] == "onecycle":
        peak = max(int(0.25 * total), 1) if not warm else warm
        if step < peak:  # linear warm-up from base/25
            return base / 25 + (base - base / 25) * step / peak
        frac = (step - peak) / max(total - peak, 1)
        return base / 1e3 + (base - base / 1e3) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
    if p["schedule"] == "cosine":
        if warm and step < warm:
            return base * (step + 1) / warm
        frac = (step - warm) / max(total - warm, 1)
        return base * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
    raise ModelError(f"schedule must be constant, cosine or onecycle, got {p['schedule']!r}")


def make_optimizer(p: dict[str, Any], module):
    import torch

    decay, no_decay = [], []
    for name, prm in module.named_parameters():
        (no_decay if prm.ndim <= 1 else decay).append(prm)
    groups = [{"params": decay, "weight_decay": float(p["weight_decay"])},
              {"params": no_decay, "weight_decay": 0.0}]
    if p["optimizer"] == "adam":
        return torch.optim.Adam(groups, lr=p["lr"])
    if p["optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=p["lr"])
    if p["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=p["lr"], momentum=0.9, nesterov=True)
    raise ModelError(f"optimizer must be adam, adamw or sgd, got {p['optimizer']!r}")


def loss_function(task: str, weights: np.ndarray | None, smoothing: float, device, positive_index: int = 1):
    """Cross-entropy; for a binary task, BCE-with-logits on one output: the positive class's logit."""
    import torch
    import torch.nn.functional as F

    if task == "binary":
        pos_weight = None
        if weights is not None:
            pos_weight = torch.tensor([weights[positive_index] / max(weights[1 - positive_index], 1e-12)],
                                      device=device)

        def bce(logits, y):
            target = (y == positive_index).float()
            if smoothing:
                target = target * (1 - smoothing) + 0.5 * smoothing
            return F.binary_cross_entropy_with_logits(logits.view(-1), target, pos_weight=pos_weight)
        return bce
    w = torch.tensor(weights, dtype=torch.float32, device=device) if weights is not None else None

    def ce(logits, y):
        return F.cross_entropy(logits, y, weight=w, label_smoothing=float(smoothing))
    return ce


def probabilities(logits, task: str, positive_index: int = 1):
    """One column per class, in the run's class order."""
    import torch

    if task == "binary":
        p = torch.sigmoid(logits.float().view(-1))
        return torch.stack([p, 1 - p] if positive_index == 0 else [1 - p, p], 1)
    return torch.softmax(logits.float(), dim=1)


def predicted_index(logits, task: str, positive_index: int = 1):
    if task == "binary":
        positive = logits.view(-1) > 0
        return positive.long() if positive_index == 1 else (~positive).long()
    return logits.argmax(1)


# -- the loop ---------------------------------------------------------------
def my_share(order, steps: int, batch_size: int):
    """This process's rows of an epoch's ``order`` and its batch size: under torchrun each of the
    ``steps`` batches is split across the processes, so together they take the batch one would."""
    rank, size = parallel.world()
    if size == 1:
        return order, batch_size
    if len(order) == steps * batch_size:
        return order.view(steps, batch_size)[:, rank::size].reshape(-1), len(range(rank, batch_size, size))
    return order[rank::size], max(1, len(order[rank::size]))



def _autocast(device, enabled: bool):
    import contextlib

    import torch

    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@dataclass(frozen=True)
class Inference:
    """How a network's forward passes are made and read: the input ``channels``, the ``task`` (a
    binary network's single output scores the class at ``positive_index``), whether to average each
    image with its mirror image (``tta_flip``), bfloat16 autocast, and rows per batch."""

    channels: int
    task: str
    positive_index: int = 1
    tta_flip: bool = False
    bf16: bool = False
    batch_size: int = 256


def run_model(module, inputs: Inputs, device, how: Inference, embed: bool = False) -> np.ndarray:
    """Class probabilities (or penultimate features with ``embed``) for every row of ``inputs``."""
    import torch

    channels, task, positive_index = how.channels, how.task, how.positive_index
    batch_size, bf16, tta_flip = how.batch_size, how.bf16, how.tta_flip
    module.eval()
    out = []
    fmt = memory_format_for(module)
    with torch.inference_mode():
        for _, image, encoding in inputs.batches(torch.arange(len(inputs)), batch_size, device, channels,
                                                 memory_format=fmt):
            with _autocast(device, bf16):
                if embed:
                    out.append(module.embed(image, encoding).float().cpu())
                else:
                    proba = probabilities(module(image, encoding), task, positive_index)
                    if tta_flip and image is not None:
                        proba = (proba + probabilities(module(image.flip(-1), encoding), task, positive_index)) / 2
                    out.append(proba.float().cpu())
    if not out:
        return np.zeros((0, 0), np.float32)
    return torch.cat(out).numpy()


def _evaluate_loss(module, inputs: Inputs, device, how: Inference, loss_fn):
    import torch

    channels, task, positive_index = how.channels, how.task, how.positive_index
    batch_size, bf16 = how.batch_size, how.bf16
    module.eval()
    total, correct, n = 0.0, 0, 0
    fmt = memory_format_for(module)
    with torch.inference_mode():
        for idx, image, encoding in inputs.batches(torch.arange(len(inputs)), batch_size, device, channels,
                                                   memory_format=fmt):
            y = inputs.labels[idx].to(device)
            with _autocast(device, bf16):
                logits = module(image, encoding)
            logits = logits.float()
            total += float(loss_fn(logits, y)) * len(idx)
            correct += int((predicted_index(logits, task, positive_index) == y).sum())
            n += len(idx)
    return (total / n, correct / n) if n else (float("nan"), float("nan"))


def save_torch(obj, path: Path) -> None:
    import torch

    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def write_history(folder: Path, history: list[dict]) -> None:
    frame = pd.DataFrame(history, columns=HISTORY_COLUMNS)
    atomic_write(folder / HISTORY_FILE, lambda tmp: frame.to_csv(tmp, index=False))


@dataclass(frozen=True)
class Training:
    """What :func:`train_loop` trains with, as ``fit_network`` prepared it: the network and its
    resolved settings ``p``, the task and its number of classes (a binary network's output scores the
    class at ``positive_index``), the run folder that takes the checkpoints, the seed, the device, and
    whether to ``resume`` from the folder's ``last.pt``."""

    spec: NetworkSpec
    p: dict[str, Any]
    task: str
    n_classes: int
    folder: Path
    seed: int
    device: Any
    resume: bool = False
    positive_index: int = 1


# One epoch loop with early stopping, checkpoints and resume kept together: splitting it would
# spread the optimiser, scheduler and early-stopping state across functions.
def train_loop(module, setup: Training, train: Inputs, valid: Inputs,
               on_progress: Callable | None = None) -> dict[str, Any]:
    """Train ``module`` in place; leaves the best weights in ``setup.folder/model.pt``.

    Returns a summary: epochs run, best epoch, whether early stopping fired.
    """
    import torch

    spec, p, task, n_classes, folder = setup.spec, setup.p, setup.task, setup.n_classes, setup.folder
    seed, device, resume, positive_index = setup.seed, setup.device, setup.resume, setup.positive_index
    channels = int(p.get("channels", 1))
    y = train.labels.numpy()
    weights = class_weights(y, n_classes, float(p["balance_power"])) if p["balance"] == "weights" else None
    if p["balance"] not in BALANCE:
        raise ModelError(f"balance must be one of {', '.join(BALANCE)}, got {p['balance']!r}")
    sample_p = None
    if p["balance"] == "sampler":
        w = class_weights(y, n_classes, float(p["balance_power"]))[y]
        sample_p = torch.tensor(w / w.sum(), dtype=torch.float64)
    elif p["balance"] == "sources":
        groups = train.groups if train.groups is not None else y
        w = source_weights(y, groups, n_classes, float(p["balance_power"]), float(p["source_power"]))
        sample_p = torch.tensor(w / w.sum(), dtype=torch.float64)
    loss_fn = loss_function(task, weights, float(p["label_smoothing"]), device, positive_index)
    val_loss_fn = loss_function(task, None, 0.0, device, positive_index)
    module.to(device)
    fmt = memory_format_for(module)
    module.to(memory_format=fmt)
    optimizer = make_optimizer(p, module)
    model = parallel.wrap(module, device)  # under torchrun: gradients averaged across processes
    main = parallel.is_main()
    epochs, batch_size = int(p["epochs"]), int(p["batch_size"])
    n = len(train)
    steps_per_epoch = max(1, n // batch_size) if n >= batch_size else 1
    total_steps = steps_per_epoch * epochs
    bf16 = bool(p["bf16"])
    if p["monitor"] not in ("val_acc", "val_loss"):
        raise ModelError(f"monitor must be val_acc or val_loss, got {p['monitor']!r}")

    state = {"epoch": 0, "history": [], "best_score": None, "best_epoch": 0, "bad_epochs": 0, "stopped": False}
    last = folder / LAST_FILE
    if resume:
        if not last.is_file():
            raise ModelError(f"{last}: no checkpoint to resume from (the run never finished an epoch): "
                             f"remove {folder} and fit again without resuming")
        try:  # weights_only: a pickled payload is refused, never run
            ckpt = torch.load(last, map_location=device, weights_only=True)
            module.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            state = {k: ckpt[k] for k in state}
        except Exception as exc:  # torch raises many kinds for a file it did not write
            raise ModelError(f"{last}: not a checkpoint of this run, so it cannot resume "
                             f"({type(exc).__name__}: {first_line(exc)})") from None
    done_batches = state["epoch"] * steps_per_epoch
    total_batches = total_steps
    if not main:
        on_progress = None
    _notify(on_progress, done_batches, total_batches,
            {"start": True, "epoch": state["epoch"], "epochs": epochs, "batches_per_epoch": steps_per_epoch,
             "batch_size": batch_size, "train_images": n, "valid_images": len(valid), "device": str(device)})
    while state["epoch"] < epochs and not state["stopped"]:
        epoch = state["epoch"] + 1
        started = time.time()
        gen = _epoch_generator(seed, epoch)
        torch.manual_seed(seed * 1_000_003 + epoch)  # dropout
        if sample_p is not None:
            order = torch.multinomial(sample_p, steps_per_epoch * batch_size, replacement=True, generator=gen)
        else:
            order = torch.randperm(n, generator=gen)
        module.train()
        run_loss, run_correct, seen = 0.0, 0, 0
        mine, my_batch = my_share(order[:steps_per_epoch * batch_size], steps_per_epoch, batch_size)
        drawn = train.batches(mine, my_batch, device, channels, p, gen, fmt)
        for b, (idx, image, encoding) in enumerate(drawn):
            if len(idx) == 0:
                break
            step = (epoch - 1) * steps_per_epoch + b
            lr = learning_rate(p, step, total_steps, steps_per_epoch)
            for g in optimizer.param_groups:
                g["lr"] = lr
            target = train.labels[idx].to(device)
            if len(idx) == 1 and spec.uses_encoding:  # BatchNorm1d needs two rows
                idx = idx.repeat(2)
                image, encoding = train.batch(idx, device, channels, p, gen, fmt)
                target = train.labels[idx].to(device)
            with _autocast(device, bf16):
                logits = model(image, encoding)
            loss = loss_fn(logits.float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                run_correct += int((predicted_index(logits, task, positive_index) == target).sum())
                run_loss += float(loss) * len(idx)
                seen += len(idx)
            done_batches += 1
            _notify(on_progress, done_batches, total_batches,
                    {"epoch": epoch, "epochs": epochs, "loss": run_loss / seen, "acc": run_correct / seen})
        run_loss, run_correct, seen = parallel.summed(run_loss, run_correct, seen)
        val_loss, val_acc = _evaluate_loss(module, valid, device,
                                           Inference(channels, task, positive_index, bf16=bf16), val_loss_fn)
        row = {"epoch": epoch, "train_loss": run_loss / max(seen, 1), "train_acc": run_correct / max(seen, 1),
               "val_loss": val_loss, "val_acc": val_acc, "lr": lr, "seconds": round(time.time() - started, 2)}
        state["history"].append(row)
        score = val_acc if p["monitor"] == "val_acc" else -val_loss
        if state["best_score"] is None or (score == score and score > state["best_score"]):
            state.update(best_score=float(score), best_epoch=epoch, bad_epochs=0)
            if main:
                save_torch(module.state_dict(), folder / MODEL_FILE)
        else:
            state["bad_epochs"] += 1
            if p["patience"] and state["bad_epochs"] >= int(p["patience"]):
                state["stopped"] = True
        state["epoch"] = epoch
        if main:
            save_torch({"model": module.state_dict(), "optimizer": optimizer.state_dict(), **state}, last)
            write_history(folder, state["history"])
        parallel.barrier()  # every process reads what the first one wrote
        _notify(on_progress, done_batches, total_batches, {"epoch": epoch, "epochs": epochs, **row,
                                                           "end_of_epoch": True})
    best = torch.load(folder / MODEL_FILE, map_location=device, weights_only=True)
    module.load_state_dict(best)
    return {"epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
            "best_score": state["best_score"], "early_stopped": bool(state["stopped"]),
            "monitor": p["monitor"]}
