"""Qualitative grids say which panels are inputs and which are predictions, and what their colours mean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from asymfusion.benchmark.engine.qualitative import column_titles, qualitative_grid


def test_headings_tell_inputs_from_predictions() -> None:
    assert column_titles(["rgb", "depth"], ["rgb", "depth", "ensemble"]) == [
        "input: rgb", "input: depth", "ground truth", "prediction: rgb branch", "prediction: depth branch",
        "prediction: ensemble"]


class _Loader:
    modalities = ["rgb", "depth"]

    def __len__(self) -> int:
        return 2

    def load_raw(self, i: int) -> dict[str, np.ndarray]:
        depth = np.linspace(0.5, 4.0, 16 * 16, dtype=np.float32).reshape(16, 16)
        depth[:2] = 0  # missing depth
        return {"rgb": np.full((16, 16, 3), 100, np.uint8), "depth": depth,
                "target": np.arange(16 * 16).reshape(16, 16) % 3}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"rgb": torch.zeros(3, 16, 16), "depth": torch.zeros(1, 16, 16)}


class _Model(torch.nn.Module):
    output_names = ["ensemble"]

    def forward(self, inputs):
        return {"ensemble": torch.zeros(1, 3, 16, 16)}


def test_a_segmentation_grid_has_a_class_legend_and_a_depth_colour_bar(tmp_path: Path, monkeypatch) -> None:
    import matplotlib.figure

    bars, legends = [], []
    original_bar, original_legend = matplotlib.figure.Figure.colorbar, matplotlib.figure.Figure.legend
    monkeypatch.setattr(matplotlib.figure.Figure, "colorbar",
                        lambda self, *a, **k: bars.append(1) or original_bar(self, *a, **k))
    monkeypatch.setattr(matplotlib.figure.Figure, "legend",
                        lambda self, handles, labels, **k: legends.append(list(labels)) or
                        original_legend(self, handles, labels, **k))
    out = qualitative_grid(_Model(), _Loader(), ["ensemble"], "segmentation", torch.device("cpu"),
                           tmp_path / "grid.png", n=2, num_classes=3, class_names=["floor", "wall", "box"])
    assert out is not None and out.stat().st_size > 0
    assert len(bars) == 2  # one per depth panel (two samples)
    assert legends == [["floor", "wall", "box"]]
