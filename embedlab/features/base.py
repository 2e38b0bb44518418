"""The interface every feature extractor offers, and the registry they live in."""

from __future__ import annotations

import hashlib
import inspect
import json
from typing import Any, ClassVar

import numpy as np

from embedlab.core.errors import FeatureError, SpecError
from embedlab.core.registry import Registry
from embedlab.core.specs import parse_spec, parse_value

EXTRACTORS: Registry[type["FeatureExtractor"]] = Registry("feature")


class FeatureExtractor:
    """Turns one RGB image into a fixed-length ``float32`` vector.

    Subclasses follow scikit-learn's rule: ``__init__`` stores keyword
    arguments as attributes of the same name and nothing else, so
    ``get_params`` (every parameter) and :meth:`cache_params` (those that change
    the output, in the cache key) can be derived from them. Heavy models
    load in :meth:`prepare`, once per worker process, never at import time.

    ``version`` is bumped whenever a code change alters the output; it is part
    of the cache key together with the parameters and :meth:`fingerprint`.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    #: the parameter set by the short form ``name:value`` of a feature spec
    primary_param: ClassVar[str | None] = None
    #: extra per-image columns recorded beside the vector: name -> numpy dtype
    info_columns: ClassVar[dict[str, str]] = {}

    # -- parameters -------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """Every parameter, as scikit-learn's ``get_params`` gives them."""
        return {p: getattr(self, p) for p in self.param_names()}

    def cache_params(self) -> dict[str, Any]:
        """The parameters that change the output: they go into the cache key.

        Extractors leave out settings such as a batch size or a device here,
        so that computing the same values another way finds the same cache.
        """
        return self.get_params()

    @classmethod
    def variant_for(cls, params: dict[str, Any]) -> type["FeatureExtractor"]:
        """The class that handles ``params``: this one, unless a subclass was plugged in for them."""
        return cls

    def validate(self) -> None:
        """Raise :class:`FeatureError` naming the bad parameter; called before any work."""

    # -- identity ---------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        """What else changes the output (e.g. a weights file's hash)."""
        return {}

    def key(self) -> str:
        """Cache key: ``name-<digest of version, params and fingerprint>``."""
        ident = {"name": self.name, "version": self.version, "params": self.cache_params(),
                 "fingerprint": self.fingerprint()}
        blob = json.dumps(ident, sort_keys=True, default=str).encode()
        return f"{self.name}-{hashlib.sha256(blob).hexdigest()[:16]}"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "params": self.cache_params(),
                "fingerprint": self.fingerprint(), "dim": self.dim, "key": self.key()}

    # -- work -------------------------------------------------------------
    @property
    def dim(self) -> int:
        raise NotImplementedError

    def prepare(self) -> None:
        """Load models; called once before the first :meth:`extract`."""

    def extract(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Return ``(vector, info)`` for one ``(H, W, 3)`` uint8 RGB image.

        Raise :class:`FeatureError` (or a subclass such as ``NoFaceFound``)
        for an image this extractor cannot handle; the reason is recorded.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def create_extractor(spec: str | FeatureExtractor, **params: Any) -> FeatureExtractor:
    """Build an extractor from a spec string.

    Spec forms: ``encoding``, ``encoding[detector=none,jitters=2]``,
    ``cnn:resnet50`` (sets the extractor's primary parameter) and
    ``cnn:resnet18[weights=random]``.

    >>> create_extractor("pixels[size=16]").dim
    256
    """
    if isinstance(spec, FeatureExtractor):
        return spec
    m = parse_spec(spec)
    cls = EXTRACTORS.get(m["name"])
    kwargs: dict[str, Any] = {}
    if m["primary"] is not None:
        if not cls.primary_param:
            raise SpecError(f"feature {cls.name!r} takes no ':value' part (in {spec!r})")
        kwargs[cls.primary_param] = parse_value(m["primary"])
    if m["params"]:
        for item in m["params"].split(","):
            if "=" not in item:
                raise SpecError(f"feature parameter {item!r} in {spec!r} must look like key=value")
            k, v = item.split("=", 1)
            kwargs[k.strip()] = parse_value(v)
    kwargs.update(params)
    cls = cls.variant_for(kwargs)
    unknown = sorted(set(kwargs) - set(cls.param_names()))
    if unknown:
        raise SpecError(
            f"feature {cls.name!r} has no parameter {', '.join(unknown)}; "
            f"its parameters: {', '.join(cls.param_names()) or '(none)'}"
        )
    extractor = cls(**kwargs)
    extractor.validate()
    return extractor


def check_choice(extractor: FeatureExtractor, param: str, choices: tuple) -> None:
    value = getattr(extractor, param)
    if value not in choices:
        raise SpecError(
            f"feature {extractor.name!r}: {param}={value!r} is not one of {', '.join(map(str, choices))}"
        )
