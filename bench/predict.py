"""Prediction throughput: `embedlab predict --task real-fake|emotion` on a folder of mixed sizes, cold
and warm, at 1 and 2 workers, beside face_recognition's own loop; and one photo's latency.

The folder holds the first N images (sorted by name) of each of three sources: 256 px (the 140k
faces), 512 px (generated-photos) and 1024 px (ffhq-hires), linked into a temporary folder. Every
figure is a command as users run it (a fresh interpreter, imports and all, output to a CSV):
cold with an empty cache, at 1 and then 2 workers, and warm (the same command again, 2 workers).
face_recognition's loop is `load_image_file` + `face_locations` + `face_encodings` per image, in
one process (bench/encode.py's). It also checks that 1 and 2 workers give the same CSV, and
measures bf16 against fp32 for the network on the inputs the cold run stored: images/s and how
many decisions differ.

    .venv/bin/python bench/predict.py                  # 70 images per source
    .venv/bin/python bench/predict.py --per-source 20  # a quick look
    .venv/bin/python bench/predict.py --one-photo      # only one photo's latency, three times

Writes results/bench/predict.json.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_data import OUT_DIR, ROOT, data_or_exit, load_average  # noqa: E402  (bench/ is on sys.path)
from encode import naive_loop  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SOURCES = {256: DATA / "real-vs-fake" / "real_vs_fake" / "real-vs-fake" / "test",
           512: DATA / "generated-photos" / "test", 1024: DATA / "ffhq-hires"}
PHOTO = ROOT / "data" / "sample" / "face-photos" / "obama.jpg"
TASKS = ("real-fake", "emotion")


def mixed_folder(per_source: int, into: Path) -> list[Path]:
    """Links to the first ``per_source`` images of each source, in one folder."""
    into.mkdir(parents=True)
    links = []
    for size, folder in SOURCES.items():
        for src in sorted(data_or_exit(folder).rglob("*.jpg"))[:per_source]:
            link = into / f"{size}px-{src.parent.name}-{src.name}"
            link.symlink_to(src)
            links.append(link)
    return links


def command(args: list[str]) -> dict:
    """One `embedlab` command in a fresh interpreter: seconds to its first stderr line and to its
    end, the CPU seconds it and its workers used (``cores_used``: those over the wall time; with
    other work on the machine, fewer than the workers asked for), and its stdout."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "embedlab_cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()
    first_s = time.perf_counter() - started
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        raise SystemExit(f"embedlab {' '.join(args)} failed ({proc.returncode}): {first}{err}")
    return {"seconds": seconds, "cpu_seconds": cpu, "cores_used": cpu / seconds,
            "first_status_seconds": first_s if first else None,
            "first_status": first.strip(), "stdout": out}


def bf16_check(task: str, cache: Path) -> dict:
    """The network on the inputs a cold predict stored, in fp32 and in bf16: images/s, decisions."""
    import numpy as np
    import torch

    from embedlab.api import load_run
    from embedlab.compute.array_store import ArrayStore
    from embedlab.nets.prediction import input_maker
    from embedlab.nets.training import Inference, Inputs, run_model
    from embedlab.runs import pretrained_run
    from embedlab.runs.folder import labels_at

    run = load_run(pretrained_run(task))
    if run.params["kind"] == "stacked":  # the network among its components, at its own threshold
        run = next(c for c in run.components.values() if c.params["kind"] == "network")
    p = run.model_params
    store = ArrayStore(cache / "network-inputs", input_maker(p).key())
    arrays = [np.load(f)["input"] for f in sorted(store.folder.glob("*/*.npz"))]
    images = torch.from_numpy(np.stack(arrays))
    out = {}
    for bf16 in (False, True):
        started = time.perf_counter()
        how = Inference(int(p["channels"]), run.params["task"], positive_index=run.positive_index,
                        tta_flip=bool(p.get("tta_flip")), bf16=bf16)
        proba = run_model(run.module, Inputs(images), run.module_device, how)
        out["bf16" if bf16 else "fp32"] = {"seconds": time.perf_counter() - started, "proba": proba}
    cut = run.decision_threshold()
    labels = {k: labels_at(v["proba"], run.classes, cut["positive_class"] if cut else None,
                           cut["value"] if cut else None) for k, v in out.items()}
    return {"images": len(arrays), "torch_threads": torch.get_num_threads(),
            "fp32_images_per_second": len(arrays) / out["fp32"]["seconds"],
            "bf16_images_per_second": len(arrays) / out["bf16"]["seconds"],
            "decisions_differ": int(sum(a != b for a, b in zip(labels["fp32"], labels["bf16"]))),
            "max_abs_probability_difference": float(np.abs(out["fp32"]["proba"] - out["bf16"]["proba"]).max())}


def markdown(result: dict) -> str:
    """The README's table: each task's images/s cold at 1 and 2 workers, warm, face_recognition's
    loop on the same files, the speed-ups against their targets, and one photo's latency."""
    loop = result["face_recognition_loop"]
    lines = [f"| `predict --task` ({result['images']} images) | cold, 1 worker | cold, 2 workers | 2 vs 1 "
             "(target 1.8x) | vs face_recognition's loop (1.5x) | warm | warm vs cold (20x) | one photo, cold (4 s) |",
             "|---|---|---|---|---|---|---|---|"]
    for task, f in result["tasks"].items():
        lines.append(f"| `{task}` | {f['cold_1_worker_images_per_second']:.1f} img/s | "
                     f"{f['cold_2_workers_images_per_second']:.1f} img/s | {f['speedup_2_vs_1_workers']:.2f}x | "
                     f"{f['speedup_cold_2_workers_vs_face_recognition']:.2f}x ({loop['images_per_second']:.2f} img/s) | "
                     f"{f['warm_seconds_best_of_3']:.2f} s | {f['speedup_warm_vs_cold']:.0f}x | "
                     f"{result['one_photo'][task]['seconds']:.2f} s |")
    return "\n".join(lines) + "\n"


def one_photo(work: Path, runs: int) -> dict:
    """``predict PHOTO --task T`` from a cold start (a fresh interpreter, an empty cache), ``runs`` times
    per task: the median seconds, each run's, and when the first status line came."""
    import statistics

    photo = {"photo": str(PHOTO.relative_to(ROOT)), "runs": runs,
             "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average_before": load_average()}
    for task in TASKS:
        ran = [command(["predict", str(PHOTO), "--task", task, "--cache-dir", str(work / f"photo-{task}-{i}"),
                        "--format", "csv"]) for i in range(runs)]
        seconds = [r["seconds"] for r in ran]
        photo[task] = {"seconds": statistics.median(seconds), "each_seconds": seconds,
                       "first_status_seconds": statistics.median(r["first_status_seconds"] for r in ran),
                       "first_status": ran[0]["first_status"]}
        print(f"one photo, {task}: {photo[task]['seconds']:.2f} s (of {', '.join(f'{x:.2f}' for x in seconds)}), "
              f"first status line at {photo[task]['first_status_seconds']:.2f} s; load {load_average()}", flush=True)
    return photo


def remeasure_one_photo(out: Path) -> int:
    """Replace the one-photo figures of ``out`` (and its Markdown table) with a new measurement."""
    result = json.loads(out.read_text())
    work = Path(tempfile.mkdtemp(prefix="embedlab-bench-photo-"))
    try:
        result["one_photo"] = one_photo(work, runs=3)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(markdown(result))
    print(f"-> {out}")
    return 0


def main() -> int:
    import argparse

    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-source", type=int, default=70, help="images per source (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "predict.json", help="result file")
    parser.add_argument("--one-photo", action="store_true",
                        help="measure only one photo's latency (three cold runs per task, the median kept) and "
                             "replace that column of the result file, whose folder figures stay as measured")
    args = parser.parse_args()
    if args.one_photo:
        return remeasure_one_photo(args.out)

    work = Path(tempfile.mkdtemp(prefix="embedlab-bench-predict-"))
    loads = {"start": load_average()}
    try:
        folder = work / "images"
        paths = mixed_folder(args.per_source, folder)
        print(f"{len(paths)} images ({args.per_source} each of 256, 512, 1024 px); load average {loads['start']}",
              flush=True)
        result: dict = {"images": len(paths), "per_source": args.per_source,
                        "sources": {str(k): str(v) for k, v in SOURCES.items()}, "tasks": {}}
        for task in TASKS:
            figures: dict = {}
            tables = {}
            for workers in (1, 2):
                cache = work / f"cache-{task}-{workers}"
                cli = ["predict", str(folder), "--task", task, "-w", str(workers), "--cache-dir", str(cache),
                       "--format", "csv", "-q"]
                ran = command(cli)
                tables[workers] = pd.read_csv(io.StringIO(ran["stdout"]))
                figures[f"cold_{workers}_workers_seconds"] = ran["seconds"]
                figures[f"cold_{workers}_workers_cpu_seconds"] = ran["cpu_seconds"]
                figures[f"cold_{workers}_workers_cores_used"] = ran["cores_used"]
                print(f"{task}: cold, {workers} worker(s): {ran['seconds']:.1f} s "
                      f"({len(paths) / ran['seconds']:.2f} img/s, {ran['cpu_seconds']:.0f} CPU s, "
                      f"{ran['cores_used']:.2f} cores busy); load {load_average()}", flush=True)
            warm = min(command(cli)["seconds"] for _ in range(3))
            figures["warm_seconds_best_of_3"] = warm
            print(f"{task}: warm: {warm:.2f} s; load {load_average()}", flush=True)
            same = tables[1].drop(columns="path").equals(tables[2].drop(columns="path"))
            figures.update(
                command="embedlab " + " ".join(cli[:1] + ["FOLDER"] + cli[2:5] + ["N", "--cache-dir", "CACHE"] + cli[8:]),
                cold_1_worker_images_per_second=len(paths) / figures["cold_1_workers_seconds"],
                cold_2_workers_images_per_second=len(paths) / figures["cold_2_workers_seconds"],
                speedup_2_vs_1_workers=figures["cold_1_workers_seconds"] / figures["cold_2_workers_seconds"],
                speedup_warm_vs_cold=figures["cold_2_workers_seconds"] / warm,
                same_table_1_and_2_workers=bool(same),
                predicted=int(tables[2]["pred"].notna().sum()),
                bf16=bf16_check(task, work / f"cache-{task}-2"))
            result["tasks"][task] = figures
        cpu_before = time.process_time()
        naive_s, encodings = naive_loop([str(p) for p in paths])
        naive_cpu = time.process_time() - cpu_before
        loads["after_loop"] = load_average()
        print(f"face_recognition loop: {naive_s:.1f} s ({len(paths) / naive_s:.2f} img/s); load {loads['after_loop']}",
              flush=True)
        result["face_recognition_loop"] = {"seconds": naive_s, "images_per_second": len(paths) / naive_s,
                                           "cpu_seconds": naive_cpu,
                                           "faces_found": sum(e is not None for e in encodings)}
        for figures in result["tasks"].values():
            figures["speedup_cold_2_workers_vs_face_recognition"] = naive_s / figures["cold_2_workers_seconds"]
        result["one_photo"] = one_photo(work, runs=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    loads["end"] = load_average()
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                         "python": platform.python_version(), "load_average": loads}
    result["targets"] = {"cold_2_vs_1_workers": 1.8, "cold_2_workers_vs_face_recognition": 1.5,
                         "warm_vs_cold": 20, "one_photo_seconds": 4}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    args.out.with_suffix(".md").write_text(markdown(result))  # the README's table, checked by its figures test
    for task, f in result["tasks"].items():
        print(f"{task}: 2 vs 1 workers {f['speedup_2_vs_1_workers']:.2f}x (target 1.8x), vs face_recognition "
              f"{f['speedup_cold_2_workers_vs_face_recognition']:.2f}x (1.5x), warm {f['speedup_warm_vs_cold']:.0f}x (20x)")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
