"""What "modality-specific BN" is made of, as data: `NormSpec` (statistics x affine) and its presets.

Torch-free, so configs validate without importing torch; models/norm.py builds the layers.
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

Statistics = Literal["modality", "joint", "chunk"]
Affine = Literal["modality", "shared"]


class NormSpec(BaseModel):
    """Which statistics and which affine parameters normalise each modality's chunk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    statistics: Statistics = Field(description="modality: per-modality batch and running statistics; joint: one "
                                   "set over the whole stack; chunk: per-chunk batch statistics, one blended running "
                                   "estimate (the official ShareBatchNorm2dParallel).")
    affine: Affine = Field(description="modality: one weight/bias per modality; shared: one for all modalities.")

    @model_validator(mode="after")
    def _supported(self) -> NormSpec:
        if self.statistics == "chunk" and self.affine == "modality":
            raise ValueError("statistics 'chunk' reproduces the official shared class and goes with affine 'shared'; "
                             "for per-modality affines choose statistics 'modality' or 'joint'")
        return self

    def preset(self) -> str | None:
        """The preset name of this spec, or None."""
        return next((name for name, spec in NORM_PRESETS.items() if spec == self), None)

    def __str__(self) -> str:
        return self.preset() or f"statistics={self.statistics}, affine={self.affine}"


NORM_PRESETS: dict[str, NormSpec] = {
    "modality": NormSpec(statistics="modality", affine="modality"),
    "shared": NormSpec(statistics="joint", affine="shared"),
    "official_shared": NormSpec(statistics="chunk", affine="shared"),
}

NormChoice = Union[Literal["modality", "shared", "official_shared"], NormSpec]


def norm_spec(choice: NormChoice | dict | None) -> NormSpec:
    """A preset name, a NormSpec or its dict -> NormSpec (None: the MSBN default)."""
    if choice is None:
        return NORM_PRESETS["modality"]
    if isinstance(choice, NormSpec):
        return choice
    if isinstance(choice, str):
        if choice not in NORM_PRESETS:
            raise ValueError(f"unknown norm preset {choice!r}; allowed: {', '.join(NORM_PRESETS)} or "
                             "{statistics: modality|joint|chunk, affine: modality|shared}")
        return NORM_PRESETS[choice]
    return NormSpec.model_validate(choice)
