"""Semantic segmentation (NYUDv2, Cityscapes, the procedural scenes): the official AsymFusion/CEN protocol.

Loss: cross-entropy (ignore index 255) summed over every branch and the ensemble. Metrics (torchmetrics, in %):
pixel accuracy, mean class accuracy, mIoU, per-class IoU and the confusion matrix; the ensemble's mIoU picks
best.pt. Test-time flip / multi-scale averaging applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asymfusion.benchmark.tasks import register_task
from asymfusion.benchmark.tasks.base import Column, Task, metric_of

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torchmetrics import MetricCollection

LIST_METRICS = ("iou", "confusion")


def _perf(key: str):
    def get(record: dict[str, Any]) -> float | None:
        return record.get("perf", {}).get(key)

    return get


@register_task("segmentation")
class Segmentation(Task):
    main_metric = "miou"
    main_label = "mIoU"
    higher_is_better = True
    headline = ("miou",)
    test_time_augmentation = True
    scoring = ("logits resized {logits_resize} (align_corners=False) to the evaluated input size, softmax-averaged over "
               "test-time scales and flips, argmax; one confusion matrix over the split (torchmetrics), labels "
               "at the evaluated size, ignore index excluded")

    def model_fields(self, dataset: Any, data: Any, channels: dict[str, int]) -> dict[str, Any]:
        return {"num_classes": dataset.num_classes}

    def loss(self, outputs, target, inputs, critic, train) -> torch.Tensor:
        import torch.nn.functional as F

        from asymfusion.datasets.formats import IGNORE_INDEX

        return sum(F.cross_entropy(out.float(), target, ignore_index=IGNORE_INDEX) for out in outputs.values())

    def synthetic_target(self, model, batch, size, generator) -> torch.Tensor:
        import torch

        return torch.randint(0, model.num_classes, (batch, *size), generator=generator)

    def metrics(self, num_classes: int | None) -> MetricCollection:
        from torchmetrics import MetricCollection
        from torchmetrics.classification import (
            MulticlassAccuracy,
            MulticlassConfusionMatrix,
            MulticlassJaccardIndex,
        )

        from asymfusion.datasets.formats import IGNORE_INDEX

        common = dict(num_classes=num_classes, ignore_index=IGNORE_INDEX)
        return MetricCollection({
            "pixel_acc": MulticlassAccuracy(average="micro", **common),
            "mean_acc": MulticlassAccuracy(average="macro", **common),
            "miou": MulticlassJaccardIndex(average="macro", **common),
            "iou": MulticlassJaccardIndex(average="none", **common),
            "confusion": MulticlassConfusionMatrix(**common),
        })

    def update_metrics(self, collection, output, target) -> None:
        collection.update(output.float().argmax(1), target)

    def metric_row(self, values: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name, value in values.items():
            row[name] = value.cpu().tolist() if name in LIST_METRICS else float(value) * 100.0
        row["iou"] = [100.0 * v for v in row["iou"]]
        return row

    def table_columns(self, branches: list[str]) -> tuple[list[Column], str]:
        cols = [Column(f"mIoU {m}", metric_of(m, "miou"), True) for m in branches]
        cols += [Column("mIoU fused", metric_of("ensemble", "miou"), True),
                 Column("pixel acc", metric_of("ensemble", "pixel_acc"), True),
                 Column("mean acc", metric_of("ensemble", "mean_acc"), True),
                 Column("params (M)", lambda r: r["parameters"], None, 1e-6, 3),
                 Column("GFLOPs", lambda r: r["gflops_per_image"], None, 1.0, 3),
                 Column("train img/s", _perf("train_images_per_s"), None, 1.0, 0),
                 Column("peak MB", _perf("peak_memory_mb"), None, 1.0, 0)]
        return cols, "mIoU fused"

    def target_panel(self, raw, palette) -> np.ndarray:
        return _overlay(raw.get("rgb"), raw["target"], palette)

    def prediction_panel(self, output, raw, palette) -> np.ndarray:
        import numpy as np

        return _overlay(raw.get("rgb"), output.argmax(0).cpu().numpy().astype(np.uint8), palette)


def _overlay(rgb, labels, palette):
    from asymfusion.datasets.colours import colorize_labels

    colours = colorize_labels(labels, palette)
    if rgb is None:
        return colours
    return (0.35 * rgb + 0.65 * colours).astype("uint8")
