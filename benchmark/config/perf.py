"""The `perf:` section of params.yaml: settings of `asymfusion bench`, one entry per suite (all keys optional).

    perf:
      quick:
        batches: [2, 16]
        repeats: 15

Command-line options override these; anything left unset falls back to the suite's experiments (input size = the
training crop, batch = the experiment's batch size, plus batch 2 for the stacked-vs-loop target).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from asymfusion.benchmark.tasks import TASKS
from asymfusion.datasets.config import Strict


class PerfTargets(Strict):
    """Thresholds the benchmark reports pass/fail against (docs/performance.md)."""

    fusion_overhead_max: float = Field(1.05, gt=0, description="max training-step time of asymfusion / msbn "
                                       "(same backbone, input size, batch and execution)")
    stacked_speedup_min: float = Field(1.3, gt=0, description="min loop / stacked training-step time at "
                                       "stacked_speedup_batch (and >= 1 at every batch measured)")
    stacked_speedup_batch: int = Field(2, ge=1, description="batch the stacked-vs-loop speed-up target applies to")
    matmul_fraction_min: float = Field(0.35, gt=0, description="min achieved training FLOP/s / dense matmul FLOP/s")
    matmul_fraction_method: str = Field("asymfusion", description="method whose row the FLOP/s target reads")
    matmul_fraction_backbone: str = Field("resnet18", description="backbone whose row the FLOP/s target reads")
    task: str | None = Field("segmentation", description="task whose models the ratio and FLOP/s targets read "
                             "(null: all); the others are listed for information")
    data_share_max: float = Field(0.10, gt=0, le=1, description="max data-loading share of a training step")

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str | None) -> str | None:
        if value is not None and value not in TASKS.names():
            raise ValueError(f"unknown task {value!r}; allowed: {', '.join(TASKS.names())}")
        return value


Side = Annotated[int, Field(ge=8, le=8192)]
Batch = Annotated[int, Field(ge=1, le=4096)]


class PerfSuiteConfig(Strict):
    """`asymfusion bench --suite NAME` settings for one suite."""

    methods: list[str] | None = Field(None, description="methods or experiment names to measure (default: one "
                                      "experiment per method x backbone x dataset of the suite)")
    sizes: list[Side | tuple[Side, Side]] | None = Field(None, description="input sizes: S (square) or [H, W] "
                                                      "(default: each experiment's training crop)")
    batches: list[Batch] | None = Field(None, description="batch sizes per modality (default: 2 and each "
                                      "experiment's batch size)")
    executions: list[Literal["stacked", "loop"]] = Field(["stacked", "loop"], min_length=1,
                                                         description="shared-encoder executions to compare")
    repeats: int = Field(15, ge=3, description="timed rounds per measurement (median and IQR over them)")
    warmup: int = Field(3, ge=0, description="untimed steps per model before timing")
    threads: int | None = Field(None, ge=1, le=256, description="torch intra-op threads (default: all cores "
                                "this process may use)")
    matmul_size: int = Field(2048, ge=64, description="side of the dense square matmul timed for throughput")
    data_batches: int = Field(10, ge=1, description="batches timed through the real DataLoader")
    targets: PerfTargets = PerfTargets()

    @field_validator("sizes")
    @classmethod
    def _positive_sizes(cls, value: list[int | tuple[int, int]] | None) -> list[int | tuple[int, int]] | None:
        for size in value or []:
            if min((size,) if isinstance(size, int) else size) < 8:
                raise ValueError(f"input sizes must be >= 8 pixels, got {size}")
        return value
