"""Every registered method, both tasks, 2 and 3 modalities: the output contract, gradients, parameter groups."""

from __future__ import annotations

import pytest
import torch

from asymfusion.models import build_model, list_fusions

from .conftest import TWO_BLOCK_RESNET, tiny_config, tiny_inputs

BRANCHED = {"late", "shared_bn", "msbn", "asymfusion"}
CASES = [(method, task, modalities) for method in list_fusions() for task in ("segmentation", "translation")
         for modalities in (("rgb", "depth"), ("rgb", "depth", "normal"))]


def test_the_seven_paper_methods_are_registered() -> None:
    assert {"single", "early", "late", "separate", "shared_bn", "msbn", "asymfusion"} <= set(list_fusions())


@pytest.mark.parametrize("method, task, modalities", CASES)
def test_forward_backward_and_output_contract(method: str, task: str, modalities: tuple[str, ...]) -> None:
    config = tiny_config(method, task=task, modalities=modalities)
    model = build_model(config).train()
    inputs = tiny_inputs(config, requires_grad=True)
    outputs = model(inputs)

    expected_keys = [*modalities, "ensemble"] if method in BRANCHED else ["ensemble"]
    assert list(outputs) == expected_keys == model.output_names
    channels = 5 if task == "segmentation" else 3
    assert all(out.shape == (2, channels, 32, 32) for out in outputs.values())
    if task == "translation":
        assert all(out.abs().max() <= 1 for out in outputs.values())

    sum(out.square().mean() for out in outputs.values()).backward()
    used = modalities[:1] if method == "single" else modalities
    for m in modalities:
        reached = inputs[m].grad is not None and inputs[m].grad.abs().sum() > 0
        assert reached == (m in used), m


@pytest.mark.parametrize("method", sorted(list_fusions()))
@pytest.mark.parametrize("task", ["segmentation", "translation"])
def test_param_groups_partition_the_trainable_parameters(method: str, task: str) -> None:
    model = build_model(tiny_config(method, task=task))
    groups = model.param_groups()
    assert set(groups) == {"encoder", "decoder", "ensemble"}
    grouped = [id(p) for ps in groups.values() for p in ps]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    assert groups["encoder"] and groups["decoder"]
    assert [p.shape for p in groups["ensemble"]] == ([torch.Size([2])] if method in BRANCHED else [])


def test_ensemble_is_the_alpha_softmax_of_detached_branches() -> None:
    config = tiny_config("msbn")
    model = build_model(config).eval()
    assert torch.equal(model.ensemble.alpha, torch.ones(2))
    with torch.no_grad():
        model.ensemble.alpha.copy_(torch.tensor([0.0, 1.0]))
    outputs = model(tiny_inputs(config))
    w = torch.softmax(torch.tensor([0.0, 1.0]), 0)
    assert torch.allclose(outputs["ensemble"], w[0] * outputs["rgb"] + w[1] * outputs["depth"], atol=1e-6)
    outputs["ensemble"].sum().backward()
    assert model.ensemble.alpha.grad is not None
    assert all(p.grad is None for n, p in model.named_parameters() if "alpha" not in n)


def test_single_uses_the_chosen_modality() -> None:
    config = tiny_config("single", fusion={"modality": "depth"})
    inputs = tiny_inputs(config, requires_grad=True)
    build_model(config)(inputs)["ensemble"].sum().backward()
    assert inputs["rgb"].grad is None and inputs["depth"].grad is not None


@pytest.mark.parametrize("merge", ["sum", "concat"])
def test_separate_merges_by_sum_without_parameters_or_by_concat_and_1x1(merge: str) -> None:
    model = build_model(tiny_config("separate", fusion={"merge": merge}))
    extra = sum(p.numel() for p in model.parameters()) - sum(
        p.numel() for p in build_model(tiny_config("separate")).parameters())
    channels = model.encoders["rgb"].channels
    assert extra == (0 if merge == "sum" else sum(2 * c * c + c for c in channels))


@pytest.mark.parametrize("method", ["msbn", "asymfusion", "shared_bn"])
@pytest.mark.parametrize("task", ["segmentation", "translation"])
def test_loop_execution_matches_stacked_execution(method: str, task: str) -> None:
    stacked_config = tiny_config(method, task=task, decoder={"width": 8, "dropout": 0.0},
                                 generator={"base_channels": 4, "depth": 5, "dropout": 0.0}, **TWO_BLOCK_RESNET)
    loop_config = stacked_config.model_copy(update={"execution": "loop"})
    inputs = tiny_inputs(stacked_config)
    torch.manual_seed(3)
    stacked = build_model(stacked_config).train()
    torch.manual_seed(3)
    loop = build_model(loop_config).train()
    assert stacked.state_dict().keys() == loop.state_dict().keys()
    assert any(type(m).__name__.startswith("PerModality") for m in loop.modules())
    for a, b in zip(stacked(inputs).values(), loop(inputs).values()):
        assert torch.allclose(a, b, atol=1e-5)


def test_missing_modality_input_is_named() -> None:
    config = tiny_config("msbn")
    with pytest.raises(KeyError, match="depth"):
        build_model(config)({"rgb": torch.randn(2, 3, 32, 32)})


def test_depth_is_tiled_to_the_rgb_stem_and_extra_keys_are_ignored() -> None:
    config = tiny_config("msbn")
    inputs = tiny_inputs(config) | {"target": torch.zeros(2, 32, 32)}
    assert build_model(config)(inputs)["depth"].shape == (2, 5, 32, 32)
