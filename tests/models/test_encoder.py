"""Stage-output fusion must reach both the next stage and the decoder, whichever way timm exposes features."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from asymfusion.models.encoder import TimmEncoder


class Zero(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)


@pytest.mark.parametrize("feature_cls", ["getter", "hook"])
def test_stage_output_fusion_is_what_the_decoder_sees(feature_cls: str) -> None:
    # "hook": features are captured by forward hooks (timm FeatureHookNet, as xception65 builds), where replacing
    # the stage module would leave the capturing hook on the unfused module.
    kwargs = {} if feature_cls == "getter" else {"feature_cls": "hook"}
    encoder = TimmEncoder("test_resnet", 3, 2, backbone_kwargs=kwargs)
    encoder.fuse_stage_output(2, Zero())
    features = encoder(torch.randn(4, 3, 32, 32))
    assert features[1].abs().sum() == 0
    assert features[0].abs().sum() > 0


def test_nested_stage_names_of_flattened_hook_nets_are_found() -> None:
    encoder = TimmEncoder("test_resnet", 3, 2, backbone_kwargs={"feature_cls": "hook"})
    for stage in (1, 2, 3, 4):
        encoder.body.get_submodule(encoder.stage_module_name(stage))
