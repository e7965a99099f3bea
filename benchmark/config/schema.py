"""The params.yaml schema: experiments, suites, tables, claims and the resolved `RunConfig` (docs/design.md §3).

Everything is validated before any work starts: an unknown key, a wrong type or a value outside its choices raises
`ConfigError` whose message names the dotted key path, the bad value and the allowed values; the CLI turns it into
exit code 2. A *run* is one experiment with one seed, named `<experiment>-s<seed>`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from asymfusion.benchmark.config.perf import PerfSuiteConfig
from asymfusion.benchmark.config.rehearsal import RehearsalConfig
from asymfusion.benchmark.config.tuning import TuningConfig
from asymfusion.benchmark.errors import ConfigError
from asymfusion.benchmark.tasks import TASKS
from asymfusion.datasets.config import DataConfig, DatasetConfig, RenderConfig, Strict

DATA_ENV = "ASYMFUSION_DATA"
__all__ = ["ConfigError"]  # re-exported: raised by every validator below


# Learning rates above this are a typo, not a recipe (the suite's range: 1e-5 .. 0.05).
MAX_LR = 10.0
LearningRate = Annotated[float, Field(gt=0, le=MAX_LR)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]  # what numpy's and torch's seeding accept alike


def _unique_seeds(seeds: list[int] | None) -> list[int] | None:
    if seeds is not None and len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct (each names one run), got {seeds}")
    return seeds


class StageConfig(Strict):
    """One stage of the official multi-stage SGD schedule (fresh optimiser per stage)."""

    epochs: int = Field(ge=1, description="epochs in this stage")
    lr_encoder: LearningRate = Field(description="encoder learning rate in this stage")
    lr_decoder: LearningRate = Field(description="decoder (and head) learning rate in this stage")


class OptimiserConfig(Strict):
    name: Literal["sgd", "adam"] = Field("sgd", description="sgd: segmentation protocol; adam: CEN translation")
    lr_encoder: LearningRate = Field(5e-4, description="encoder learning rate (single-stage schedules)")
    lr_decoder: LearningRate = Field(3e-3, description="decoder/head learning rate (single-stage schedules)")
    lr_ensemble: LearningRate = Field(1e-2, description="learning rate of the ensemble logits alpha")
    lr_discriminator: LearningRate = Field(2e-4, description="PatchGAN learning rate (translation)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(1e-5, ge=0, le=1, description="L2 weight decay")
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = Field(
        (0.5, 0.999), description="Adam betas, each in [0, 1) (CEN: 0.5, 0.999)")
    schedule: Literal["constant", "poly", "multistage"] = Field(
        "poly", description="constant LR, poly decay (power 0.9), or the official stages with fresh optimisers"
    )
    poly_power: float = Field(0.9, gt=0, le=10, description="exponent of the poly schedule")
    warmup_epochs: float = Field(0.0, ge=0, description="linear learning-rate warm-up at the start (not multistage)")
    stages: list[StageConfig] | None = Field(None, description="stages of the multistage schedule")

    @model_validator(mode="after")
    def _stages_for_multistage(self) -> "OptimiserConfig":
        if self.schedule == "multistage" and not self.stages:
            raise ValueError("schedule 'multistage' needs a non-empty stages list")
        if self.schedule != "multistage" and self.stages:
            raise ValueError(f"stages apply to schedule 'multistage' only, not {self.schedule!r}")
        if self.schedule == "multistage" and self.warmup_epochs:
            raise ValueError("warmup_epochs does not apply to the multistage schedule (fresh optimiser per stage)")
        return self


class TrainConfig(Strict):
    epochs: int = Field(10, ge=1, description="total epochs (multistage: must equal the stages' sum)")
    device: Literal["cpu", "cuda", "auto"] = Field("auto", description="auto picks cuda when available")
    amp: Literal["off", "bf16", "fp16"] = Field("off", description="CUDA automatic mixed precision")
    channels_last: bool = Field(False, description="channels_last memory format (CUDA; on CPU too, where it "
                                "speeds up oneDNN convolutions and max pooling)")
    deterministic: bool = Field(False, description="torch.use_deterministic_algorithms(True)")
    threads: int | None = Field(None, ge=1, le=256, description="torch intra-op threads (None: torch default)")
    l1_weight: float = Field(100.0, ge=0, description="translation: weight of L1 beside the GAN loss")
    eval_every: int = Field(1, ge=1, description="validate every N epochs")
    max_steps_per_epoch: int | None = Field(None, ge=1, description="cap steps per epoch (smoke tests)")
    modality_dropout: float = Field(0.0, ge=0, lt=1, description="probability that a training sample has one of its "
                                    "modalities (chosen uniformly) zeroed, as evaluate's missing-modality input; any "
                                    "method (benchmark/engine/step.py drop_modalities)")


class EvalConfig(Strict):
    flip: bool = Field(False, description="also average predictions over a horizontal flip (segmentation)")
    scales: list[Annotated[float, Field(gt=0, le=4)]] = Field(
        [1.0], min_length=1, description="test-time scales averaged, each in (0, 4] (paper: single scale 1.0)")
    blank: Literal["zeros", "mean"] = Field(
        "zeros", description="missing-modality robustness: replace a modality by zeros or by its dataset mean"
    )
    grid_samples: int = Field(4, ge=0, le=32, description="validation samples in the qualitative grid")
    fid_kid: bool = Field(True, description="translation: FID/KID when the Inception weights file exists")
    checkpoint: Literal["best", "last"] = Field(
        "best", description="what `evaluate` scores: best = the epoch with the best validation metric (on NYUDv2, "
                            "whose val split is its 654 test images, that is selection on the test set, as the "
                            "official code does), last = the final epoch")
    logits_resize: Literal["bilinear", "bicubic"] = Field(
        "bilinear", description="how segmentation logits are resized to the label size at evaluation (the official "
                                "AsymFusion/RefineNet validation: bicubic; training always uses bilinear)")
    fid_features: Literal["inception", "standin"] = Field(
        "inception", description="FID/KID features: the Inception weights, or (rehearsals) a fixed random conv net "
                                 "whose numbers compare with nothing")
    kid_subsets: int = Field(50, ge=1, description="KID subsets (CEN: 50)")
    kid_subset_size: int = Field(1000, ge=2, description="KID subset size, capped at the sample count (CEN)")
    threads: int | None = Field(None, ge=1, le=256, description="torch intra-op threads for evaluation (None: torch's "
                                "default, every core; train.threads is meant for seeds trained side by side)")
    corruptions: list[str] = Field(
        [], description="segmentation: also score the model under these sensor corruptions (datasets/corruptions.py), "
                        "e.g. depth/holes@3, depth/holes (severities 1-5), depth or rgb (all of a modality)")
    corruption_samples: int | None = Field(None, ge=1, description="score corruptions on the first N validation "
                                           "images only (None: all; the clean scores always use all)")
    corruption_seed: int = Field(0, ge=0, description="seed of the corruptions' random draws (the same for every "
                                 "method, so their scores compare)")

    @field_validator("corruptions")
    @classmethod
    def _known_corruptions(cls, value: list[str]) -> list[str]:
        from asymfusion.datasets.corruptions import parse_corruption

        keys = [c.key for spec in value for c in parse_corruption(spec)]  # raises naming the registered ones
        if len(set(keys)) != len(keys):
            raise ValueError(f"corruptions {value} name some corruption twice")
        return value


class ExperimentConfig(Strict):
    """One experiment of params.yaml: a method on a dataset with a recipe, trained once per seed."""

    suite: str = Field(description="name of an entry under `suites:`")
    data: DataConfig
    model: dict[str, Any] = Field(description="model section (asymfusion.models.ModelConfig minus data-derived keys)")
    optimiser: OptimiserConfig = OptimiserConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvalConfig = EvalConfig()
    seeds: list[Seed] | None = Field(None, min_length=1, description="seeds to run (default: the suite's; when "
                                     "given, at least one)")
    _distinct_seeds = field_validator("seeds")(_unique_seeds)

    @model_validator(mode="after")
    def _stages_cover_epochs(self) -> "ExperimentConfig":
        stages = self.optimiser.stages
        if self.optimiser.schedule == "multistage" and stages and sum(s.epochs for s in stages) != self.train.epochs:
            raise ValueError(
                f"train.epochs ({self.train.epochs}) must equal the sum of optimiser.stages epochs "
                f"({sum(s.epochs for s in stages)})"
            )
        if self.optimiser.warmup_epochs >= self.train.epochs:
            raise ValueError(
                f"optimiser.warmup_epochs ({self.optimiser.warmup_epochs}) must be less than train.epochs "
                f"({self.train.epochs}): the warm-up would take the whole run"
            )
        return self


class SuiteConfig(Strict):
    description: str = ""
    seeds: list[Seed] = Field([0], min_length=1, description="seeds every experiment of the suite runs with")
    _distinct_seeds = field_validator("seeds")(_unique_seeds)
    results: str = Field(description="folder of the suite's outputs, e.g. results/quick")
    jobs: int = Field(1, ge=1, le=64, description="seeds of one experiment trained side by side (processes)")
    perf: bool = Field(True, description="include a perf (benchmark) stage for this suite")


class TableConfig(Strict):
    """One results table: which experiments are its rows, which are baselines for the significance test."""

    name: str = Field(description="file stem under results/<suite>/tables/")
    title: str = Field(description="caption")
    kind: str = Field(description="a task's name (its own columns: segmentation per-branch and fused mIoU + cost; "
                      "translation L1/PSNR/SSIM/FID/KID), robustness: the main metric with each modality blanked, "
                      "or corruptions: clean vs under sensor corruption, relative robustness and mCE vs the first "
                      "baseline (benchmark/report/robustness.py)")
    rows: dict[str, str] = Field(min_length=1, description="experiment name -> row label, in display order")
    baselines: list[str] = Field(default_factory=list, description="rows the significance test compares against")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of the Welch t-test mark")
    note: list[str] = Field(default_factory=list, description="what the table's rows isolate, printed under it in "
                            "the results README, one short line per item (joined with spaces; kept short so `dvc exp "
                            "run -S` rewrites params.yaml line for line); no numbers: those come from the table")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        allowed = [*TASKS.names(), "robustness", "corruptions"]
        if value not in allowed:
            raise ValueError(f"unknown table kind {value!r}; allowed: {', '.join(allowed)}")
        return value

    @model_validator(mode="after")
    def _baselines_are_rows(self) -> "TableConfig":
        missing = [b for b in self.baselines if b not in self.rows]
        if missing:
            raise ValueError(f"baselines {missing} are not rows of table {self.name!r}")
        return self


class ClaimConfig(Strict):
    """A claim of the paper checked on a suite's numbers: `better` beats `worse` on the main metric."""

    statement: str = Field(description="the claim in words, e.g. 'AsymFusion > MSBN'")
    better: list[str] = Field(min_length=1, description="experiment(s) expected to be better (the best of them counts)")
    worse: list[str] = Field(min_length=1, description="experiment(s) expected to be worse (the best of them counts)")
    min_margin: float | None = Field(None, ge=0, description="also require this margin on the main metric, and more "
                                     "than 3x the larger seed std")


class PathsConfig(Strict):
    data: str = Field("data", description=f"data directory (the {DATA_ENV} environment variable overrides)")
    checkpoints: str = Field("checkpoints", description="checkpoint directory (DVC cache, not git)")
    inception_weights: str = Field(
        "weights/weights-inception-2015-12-05-6726825d.pth",
        description="FID/KID Inception weights, relative to the data directory (`asymfusion fetch inception`)",
    )


class Params(Strict):
    """The whole params.yaml."""

    paths: PathsConfig = PathsConfig()
    synthetic: RenderConfig = Field(RenderConfig(), description="procedural renderer arguments")
    datasets: dict[str, DatasetConfig]
    suites: dict[str, SuiteConfig]
    experiments: dict[str, ExperimentConfig] = {}
    tables: dict[str, list[TableConfig]] = Field({}, description="per suite: the tables to build")
    claims: dict[str, list[ClaimConfig]] = Field({}, description="per suite: the paper's claims to check")
    tuning: dict[str, dict[str, TuningConfig]] = Field({}, description="per suite and method: an Optuna study "
                                                       "(docs/tuning.md)")
    perf: dict[str, PerfSuiteConfig] = Field({}, description="per suite: `asymfusion bench` settings "
                                             "(docs/performance.md)")
    rehearsal: RehearsalConfig | None = Field(None, description="the rehearsal of a suite on stand-in data "
                                              "(benchmark/config/rehearsal.py, docs/paper-suite.md)")
    source: Path | None = Field(None, exclude=True)
    overrides: dict[str, list[str]] = Field(default_factory=dict, exclude=True)  # experiment -> its --set edits

    def data_dir(self) -> Path:
        return Path(os.environ.get(DATA_ENV) or self.paths.data)

    def data_path(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.data_dir() / path

    def dataset_root(self, name: str) -> Path:
        return self.data_path(self.datasets[name].root)

    def hha_root(self, name: str) -> Path:
        """Where `asymfusion prepare hha` writes a dataset's HHA images: `<data>/hha/<root>`, beside, never inside,
        the prepared layout (a separate DVC output: adding HHA never changes the runs trained on raw depth)."""
        root = Path(self.datasets[name].root)
        return self.data_dir() / "hha" / (root.relative_to(root.anchor) if root.is_absolute() else root)


class RunConfig(BaseModel):
    """A fully resolved run: everything a trainer needs, nothing left to look up."""

    model_config = {"frozen": True, "arbitrary_types_allowed": True}

    run: str
    experiment: str
    seed: int
    suite: str
    results_dir: Path
    checkpoint_dir: Path
    inception_weights: Path
    dataset_name: str
    dataset: DatasetConfig
    dataset_root: Path
    hha_root: Path
    overrides: list[str] = []  # the --set edits of a try (benchmark/config/overrides.py)
    data: DataConfig
    model: Any  # asymfusion.models.ModelConfig
    optimiser: OptimiserConfig
    train: TrainConfig
    evaluate: EvalConfig

    def to_dict(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", exclude={"model"})
        out["model"] = self.model.model_dump(mode="json")
        return out

    def params_hash(self) -> str:
        """Hash of everything that changes what a run computes (not where it writes)."""
        return self._hash(exclude=())

    def train_hash(self) -> str:
        """Like params_hash, minus evaluation options: changing those must not invalidate a checkpoint."""
        return self._hash(exclude=("evaluate",))

    def _hash(self, exclude: tuple[str, ...]) -> str:
        location = ("run", "results_dir", "checkpoint_dir", "dataset_root", "hha_root", "inception_weights",
                    "overrides")  # overrides: what they change is in the sections themselves
        payload = {k: v for k, v in self.to_dict().items() if k not in location + exclude}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
