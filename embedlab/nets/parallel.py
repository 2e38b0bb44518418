"""Data-parallel training across the processes ``torchrun`` starts: the same fit, run once per process.

    torchrun --nproc_per_node 2 -m embedlab_cli.main fit DATA -m npr

Every process lists the data, builds the same network from the same seed and
reads its share of each batch; gradients are averaged across processes
(``DistributedDataParallel``: gloo on the CPU, nccl on GPUs), so the weights
stay identical everywhere and each process computes the same validation
figures. Only the first process (rank 0) writes the run folder; the others
wait for it and then read it. Outside ``torchrun`` (no ``WORLD_SIZE`` in the
environment) nothing here does anything.
"""

from __future__ import annotations

import atexit
import os
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def launched() -> bool:
    """Whether this process is one of several started by ``torchrun``."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world(device=None) -> tuple[int, int]:
    """``(rank, world size)``, joining torchrun's process group on first use; ``(0, 1)`` outside it."""
    if not launched():
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device is not None and getattr(device, "type", device) == "cuda" else "gloo"
        dist.init_process_group(backend)
        # left to the interpreter's exit, the group's threads can outlive it: the process then aborts
        # ("terminate called without an active exception") though its work is done
        atexit.register(_leave)
    return dist.get_rank(), dist.get_world_size()


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        try:  # every process there first: one that tears its side down while another still talks aborts
            dist.barrier()
        except Exception:  # another process is gone already (it failed): nothing left to wait for
            pass
        dist.destroy_process_group()


def is_main() -> bool:
    return world()[0] == 0


def barrier() -> None:
    if launched():
        import torch.distributed as dist

        world()
        dist.barrier()


def on_main(work: Callable[[], T]) -> T:
    """``work()`` run by rank 0 alone, its result (or its error) given to every process."""
    if not launched():
        return work()
    import torch.distributed as dist

    world()
    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = ("ok", work())
        except BaseException as exc:  # every process raises it, so none waits forever
            box[0] = ("error", exc)
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise value
    return value


def share(batch_rows):
    """This process's part of a batch's row indices (every ``world size``-th from its rank)."""
    rank, size = world()
    return batch_rows if size == 1 else batch_rows[rank::size]


def wrap(module, device):
    """``module`` in ``DistributedDataParallel`` under torchrun, else as it is."""
    if not launched():
        return module
    from torch.nn.parallel import DistributedDataParallel

    world(device)
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def summed(*values: float) -> list[float]:
    """Each value summed over every process (epoch totals: loss, correct, seen)."""
    if not launched():
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()
