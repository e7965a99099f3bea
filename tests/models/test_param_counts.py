"""Parameter counts of the official architecture (ResNet-101 + RefineNet, 40 classes), built on the meta device.

Counted: every nn.Parameter (encoder BN affines and alpha included); BN running statistics are buffers, not counted.
"""

from __future__ import annotations

import pytest
import torch

from asymfusion.models import build_model
from asymfusion.models.summary import paper_configs, parameter_table


def _millions(method: str, modalities: tuple[str, ...] = ("rgb", "depth")) -> float:
    config = paper_configs()[method]
    config = config.model_copy(update={"modalities": list(modalities),
                                       "in_channels": {m: config.in_channels[m] for m in modalities}})
    with torch.device("meta"):
        model = build_model(config)
    return sum(p.numel() for p in model.parameters()) / 1e6


@pytest.mark.parametrize("method, modalities, expected", [
    ("asymfusion", ("rgb", "depth"), 118.20),
    ("single", ("rgb",), 118.10),
    ("separate", ("rgb", "depth"), 160.60),
])
def test_paper_architecture_parameter_counts(method: str, modalities: tuple[str, ...], expected: float) -> None:
    assert _millions(method, modalities) == pytest.approx(expected, abs=0.01)


def test_running_statistics_are_not_parameters() -> None:
    with torch.device("meta"):
        model = build_model(paper_configs()["asymfusion"])
    names = [n for n, _ in model.named_parameters()]
    assert not any("running" in n or "num_batches" in n for n in names)
    assert any(n.endswith("running_mean") for n, _ in model.named_buffers())


def test_fusion_adds_nothing_over_modality_specific_bn_and_bn_copies_are_all_it_adds_over_shared() -> None:
    table = parameter_table(paper_configs()).set_index("name")
    assert table.loc["asymfusion", "params (M)"] == table.loc["msbn", "params (M)"]
    extra = table.loc["msbn", "params (M)"] - table.loc["shared_bn", "params (M)"]
    assert extra == pytest.approx(table.loc["msbn", "depth (M)"], abs=0.01)
    assert table.loc["late", "params (M)"] == pytest.approx(2 * table.loc["single", "params (M)"], abs=0.01)
