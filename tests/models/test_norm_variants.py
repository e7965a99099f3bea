"""The BN variants of models/norm.py on hand-built batches: which statistics and which affine parameters normalise
each modality's chunk, in training and in evaluation (issue: statistics vs parameter sharing)."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from timm.layers import BatchNormAct2d
from torch import Tensor, nn

from asymfusion.models import build_model
from asymfusion.models.norm import NORM_PRESETS, ModalityBatchNorm, NormSpec, norm_spec

from .conftest import tiny_config, tiny_inputs

EPS = 1e-5
RGB = torch.arange(2 * 2 * 3 * 3, dtype=torch.float32).reshape(2, 2, 3, 3) / 7.0  # chunk 0, mean ~2.5
DEPTH = 40.0 + 3.0 * torch.cos(torch.arange(2 * 2 * 3 * 3, dtype=torch.float32)).reshape(2, 2, 3, 3)  # chunk 1
STACK = torch.cat([RGB, DEPTH])
VARIANTS = {
    "modality": ("modality", "modality"), "shared": ("joint", "shared"), "official_shared": ("chunk", "shared"),
    "own_stats_shared_affine": ("modality", "shared"), "joint_stats_own_affine": ("joint", "modality"),
}


def stats(x: Tensor, unbiased: bool = False) -> tuple[Tensor, Tensor]:
    return x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=unbiased)


def normalise(x: Tensor, mean: Tensor, var: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    view = (1, -1, 1, 1)
    return (x - mean.view(view)) / torch.sqrt(var.view(view) + EPS) * weight.view(view) + bias.view(view)


def variant(name: str, layer: nn.Module | None = None) -> ModalityBatchNorm:
    statistics, affine = VARIANTS[name]
    norm = ModalityBatchNorm(layer or nn.BatchNorm2d(2, momentum=1.0), 2, {"statistics": statistics,
                                                                          "affine": affine})
    with torch.no_grad():  # distinguishable affines: copy m has weight m + 2, bias 10 m
        for m, copy in enumerate(norm.norms):
            copy.weight.fill_(m + 2.0)
            copy.bias.fill_(10.0 * m)
    return norm


def affine_of(norm: ModalityBatchNorm, m: int) -> tuple[Tensor, Tensor]:
    return norm.norms[m].weight.detach(), norm.norms[m].bias.detach()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_variant_normalises_each_chunk_with_the_statistics_and_affine_its_spec_names(name: str) -> None:
    statistics, affine = VARIANTS[name]
    norm = variant(name).train()
    out_train = norm(STACK)
    norm.eval()
    out_eval = norm(STACK)
    joint_batch, joint_running = stats(STACK), stats(STACK, unbiased=True)
    for m, (chunk, got_train, got_eval) in enumerate(zip((RGB, DEPTH), out_train.chunk(2), out_eval.chunk(2))):
        weight, bias = affine_of(norm, m if affine == "modality" else 0)
        if affine == "shared":  # one weight for everyone: the last fill (copy m's) is what every copy holds
            assert norm.norms[0].weight is norm.norms[-1].weight
        if statistics == "joint":
            train_stats, eval_stats = joint_batch, joint_running
        elif statistics == "modality":
            train_stats, eval_stats = stats(chunk), stats(chunk, unbiased=True)
        else:  # chunk: own batch statistics, but one running estimate that the last chunk (depth) wrote
            train_stats, eval_stats = stats(chunk), stats(DEPTH, unbiased=True)
        torch.testing.assert_close(got_train, normalise(chunk, *train_stats, weight, bias), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got_eval, normalise(chunk, *eval_stats, weight, bias), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, distinct_parameters, own", [
    ("modality", 4, 2), ("shared", 2, 0), ("official_shared", 2, 0), ("own_stats_shared_affine", 2, 0),
    ("joint_stats_own_affine", 4, 2)])
def test_each_variant_owns_as_many_parameters_as_its_affine_choice_says(name: str, distinct_parameters: int,
                                                                      own: int) -> None:
    norm = variant(name)
    assert len(list(norm.parameters())) == distinct_parameters  # tied Parameters count once
    assert [len(p) for p in norm.modality_parameters()] == [own, own]


def test_only_the_official_variant_evaluates_one_chunk_with_the_other_chunks_statistics() -> None:
    """The mismatch: trained on per-chunk statistics, the official class evaluates RGB with depth's running ones."""
    for name in VARIANTS:
        norm = variant(name).train()
        train_rgb = norm(STACK)[:2]
        eval_rgb = norm.eval()(STACK)[:2]
        gap = (train_rgb - eval_rgb).abs().max()
        assert (gap > 1.0) == (name == "official_shared"), (name, gap)


def test_joint_statistics_with_own_affines_keep_timm_fused_activation() -> None:
    layer = BatchNormAct2d(2, momentum=1.0, act_layer=nn.ReLU)
    norm = variant("joint_stats_own_affine", layer).train()
    out = norm(STACK)
    mean, var = stats(STACK)
    expected = torch.cat([normalise(c, mean, var, *affine_of(norm, m)).relu()
                          for m, c in enumerate((RGB, DEPTH))])
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_frozen_joint_statistics_do_not_move_while_the_affines_learn() -> None:
    norm = ModalityBatchNorm(2, 2, {"statistics": "joint", "affine": "modality"}, freeze_stats=True).train()
    norm(STACK).sum().backward()
    assert torch.equal(norm.norms[0].running_mean, torch.zeros(2))
    assert all(copy.weight.grad is not None for copy in norm.norms)


def test_presets_and_specs_resolve_and_bad_ones_are_named() -> None:
    assert norm_spec("shared") == NormSpec(statistics="joint", affine="shared")
    assert norm_spec({"statistics": "chunk", "affine": "shared"}).preset() == "official_shared"
    assert set(NORM_PRESETS) == {"modality", "shared", "official_shared"}
    with pytest.raises(ValueError, match="allowed: modality, shared, official_shared"):
        norm_spec("sharde")
    with pytest.raises(ValidationError, match="goes with affine 'shared'"):
        NormSpec(statistics="chunk", affine="modality")


def test_methods_resolve_their_default_norm_and_refuse_what_they_cannot_run() -> None:
    assert tiny_config("shared_bn").norm == "shared"
    assert tiny_config("msbn").norm == "modality" and tiny_config("asymfusion").norm == "modality"
    spec = {"statistics": "modality", "affine": "shared"}
    assert tiny_config("shared_bn", norm=spec).norm == NormSpec(**spec)
    with pytest.raises(ValidationError, match="Use method msbn"):
        tiny_config("shared_bn", norm="modality")
    with pytest.raises(ValidationError, match="translation models normalise with InstanceNorms"):
        tiny_config("msbn", task="translation", norm={"statistics": "joint", "affine": "modality"})
    with pytest.raises(ValidationError, match="norm"):
        tiny_config("msbn", norm="sharde")


def test_official_and_own_statistics_shared_affine_train_identically_and_differ_only_in_evaluation() -> None:
    """Both normalise each chunk with its own batch statistics while training: same outputs and gradients from the
    same seed; in evaluation the official class switches to one blended running estimate."""
    outputs = {}
    for norm in ("official_shared", {"statistics": "modality", "affine": "shared"}):
        config = tiny_config("shared_bn", norm=norm)
        torch.manual_seed(0)
        model = build_model(config).train()
        inputs = tiny_inputs(config)
        train = model(inputs)["ensemble"]
        train.sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        for _ in range(3):
            model(inputs)
        outputs[str(norm)] = (train.detach(), grads, model.eval()(inputs)["ensemble"].detach())
    (train_a, grads_a, eval_a), (train_b, grads_b, eval_b) = outputs.values()
    torch.testing.assert_close(train_a, train_b)
    assert len(grads_a) == len(grads_b) and all(torch.allclose(a, b) for a, b in zip(grads_a, grads_b))
    assert not torch.allclose(eval_a, eval_b, atol=1e-3)


def test_shared_bn_default_is_one_ordinary_batchnorm_over_the_stack() -> None:
    """Joint statistics: in training the RGB branch sees depth through the batch statistics (no fusion op does
    that in shared_bn); with per-modality statistics (msbn) it does not."""
    for method, mixes in (("shared_bn", True), ("msbn", False)):
        config = tiny_config(method)
        model = build_model(config).train()
        norms = [m for m in model.modules() if isinstance(m, ModalityBatchNorm)]
        assert norms and all(len(n.norms) == (1 if mixes else 2) for n in norms)
        inputs = tiny_inputs(config)
        torch.manual_seed(1)  # same dropout masks for both calls
        rgb = model(inputs)["rgb"]
        torch.manual_seed(1)
        other_depth = model({**inputs, "depth": inputs["depth"] * 5 + 3})["rgb"]
        assert (not torch.allclose(rgb, other_depth)) == mixes, method
