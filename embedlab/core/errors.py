"""Typed errors raised by embedlab.

The library never prints or exits: it raises one of these with a message that
names the file, option or value at fault. The command-line layer turns them
into a clean error line and a non-zero exit code.
"""

from __future__ import annotations


class EmbedlabError(Exception):
    """Base class of every error embedlab raises on purpose."""


class UsageError(EmbedlabError, ValueError):
    """What was asked cannot be done as written: an unknown name, a bad option value or feature
    spec, a path that does not exist. The command line exits with 2 on these, 1 on other errors."""


class UnknownNameError(UsageError, KeyError):
    """A registry was asked for a name it does not hold."""

    def __init__(self, kind: str, name: str, available: list[str]):
        self.kind, self.name, self.available = kind, name, list(available)
        super().__init__(
            f"unknown {kind} {name!r}; available: {', '.join(self.available) or '(none)'}"
        )

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class DatasetError(EmbedlabError):
    """A dataset path, layout or manifest cannot be read as asked."""


class DatasetPathError(DatasetError, UsageError):
    """A dataset path or option names nothing that can be read (no such folder, wrong layout)."""


class ImageReadError(EmbedlabError):
    """One image cannot be read or decoded; the message names the file and says why.

    ``reason`` is the short category a failure row records (see
    :data:`embedlab.datasets.images.READ_REASONS`).
    """

    def __init__(self, message: str, reason: str = "decode error"):
        super().__init__(message)
        self.reason = reason


class FeatureError(EmbedlabError):
    """A feature extractor is misconfigured or cannot run (missing weights...)."""


class SpecError(FeatureError, UsageError):
    """A feature spec cannot be parsed, or names a parameter or value its extractor does not take."""


class NoFaceFound(FeatureError):
    """The face detector found no face in an image."""


class WorkerStartError(EmbedlabError):
    """Worker processes cannot start at all (as opposed to an image that kills one)."""


class CacheError(EmbedlabError):
    """The feature cache is unreadable or inconsistent."""


class ModelError(EmbedlabError):
    """A model, run folder or training request is invalid."""


class OptionError(ModelError, UsageError):
    """An option of fit, predict or a run does not apply, or its value is out of range."""
