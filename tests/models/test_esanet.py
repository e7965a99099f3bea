"""ESANet's fusion rule on real tensors: the RGB stream continues with SE(rgb) + SE(depth) after every stage; the
depth stream never receives anything."""

from __future__ import annotations

import torch

from asymfusion.models import build_model
from asymfusion.models.encoder import tile_channels
from asymfusion.models.fusion.esanet import SEFusion

from .conftest import TWO_BLOCK_RESNET, tiny_config, tiny_inputs


def test_every_stage_output_of_the_rgb_stream_is_se_rgb_plus_se_depth_and_depth_runs_alone() -> None:
    config = tiny_config("esanet", **TWO_BLOCK_RESNET)
    model = build_model(config).eval()
    inputs = tiny_inputs(config)
    seen: list[tuple[SEFusion, torch.Tensor, torch.Tensor]] = []
    for fusion in model.fusions:
        fusion.register_forward_hook(lambda m, i, o: seen.append((m, i[0], o)))
    with torch.no_grad():
        model(inputs)
        depth_alone = model.encoders["depth"](tile_channels(inputs["depth"], model.stem_channels))
        assert len(seen) == 4
        for stage, (fusion, rgb_feature, fused) in enumerate(seen):
            expected = fusion.se[0](rgb_feature) + fusion.se[1](depth_alone[stage])
            torch.testing.assert_close(fused, expected)
            gate = fusion.se[1].gate(depth_alone[stage])
            assert gate.min() > 0 and gate.max() < 1  # a sigmoid reweighting per channel
    assert all(not f.received for f in model.fusions), "handed-over features are released after the forward"


def test_the_depth_input_reaches_the_output_through_the_fusion() -> None:
    config = tiny_config("esanet", **TWO_BLOCK_RESNET)
    model = build_model(config).eval()
    inputs = tiny_inputs(config)
    with torch.no_grad():
        base = model(inputs)["ensemble"]
        other = model({**inputs, "depth": torch.randn_like(inputs["depth"])})["ensemble"]
    assert not torch.allclose(base, other)
