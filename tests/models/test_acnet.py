"""ACNet's rules on real tensors: each ACM is a sigmoid channel weight of its own modality, the fused branch adds
its stage of the previous fused feature to the weighted modalities, and the modality streams never see the fusion."""

from __future__ import annotations

import torch
from torch import nn

from asymfusion.models import build_model
from asymfusion.models.encoder import tile_channels
from asymfusion.models.fusion.acnet import AttentionComplementary, ComplementaryFusion

from .conftest import TWO_BLOCK_RESNET, tiny_config, tiny_inputs


def test_the_acm_weighs_each_channel_by_a_sigmoid_of_its_global_average() -> None:
    acm = AttentionComplementary(3)
    x = torch.randn(2, 3, 4, 4)
    conv = acm.gate[1]
    weight = torch.sigmoid(x.mean(dim=(2, 3)) @ conv.weight[:, :, 0, 0].T + conv.bias)
    torch.testing.assert_close(acm(x), x * weight[:, :, None, None])


def test_the_fused_feature_is_the_fused_branch_of_the_previous_plus_the_weighted_modalities() -> None:
    branch = nn.Conv2d(3, 3, 1)
    fusion = ComplementaryFusion(3, num_modalities=2, fused_branch=[branch])
    rgb, depth, previous = torch.randn(1, 3, 5, 5), torch.randn(1, 3, 5, 5), torch.randn(1, 3, 5, 5)
    streams, merge = fusion([rgb, depth], previous)
    assert streams[0] is rgb and streams[1] is depth
    torch.testing.assert_close(merge, branch(previous) + fusion.attention[0](rgb) + fusion.attention[1](depth))
    first = ComplementaryFusion(3, num_modalities=2, fused_branch=None)
    torch.testing.assert_close(first([rgb, depth], None)[1], first.attention[0](rgb) + first.attention[1](depth))


def test_modality_streams_run_unfused_and_the_fused_branch_is_a_third_copy_of_the_stages() -> None:
    config = tiny_config("acnet", **TWO_BLOCK_RESNET)
    model = build_model(config).eval()
    merges = []
    for fusion in model.fusions:
        fusion.register_forward_hook(lambda m, i, o: merges.append(o[1]) and None)
    inputs = tiny_inputs(config, requires_grad=True)
    model(inputs)["ensemble"].sum().backward()
    with torch.no_grad():
        alone = model.encoders["depth"](tile_channels(inputs["depth"], model.stem_channels))
        depth_in_model = []
        model.encoders["depth"].body.layer4.register_forward_hook(lambda m, i, o: depth_in_model.append(o))
        model(inputs)
    torch.testing.assert_close(depth_in_model[0], alone[-1])
    stage_channels = model.encoders["rgb"].channels
    stem = model.encoders["rgb"].body.conv1.out_channels
    assert [m.shape[1] for m in merges[:5]] == [stem, *stage_channels]  # the stem fusion, then one per stage
    stages = sum(p.numel() for n, p in model.encoders["rgb"].body.named_parameters() if n.startswith("layer"))
    fused_branch = sum(p.numel() for f in model.fusions if f.fused_branch is not None
                       for p in f.fused_branch.parameters())
    assert fused_branch == stages
    assert all(x.grad.abs().sum() > 0 for x in inputs.values())
