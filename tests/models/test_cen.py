"""CEN's own rules on hand-built tensors: which channels are exchanged, with what, and the L1 term's value."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from asymfusion.models import build_model
from asymfusion.models.fusion.cen import ChannelExchange
from asymfusion.models.norm import ModalityBatchNorm

from .conftest import TWO_BLOCK_RESNET, tiny_config, tiny_inputs


def _exchange(num_modalities: int, gammas: list[list[float]], threshold: float = 0.1) -> ChannelExchange:
    norm = ModalityBatchNorm(len(gammas[0]), num_modalities)
    with torch.no_grad():
        for bn, g in zip(norm.norms, gammas):
            bn.weight.copy_(torch.tensor(g))
    return ChannelExchange(norm, threshold, l1_weight=0.5, stage=2).eval()  # eval: running stats 0/1, y = g*x + b


def test_exactly_the_channels_under_the_threshold_take_the_other_modalitys_channel() -> None:
    exchange = _exchange(2, [[1.0, 0.05, 1.0, -0.01], [0.02, 1.0, 1.0, 1.0]])
    x = torch.randn(2 * 3, 4, 5, 5)
    normed = exchange.norm(x).unflatten(0, (2, 3))
    out = exchange(x).unflatten(0, (2, 3))
    rgb, depth = out
    assert torch.equal(rgb[:, [0, 2]], normed[0][:, [0, 2]])  # |gamma| >= 0.1 keeps its own
    assert torch.equal(rgb[:, [1, 3]], normed[1][:, [1, 3]])  # |0.05|, |-0.01| < 0.1 take depth's
    assert torch.equal(depth[:, 0], normed[0][:, 0]) and torch.equal(depth[:, 1:], normed[1][:, 1:])
    assert exchange.diagnostics() == {"exchanged_stage2": 3 / 8}


def test_with_three_modalities_an_exchanged_channel_is_the_mean_of_the_others() -> None:
    exchange = _exchange(3, [[0.01, 1.0], [1.0, 1.0], [1.0, 1.0]])
    x = torch.randn(3 * 2, 2, 4, 4)
    normed = exchange.norm(x).unflatten(0, (3, 2))
    out = exchange(x).unflatten(0, (3, 2))
    assert torch.allclose(out[0][:, 0], (normed[1][:, 0] + normed[2][:, 0]) / 2)
    assert torch.equal(out[1:], normed[1:]) and torch.equal(out[0][:, 1], normed[0][:, 1])


def test_the_l1_term_penalises_each_modality_on_its_own_slice_of_channels() -> None:
    exchange = _exchange(2, [[1.0, -2.0, 3.0, 4.0], [5.0, 6.0, -7.0, 8.0]])
    # modality 0: channels 0-1; modality 1: channels 2-3 (the official code's halves); weight 0.5
    assert exchange.auxiliary_losses()["cen_l1"].item() == pytest.approx(0.5 * (1 + 2 + 7 + 8))


def test_the_built_model_counts_the_l1_term_once_per_output_like_the_official_loop() -> None:
    config = tiny_config("cen", fusion={"l1_weight": 1e-3}, **TWO_BLOCK_RESNET)
    model = build_model(config)
    exchanges = [m for m in model.modules() if isinstance(m, ChannelExchange)]
    assert len(exchanges) == 8  # resnet18: 2 BasicBlocks x 4 stages, after bn1
    halves = [(e.gammas(), e.gammas().shape[1] // 2) for e in exchanges]
    hand = sum(g[0, :h].abs().sum() + g[1, h:].abs().sum() for g, h in halves)
    assert model.auxiliary_losses()["cen_l1"].item() == pytest.approx(3 * 1e-3 * hand.item(), rel=1e-6)
    once = build_model(tiny_config("cen", fusion={"l1_weight": 1e-3, "count_per_output": False}, **TWO_BLOCK_RESNET))
    assert once.auxiliary_losses()["cen_l1"].item() == pytest.approx(1e-3 * hand.item(), rel=1e-6)
    assert set(model.diagnostics()) == {f"exchanged_stage{s}" for s in (1, 2, 3, 4)}


def test_the_l1_gradient_reaches_the_scaling_factors_and_a_channel_below_threshold_changes_the_output() -> None:
    config = tiny_config("cen", **TWO_BLOCK_RESNET)
    model = build_model(config).eval()
    with torch.no_grad():  # timm zero-initialises each block's last BN: the residual branch would output nothing
        for name, p in model.named_parameters():
            if ".bn2." in name and name.endswith("weight"):
                p.fill_(1.0)
    inputs = tiny_inputs(config)
    before = model(inputs)["rgb"]
    first = next(m for m in model.modules() if isinstance(m, ChannelExchange))
    with torch.no_grad():
        first.norm.norms[0].weight[0] = 0.0
    assert not torch.allclose(model(inputs)["rgb"], before)
    model.auxiliary_losses()["cen_l1"].backward()
    assert first.norm.norms[0].weight.grad is not None


def test_cen_needs_modality_specific_norms_and_is_segmentation_only() -> None:
    for norm in ("shared", "official_shared", {"statistics": "modality", "affine": "shared"}):
        with pytest.raises(ValidationError, match="not modality-specific"):
            tiny_config("cen", norm=norm)
    with pytest.raises(ValidationError, match="supports segmentation only"):
        tiny_config("cen", task="translation")
