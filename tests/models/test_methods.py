"""Every registered method, each task it declares, 2 and 3 modalities: the output contract, gradients, parameter
groups. Branches, tasks and used modalities are read from the method and its model, never from a list of names,
so a new method file is tested by this module as it stands (tests/models/test_new_method_file.py checks that)."""

from __future__ import annotations

import pytest
import torch

from asymfusion.models import build_model, list_fusions
from asymfusion.models.fusion import get_fusion

from .conftest import TWO_BLOCK_RESNET, tiny_config, tiny_inputs

CASES = [(method, task, modalities) for method in list_fusions() for task in get_fusion(method).tasks
         for modalities in (("rgb", "depth"), ("rgb", "depth", "normal"))
         if len(modalities) <= (get_fusion(method).max_modalities or 3)]
METHOD_TASKS = [(method, task) for method in list_fusions() for task in get_fusion(method).tasks]


def test_the_seven_paper_methods_are_registered() -> None:
    assert {"single", "early", "late", "separate", "shared_bn", "msbn", "asymfusion"} <= set(list_fusions())


@pytest.mark.parametrize("method, task, modalities", CASES)
def test_forward_backward_and_output_contract(method: str, task: str, modalities: tuple[str, ...]) -> None:
    config = tiny_config(method, task=task, modalities=modalities)
    model = build_model(config).train()
    inputs = tiny_inputs(config, requires_grad=True)
    outputs = model(inputs)

    branched = model.ensemble is not None
    expected_keys = [*model.modalities, "ensemble"] if branched else ["ensemble"]
    assert list(outputs) == expected_keys == model.output_names
    assert set(model.modalities) <= set(modalities) and (not branched or len(model.modalities) >= 2)
    channels = 5 if task == "segmentation" else 3
    assert all(out.shape == (2, channels, 32, 32) for out in outputs.values())
    if task == "translation":
        assert all(out.abs().max() <= 1 for out in outputs.values())

    sum(out.square().mean() for out in outputs.values()).backward()
    used = model.modalities  # the inputs the model reads (single: the chosen one)
    for m in modalities:
        reached = inputs[m].grad is not None and inputs[m].grad.abs().sum() > 0
        assert reached == (m in used), m


@pytest.mark.parametrize("method, task", METHOD_TASKS)
def test_the_gradient_reaches_every_trainable_parameter(method: str, task: str) -> None:
    # timm zero-initialises each residual block's last BN scale, which blocks the gradient at step 0 on purpose
    resnet = {"backbone_kwargs": {"zero_init_last": False}} if task == "segmentation" else {}
    config = tiny_config(method, task=task, **resnet)
    model = build_model(config).train()
    outputs = model(tiny_inputs(config))
    (sum(out.square().mean() for out in outputs.values()) + sum(model.auxiliary_losses().values())).backward()
    # None: the parameter is not in the graph (built but unused). A zero gradient can be a squeeze MLP's dead ReLU
    # at this seed (2 hidden units), so it is only bounded.
    unreached = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unreached, f"{method}: no gradient reaches {unreached[:5]}"
    zero = [n for n, p in model.named_parameters() if p.requires_grad and not p.grad.any()]
    assert len(zero) <= 0.1 * len(list(model.parameters())), f"{method}: zero gradient on {zero}"


@pytest.mark.parametrize("method, task", METHOD_TASKS)
def test_param_groups_partition_the_trainable_parameters(method: str, task: str) -> None:
    model = build_model(tiny_config(method, task=task))
    groups = model.param_groups()
    assert set(groups) == {"encoder", "decoder", "ensemble"}
    grouped = [id(p) for ps in groups.values() for p in ps]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    assert groups["encoder"] and groups["decoder"]
    branches = len(model.modalities) if model.ensemble is not None else 0
    assert [p.shape for p in groups["ensemble"]] == ([torch.Size([branches])] if branches else [])


@pytest.mark.parametrize("method, task", METHOD_TASKS)
def test_auxiliary_losses_are_finite_scalars_with_gradients_and_diagnostics_are_numbers(method: str,
                                                                                         task: str) -> None:
    config = tiny_config(method, task=task)
    model = build_model(config).train()
    model(tiny_inputs(config))
    for name, term in model.auxiliary_losses().items():
        assert name.isidentifier() and term.dim() == 0 and torch.isfinite(term), name
        assert term.requires_grad, f"{method}: auxiliary loss {name!r} reaches no parameter"
    assert all(isinstance(v, float) for v in model.diagnostics().values()), method


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
