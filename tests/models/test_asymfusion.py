"""AsymFusion placement and block semantics against the official code's rules (docs/design.md §5)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from timm.models.resnet import BasicBlock, Bottleneck

from asymfusion.models import build_model
from asymfusion.models.encoder import FusedStage
from asymfusion.models.fusion.asymfusion import FusedBasicBlock, FusedBottleneck
from asymfusion.models.fusion.ops import ShuffleShift
from asymfusion.models.norm import convert_batchnorm

from .conftest import TWO_BLOCK_RESNET, tiny_config, tiny_inputs


def _official_shift(a: torch.Tensor) -> torch.Tensor:
    """The official ShiftShuffle's shift: pad by 1, crop at pos (-1,0), (0,-1), (0,1), (1,0); zeros past 4g."""
    g, (h, w) = a.shape[1] // 5, a.shape[-2:]
    parts = [F.pad(a[:, i * g:(i + 1) * g], (1, 1, 1, 1))[:, :, dh + 1:h + dh + 1, dw + 1:w + dw + 1]
             for i, (dh, dw) in enumerate([(-1, 0), (0, -1), (0, 1), (1, 0)])]
    return torch.cat([*parts, torch.zeros_like(a[:, 4 * g:])], dim=1)


def _official_swap(x0: torch.Tensor, x1: torch.Tensor) -> list[torch.Tensor]:
    k = 4 * (x0.shape[1] // 5)
    return [torch.cat([x0[:, :k], x1[:, k:]], 1), torch.cat([x1[:, :k], x0[:, k:]], 1)]


def _two_modality_block(block: torch.nn.Module) -> torch.nn.Module:
    block = copy.deepcopy(block)
    convert_batchnorm(block, num_modalities=2)
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
    return block.eval()


def test_fused_bottleneck_reproduces_the_official_forward() -> None:
    block = _two_modality_block(Bottleneck(40, 10))
    fused = FusedBottleneck(block, ShuffleShift(10, num_modalities=2)).eval()
    x = torch.randn(4, 40, 6, 6)
    xs = x.chunk(2)
    bn = lambda name, m: getattr(block, name).norms[m]  # noqa: E731
    a = [F.relu(bn("bn1", m)(block.conv1(xs[m]))) for m in range(2)]
    shift = [_official_shift(t) for t in a]
    b = [F.relu(bn("bn2", m)(block.conv2(t))) for m, t in enumerate(_official_swap(*a))]
    b = _official_swap(b[0] + shift[1], b[1] + shift[0])
    expected = [F.relu(bn("bn3", m)(block.conv3(b[m])) + xs[m]) for m in range(2)]
    assert torch.allclose(fused(x), torch.cat(expected), atol=1e-5)


def test_fused_basic_block_shuffles_again_right_before_the_residual_add() -> None:
    block = _two_modality_block(BasicBlock(10, 10))
    fused = FusedBasicBlock(block, ShuffleShift(10, num_modalities=2)).eval()
    x = torch.randn(4, 10, 6, 6)
    xs = x.chunk(2)
    bn = lambda name, m: getattr(block, name).norms[m]  # noqa: E731
    a = [F.relu(bn("bn1", m)(block.conv1(xs[m]))) for m in range(2)]
    shift = [_official_shift(t) for t in a]
    b = [bn("bn2", m)(block.conv2(t)) for m, t in enumerate(_official_swap(*a))]
    b = _official_swap(b[0] + shift[1], b[1] + shift[0])
    assert torch.allclose(fused(x), torch.cat([F.relu(b[m] + xs[m]) for m in range(2)]), atol=1e-5)


def test_resnet101_fuses_in_the_last_block_of_each_stage_with_the_official_fractions() -> None:
    config = tiny_config("asymfusion", backbone="resnet101", num_classes=40, decoder={"width": 256})
    with torch.device("meta"):
        model = build_model(config)
    fused = {name: m for name, m in model.named_modules() if isinstance(m, FusedBottleneck)}
    last_blocks = ["layer1.2", "layer2.3", "layer3.22", "layer4.2"]
    assert sorted(fused) == sorted(f"net.encoder.body.{p}" for p in last_blocks)
    assert [fused[f"net.encoder.body.{p}"].fusion.exchanged for p in last_blocks] == [16, 28, 52, 104]
    assert not any(isinstance(m, FusedStage) for m in model.modules())
    with torch.device("meta"):
        msbn = build_model(config.model_copy(update={"method": "msbn", "fusion": {}}))
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in msbn.parameters())


def test_two_block_resnet_fuses_inside_each_stages_second_basic_block() -> None:
    model = build_model(tiny_config("asymfusion", **TWO_BLOCK_RESNET))
    fused = sorted(n for n, m in model.named_modules() if isinstance(m, FusedBasicBlock))
    assert fused == [f"net.encoder.body.layer{i}.1" for i in range(1, 5)]


def test_single_block_stages_get_the_ops_at_the_stage_output() -> None:
    model = build_model(tiny_config("asymfusion"))  # timm test_resnet: one block per stage
    stages = {n: m for n, m in model.named_modules() if isinstance(m, FusedStage)}
    assert sorted(stages) == [f"net.encoder.body.layer{i}" for i in range(1, 5)]
    assert [s.fusion.channels for s in stages.values()] == model.encoder.channels
    assert not any(isinstance(m, (FusedBottleneck, FusedBasicBlock)) for m in model.modules())


def test_stage_selection_fuses_only_the_chosen_stages() -> None:
    model = build_model(tiny_config("asymfusion", fusion={"stages": [2, 4]}, **TWO_BLOCK_RESNET))
    assert sorted(n for n, m in model.named_modules() if isinstance(m, FusedBasicBlock)) == \
        ["net.encoder.body.layer2.1", "net.encoder.body.layer4.1"]


def test_translation_fuses_after_the_instance_normalised_unet_levels() -> None:
    model = build_model(tiny_config("asymfusion", task="translation"))
    assert sorted(int(k) for k in model.encoder.fusion) == [2, 3, 4]  # depth 5: levels 2..4 carry InstanceNorm


def _cross_gradient(model: torch.nn.Module, config, branch: str, source: str) -> float:
    inputs = tiny_inputs(config, requires_grad=True)
    model(inputs)[branch].square().sum().backward()
    return 0.0 if inputs[source].grad is None else inputs[source].grad.abs().sum().item()


@pytest.mark.parametrize("task", ["segmentation", "translation"])
def test_branches_see_the_other_modality_only_through_the_fusion_ops(task: str) -> None:
    fused = tiny_config("asymfusion", task=task, **TWO_BLOCK_RESNET)
    plain = tiny_config("msbn", task=task, **TWO_BLOCK_RESNET)
    assert _cross_gradient(build_model(fused).eval(), fused, "rgb", "depth") > 0
    assert _cross_gradient(build_model(plain).eval(), plain, "rgb", "depth") == 0


def test_unidirectional_fusion_lets_only_the_receiver_see_the_other_modality() -> None:
    config = tiny_config("asymfusion", fusion={"direction": "rgb"}, **TWO_BLOCK_RESNET)
    assert _cross_gradient(build_model(config).eval(), config, "rgb", "depth") > 0
    assert _cross_gradient(build_model(config).eval(), config, "depth", "rgb") == 0


def test_three_modalities_fuse_around_the_ring() -> None:
    config = tiny_config("asymfusion", modalities=("rgb", "depth", "normal"), **TWO_BLOCK_RESNET)
    assert _cross_gradient(build_model(config).eval(), config, "rgb", "normal") > 0


def test_with_both_ops_off_asymfusion_is_msbn() -> None:
    config = tiny_config("asymfusion", fusion={"shuffle": False, "shift": False}, **TWO_BLOCK_RESNET)
    inputs = tiny_inputs(config)
    torch.manual_seed(1)
    off = build_model(config).eval()
    torch.manual_seed(1)
    msbn = build_model(config.model_copy(update={"method": "msbn", "fusion": {}})).eval()
    assert torch.allclose(off(inputs)["ensemble"], msbn(inputs)["ensemble"], atol=1e-6)


def test_symmetric_variant_changes_the_output_but_not_the_parameters() -> None:
    config = tiny_config("asymfusion", **TWO_BLOCK_RESNET)
    inputs = tiny_inputs(config)
    torch.manual_seed(1)
    asym = build_model(config).eval()
    torch.manual_seed(1)
    sym = build_model(config.model_copy(update={"fusion": {**config.fusion, "symmetric": True}})).eval()
    assert sum(p.numel() for p in asym.parameters()) == sum(p.numel() for p in sym.parameters())
    assert not torch.allclose(asym(inputs)["rgb"], sym(inputs)["rgb"])


@pytest.mark.parametrize("fusion, message", [({"direction": "thermal"}, "direction"), ({"stages": [5]}, "stages")])
def test_bad_fusion_options_fail_at_build_time(fusion: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(tiny_config("asymfusion", fusion=fusion))
