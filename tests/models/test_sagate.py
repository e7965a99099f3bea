"""SA-Gate's rules on real tensors: the spatial gates sum to one over the modalities, the merge is their weighting
of the two streams, both streams continue with relu((own + merge) / 2), and the decoder reads the merges."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from asymfusion.models import build_model
from asymfusion.models.fusion.sagate import SAGate

from .conftest import TWO_BLOCK_RESNET, tiny_config, tiny_inputs


def test_the_gates_sum_to_one_and_the_merge_weights_the_two_streams() -> None:
    torch.manual_seed(0)
    gate = SAGate(8, reduction=4)
    rgb, depth = torch.randn(2, 8, 5, 5), torch.randn(2, 8, 5, 5)
    a = gate.attention(rgb, depth)
    torch.testing.assert_close(a.sum(dim=1), torch.ones(2, 5, 5))
    assert a.min() > 0
    (rgb_out, depth_out), merge = gate([rgb, depth], None)
    torch.testing.assert_close(merge, rgb * a[:, 0:1] + depth * a[:, 1:2])
    torch.testing.assert_close(rgb_out, torch.relu((rgb + merge) / 2))
    torch.testing.assert_close(depth_out, torch.relu((depth + merge) / 2))


def test_the_recalibration_adds_the_other_stream_weighted_per_channel() -> None:
    gate = SAGate(4, reduction=2)
    rgb, depth = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    w = gate.recalibrate[0].weights(depth, rgb)
    assert w.shape == (1, 4, 1, 1) and 0 < w.min() and w.max() < 1
    torch.testing.assert_close(gate.recalibrate[0](depth, rgb), rgb + w * depth)


def test_the_decoder_reads_one_merge_per_stage_and_both_inputs_reach_the_output() -> None:
    config = tiny_config("sagate", **TWO_BLOCK_RESNET)
    model = build_model(config).eval()
    merges = []
    for gate in model.fusions:
        gate.register_forward_hook(lambda m, i, o: merges.append(o[1]))
    inputs = tiny_inputs(config, requires_grad=True)
    model(inputs)["ensemble"].sum().backward()
    assert [m.shape[1] for m in merges] == model.encoders["rgb"].channels
    assert all(x.grad.abs().sum() > 0 for x in inputs.values())


def test_sagate_takes_two_modalities_only() -> None:
    with pytest.raises(ValidationError, match="at most 2 modalities"):
        tiny_config("sagate", modalities=("rgb", "depth", "normal"))
