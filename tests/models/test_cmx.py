"""CMX's rules on real tensors: the rectification adds the other stream reweighted per channel and per pixel, the
cross attention reads the other modality's context, the next stages continue with the rectified streams and the
decoder reads one fused feature per stage."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from asymfusion.models import build_model
from asymfusion.models.fusion.cmx import CrossAttention, FeatureFusion, FeatureRectification

from .conftest import TWO_BLOCK_RESNET, tiny_config, tiny_inputs


def test_the_rectification_adds_the_other_stream_weighted_per_channel_and_per_pixel() -> None:
    frm = FeatureRectification(6, reduction=2, lambda_c=0.5, lambda_s=0.25)
    rgb, depth = torch.randn(2, 6, 4, 5), torch.randn(2, 6, 4, 5)
    channel, spatial = frm.weights(rgb, depth)
    assert channel.shape == (2, 2, 6, 1, 1) and spatial.shape == (2, 2, 1, 4, 5)
    assert 0 < channel.min() and channel.max() < 1 and 0 < spatial.min() and spatial.max() < 1
    rgb_out, depth_out = frm(rgb, depth)
    torch.testing.assert_close(rgb_out, rgb + 0.5 * channel[1] * depth + 0.25 * spatial[1] * depth)
    torch.testing.assert_close(depth_out, depth + 0.5 * channel[0] * rgb + 0.25 * spatial[0] * rgb)
    # the channel weights come from [avg, max] pools of [rgb, depth]: a constant shift of depth moves them
    assert not torch.allclose(frm.weights(rgb, depth + 1)[0], channel)


def test_the_cross_attention_queries_read_the_other_modalitys_softmaxed_context() -> None:
    attention = CrossAttention(dim=4, heads=1)
    x1, x2 = torch.randn(2, 9, 4), torch.randn(2, 9, 4)
    out1, out2 = attention(x1, x2)
    k2, v2 = attention.kv[1](x2).chunk(2, dim=-1)
    context2 = torch.softmax(k2.transpose(1, 2) @ v2 * 4 ** -0.5, dim=1)  # over the key channels
    torch.testing.assert_close(context2.sum(dim=1), torch.ones(2, 4))
    torch.testing.assert_close(out1, x1 @ context2)
    k1, v1 = attention.kv[0](x1).chunk(2, dim=-1)
    torch.testing.assert_close(out2, x2 @ torch.softmax(k1.transpose(1, 2) @ v1 * 0.5, dim=1))


@pytest.mark.parametrize("channels, heads", [(256, 4), (512, 8), (1024, 16), (2048, 32), (16, 1), (160, 2), (224, 1)])
def test_heads_follow_cmx_on_resnet_widths_and_never_leave_a_remainder(channels: int, heads: int) -> None:
    fusion = FeatureFusion(channels, reduction=4, head_dim=16)
    assert fusion.cross.heads == heads and (channels // 4) % heads == 0


def test_next_stages_read_the_rectified_streams_and_the_decoder_one_fusion_per_stage() -> None:
    config = tiny_config("cmx", **TWO_BLOCK_RESNET)
    model = build_model(config).eval()
    fused, rectified, next_inputs = [], [], []

    def keep(module: torch.nn.Module, args: tuple, output: tuple) -> None:
        rectified.append(list(output[0]))  # the model goes on with (and mutates) the returned list
        fused.append(output[1])

    for stage in model.fusions:
        stage.register_forward_hook(keep)
    for name in ("layer2", "layer3", "layer4"):
        model.encoders["depth"].body.get_submodule(name).register_forward_pre_hook(
            lambda m, i: next_inputs.append(i[0]) and None)
    inputs = tiny_inputs(config, requires_grad=True)
    model(inputs)["ensemble"].sum().backward()
    assert [f.shape[1] for f in fused] == model.encoders["rgb"].channels
    for streams, seen in zip(rectified, next_inputs):
        assert torch.equal(streams[1], seen)
    assert all(x.grad.abs().sum() > 0 for x in inputs.values())


def test_cmx_takes_two_modalities_only_and_rejects_unknown_options() -> None:
    with pytest.raises(ValidationError, match="at most 2 modalities"):
        tiny_config("cmx", modalities=("rgb", "depth", "normal"))
    with pytest.raises(ValidationError, match="heads"):
        build_model(tiny_config("cmx", fusion={"heads": 4}))
