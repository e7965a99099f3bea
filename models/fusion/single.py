"""single: the whole network on one modality (the per-modality lower bound); other inputs are ignored."""

from __future__ import annotations

from pydantic import Field

from ..networks import FusionModel, StackedModel
from .base import FusionMethod, FusionOptions
from .registry import register_fusion


class SingleOptions(FusionOptions):
    modality: str | None = Field(None, description="Modality to use; default the first listed.")


@register_fusion("single")
class SingleModality(FusionMethod):
    Options = SingleOptions

    def build(self) -> FusionModel:
        modality = self.options.modality or self.config.modalities[0]
        if modality not in self.config.modalities:
            raise ValueError(f"single: modality {modality!r} is not one of {self.config.modalities}")
        return StackedModel(self.config, modalities=[modality], branches=False)
