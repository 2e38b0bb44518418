"""Every face of a photo, found and cut out: the per-image work of ``predict --per-face``.

Unlike the registered features it gives a variable number of results per image (one box and one
crop per face), so its results are stored per image content in an
:class:`embedlab.compute.array_store.ArrayStore`; it runs in the same worker processes as they do.

>>> import numpy as np
>>> crop_with_margin(np.zeros((100, 100, 3), np.uint8), (20, 60, 60, 20), 0.25).shape
(60, 60, 3)
"""

from __future__ import annotations

import numpy as np

from embedlab.features.base import FeatureExtractor, check_choice
from embedlab.features.facerec import hog_face_locations, import_face_recognition

#: face_recognition's detectors
FACE_DETECTORS = ("hog", "cnn")


def crop_with_margin(image: np.ndarray, box: tuple[int, int, int, int], margin: float) -> np.ndarray:
    """``image`` cut to ``box`` (top, right, bottom, left) grown by ``margin`` of its side, within the image."""
    top, right, bottom, left = box
    pad_y, pad_x = int(round((bottom - top) * margin)), int(round((right - left) * margin))
    h, w = image.shape[:2]
    return image[max(0, top - pad_y):min(h, bottom + pad_y), max(0, left - pad_x):min(w, right + pad_x)].copy()


class FaceCrops(FeatureExtractor):
    """The faces face_recognition's ``detector`` finds, largest first: their boxes and their crops.

    ``extract`` returns ``(boxes (n, 4) int32 in (top, right, bottom, left), {"crops": [n arrays]})``.
    """

    name = "face-crops"
    version = "1"

    def __init__(self, detector: str = "hog", upsample: int = 1, margin: float = 0.25):
        self.detector = detector
        self.upsample = upsample
        self.margin = margin

    def validate(self) -> None:
        check_choice(self, "detector", FACE_DETECTORS)

    @property
    def dim(self) -> int:
        return 0  # variable: four numbers per face

    def prepare(self) -> None:
        if self.detector != "hog":  # dlib's HOG detector loads alone, without face_recognition's other models
            self._fr = import_face_recognition()
        self._prepared = True

    def extract(self, image: np.ndarray) -> tuple[np.ndarray, dict]:
        if not getattr(self, "_prepared", False):
            self.prepare()
        boxes = (hog_face_locations(image, self.upsample) if self.detector == "hog" else
                 self._fr.face_locations(image, number_of_times_to_upsample=self.upsample, model=self.detector))
        boxes.sort(key=lambda b: (b[2] - b[0]) * (b[1] - b[3]), reverse=True)
        crops = [crop_with_margin(image, box, self.margin) for box in boxes]
        return np.array(boxes, np.int32).reshape(-1, 4), {"crops": crops}
