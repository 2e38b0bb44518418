"""Networks that read images at their native resolution: crops of the decoded pixels, never resized.

A generator's up-sampling layers leave their trace in how neighbouring pixels
relate (:mod:`embedlab.nets.residual`). Resizing an image would resample every
pixel and wash the trace out, so these networks read crops of the pixels as
decoded, cut at even offsets so that each crop's 2x2 grid is the image's own.

Images are streamed from disk: a :class:`torch.utils.data.DataLoader` decodes,
augments and crops them in worker processes, so memory does not grow with
the number of images. Training draws one random crop per image; prediction
averages the network's features over a fixed grid of crops.
"""

from __future__ import annotations

import io
import math
from typing import Any, Sequence

import numpy as np

from embedlab.core.errors import ImageReadError
from embedlab.datasets.images import read_listed_image
from embedlab.nets.training import Inputs

#: the augmentations of native crops, each a probability (0 = off), applied to both classes alike
NATIVE_AUGMENTATIONS = ("rescale", "blur", "jpeg")
#: ``rescale`` shrinks by a factor drawn from this range (never enlarges: enlarging would draw the
#: very up-sampling trace the network learns to call fake); ``jpeg`` re-saves at a quality drawn from
#: ``JPEG_QUALITY``; ``blur`` is a Gaussian of a sigma drawn from ``BLUR_SIGMA`` pixels
RESCALE_RANGE = (0.5, 1.0)
JPEG_QUALITY = (60, 100)
BLUR_SIGMA = (0.1, 1.5)


def grid_offsets(height: int, width: int, crop: int, n: int) -> list[tuple[int, int]]:
    """``n`` even (top, left) offsets of ``crop``-sided crops spread evenly over the image.

    >>> grid_offsets(256, 256, 96, 4)
    [(0, 0), (0, 160), (160, 0), (160, 160)]
    >>> grid_offsets(96, 96, 96, 1)
    [(0, 0)]
    """
    side = max(1, math.ceil(math.sqrt(n)))
    rows = np.linspace(0, max(height - crop, 0), side) if side > 1 else [max(height - crop, 0) / 2]
    cols = np.linspace(0, max(width - crop, 0), side) if side > 1 else [max(width - crop, 0) / 2]
    spots = [(int(r) // 2 * 2, int(c) // 2 * 2) for r in rows for c in cols]
    if len(spots) > n:  # keep the centre-most ones first, then the rest in order
        centre = ((height - crop) / 2, (width - crop) / 2)
        spots = sorted(spots, key=lambda s: (s[0] - centre[0]) ** 2 + (s[1] - centre[1]) ** 2)[:n]
        spots.sort()
    return spots


def crop_at(image: np.ndarray, top: int, left: int, crop: int) -> np.ndarray:
    """A ``crop`` x ``crop`` window at (top, left), zero-padded where the image is smaller.

    Zeros have no residual, so padding adds no evidence either way.
    """
    out = np.zeros((crop, crop, image.shape[2]), np.uint8)
    piece = image[top:top + crop, left:left + crop]
    out[:piece.shape[0], :piece.shape[1]] = piece
    return out


def augmented(image: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """``image`` rescaled, blurred and re-saved as JPEG, each with the probability ``p`` gives."""
    from PIL import Image, ImageFilter

    pil = None
    if p.get("rescale", 0) and rng.random() < p["rescale"]:
        pil = Image.fromarray(image)
        f = rng.uniform(*RESCALE_RANGE)
        w, h = pil.size
        pil = pil.resize((max(2, round(w * f)), max(2, round(h * f))), Image.Resampling.BILINEAR, reducing_gap=None)
    if p.get("blur", 0) and rng.random() < p["blur"]:
        pil = (pil or Image.fromarray(image)).filter(ImageFilter.GaussianBlur(rng.uniform(*BLUR_SIGMA)))
    if p.get("jpeg", 0) and rng.random() < p["jpeg"]:
        buf = io.BytesIO()
        (pil or Image.fromarray(image)).save(buf, "JPEG", quality=int(rng.integers(JPEG_QUALITY[0],
                                                                                    JPEG_QUALITY[1] + 1)))
        pil = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return image if pil is None else np.asarray(pil, dtype=np.uint8)


class NativeCropSet:
    """A map-style dataset of crops: item ``(position, row, draw)`` -> uint8 array.

    ``draw`` None gives the fixed grid of ``eval_crops`` crops, shape
    ``(k, crop, crop, 3)``; an integer seeds one random, augmented crop,
    shape ``(crop, crop, 3)``, so an epoch's crops depend only on its seed.
    """

    def __init__(self, uris: Sequence[str], hashes: Sequence[str | None], crop: int, eval_crops: int,
                 params: dict[str, Any]):
        self.uris, self.hashes = list(uris), list(hashes)
        self.crop, self.eval_crops = int(crop) // 2 * 2, int(eval_crops)
        self.params = {k: float(params.get(k, 0.0)) for k in NATIVE_AUGMENTATIONS}
        self.params["flip"] = bool(params.get("flip", False))

    def __len__(self) -> int:
        return len(self.uris)

    def image(self, row: int) -> np.ndarray:
        return read_listed_image(self.uris[row], self.hashes[row])

    def __getitem__(self, item: tuple[int, int | None]) -> np.ndarray:
        row, draw = item
        image = self.image(row)
        if draw is None:
            h, w = image.shape[:2]
            return np.stack([crop_at(image, t, l, self.crop)
                             for t, l in grid_offsets(h, w, self.crop, self.eval_crops)])
        rng = np.random.default_rng(draw)
        image = augmented(image, self.params, rng)
        h, w = image.shape[:2]
        top = int(rng.integers(0, max(h - self.crop, 0) // 2 + 1)) * 2
        left = int(rng.integers(0, max(w - self.crop, 0) // 2 + 1)) * 2
        out = crop_at(image, top, left, self.crop)
        if self.params["flip"] and rng.random() < 0.5:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)


def _collate(items):
    import torch

    return torch.from_numpy(np.stack(items))


class NativeCrops(Inputs):
    """What a native-resolution network reads: crops streamed from the image files."""

    def __init__(self, crops: NativeCropSet, labels=None, groups=None, loader_workers: int = 0):
        super().__init__(labels=labels, groups=groups)
        self.crops = crops
        self.loader_workers = int(loader_workers)

    def __len__(self) -> int:
        return len(self.crops)

    def batch(self, idx, device, channels: int, params: dict | None = None, gen=None, memory_format=None):
        ((_, image, encoding),) = self.batches(idx, len(idx), device, channels, params, gen, memory_format)
        return image, encoding

    def batches(self, order, batch_size: int, device, channels: int, params: dict | None = None, gen=None,
                memory_format=None):
        """``(rows, image batch, None)`` per batch of ``order``, decoded ahead by the loader's workers.

        With ``params`` whose ``augment`` is on, one random crop per row (NCHW);
        else the fixed grid of crops per row (N, k, C, H, W).
        """
        import torch
        from torch.utils.data import DataLoader

        from embedlab.nets.training import normalise

        order = torch.as_tensor(order).long()
        training = params is not None and bool(params["augment"])
        if training:
            draws = torch.randint(0, 2**62, (len(order),), generator=gen).tolist()
        else:  # k crops an image: k times fewer images a batch keeps the memory of a batch of crops
            draws = [None] * len(order)
            batch_size = max(1, batch_size // self.crops.eval_crops)
        items = list(zip(order.tolist(), draws))
        batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
        loader = DataLoader(_Batches(self.crops, batches), batch_size=None, shuffle=False,
                            num_workers=self.loader_workers if len(batches) > 1 else 0,
                            prefetch_factor=2 if self.loader_workers and len(batches) > 1 else None,
                            persistent_workers=False)
        for rows, raw in zip(batches, loader):
            idx = torch.tensor([r for r, _ in rows])
            if raw.dim() == 5:
                n, k = raw.shape[:2]
                image = normalise(raw.flatten(0, 1), channels).view(n, k, *raw.shape[-1:], *raw.shape[2:4])
                image = image.to(device)
            else:
                image = normalise(raw, channels).to(device).contiguous(
                    memory_format=memory_format or torch.contiguous_format)
            yield idx, image, None


class _Batches:
    """One loader item per batch, so a worker decodes a whole batch and no image is read twice."""

    def __init__(self, crops: NativeCropSet, batches: list[list[tuple[int, int | None]]]):
        self.crops, self.batches = crops, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        return _collate([self.crops[item] for item in self.batches[i]])


def check_images(uris: Sequence[str], hashes: Sequence[str | None]) -> list[dict]:
    """Decode each image once: ``{}`` for a usable one, its ``reason`` and ``error`` for one that is not."""
    from concurrent.futures import ThreadPoolExecutor

    def one(args):
        uri, content = args
        try:
            read_listed_image(uri, content)
        except ImageReadError as exc:
            return {"reason": exc.reason, "error": str(exc)}
        return {}

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, zip(uris, hashes)))
