"""The protocol a result was computed under, stated in every metrics JSON (key "protocol") and summarised under
every table (benchmark/report/tables.py `protocol_summary`): what was evaluated and how, what the inputs were, where the weights started, which checkpoint, what
batch on how many devices, on what hardware. Two numbers compare only when these agree (docs/paper-suite.md)."""

from __future__ import annotations

from typing import Any

from asymfusion.benchmark.config import RunConfig
from asymfusion.benchmark.engine.metrics import STANDIN_NOTE
from asymfusion.benchmark.engine.runtime import Runtime, hardware
from asymfusion.benchmark.tasks import get_task
from asymfusion.datasets.build import input_encodings


def pretraining(cfg: RunConfig) -> str:
    """Where the encoder's weights started: a local file, timm's default pretrained tag, or nothing."""
    if not getattr(cfg.model, "pretrained", False):
        return "none (random init)"
    if cfg.model.pretrained_file:
        from pathlib import Path

        from asymfusion.datasets.standins import MARKER

        if (Path(cfg.model.pretrained_file).parent / MARKER).is_file():  # `asymfusion standins weights`
            return f"STAND-IN weights (random init, not ImageNet) from {cfg.model.pretrained_file}"
        return f"ImageNet weights from {cfg.model.pretrained_file}"
    from timm.models import get_pretrained_cfg

    default = get_pretrained_cfg(cfg.model.backbone)
    return f"timm {default.hf_hub_id or cfg.model.backbone}" if default is not None else f"timm {cfg.model.backbone}"


def data_kind(cfg: RunConfig) -> str:
    """Real, procedural or stand-in data: a stand-in layout (fetch --stand-in, then prepare) carries STAND-IN.txt."""
    from asymfusion.datasets.standins import MARKER

    if (cfg.dataset_root / MARKER).is_file():
        return "STAND-IN files (noise in the real formats, datasets/standins.py): the numbers mean nothing"
    if cfg.dataset.source == "synthetic":
        return "procedurally rendered scenes (datasets/synthetic)"
    return f"{cfg.dataset.source} (the published data)"


def checkpoint_rule(cfg: RunConfig, file: str, epoch: int) -> str:
    task = get_task(cfg.dataset.task)
    if file.startswith("best"):
        where = ("the val split, which for NYUDv2 is its 654 test images (selection on the test set, as the official "
                 "code)" if cfg.dataset.source == "nyudv2" else "the val split")
        return (f"best: the validated epoch with the {'highest' if task.higher_is_better else 'lowest'} ensemble "
                f"{task.main_label} on {where} (epoch {epoch} of {cfg.train.epochs})")
    return f"last: epoch {epoch} of {cfg.train.epochs}"


def protocol_record(cfg: RunConfig, runtime: Runtime, state: dict[str, Any], checkpoint: str, samples: int,
                    input_size: list[int]) -> dict[str, Any]:
    task = get_task(cfg.dataset.task)
    tta = task.test_time_augmentation
    trained_on = state.get("hardware")
    devices = trained_on["devices"] if trained_on else len(state.get("rng", [None]))
    return {
        "data": data_kind(cfg), "split": "val", "samples": samples,
        "scales": cfg.evaluate.scales if tta else [1.0], "flip": cfg.evaluate.flip if tta else False,
        "input_size": input_size,
        "val_transforms": cfg.data.val_transforms.model_dump(exclude_defaults=True),
        "scoring": task.scoring.format(logits_resize=cfg.evaluate.logits_resize) + (f"; FID/KID: {STANDIN_NOTE}" if task.distribution_metrics
                                   and cfg.evaluate.fid_features == "standin" else ""),
        "inputs": input_encodings(cfg.dataset, cfg.data.modalities, cfg.data.depth_encoding),
        "pretrained": pretraining(cfg),
        "checkpoint": checkpoint_rule(cfg, checkpoint, state["epoch"]),
        "batch": {"per_device": cfg.data.batch_size, "devices": devices, "effective": cfg.data.batch_size * devices},
        "precision": {"train": "fp32" if cfg.train.amp == "off" else f"autocast {cfg.train.amp}",
                      "channels_last": cfg.train.channels_last},
        "hardware": {"train": trained_on, "evaluate": hardware(runtime)},
    }

