"""Name -> fusion-method class, timm style: `@register_fusion("name")` on a class in its own file.

The trainer, CLI and tables only ever see names from here, so adding a method never touches them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

if TYPE_CHECKING:
    from .base import FusionMethod

_REGISTRY: dict[str, type[FusionMethod]] = {}
_MethodT = TypeVar("_MethodT", bound="type[FusionMethod]")


def register_fusion(name: str) -> Callable[[_MethodT], _MethodT]:
    """Register a FusionMethod subclass under `name`; a name can be taken only once."""

    def decorator(cls: _MethodT) -> _MethodT:
        _discover()  # built-in names are taken before any user registration
        if name in _REGISTRY:
            raise ValueError(f"fusion method {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def list_fusions() -> list[str]:
    """Registered method names, sorted."""
    _discover()
    return sorted(_REGISTRY)


def get_fusion(name: str) -> type[FusionMethod]:
    """The method class registered as `name`; an unknown name raises listing the registered ones."""
    _discover()
    if name not in _REGISTRY:
        raise ValueError(f"unknown fusion method {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def _discover() -> None:
    """Import every module of the fusion package so their decorators run (one file = one method)."""
    from . import discover_methods

    discover_methods()
