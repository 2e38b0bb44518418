from __future__ import annotations

import numpy as np
import pytest

from bad_images import SOURCE, write_bad_images
from embedlab.core.errors import ImageReadError
from embedlab.datasets.images import read_image


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return write_bad_images(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("kind, reason, message", [
    ("zero_byte", "decode error", "empty file"),
    ("truncated", "decode error", "truncated or corrupt"),
    ("not_image", "unsupported format", "not an image"),
    ("bomb", "too large", "decompression bomb"),
])
def test_unreadable_files_name_the_file_and_reason(bad, kind, reason, message):
    with pytest.raises(ImageReadError, match=message) as info:
        read_image(bad[kind])
    assert str(bad[kind]) in str(info.value) and info.value.reason == reason


@pytest.mark.parametrize("kind", ["cmyk", "sixteen_bit", "rgba", "palette"])
def test_odd_modes_become_rgb(bad, kind):
    image = read_image(bad[kind])
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert 40 < image.mean() < 220  # content survived the conversion (not all black or white)


def test_sixteen_bit_keeps_the_tones(bad):
    from PIL import Image

    grey16 = read_image(bad["sixteen_bit"])[:, :, 0].astype(int)
    reference = np.asarray(Image.open(SOURCE).convert("L").resize(grey16.shape[::-1]), dtype=int)
    assert np.abs(grey16 - reference).mean() < 3


def test_exif_rotation_is_applied(bad):
    upright = read_image(SOURCE)
    turned = read_image(bad["exif_rotated"])
    assert turned.shape[:2] == (upright.shape[0] // 2, upright.shape[1] // 2)


def test_missing_file():
    with pytest.raises(ImageReadError, match="file not found") as info:
        read_image("no/such/file.jpg")
    assert info.value.reason == "unreadable"
