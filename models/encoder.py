"""Segmentation encoders over timm: any timm CNN through `features_only`, BatchNorms made modality-specific.

The encoder returns the four features the decoder uses (strides 4, 8, 16, 32 = "stages" 1..4) and exposes where a
fusion method can act: the last residual block of a ResNet-family stage, or a stage's output for everything else.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Any, Iterator

import timm
import torch
import torch.nn.functional as F
from timm.models._features import FeatureHookNet
from timm.models.resnet import BasicBlock, Bottleneck
from torch import Tensor, nn

from .norm import NormChoice, convert_batchnorm, replace_submodule

STAGE_REDUCTIONS = (4, 8, 16, 32)


def tile_channels(x: Tensor, channels: int) -> Tensor:
    """Repeat channels up to `channels` (depth 1 -> 3, as the official code feeds depth to an RGB stem)."""
    have = x.shape[1]
    if have == channels:
        return x
    if have > channels:
        raise ValueError(f"input has {have} channels but the stem takes {channels}")
    return x.repeat(1, -(-channels // have), 1, 1)[:, :channels]


def create_timm_features(backbone: str, in_chans: int, pretrained: bool = False, pretrained_file: str | None = None,
                         **kwargs: Any) -> nn.Module:
    """timm.create_model(features_only=True); pretrained weights come from timm's cache or a local file, or it fails."""
    extra: dict[str, Any] = {}
    if pretrained and pretrained_file is not None:
        if not os.path.isfile(pretrained_file):
            raise FileNotFoundError(f"pretrained_file {pretrained_file!r} for backbone {backbone!r} does not exist")
        extra["pretrained_cfg_overlay"] = {"file": pretrained_file}
    try:
        return timm.create_model(backbone, features_only=True, in_chans=in_chans, pretrained=pretrained,
                                 **extra, **kwargs)
    except Exception as error:
        if not pretrained:
            raise
        raise RuntimeError(f"could not load pretrained weights for {backbone!r} (timm cache / hub"
                           f"{' / ' + pretrained_file if pretrained_file else ''}): {error}. Set pretrained_file to a "
                           "local weight file, or pretrained: false.") from error


class TimmEncoder(nn.Module):
    """timm features_only backbone on stacks [M*B, C, H, W]; every BatchNorm becomes M BatchNorms."""

    def __init__(self, backbone: str, in_chans: int, num_modalities: int, *, norm: NormChoice | None = None,
                 freeze_bn_stats: bool = False, require_batchnorm: bool = True, pretrained: bool = False,
                 pretrained_file: str | None = None, backbone_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.body = create_timm_features(backbone, in_chans, pretrained, pretrained_file, **(backbone_kwargs or {}))
        info = self.body.feature_info
        reductions = list(info.reduction())
        missing = [r for r in STAGE_REDUCTIONS if r not in reductions]
        if missing:
            raise ValueError(f"backbone {backbone!r} has no features at stride(s) {missing} (has {reductions})")
        self.level_indices = [reductions.index(r) for r in STAGE_REDUCTIONS]
        self.channels = [info.channels()[i] for i in self.level_indices]
        self._stage_names = [info.module_name()[i] for i in self.level_indices]
        self.num_modalities = num_modalities
        self.stage_fusions = nn.ModuleDict()  # stage-output fusion modules applied through hooks (FeatureHookNet)
        self.converted_norms = convert_batchnorm(self.body, num_modalities, norm, freeze_bn_stats,
                                                 required=require_batchnorm)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = self.body(x)
        return [features[i] for i in self.level_indices]

    def stage_module_name(self, stage: int) -> str:
        """Attribute path in `body` of stage 1..4's output module (timm flattens 'stages.0' to 'stages_0')."""
        name = self._stage_names[stage - 1]
        # timm flattens the top-level Sequentials it walks ('blocks.1.stack.act3' -> 'blocks_1.stack.act3'), and a
        # hook-based feature net may keep the model under 'body.': compare names with '_' and '.' treated alike.
        target = name.replace("_", ".")
        matches = [n for n, _ in self.body.named_modules()
                   if n and n.replace("_", ".") in (target, "body." + target)]
        if len(matches) == 1:
            return matches[0]
        raise ValueError(f"cannot locate stage module {name!r} of {self.backbone!r}")

    def residual_blocks(self, stage: int) -> list[tuple[str, nn.Module]]:
        """(path, block) of every timm ResNet BasicBlock/Bottleneck of stage 1..4, in order ([] for other families).

        Pair with `replace(path, ...)` and models/blocks.py's ResidualBlock to put a method inside blocks."""
        stage_name = self.stage_module_name(stage)
        stage_module = self.body.get_submodule(stage_name)
        if not isinstance(stage_module, nn.Sequential):
            return []
        return [(f"{stage_name}.{i}", block) for i, block in enumerate(stage_module)
                if isinstance(block, (Bottleneck, BasicBlock))]

    def last_residual_block(self, stage: int) -> tuple[str, nn.Module] | None:
        """(path, block) of a ResNet-family stage's last block when fusion can sit inside it, else None.

        None for non-ResNet families, and for a stage with a single block (its last block is also its first,
        which the official placement never uses): those get fusion at the stage output instead.
        """
        stage_module = self.body.get_submodule(self.stage_module_name(stage))
        if not isinstance(stage_module, nn.Sequential) or len(stage_module) < 2:
            return None
        blocks = self.residual_blocks(stage)
        last = f"{self.stage_module_name(stage)}.{len(stage_module) - 1}"
        return blocks[-1] if blocks and blocks[-1][0] == last else None

    def stage_segments(self) -> list[list[nn.Module]]:
        """The body's modules in order, cut after each stage's output module: running segment s on stage s-1's
        output gives stage s's output. For methods that interleave two encoders stage by stage (sagate); needs a
        body whose stages are its top-level children (timm's FeatureListNet, e.g. every ResNet)."""
        names = [self.stage_module_name(s) for s in range(1, len(self.channels) + 1)]
        children = list(self.body.named_children()) if isinstance(self.body, nn.ModuleDict) else []
        if not children or any(n not in dict(children) for n in names):
            raise ValueError(f"backbone {self.backbone!r} cannot be run stage by stage (its stages are not "
                             "top-level modules of the feature net); choose a ResNet-family backbone")
        segments: list[list[nn.Module]] = [[]]
        for name, module in children:
            if len(segments) > len(names):
                break  # modules after the last stage produce no feature the decoder uses
            segments[-1].append(module)
            if name in names:
                segments.append([])
        return segments[: len(names)]

    def replace(self, path: str, module: nn.Module) -> None:
        """body.<path> = module: swap a block (see residual_blocks) or any other submodule."""
        replace_submodule(self.body, path, module)

    def fuse_stage_output(self, stage: int, fusion: nn.Module) -> None:
        """Run `fusion` (a module on stacks) on stage `stage`'s output, before the next stage and the decoder see it."""
        name = self.stage_module_name(stage)
        if isinstance(self.body, FeatureHookNet):
            # Features are captured by forward hooks on the named module (xception, ...): replacing the module
            # would leave the capturing hook on the unfused inner module. Apply the fusion in a hook that runs
            # before the capturing one instead, so the decoder and the next stage both see the fused output.
            self.stage_fusions[str(stage)] = fusion
            self.body.get_submodule(name).register_forward_hook(_FusionHook(fusion), prepend=True)
            return
        self.replace(name, FusedStage(self.body.get_submodule(name), fusion))


class _FusionHook:
    """Forward hook that replaces a module's output by `fusion(output)` (a picklable callable, not a closure)."""

    def __init__(self, fusion: nn.Module) -> None:
        self.fusion = fusion

    def __call__(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        return self.fusion(output)


class FusedStage(nn.Module):
    """A stage followed by a parameter-light fusion module on its output."""

    def __init__(self, stage: nn.Module, fusion: nn.Module) -> None:
        super().__init__()
        self.stage = stage
        self.fusion = fusion

    def forward(self, x: Tensor) -> Tensor:
        return self.fusion(self.stage(x))


_LOGITS_RESIZE: contextvars.ContextVar[str] = contextvars.ContextVar("logits_resize", default="bilinear")


@contextlib.contextmanager
def logits_resize(mode: str) -> Iterator[None]:
    """Resize logits with `mode` ("bilinear" or "bicubic") inside the block: evaluation's choice (the official
    validation resizes bicubically); training always uses bilinear, as the official loss does."""
    if mode not in ("bilinear", "bicubic"):
        raise ValueError(f"logits_resize must be 'bilinear' or 'bicubic', got {mode!r}")
    token = _LOGITS_RESIZE.set(mode)
    try:
        yield
    finally:
        _LOGITS_RESIZE.reset(token)


def upsample_to(x: Tensor, size: torch.Size | tuple[int, int]) -> Tensor:
    """Resize of logits to the input size, align_corners=False: bilinear (as the official training loss), or what
    `logits_resize` sets."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode=_LOGITS_RESIZE.get(), align_corners=False)
