"""Feature extractors, found by name.

>>> from embedlab.features import EXTRACTORS, create_extractor
>>> EXTRACTORS.names()
['cnn', 'encoding', 'pixels', 'spectrum']
>>> create_extractor("spectrum[size=64]").dim
32
"""

from embedlab.core.specs import parse_value, split_feature_list
from embedlab.features.base import EXTRACTORS, FeatureExtractor, create_extractor

# Importing the modules registers their extractors; none imports dlib or torch at import time.
from embedlab.features import cnn, encoding, stats  # noqa: F401,E402

__all__ = ["EXTRACTORS", "FeatureExtractor", "create_extractor", "parse_value", "split_feature_list"]
