"""Pretrained encoder weights from a local file; every modality's BN starts as a copy of the pretrained one."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from pydantic import ValidationError

from asymfusion.models import build_model

from .conftest import tiny_config


@pytest.fixture
def weight_file(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(123)
    state = timm.create_model("test_resnet").state_dict()
    state["bn1.running_mean"].uniform_(-1, 1)
    path = tmp_path / "test_resnet.pth"
    torch.save(state, path)
    return path, state


def test_pretrained_file_is_loaded_and_copied_into_every_modality_bn(weight_file) -> None:
    path, state = weight_file
    model = build_model(tiny_config("asymfusion", pretrained=True, pretrained_file=str(path)))
    body = model.encoder.body
    assert torch.equal(body.conv1[0].weight, state["conv1.0.weight"])
    assert torch.equal(body.layer3.stage[0].conv2.weight, state["layer3.0.conv2.weight"])
    for copy in body.bn1.norms:
        assert torch.equal(copy.running_mean, state["bn1.running_mean"])
        assert torch.equal(copy.weight, state["bn1.weight"])


def test_weights_are_random_by_default(weight_file) -> None:
    path, state = weight_file
    model = build_model(tiny_config("msbn"))
    assert not torch.equal(model.encoder.body.conv1[0].weight, state["conv1.0.weight"])


def test_a_weight_file_without_pretrained_on_is_an_error_not_a_silent_skip(weight_file) -> None:
    with pytest.raises(ValidationError, match="pretrained_file is set but pretrained is false"):
        tiny_config("msbn", pretrained=False, pretrained_file=str(weight_file[0]))


def test_early_fusion_adapts_the_pretrained_stem_to_the_concatenated_channels(weight_file) -> None:
    path, state = weight_file
    model = build_model(tiny_config("early", pretrained=True, pretrained_file=str(path)))
    assert model.net.encoder.body.conv1[0].weight.shape[1] == 4


def test_a_missing_pretrained_file_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_model(tiny_config("msbn", pretrained=True, pretrained_file=str(tmp_path / "nope.pth")))


def test_a_weight_file_for_another_architecture_fails_loudly(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save(timm.create_model("resnet18", channels=(16, 32, 64, 128)).state_dict(), path)
    with pytest.raises(RuntimeError, match="could not load pretrained weights"):
        build_model(tiny_config("msbn", pretrained=True, pretrained_file=str(path)))
