"""Data-parallel training: the same fit under ``torchrun`` with two processes, against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIT = """
import json, sys
from embedlab.nets import fit_network
from embedlab.nets import parallel
run = fit_network("data/sample/real-vs-fake", "cnn", {"size": 16, "widths": [16, 16], "dense": 16, "augment": False,
                  "batch_size": 8, "dropout": 0.0, "lr": 3e-3, "balance": "none", "patience": 0}, epochs=4,
                  runs_dir=sys.argv[1], cache_dir=sys.argv[2], name="r", seed=0, device="cpu")
history = run.history()
rank = parallel.world()[0]
with open(f"{sys.argv[1]}.rank{rank}.json", "w") as fh:  # one file a process: their stdout lines interleave
    json.dump({"rank": rank, "val_loss": history["val_loss"].tolist(), "train_loss": history["train_loss"].tolist(),
               "auc": run.metrics["sets"]["test"]["roc_auc"]}, fh)
"""


def _fit(tmp_path: Path, name: str, processes: int) -> list[dict]:
    script = tmp_path / "fit.py"
    script.write_text(FIT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] \
        if processes > 1 else [sys.executable]
    out = subprocess.run([*launch, str(script), str(tmp_path / name), str(tmp_path / "cache")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(f.read_text()) for f in sorted(tmp_path.glob(f"{name}.rank*.json"))]


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun's gloo rendezvous")
def test_two_processes_under_torchrun_train_one_run_with_the_metric_of_one_process(tmp_path):
    (one,) = _fit(tmp_path, "one", 1)
    two = _fit(tmp_path, "two", 2)
    assert sorted(r["rank"] for r in two) == [0, 1]
    # every process holds the same weights, so each computes the same validation figures
    assert two[0]["val_loss"] == pytest.approx(two[1]["val_loss"], abs=1e-6)
    # one run folder, written once, with the epochs of a one-process fit
    folder = tmp_path / "two" / "r"
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["r"]
    assert {"params.json", "metrics.json", "model.pt", "last.pt", "history.csv"} <= {p.name for p in folder.iterdir()}
    assert len(two[0]["val_loss"]) == len(one["val_loss"]) == 4
    # the batches are split across the processes (batch norm sees half a batch each): the same within noise
    assert abs(two[0]["val_loss"][-1] - one["val_loss"][-1]) < 0.15
    assert two[0]["train_loss"][-1] < two[0]["train_loss"][0] and one["train_loss"][-1] < one["train_loss"][0]
    assert abs(two[0]["auc"] - one["auc"]) < 0.2
