"""A dataset with every kind of bad file mixed among good images, and the same dataset without them.

``build(root)`` writes ``root/clean`` (the bundled real-vs-fake sample plus awkward but good images:
CMYK, 16-bit, palette, EXIF-rotated, animated) and ``root/hostile`` (the same, plus the bad files of
:data:`BAD`). The suite runs each command on both and compares.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "real-vs-fake"

#: the file size limit the suite sets (EMBEDLAB_MAX_FILE_MB), so that a "too large" file stays small
MAX_FILE_MB = 1

#: bad file (relative to the dataset root) -> the reason every command must give for it
BAD = {
    "test/real/zero.jpg": "decode error",
    "test/real/truncated.jpg": "decode error",
    "test/real/text-as.jpg": "unsupported format",
    "test/real/bomb.png": "too large",
    "test/real/huge-file.jpg": "too large",
    "test/real/broken-link.jpg": "broken link",
    "test/real/loop.jpg": "broken link",
    "test/real/dir.jpg": "not a file",
    "test/real/fifo.jpg": "not a file",
    "test/real/photo.heic": "unsupported format",
    "test/real/photos [/x].jpg": "unsupported format",
    "test/fake/[blink red]BLINK[reverse].jpg": "decode error",
    "test/fake/esc\x1b[31mred\x07.jpg": "decode error",
    "train/real/zero.jpg": "decode error",
    "train/fake/truncated.png": "decode error",
    "valid/real/text-as.png": "unsupported format",
}
#: awkward images that are good: in both datasets, and they must give results
ODD_GOOD = ["test/real/cmyk.jpg", "test/real/grey16.png", "test/fake/palette.png", "test/fake/rotated.jpg",
            "test/real/animated.gif", "train/real/cmyk.jpg", "train/fake/palette.png"]


def _good_images(root: Path) -> None:
    shutil.copytree(SAMPLE, root)
    face = Image.open(next((SAMPLE / "train" / "real").iterdir())).convert("RGB")
    for rel in ODD_GOOD:
        path = root / rel
        name = path.name
        if name.startswith("cmyk"):
            face.convert("CMYK").save(path)
        elif name.startswith("grey16"):
            Image.fromarray(np.asarray(face.convert("L"), dtype=np.uint16) * 257).save(path)
        elif name.startswith("palette"):
            face.convert("P", palette=Image.Palette.ADAPTIVE).save(path)
        elif name.startswith("rotated"):
            exif = Image.Exif()
            exif[0x0112] = 6
            face.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif.tobytes())
        elif name.startswith("animated"):
            frames = [face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
            frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _bad_file(path: Path, reason: str, good: bytes) -> None:
    name = path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.startswith(("zero", "esc")):
        path.write_bytes(b"")
    elif name.startswith(("truncated", "[blink")):
        path.write_bytes(good[: len(good) // 3])
    elif name.startswith(("text-as", "x]")):
        path.write_text("a text file with an image's name\n")
    elif name.startswith("bomb"):
        Image.new("1", (12_000, 8_000)).save(path)  # 96 Mpixel in a few kB
    elif name.startswith("huge-file"):
        path.write_bytes(good + b"\0" * (MAX_FILE_MB * 2**20))  # over the size limit, checked before reading
    elif name.startswith("broken-link"):
        path.symlink_to("no-such-target.jpg")
    elif name.startswith("loop"):
        path.symlink_to(path.name)
    elif name.startswith("dir"):
        path.mkdir()
    elif name.startswith("fifo"):
        os.mkfifo(path)  # opening it would block: it must be refused without being opened
    elif name.endswith(".heic"):
        path.write_bytes(b"\0\0\0\x18ftypheic" + b"\0" * 64)
    else:
        raise AssertionError(f"no builder for {name}")


def build(root: Path) -> tuple[Path, Path]:
    """``(clean, hostile)`` dataset folders under ``root``."""
    clean, hostile = root / "clean", root / "hostile"
    _good_images(clean)
    shutil.copytree(clean, hostile)
    good = next((SAMPLE / "train" / "real").iterdir()).read_bytes()
    for rel, reason in BAD.items():
        _bad_file(hostile / rel, reason, good)
    return clean, hostile
