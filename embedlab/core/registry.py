"""Name -> factory registries, so that every pluggable piece is found by name.

>>> from embedlab.core.registry import Registry
>>> shapes = Registry("shape")
>>> @shapes.register("square")
... class Square:
...     def __init__(self, side=1):
...         self.side = side
>>> shapes.create("square", side=2).side
2
>>> shapes.names()
['square']
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Iterator, TypeVar

from embedlab.core.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of named factories filled by the ``register`` decorator."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            key = name or getattr(factory, "name", None) or factory.__name__
            if key in self._entries and self._entries[key] is not factory:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = factory
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
