"""The Python API as a script or notebook uses it: arrays and PIL images in, no __main__ guard needed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import embedlab

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


def readme_python_example() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"From Python:\n\n```python\n(.*?)```", text, re.S)
    assert block, "the README's Python example is gone"
    return block.group(1)


@pytest.mark.parametrize("how", ["script", "stdin"])
def test_readme_example_runs_as_a_plain_script(tmp_path, how):
    """Saved as example.py and run with `python example.py`, or typed into an interactive shell
    (`python -` reading it from stdin: a `__main__` with no file, as in a notebook): no
    `if __name__ == "__main__":` in it."""
    code = readme_python_example()
    assert "__main__" not in code and "workers=2" in code  # a process pool, from an unguarded script
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sample").symlink_to(SAMPLE)
    (tmp_path / "example.py").write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "example.py"] if how == "script" else [sys.executable, "-"]
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
                         input=None if how == "script" else code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "'images': 58" in out.stdout and "BrokenProcessPool" not in out.stderr
    assert any((tmp_path / "results" / "cache").iterdir())


def test_encode_takes_arrays_and_pil_images_as_well_as_paths(tmp_path):
    paths = sorted((SAMPLE / "real-vs-fake" / "test" / "real").iterdir())[:2]
    pil = Image.open(paths[0])
    array = np.asarray(Image.open(paths[1]).convert("RGB"))
    from_paths = embedlab.encode([str(p) for p in paths], "pixels:8", cache_dir=tmp_path, workers=0)
    for given in ([pil, array], [np.asarray(pil.convert("RGB")), Image.fromarray(array)]):
        from_images = embedlab.encode(given, "pixels:8", cache_dir=tmp_path, workers=0)
        assert len(from_images) == 2 and from_images["pixels.ok"].all()
        np.testing.assert_array_equal(np.stack(from_images["pixels"]), np.stack(from_paths["pixels"]))
    one = embedlab.encode(array, "pixels:8", cache_dir=tmp_path, workers=0)
    assert len(one) == 1 and one["image_id"].iloc[0] == "array-0"


def test_a_run_predicts_arrays_and_pil_images(tmp_path):
    run = embedlab.fit(SAMPLE / "real-vs-fake", "pixels[size=8]", "logreg", runs_dir=tmp_path / "runs",
                       cache_dir=tmp_path / "cache", workers=0, name="arrays")
    paths = sorted((SAMPLE / "real-vs-fake" / "test" / "fake").iterdir())[:3]
    by_path = run.predict([str(p) for p in paths], cache_dir=tmp_path / "cache", workers=0)
    by_image = run.predict([Image.open(p) for p in paths], cache_dir=tmp_path / "cache", workers=0)
    cols = [c for c in by_path.columns if c.startswith("proba_")]
    np.testing.assert_array_equal(by_image[cols].to_numpy(), by_path[cols].to_numpy())
