"""Configuration schema of the data side: named datasets and an experiment's data section.

The datasets package owns its schema so that a loader never reads params.yaml; `benchmark.config` composes these
models into an experiment.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from asymfusion.datasets.tasks import DATA_TASKS, data_task

Task = str  # a task of datasets/tasks.py
Source = Literal["synthetic", "nyudv2", "cityscapes", "taskonomy"]

# Modalities each task's loader understands, and their channel counts as the loader returns them (datasets/tasks.py).
MODALITY_CHANNELS = {name: DATA_TASKS.get(name).modalities for name in DATA_TASKS.names()}
SEGMENTATION_MODALITIES = MODALITY_CHANNELS["segmentation"]
TRANSLATION_MODALITIES = MODALITY_CHANNELS["translation"]


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RenderConfig(Strict):
    """Arguments of the procedural renderer; it writes both layouts under `<data>/synthetic/`."""

    size: int = Field(64, ge=16, le=1024, description="square image side in pixels")
    n_train: int = Field(600, ge=1, description="training views")
    n_val: int = Field(200, ge=1, description="validation views (from scenes disjoint from training)")
    views_per_scene: int = Field(2, ge=1, le=16, description="camera poses rendered per random room")
    seed: int = Field(0, ge=0, description="scene seed; same seed and sizes give byte-identical files")


class DatasetConfig(Strict):
    """One dataset on disk, in the layout of docs/design.md §7."""

    source: Source = Field(description="where the files come from (fetch/prepare recipe)")
    task: Task = Field(description="which loader reads the layout")
    root: str = Field(description="folder of the layout, relative to the data directory (or absolute)")
    num_classes: int | None = Field(None, ge=2, le=255, description="segmentation classes (ids 0..K-1, 255 ignore)")
    class_names: list[str] | None = Field(None, description="names for tables and plots; defaults to class ids")
    depth_scale: float = Field(5000.0, gt=0, description="segmentation depth PNG value = metres x this "
                               "(NYUDv2 and the procedural scenes: 5000; Cityscapes as prepared here: 256)")

    @field_validator("task")
    @classmethod
    def _task_is_registered(cls, value: str) -> str:
        DATA_TASKS.get(value)  # raises listing the registered tasks
        return value

    @model_validator(mode="after")
    def _check_task_fields(self) -> "DatasetConfig":
        data_task(self.task).check_dataset(self)
        if self.class_names is not None and self.num_classes is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"class_names has {len(self.class_names)} names but num_classes is {self.num_classes}")
        return self


class TransformConfig(Strict):
    """Joint geometric transforms, applied identically to every modality and the target."""

    resize: int | None = Field(None, ge=8, description="resize the shorter side to this many pixels first")
    scale: tuple[float, float] | None = Field(None, description="random rescale factor range, e.g. [0.5, 2.0]")
    crop: int | None = Field(None, ge=8, description="random square crop (padding first where smaller)")
    hflip: bool = Field(False, description="random horizontal flip with probability 0.5")

    @model_validator(mode="after")
    def _check_scale(self) -> "TransformConfig":
        if self.scale is not None and not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale must be [low, high] with 0 < low <= high, got {list(self.scale)}")
        return self


class DataConfig(Strict):
    """An experiment's data section: which dataset, which inputs, how batches are made."""

    dataset: str = Field(description="name of an entry under `datasets:`")
    modalities: list[str] = Field(min_length=1, description="input modalities, in branch order")
    target: str | None = Field(None, description="translation target domain (segmentation: the mask)")
    batch_size: int = Field(8, ge=1, description="training batch per process")
    val_batch_size: int = Field(8, ge=1, description="evaluation batch per process")
    num_workers: int = Field(0, ge=0, le=64, description="DataLoader worker processes")
    cache_decoded: bool = Field(False, description="keep every decoded sample in memory after its first read (small "
                                "datasets; PNG decoding is most of the loading time). Workers keep their own copy, "
                                "rebuilt each epoch, so it pays off with num_workers 0")
    train_transforms: TransformConfig = TransformConfig()
    val_transforms: TransformConfig = TransformConfig()
    depth_encoding: Literal["raw", "disparity", "hha"] = Field(
        "raw", description="segmentation depth input: raw metres, disparity (1/m) or HHA (Gupta et al. 2014, written "
                           "by `asymfusion prepare hha`; datasets/depth_encoding.py)")

    @model_validator(mode="after")
    def _unique_modalities(self) -> "DataConfig":
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"modalities must be distinct, got {self.modalities}")
        return self


def check_data_against_dataset(data: DataConfig, dataset: DatasetConfig) -> None:
    """Cross-section checks (modalities the loader knows, a target where the task needs one)."""
    data_task(dataset.task).check_data(data, dataset)
