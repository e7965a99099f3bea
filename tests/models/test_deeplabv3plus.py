"""DeepLabv3+ decoder: selectable per experiment, output contract, batch-1 training, config compatibility."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from asymfusion.models import build_model
from asymfusion.models.config import DeepLabV3PlusOptions, RefineNetOptions
from asymfusion.models.decoders import DeepLabV3PlusDecoder
from asymfusion.models.norm import ModalityBatchNorm

from .conftest import TWO_BLOCK_RESNET, tiny_config, tiny_inputs

DEEPLAB = {"name": "deeplabv3plus", "aspp_channels": 16, "low_level_channels": 8}


def deeplab_config(method: str, **overrides):
    return tiny_config(method, decoder=DEEPLAB, **{**TWO_BLOCK_RESNET, **overrides})


@pytest.mark.parametrize("method", ["single", "msbn", "asymfusion"])
def test_logits_at_input_size_for_each_method(method: str) -> None:
    config = deeplab_config(method)
    model = build_model(config).eval()
    assert any(isinstance(m, DeepLabV3PlusDecoder) for m in model.modules())
    with torch.no_grad():
        outputs = model(tiny_inputs(config, size=64))
    assert all(out.shape == (2, 5, 64, 64) for out in outputs.values())


def test_decoder_returns_stride_4_logits_and_uses_the_deepest_feature() -> None:
    decoder = DeepLabV3PlusDecoder([4, 6, 8, 10], num_classes=3, aspp_channels=8, low_level_channels=4).eval()
    features = [torch.randn(1, c, 64 // s, 64 // s) for c, s in zip([4, 6, 8, 10], [4, 8, 16, 32])]
    assert decoder(features).shape == (1, 3, 16, 16)


def test_batch_of_one_per_modality_trains_and_reaches_aspp() -> None:
    config = deeplab_config("asymfusion")
    model = build_model(config).train()
    outputs = model(tiny_inputs(config, size=64, batch=1))
    sum(out.square().mean() for out in outputs.values()).backward()
    aspp = next(m for m in model.modules() if isinstance(m, DeepLabV3PlusDecoder)).aspp
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in aspp.parameters())


def test_decoder_norms_are_modality_specific_in_shared_encoder_methods() -> None:
    decoder = next(m for m in build_model(deeplab_config("msbn")).modules() if isinstance(m, DeepLabV3PlusDecoder))
    norms = [m for m in decoder.modules() if isinstance(m, ModalityBatchNorm)]
    assert norms and all(len(n.norms) == 2 and n.num_modalities == 2 for n in norms)
    shared = next(m for m in build_model(deeplab_config("shared_bn")).modules() if isinstance(m, ModalityBatchNorm))
    assert len(shared.norms) == 1


def test_config_without_name_is_refinenet_and_bad_names_list_the_choices() -> None:
    assert isinstance(tiny_config("msbn", decoder={"width": 8, "dropout": 0.0}).decoder, RefineNetOptions)
    assert isinstance(tiny_config("msbn").decoder, RefineNetOptions)
    assert isinstance(deeplab_config("msbn").decoder, DeepLabV3PlusOptions)
    # Dumps (run hashes, checkpoints) of RefineNet configs are as before the choice existed, and round-trip.
    assert tiny_config("msbn").model_dump()["decoder"] == {"width": 8, "dropout": 0.5}
    dumped = deeplab_config("msbn").model_dump()
    assert dumped["decoder"]["name"] == "deeplabv3plus"
    assert isinstance(type(deeplab_config("msbn")).model_validate(dumped).decoder, DeepLabV3PlusOptions)
    with pytest.raises(ValidationError, match="unknown decoder 'deeplab'; allowed: refinenet, deeplabv3plus"):
        tiny_config("msbn", decoder={"name": "deeplab"})
    with pytest.raises(ValidationError, match="width"):
        tiny_config("msbn", decoder={"name": "deeplabv3plus", "width": 8})


def test_param_count_differs_from_refinenet() -> None:
    refinenet = build_model(tiny_config("msbn", **TWO_BLOCK_RESNET))
    deeplab = build_model(deeplab_config("msbn"))
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    assert count(refinenet) != count(deeplab)


def test_config_errors_name_the_key_as_written_and_tuning_paths_reach_decoder_options() -> None:
    from asymfusion.benchmark.config.messages import format_validation_error
    from asymfusion.benchmark.config.tuning_checks import check_path
    from asymfusion.models import ModelConfig

    with pytest.raises(ValidationError) as error:
        tiny_config("msbn", decoder={"widht": 8})
    assert format_validation_error(error.value, ModelConfig, "p") == (
        "p: decoder.widht: unknown key (allowed: name, width, dropout)")
    check_path("model.decoder.width", "msbn")
    check_path("model.decoder.atrous_rates", "msbn")
    with pytest.raises(ValueError, match="allowed: name, width"):
        check_path("model.decoder.widht", "msbn")
