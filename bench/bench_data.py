"""The images every encoding benchmark runs on, listed the same way for each."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real-vs-fake" / "real_vs_fake" / "real-vs-fake"


def benchmark_table(data: Path, limit: int | None = None):
    """The dataset at ``data`` in image-id order, cut to ``limit`` images; None if it is missing."""
    from embedlab import datasets

    if not data.exists():
        return None
    table = datasets.load(data).sort_values("image_id", ignore_index=True)
    return table.head(limit) if limit else table
