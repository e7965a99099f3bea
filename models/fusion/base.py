"""What a fusion method is: a small pydantic Options model plus `build()` returning a FusionModel.

Subclass `FusionMethod`, declare `Options` (the keys users may write under `fusion:`) and the `tasks` it supports,
implement `build`, and register the class with `@register_fusion("name")` in its own file of this folder.
Auxiliary loss terms and diagnostics come from the built model (`FusionModel.auxiliary_losses`/`diagnostics`,
or any submodule that defines them); docs/adding-a-fusion-method.md walks through a method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from ..config import ModelConfig
    from ..networks import FusionModel
    from ..norm import NormSpec

TASKS = ("segmentation", "translation")


class FusionOptions(BaseModel):
    """Base of every method's options; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


class FusionMethod:
    """One fusion method; `self.config` is the whole ModelConfig, `self.options` its parsed `fusion` section."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[FusionOptions]] = FusionOptions
    tasks: ClassVar[tuple[str, ...]] = TASKS  # an experiment of another task is rejected when its config is read
    max_modalities: ClassVar[int | None] = None  # e.g. 2 for a method defined on one RGB-D pair; None: any number
    default_norm: ClassVar[str] = "modality"  # the models/norm.py preset `norm` resolves to when the config has none

    @classmethod
    def check_norm(cls, spec: NormSpec, task: str) -> None:
        """Raise ValueError when the method cannot run with `spec` (called when the config is read)."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.options = self.Options.model_validate(config.fusion)

    def build(self) -> FusionModel:
        raise NotImplementedError
