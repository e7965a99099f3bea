"""Fusion methods: one class per file in this folder, registered by name (see registry.py).

Every module here is imported on first use of the registry, so a new method needs only its file. What a method
file needs comes from this one import path:

    from asymfusion.models.fusion import FusionMethod, FusionOptions, StackedModel, register_fusion
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from .base import FusionMethod, FusionOptions
from ..registry import lazy_attributes
from .registry import get_fusion, list_fusions, register_fusion

if TYPE_CHECKING:
    from ..blocks import ResidualBlock
    from ..networks import FusionModel, StackedModel

_TORCH_EXPORTS = {"FusionModel": "..networks", "StackedModel": "..networks", "ResidualBlock": "..blocks"}

_NOT_METHODS = {"registry", "base", "ops", "interleaved"}
_discovered = False


def discover_methods() -> None:
    """Import all method modules of this package once (their @register_fusion decorators fill the registry)."""
    global _discovered
    if _discovered:
        return
    _discovered = True  # set first: a method module may itself use the registry while importing
    try:
        for info in pkgutil.iter_modules(__path__):
            if info.name not in _NOT_METHODS and not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
    except BaseException:
        _discovered = False
        raise


__getattr__ = lazy_attributes(__name__, _TORCH_EXPORTS)


__all__ = ["FusionMethod", "FusionOptions", "FusionModel", "StackedModel", "ResidualBlock", "register_fusion",
           "list_fusions", "get_fusion", "discover_methods"]
