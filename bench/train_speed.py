"""Training throughput of the emotion networks: images/s of full training steps.

    .venv/bin/python bench/train_speed.py                      # CPU, 2 threads
    .venv/bin/python bench/train_speed.py --device cuda        # a GPU, where there is one
    .venv/bin/python bench/train_speed.py --out results/bench/train_speed_cpu_avx2.json  # a CPU without native bf16

Times forward + backward + AdamW steps on random 48x48 grayscale batches (what
FER-2013 training feeds the networks; dlib-resnet upsamples them to 150 px
inside), with bf16 autocast and channels-last memory each on and off. Writes
results/bench/train_speed_<device>.json. The weights are random: speed does not
depend on them, and the script then needs no model file.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = {
    "dlib-resnet": {"size": 48, "channels": 1, "weights": "random"},
    "emotion-cnn": {},
    "vgg16-emotion": {},
}


def steps_per_second(module, size: int, channels: int, batch: int, device, bf16: bool, channels_last: bool,
                     seconds: float) -> float:
    import torch
    import torch.nn.functional as F

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    module = module.to(device).to(memory_format=fmt).train()
    opt = torch.optim.AdamW(module.parameters(), 1e-4)
    x = torch.randn(batch, channels, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 7, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = module(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up: kernel selection, allocator
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        n += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
    return n * batch / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=8.0, help="timed seconds per configuration")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    from embedlab.nets.models import NETWORKS as REGISTRY, build_module

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for name, params in NETWORKS.items():
        spec = REGISTRY.create(name)
        p = spec.resolve(params)
        for bf16 in (False, True):
            for channels_last in (False, True):
                with torch.random.fork_rng():
                    torch.manual_seed(0)
                    module = build_module(spec, p, 7)
                rate = steps_per_second(module, int(p["size"]), int(p["channels"]), args.batch, device, bf16,
                                        channels_last, args.seconds)
                rows.append({"network": name, "bf16": bf16, "channels_last": channels_last,
                             "train_images_per_second": round(rate, 1)})
                print(f"{name:14s} bf16={bf16!s:5s} channels_last={channels_last!s:5s} {rate:8.1f} img/s", flush=True)
    from embedlab.core.system import native_bf16

    info = {"device": args.device, "threads": args.threads if device.type == "cpu" else None,
            "native_bf16": native_bf16() if device.type == "cpu" else None,
            "batch": args.batch, "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None, "results": rows}
    out = Path(args.out or ROOT / "results" / "bench" / f"train_speed_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(info, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
