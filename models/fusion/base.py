"""What a fusion method is: a small pydantic Options model plus `build()` returning a FusionModel.

Subclass `FusionMethod`, declare `Options` (the keys users may write under `fusion:`), implement `build`, and
register the class with `@register_fusion("name")` in its own file of this folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from ..config import ModelConfig
    from ..networks import FusionModel


class FusionOptions(BaseModel):
    """Base of every method's options; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


class FusionMethod:
    """One fusion method; `self.config` is the whole ModelConfig, `self.options` its parsed `fusion` section."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[FusionOptions]] = FusionOptions

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.options = self.Options.model_validate(config.fusion)

    def build(self) -> FusionModel:
        raise NotImplementedError
