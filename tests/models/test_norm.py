"""Modality-specific normalisation: per-chunk statistics, copies of the original BN, freezing, timm families."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from asymfusion.models import ModalityBatchNorm, build_model
from asymfusion.models.encoder import FusedStage
from asymfusion.models.norm import ModalityNorm, convert_batchnorm

from .conftest import tiny_config, tiny_inputs


def test_each_modality_chunk_is_normalised_with_its_own_statistics() -> None:
    norm = ModalityBatchNorm(3, num_modalities=2)
    x = torch.cat([torch.randn(4, 3, 5, 5), 100 + 10 * torch.randn(4, 3, 5, 5)])
    out = norm(x)
    for chunk in out.chunk(2):
        assert chunk.mean().abs() < 1e-4 and (chunk.var(unbiased=False) - 1).abs() < 1e-2
    assert norm.norms[0].running_mean.mean() < 1 < 5 < norm.norms[1].running_mean.mean()


def test_official_shared_norm_keeps_one_copy_but_still_normalises_chunks_separately() -> None:
    norm = ModalityBatchNorm(3, num_modalities=2, spec="official_shared")
    assert len(norm.norms) == 1
    out = norm(torch.cat([torch.randn(4, 3, 5, 5), 100 + torch.randn(4, 3, 5, 5)]))
    assert out[4:].mean().abs() < 1e-4  # the second chunk is not normalised with the first one's statistics


def test_frozen_statistics_do_not_move_in_training_mode_but_affines_learn() -> None:
    norm = ModalityBatchNorm(3, num_modalities=2, freeze_stats=True).train()
    norm(torch.randn(8, 3, 5, 5) + 3).sum().backward()
    assert all(torch.equal(n.running_mean, torch.zeros(3)) for n in norm.norms)
    assert all(n.weight.grad is not None for n in norm.norms)
    assert norm.training and not norm.norms[0].training


def test_a_batch_that_does_not_split_into_modalities_is_rejected() -> None:
    with pytest.raises(ValueError, match="does not split"):
        ModalityBatchNorm(3, num_modalities=2)(torch.randn(3, 3, 2, 2))


@pytest.mark.parametrize("backbone, kwargs", [
    ("test_resnet", {}),
    ("resnext50_32x4d", {"layers": [1, 1, 1, 1], "channels": [16, 32, 64, 128]}),
    ("regnetx_002", {}),
    ("test_efficientnet", {}),
])
def test_every_batchnorm_of_a_timm_family_becomes_copies_of_itself(backbone: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    reference = timm.create_model(backbone, features_only=True, **kwargs)
    reference_bns = {n: m for n, m in reference.named_modules() if isinstance(m, nn.BatchNorm2d)}
    with torch.no_grad():  # make the copies distinguishable from a fresh BN
        for bn in reference_bns.values():
            bn.weight.uniform_(0.5, 1.5)
            bn.running_var.uniform_(0.5, 1.5)
    converted = convert_batchnorm(reference, num_modalities=3)
    assert converted == len(reference_bns) > 0
    wrappers = {n: m for n, m in reference.named_modules() if isinstance(m, ModalityNorm)}
    assert set(wrappers) == set(reference_bns)
    for name, wrapper in wrappers.items():
        assert len(wrapper.norms) == 3
        for copy in wrapper.norms:
            assert copy is not reference_bns[name] and type(copy) is type(reference_bns[name])
            assert torch.equal(copy.weight, reference_bns[name].weight)
            assert torch.equal(copy.running_var, reference_bns[name].running_var)
    bare = [n for n, m in reference.named_modules() if isinstance(m, nn.BatchNorm2d)
            and not any(n.startswith(w + ".norms.") for w in wrappers)]
    assert bare == []


@pytest.mark.parametrize("backbone, kwargs", [("regnetx_002", {}), ("test_efficientnet", {})])
def test_non_resnet_families_train_with_asymfusion_at_their_stage_outputs(backbone: str, kwargs: dict) -> None:
    config = tiny_config("asymfusion", backbone=backbone, backbone_kwargs=kwargs)
    model = build_model(config)
    assert sum(isinstance(m, FusedStage) for m in model.modules()) == 4
    inputs = tiny_inputs(config, requires_grad=True)
    sum(o.mean() for o in model(inputs).values()).backward()
    assert all(x.grad.abs().sum() > 0 for x in inputs.values())


def test_a_backbone_without_batchnorm_fails_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match=r"no BatchNorm layers.*LayerNorm"):
        build_model(tiny_config("msbn", backbone="test_convnext"))


def test_single_modality_methods_accept_a_backbone_without_batchnorm() -> None:
    model = build_model(tiny_config("early", backbone="test_convnext"))
    assert model(tiny_inputs(tiny_config("early")))["ensemble"].shape == (2, 5, 32, 32)


def test_model_freezes_encoder_bn_statistics_only_when_asked() -> None:
    for freeze in (True, False):
        config = tiny_config("msbn", freeze_bn_stats=freeze)
        model = build_model(config).train()
        norm = next(m for m in model.modules() if isinstance(m, ModalityNorm))
        before = norm.norms[0].running_mean.clone()
        model(tiny_inputs(config))
        assert torch.equal(norm.norms[0].running_mean, before) == freeze
