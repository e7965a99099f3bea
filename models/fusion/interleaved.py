"""Two or more encoders run stage by stage, a fusion module between their stages: the shape of SA-Gate, CMX and
ACNet, written once.

After fusion point s every encoder has run its segment s; `fusions[s](streams, previous)` sees all streams and the
previous point's merged feature and returns the streams the next segments continue with and this point's merged
feature. The decoder reads the last merged features, one per decoder level. Needs a backbone whose stages can run
one at a time (TimmEncoder.stage_segments: every ResNet).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from torch import Tensor, nn

from ..encoder import TimmEncoder, tile_channels, upsample_to
from ..networks import FusionModel, make_encoder

if TYPE_CHECKING:
    from ..config import ModelConfig


class StageFusion(Protocol):
    def __call__(self, streams: list[Tensor], previous: Tensor | None) -> tuple[list[Tensor], Tensor]: ...


def make_stage_encoders(config: ModelConfig) -> dict[str, TimmEncoder]:
    """One encoder per modality, checked at build time to run stage by stage."""
    stem = config.resolved_stem_channels()
    encoders = {m: make_encoder(config, stem, num_modalities=1, require_norm=False) for m in config.modalities}
    next(iter(encoders.values())).stage_segments()  # a backbone that cannot run stage by stage fails here
    return encoders


class InterleavedModel(FusionModel):
    """Encoders interleaved with `fusions` at their stage boundaries; one decoder on the merged features."""

    def __init__(self, encoders: dict[str, TimmEncoder], fusions: list[nn.Module], decoder: nn.Module,
                 stem_channels: int) -> None:
        super().__init__()
        self.modalities = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.fusions = nn.ModuleList(fusions)
        self.decoder = decoder
        self.stem_channels = stem_channels
        self.levels = len(next(iter(encoders.values())).channels)

    def segments(self, encoder: TimmEncoder) -> list[list[nn.Module]]:
        """The modules each encoder runs before each fusion point (default: one point after every stage)."""
        return encoder.stage_segments()

    def encoder_modules(self) -> list[nn.Module]:
        return [*self.encoders.values(), self.fusions]

    def forward(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        streams = [tile_channels(inputs[m], self.stem_channels) for m in self.modalities]
        size = streams[0].shape[-2:]
        segments = [self.segments(self.encoders[m]) for m in self.modalities]
        merges: list[Tensor] = []
        for point, fusion in enumerate(self.fusions):
            for i, per_point in enumerate(segments):
                for module in per_point[point]:
                    streams[i] = module(streams[i])
            streams, merge = fusion(streams, merges[-1] if merges else None)
            merges.append(merge)
        return {"ensemble": upsample_to(self.decoder(merges[-self.levels:]), size)}

    def modality_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {m: list(enc.parameters()) for m, enc in self.encoders.items()}
