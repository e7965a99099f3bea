"""Name -> fusion-method class, timm style: `@register_fusion("name")` on a class in its own file.

The trainer, CLI and tables only ever see names from here, so adding a method never touches them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

from ..registry import Registry

if TYPE_CHECKING:
    from .base import FusionMethod

_MethodT = TypeVar("_MethodT", bound="type[FusionMethod]")


def _discover() -> None:
    """Import every module of the fusion package so their decorators run (one file = one method)."""
    from . import discover_methods

    discover_methods()


FUSIONS: Registry[type[FusionMethod]] = Registry("fusion method", _discover)


def register_fusion(name: str) -> Callable[[_MethodT], _MethodT]:
    """Register a FusionMethod subclass under `name`; a name can be taken only once."""
    return FUSIONS.register(name)  # type: ignore[return-value]


def list_fusions() -> list[str]:
    """Registered method names, sorted."""
    return FUSIONS.names()


def get_fusion(name: str) -> type[FusionMethod]:
    """The method class registered as `name`; an unknown name raises listing the registered ones."""
    return FUSIONS.get(name)


def registered_class(name: str) -> type[FusionMethod] | None:
    """The class registered as `name` so far, without discovering the package (None if not registered)."""
    return FUSIONS.registered(name)
