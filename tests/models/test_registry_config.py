"""Registry and ModelConfig validation: names, option keys, task fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from asymfusion.models import ModelConfig, list_fusions, register_fusion
from asymfusion.models.fusion import registry
from asymfusion.models.fusion.base import FusionMethod

from .conftest import tiny_config


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    list_fusions()  # built-ins discovered before the copy
    monkeypatch.setattr(registry.FUSIONS, "entries", dict(registry.FUSIONS.entries))


def test_registering_a_taken_name_raises(scratch_registry) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_fusion("msbn")(type("Again", (FusionMethod,), {}))


def test_a_registered_method_is_listed_and_usable_in_config(scratch_registry) -> None:
    register_fusion("my_method")(type("Mine", (FusionMethod,), {}))
    assert "my_method" in list_fusions()
    assert tiny_config("my_method").method == "my_method"


def test_an_unknown_method_lists_the_registered_ones() -> None:
    registered = r"unknown fusion method 'nope'; registered: (.*, )?asymfusion, (.*, )?early\b"
    with pytest.raises(ValidationError, match=registered):
        tiny_config("nope")


def test_unknown_fusion_options_are_rejected_naming_the_allowed_ones() -> None:
    expected = r"\['shufle'\] not accepted by method 'asymfusion'; allowed: .*'shuffle'"
    with pytest.raises(ValidationError, match=expected):
        tiny_config("asymfusion", fusion={"shufle": False})
    with pytest.raises(ValidationError, match="not accepted by method 'msbn'"):
        tiny_config("msbn", fusion={"stages": [1]})


def test_fusion_options_resolve_to_the_full_option_set() -> None:
    config = tiny_config("asymfusion", fusion={"shift": False})
    assert config.fusion["shift"] is False and config.fusion["shuffle"] is True
    assert config.fusion["direction"] == "bidirectional"
    with pytest.raises(ValidationError):
        tiny_config("asymfusion", fusion={"exchanged_fraction": 1.5})


@pytest.mark.parametrize("overrides, message", [
    ({"num_classes": None}, "segmentation needs num_classes"),
    ({"in_channels": {"rgb": 3}}, "must match modalities"),
    ({"modalities": ["rgb", "rgb"], "in_channels": {"rgb": 3}}, "unique"),
    ({"decoder": {"widht": 8}}, "widht"),
    ({"stem_channels": 2}, "thinner"),
    ({"unknown_field": 1}, "unknown_field"),
])
def test_inconsistent_configs_are_rejected(overrides: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        tiny_config("msbn", **overrides)


def test_translation_needs_out_channels_and_takes_no_pretrained_weights() -> None:
    with pytest.raises(ValidationError, match="out_channels"):
        tiny_config("msbn", task="translation", out_channels=None)
    with pytest.raises(ValidationError, match="from scratch"):
        tiny_config("msbn", task="translation", pretrained=True)


def test_defaults_follow_the_official_protocol() -> None:
    config = ModelConfig(method="asymfusion", task="segmentation", modalities=["rgb", "depth"],
                         in_channels={"rgb": 3, "depth": 1}, num_classes=40)
    assert (config.freeze_bn_stats, config.norm, config.pretrained, config.execution) == (
        True, "modality", False, "stacked")
    assert (config.decoder.width, config.decoder.dropout) == (256, 0.5)
    assert (config.generator.base_channels, config.generator.depth) == (64, 8)
    assert config.resolved_stem_channels() == 3


def test_every_config_field_is_documented() -> None:
    assert all(field.description for field in ModelConfig.model_fields.values())


def test_a_resolved_config_round_trips_through_json() -> None:
    config = tiny_config("asymfusion", fusion={"direction": "rgb"}, backbone_kwargs={"channels": [16, 32, 64, 128]})
    assert ModelConfig.model_validate_json(config.model_dump_json()) == config


def test_a_method_is_rejected_for_a_task_it_does_not_declare(scratch_registry) -> None:
    register_fusion("seg_only")(type("SegOnly", (FusionMethod,), {"tasks": ("segmentation",)}))
    assert tiny_config("seg_only").method == "seg_only"
    with pytest.raises(ValidationError, match=r"'seg_only' supports segmentation only; .* translation dataset"):
        tiny_config("seg_only", task="translation")
