"""Builders of the awkward files users feed to embedlab (used by several tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SOURCE = Path(__file__).resolve().parents[1] / "data" / "sample" / "face-photos" / "obama.jpg"


def write_bad_images(folder: Path) -> dict[str, Path]:
    """One file of each kind, in a class folder ``folder/odd/``; returns name -> path."""
    out = folder / "odd"
    out.mkdir(parents=True, exist_ok=True)
    face = Image.open(SOURCE).convert("RGB")
    small = face.resize((face.width // 2, face.height // 2))
    files: dict[str, Path] = {}

    files["zero_byte"] = out / "zero.jpg"
    files["zero_byte"].write_bytes(b"")

    data = SOURCE.read_bytes()
    files["truncated"] = out / "truncated.jpg"
    files["truncated"].write_bytes(data[: len(data) // 3])

    files["not_image"] = out / "notes.jpg"
    files["not_image"].write_text("this is a text file with an image suffix\n")

    files["cmyk"] = out / "cmyk.jpg"
    small.convert("CMYK").save(files["cmyk"])

    files["sixteen_bit"] = out / "grey16.png"
    grey = np.asarray(small.convert("L"), dtype=np.uint16) * 257
    Image.fromarray(grey).save(files["sixteen_bit"])  # uint16 arrays become mode I;16

    files["rgba"] = out / "rgba.png"
    rgba = small.convert("RGBA")
    rgba.putalpha(200)
    rgba.save(files["rgba"])

    files["palette"] = out / "palette.png"
    small.convert("P", palette=Image.Palette.ADAPTIVE).save(files["palette"])

    files["exif_rotated"] = out / "rotated.jpg"
    rotated = small.transpose(Image.Transpose.ROTATE_90)  # stored sideways...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...with EXIF saying "rotate 90 degrees clockwise to view"
    rotated.save(files["exif_rotated"], exif=exif.tobytes())

    files["bomb"] = out / "bomb.png"
    Image.new("1", (12_000, 8_000)).save(files["bomb"])  # 96 Mpixel, a few kB on disk
    return files
