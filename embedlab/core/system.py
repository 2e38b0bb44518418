"""What this machine offers: worker processes, the compute device, imports that overlap work."""

from __future__ import annotations

import importlib
import os
import sys
import threading

from embedlab.core.errors import EmbedlabError

DEVICES = ("auto", "cpu", "cuda")


def default_workers() -> int:
    """The cores this process may use (its CPU affinity where the OS tells it)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def native_bf16() -> bool | None:
    """Whether this CPU computes bfloat16 natively (``avx512_bf16`` or AMX, as Linux lists its flags);
    None where the flags cannot be read. Without it PyTorch emulates bfloat16, and autocast trains
    a convolutional network about 9x slower than float32 (measured on an AVX2-only AMD EPYC)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), None)
    except OSError:
        return None
    if flags is None:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: str = "auto", error: type[EmbedlabError] = EmbedlabError) -> str:
    """``auto`` -> ``cuda`` when PyTorch sees a GPU, else ``cpu``; ``cuda`` without a GPU is an ``error``.

    >>> resolve_device("cpu")
    'cpu'
    """
    if device not in DEVICES:
        raise error(f"device={device!r} is not one of {', '.join(DEVICES)}")
    if device == "cpu":
        return device
    try:
        import torch
    except ImportError as exc:
        raise error(f"device {device!r} needs PyTorch ({exc}); install torch") from None
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise error("device=cuda was asked for but PyTorch sees no CUDA GPU; use device=cpu or auto")
    return device


def import_in_background(name: str) -> None:
    """Start importing module ``name`` in a thread, so that the import overlaps what the caller does
    meanwhile; the caller's own ``import name`` later waits for it to finish.

    PyTorch takes about 2 s to import on a small machine, and dlib's face detector (which leaves the
    interpreter free while it runs) can find the faces of a photo in that time. Call it only once the
    work to overlap has its own modules imported, so that the two threads never import one module
    at once. An import that fails here is left for the caller's own import to report.
    """
    if name in sys.modules:
        return

    def load() -> None:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the caller's own import says what is wrong
            pass

    threading.Thread(target=load, name=f"import {name}", daemon=True).start()
