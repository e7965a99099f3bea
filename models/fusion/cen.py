"""cen: Channel Exchanging Networks (Wang et al., "Deep Multimodal Fusion by Channel Exchanging", NeurIPS 2020;
code: yikaiw/CEN, the sister repository of AsymFusion's).

A shared encoder with modality-specific BatchNorm, as msbn. In every residual block of the fused stages, right after
the block's inner BatchNorm (Bottleneck: bn2, as the official code; BasicBlock: bn1), channel c of modality m is
replaced where its BN scaling factor is small, |gamma_m,c| < threshold: by the other modality's channel c (two
modalities, as the official `Exchange`), or by the mean of the other modalities' (M > 2, as the paper). An L1
penalty on those scaling factors pushes them towards the threshold: modality m is penalised on the m-th of M equal
channel slices only (two modalities: the first half for the first, the second half for the second, as the official
code assigns its `slim_params`), so each modality keeps the channels the others give up.

Deviations, all named options: the official training loop adds the L1 term once per output (M + 1 times for
M branches and the ensemble); `count_per_output: true` (default) reproduces that, false adds it once. BasicBlock
backbones (ResNet-18/34) have no bn2-after-3x3 of a bottleneck; their exchange sits after bn1, the norm between the
block's two convolutions. Only ResNet-family blocks (timm BasicBlock/Bottleneck) exchange; other backbones are
rejected with a clear error. The diagnostic `exchanged_stage<s>` is the share of (modality, channel) pairs of stage
s whose |gamma| is under the threshold, i.e. that receive another modality's channel.
"""

from __future__ import annotations

from pydantic import Field
from timm.models.resnet import Bottleneck
import torch
from torch import Tensor, nn

from ..encoder import TimmEncoder
from ..norm import ModalityNorm
from .base import FusionMethod, FusionOptions
from .registry import register_fusion


class CENOptions(FusionOptions):
    threshold: float = Field(2e-2, gt=0, description="|gamma| under which a channel is exchanged (official 2e-2).")
    l1_weight: float = Field(2e-4, ge=0, description="Weight of the L1 penalty on the scaling factors (official "
                             "lamda 2e-4). Too small for a short run and no channel ever crosses the threshold: "
                             "watch the exchanged_stage<s> diagnostics.")
    count_per_output: bool = Field(True, description="Add the L1 term once per output (M + 1 times), as the "
                                   "official training loop does; false adds it once.")
    stages: list[int] | None = Field(None, description="ResNet stages (1-4) whose blocks exchange; default all.")


class ChannelExchange(nn.Module):
    """A ModalityNorm followed by CEN's exchange, on modality-major stacks [M*B, C, H, W]."""

    def __init__(self, norm: ModalityNorm, threshold: float, l1_weight: float, stage: int) -> None:
        super().__init__()
        if norm.spec.preset() != "modality" or len(norm.norms) < 2:
            raise ValueError("cen exchanges channels by each modality's own BN scaling factors: it needs "
                             "modality-specific norms (norm: modality) and at least two modalities")
        self.norm = norm
        self.threshold = threshold
        self.l1_weight = l1_weight
        self.stage = stage

    def gammas(self) -> Tensor:
        """[M, C]: every modality's BN scaling factors."""
        return torch.stack([n.weight for n in self.norm.norms])

    def exchanged(self) -> Tensor:
        """[M, C] bool: channels of modality m that are replaced by the others'."""
        return self.gammas().detach().abs() < self.threshold

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(x)
        m = len(self.norm.norms)
        stack = y.unflatten(0, (m, -1))  # [M, B, C, H, W]
        # two modalities: exactly the other one (the official Exchange); more: the mean of the others (the paper)
        others = stack.flip(0) if m == 2 else (stack.sum(dim=0, keepdim=True) - stack) / (m - 1)
        mask = self.exchanged()[:, None, :, None, None]
        return torch.where(mask, others, stack).flatten(0, 1)

    def auxiliary_losses(self) -> dict[str, Tensor]:
        gammas = self.gammas()
        m, c = gammas.shape
        bounds = [round(i * c / m) for i in range(m + 1)]
        l1 = sum(gammas[i, bounds[i]:bounds[i + 1]].abs().sum() for i in range(m))
        return {"cen_l1": self.l1_weight * l1}

    def diagnostics(self) -> dict[str, float]:
        return {f"exchanged_stage{self.stage}": float(self.exchanged().float().mean())}


@register_fusion("cen")
class ChannelExchanging(FusionMethod):
    Options = CENOptions
    tasks = ("segmentation",)

    @classmethod
    def check_norm(cls, spec, task):
        if spec.preset() != "modality":
            raise ValueError(f"cen exchanges channels by each modality's own BN scaling factors and statistics; "
                             f"norm {spec} is not modality-specific (use norm: modality)")

    def build(self):
        from ..networks import StackedModel

        model = StackedModel(self.config)
        encoder = model.encoder
        if not isinstance(encoder, TimmEncoder):
            raise ValueError("cen: needs a timm encoder")
        o = self.options
        weight = o.l1_weight * ((model.num_modalities + 1) if o.count_per_output else 1)
        stages = [1, 2, 3, 4] if o.stages is None else sorted(set(o.stages))
        if any(s not in range(1, 5) for s in stages):
            raise ValueError(f"cen: stages {stages} outside [1, 2, 3, 4]")
        for stage in stages:
            blocks = encoder.residual_blocks(stage)
            if not blocks:
                raise ValueError(f"cen: backbone {self.config.backbone!r} has no ResNet blocks in stage {stage}; "
                                 "channel exchanging is defined on ResNet-family backbones")
            for _, block in blocks:
                name = "bn2" if isinstance(block, Bottleneck) else "bn1"
                setattr(block, name, ChannelExchange(getattr(block, name), o.threshold, weight, stage))
        return model
