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
    ("bomb", "too large", "set by EMBEDLAB_MAX_PIXELS"),
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


def test_a_jpeg_over_the_pixel_limit_is_decoded_at_a_reduced_scale(tmp_path, monkeypatch):
    from PIL import Image

    face = Image.open(SOURCE).convert("RGB").resize((400, 300))
    face.save(tmp_path / "big.jpg")
    face.save(tmp_path / "big.png")
    monkeypatch.setenv("EMBEDLAB_MAX_PIXELS", str(100 * 75))
    small = read_image(tmp_path / "big.jpg")
    assert small.shape == (75, 100, 3)  # 1/4 of each side: the largest draft scale within the limit
    reference = np.asarray(face.resize((100, 75)), dtype=float)
    assert np.abs(small.astype(float) - reference).mean() < 12  # the same picture, smaller
    with pytest.raises(ImageReadError, match="too large .*400x300 pixels.*EMBEDLAB_MAX_PIXELS") as info:
        read_image(tmp_path / "big.png")  # no draft mode for PNG: refused
    assert info.value.reason == "too large"
    monkeypatch.setenv("EMBEDLAB_MAX_PIXELS", str(100 * 75 - 1))
    assert read_image(tmp_path / "big.jpg").shape == (38, 50, 3)  # 1/8 then


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from embedlab.datasets.images import file_status

    big = tmp_path / "big.jpg"
    big.write_bytes(SOURCE.read_bytes() + b"\0" * 2**20)
    assert read_image(big).shape[2] == 3  # under the default 50 MB
    monkeypatch.setenv("EMBEDLAB_MAX_FILE_MB", "1")
    with pytest.raises(ImageReadError, match="too large .*EMBEDLAB_MAX_FILE_MB") as info:
        read_image(big)
    assert info.value.reason == "too large"
    assert file_status(str(big))[:2] == (None, "too large")  # listing does not hash (read) it either
