"""What this machine offers: worker processes and the compute device."""

from __future__ import annotations

import os

from embedlab.core.errors import EmbedlabError

DEVICES = ("auto", "cpu", "cuda")


def default_workers() -> int:
    """The cores this process may use (its CPU affinity where the OS tells it)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


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
