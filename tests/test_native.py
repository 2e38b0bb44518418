"""Native-resolution networks: the neighbouring-pixel residual, crops cut from the pixels as decoded,
several crops averaged at prediction, and training that streams images instead of holding them."""

from __future__ import annotations

import shutil
import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

from embedlab.nets import NETWORKS
from embedlab.nets.inputs import prepare_inputs
from embedlab.nets.models import build_module
from embedlab.nets.native import NativeCropSet, grid_offsets
from embedlab.nets.residual import npr_residual


def test_the_residual_is_each_pixel_minus_the_top_left_pixel_of_its_2x2_cell():
    x = torch.tensor([[[[1., 2., 3., 4.],
                        [5., 6., 7., 8.],
                        [9., 10., 11., 12.],
                        [13., 14., 15., 16.]]]])
    expected = torch.tensor([[[[0., 1., 0., 1.],
                               [4., 5., 4., 5.],
                               [0., 1., 0., 1.],
                               [4., 5., 4., 5.]]]])
    assert torch.equal(npr_residual(x), expected)
    # nearest-neighbour up-sampling, the trace a generator leaves, has no residual at all
    small = torch.rand(2, 3, 8, 8)
    assert torch.equal(npr_residual(small.repeat_interleave(2, -2).repeat_interleave(2, -1)),
                       torch.zeros(2, 3, 16, 16))


def _image(path, side, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (side, side + 10, 3), dtype=np.uint8)).save(path)
    return np.asarray(Image.open(path).convert("RGB"))


def test_training_crops_are_windows_of_the_decoded_pixels_at_even_offsets(tmp_path):
    pixels = _image(tmp_path / "a.png", 90)
    crops = NativeCropSet([str(tmp_path / "a.png")], [None], crop=32, eval_crops=4,
                          params={"rescale": 0, "blur": 0, "jpeg": 0, "flip": False})
    seen = set()
    for draw in range(40):
        crop = crops[(0, draw)]
        hits = [(t, l) for t in range(0, 90 - 31) for l in range(0, 100 - 31)
                if np.array_equal(pixels[t:t + 32, l:l + 32], crop)]
        assert hits and all(t % 2 == 0 and l % 2 == 0 for t, l in hits), draw
        seen.add(hits[0])
    assert len(seen) > 10  # random places, not one
    grid = crops[(0, None)]
    assert grid.shape == (4, 32, 32, 3)
    for (t, l), crop in zip(grid_offsets(90, 100, 32, 4), grid):
        assert np.array_equal(pixels[t:t + 32, l:l + 32], crop)


def test_an_image_smaller_than_the_crop_is_padded_not_resized(tmp_path):
    pixels = _image(tmp_path / "small.png", 20)
    crops = NativeCropSet([str(tmp_path / "small.png")], [None], crop=32, eval_crops=1, params={})
    crop = crops[(0, None)][0]
    assert np.array_equal(crop[:20, :30], pixels) and not crop[20:].any() and not crop[:, 30:].any()


def test_prediction_averages_the_features_of_every_crop():
    spec = NETWORKS.create("npr")
    module = build_module(spec, spec.resolve({"widths": [16, 16, 16]}), 1).eval()
    crops = torch.randn(3, 4, 3, 32, 32)
    with torch.no_grad():
        each = module.embed(crops.flatten(0, 1)).view(3, 4, -1).mean(1)
        assert torch.allclose(module.embed(crops), each, atol=1e-6)


def _epoch_peak(folder, n, tmp_path):
    """The most memory held (Python and numpy allocations) while each batch of one epoch of ``n``
    images is in use, which is when a training step runs."""
    from embedlab import datasets

    table = datasets.load(folder)
    spec = NETWORKS.create("npr")
    p = spec.resolve({"crop": 32, "loader_workers": 0, "batch_size": 8})
    inputs, usable, _ = prepare_inputs(spec, p, table, ["fake", "real"], tmp_path / "cache")
    assert usable.all() and len(inputs) == n
    gen = torch.Generator().manual_seed(0)
    for _ in inputs.batches(torch.arange(8), 8, "cpu", 3, p, gen):  # imports and first-use set-up
        pass
    tracemalloc.start()
    drawn, peak = 0, 0
    for idx, image, _ in inputs.batches(torch.randperm(n, generator=gen), 8, "cpu", 3, p, gen):
        drawn += len(idx)
        peak = max(peak, tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    assert drawn == n
    return peak


def test_training_streams_images_so_memory_does_not_grow_with_the_rows(tmp_path):
    peaks = {}
    for n in (16, 96):
        folder = tmp_path / f"set{n}"
        for i in range(n):
            (folder / "train" / ("fake" if i % 2 else "real")).mkdir(parents=True, exist_ok=True)
            _image(folder / "train" / ("fake" if i % 2 else "real") / f"{i}.png", 120, seed=i)
        peaks[n] = _epoch_peak(folder, n, tmp_path)
    # holding the 80 more images would take 80 x 120 x 130 x 3 bytes more; what grows is the epoch's
    # list of row numbers and crop seeds, a few hundred bytes per image
    extra_images = 80 * 120 * 130 * 3
    assert peaks[96] - peaks[16] < 0.02 * extra_images, peaks
    assert peaks[96] < 0.05 * extra_images, peaks
