"""One registry mechanism for every extension point (fusion methods, decoders, tasks): timm-style names -> classes.

`Registry("fusion method", discover)` gives `register(name)` (a decorator), `get(name)` (unknown names raise
listing the registered ones) and `names()`. `discover` imports the modules whose decorators fill it, once, on
first use, so a new entry needs only its own file. Importing this module imports nothing else.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, discover: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._discover = discover

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the class under `name`; a name can be taken only once."""

        def decorator(entry: T) -> T:
            self.discover()  # built-in names are taken before any user registration
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered by "
                                 f"{getattr(self._entries[name], '__qualname__', self._entries[name])}")
            if isinstance(entry, type):
                entry.name = name  # type: ignore[attr-defined]
            self._entries[name] = entry
            return entry

        return decorator

    def get(self, name: str) -> T:
        self.discover()
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(sorted(self._entries))}")
        return self._entries[name]

    def registered(self, name: str) -> T | None:
        """The entry registered as `name` so far, without discovery (None if absent)."""
        return self._entries.get(name)

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def discover(self) -> None:
        if self._discover is not None:
            self._discover()

    # tests swap the entries for a scratch copy
    @property
    def entries(self) -> dict[str, Any]:
        return self._entries

    @entries.setter
    def entries(self, value: dict[str, Any]) -> None:
        self._entries = value


def lazy_attributes(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` (PEP 562) that imports `exports[name]` (relative to `package`) on first access, so a
    package can re-export heavy names (torch models, loaders) while its light submodules import without them."""
    import importlib
    import sys

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
