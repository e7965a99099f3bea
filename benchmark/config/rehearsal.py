"""The rehearsal of a suite (the paper's): each of its experiments with its exact recipe, for a few steps, on stand-in
files in the real formats (datasets/standins.py) that the real fetch and prepare code turned into layouts.

`rehearsal:` in params.yaml names the suite rehearsed and what changes; everything else is the experiment's own:
backbone, decoder, crops and scale augmentation, batch size, optimiser and its stages, frozen BN statistics,
channels_last, evaluation at full resolution. `derive_rehearsal` adds to the raw params, before validation:

- per experiment E of the rehearsed suite, `rehearsal-<E without the suite prefix>` in the rehearsal suite, each
  optimiser stage cut to `epochs_per_stage` epochs (other schedules: `epochs`) of `steps_per_epoch` steps, on
  `device` (AMP as the recipe on CUDA, off on the CPU, where the trainer has none), pretrained weights read from a
  stand-in weights file, FID/KID through the stand-in feature extractor;
- per dataset D they use, `rehearsal-<D>` rooted under `<data>/<rehearsal.data>/`, and a copy of each table.

Nothing here runs anything; the pipeline renders the standins/fetch/prepare/train/evaluate/tables/report stages
(docs/paper-suite.md).
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import Field

from asymfusion.benchmark.tasks import TASKS, get_task
from asymfusion.datasets.config import Strict

PREFIX = "rehearsal-"


class RehearsalConfig(Strict):
    rehearses: str = Field("paper", description="the suite whose experiments are rehearsed")
    suite: str = Field("rehearsal", description="the suite (under `suites:`) the rehearsal runs belong to")
    data: str = Field("rehearsal", description="folder under the data directory for stand-ins and their layouts")
    steps_per_epoch: int = Field(1, ge=1, le=100, description="training steps per epoch")
    epochs_per_stage: int = Field(1, ge=1, le=10, description="epochs per optimiser stage (multistage schedules)")
    epochs: int = Field(2, ge=1, le=10, description="epochs of the other schedules")
    val_images: int = Field(2, ge=1, le=100, description="validation images of every stand-in dataset (at least 2 "
                            "where the task scores FID/KID, which need two)")
    device: Literal["cpu", "cuda"] = Field("cpu", description="cuda on a GPU box: AMP as each recipe sets it")
    only: list[str] | None = Field(None, min_length=1, description="rehearse only these experiments of the "
                                   "rehearsed suite (default: all)")
    image_scale: dict[Literal["nyudv2", "cityscapes", "taskonomy"], Annotated[float, Field(gt=0, le=1)]] = Field(
        {}, description="per dataset source, a factor on the stand-in images' real size and on the recipe's resize "
                        "and crop (default 1: the exact sizes). The CI test's reduced rehearsal scales the "
                        "segmentation sets by 0.25: a 1024x2048 Xception65 forward costs a minute on one core")
    batch_size: int | None = Field(None, ge=1, description="train batch per device instead of the recipe's (None: "
                                   "the recipe's). The one deviation of a CPU rehearsal that must be short (the CI "
                                   "test's): the recipe's batches take minutes per ResNet-101 step on 2 cores")


def rehearsal_name(experiment: str, rehearses: str) -> str:
    return PREFIX + experiment.removeprefix(rehearses + "-")


def scaled_size(pixels: int, factor: float) -> int:
    """A size of the recipe or of a stand-in image times `rehearsal.image_scale` (at least 8, the transforms' floor)."""
    return max(8, round(pixels * factor))


def weights_file(data_root: str, backbone: str) -> str:
    """Where the stand-in pretrained weights of `backbone` go: <data>/<rehearsal.data>/weights/<backbone>.pth."""
    return f"{data_root}/weights/{backbone}.pth"


def derive_rehearsal(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` (inheritance resolved, not validated) plus the rehearsal's experiments, datasets and tables."""
    section = raw.get("rehearsal")
    if section is None:
        return raw
    config = RehearsalConfig.model_validate(section)
    experiments = raw.get("experiments") or {}
    rehearsed = {n: e for n, e in experiments.items() if isinstance(e, dict) and e.get("suite") == config.rehearses}
    if config.only is not None:
        unknown = sorted(set(config.only) - set(rehearsed))
        if unknown:
            raise ValueError(f"rehearsal.only: {unknown} are not experiments of suite {config.rehearses!r}; "
                             f"allowed: {', '.join(rehearsed)}")
        rehearsed = {n: e for n, e in rehearsed.items() if n in config.only}
    data_root = f"{(raw.get('paths') or {}).get('data', 'data')}/{config.data}"
    out = dict(raw)
    out["experiments"] = dict(experiments)
    out["datasets"] = dict(raw.get("datasets") or {})
    for name, experiment in rehearsed.items():
        derived = rehearsal_name(name, config.rehearses)
        if derived in experiments:
            raise ValueError(f"experiments.{derived}: the name is taken by the rehearsal of {name}; rename it")
        out["experiments"][derived] = _rehearse(experiment, config, data_root, out["datasets"])
    tables = dict(raw.get("tables") or {})
    if config.rehearses in tables:
        tables[config.suite] = [_rehearse_table(t, config, rehearsed) for t in tables[config.rehearses]
                                if any(row in rehearsed for row in t.get("rows", {}))]
    out["tables"] = tables
    return out


def _rehearse(experiment: dict[str, Any], config: RehearsalConfig, data_root: str,
              datasets: dict[str, Any]) -> dict[str, Any]:
    exp = copy.deepcopy(experiment)
    exp["suite"] = config.suite
    exp.pop("seeds", None)  # the rehearsal suite's seeds
    data = exp.setdefault("data", {})
    dataset = data.get("dataset")
    if dataset in datasets and PREFIX + dataset not in datasets:
        real = datasets[dataset]
        datasets[PREFIX + dataset] = {**real, "root": f"{config.data}/{real.get('root', dataset)}"}
    data["dataset"] = PREFIX + str(dataset)
    factor = config.image_scale.get(datasets.get(dataset, {}).get("source", ""), 1.0)
    if factor != 1.0:
        for section in ("train_transforms", "val_transforms"):
            transforms = data.get(section) or {}
            data[section] = {k: (scaled_size(v, factor) if k in ("resize", "crop") and v else v)
                             for k, v in transforms.items()}
    if config.batch_size is not None:
        data["batch_size"] = config.batch_size
    optimiser = exp.setdefault("optimiser", {})
    train = exp.setdefault("train", {})
    if optimiser.get("schedule") == "multistage" and optimiser.get("stages"):
        optimiser["stages"] = [{**stage, "epochs": config.epochs_per_stage} for stage in optimiser["stages"]]
        epochs = config.epochs_per_stage * len(optimiser["stages"])
    else:
        epochs = config.epochs
    train.update(epochs=epochs, max_steps_per_epoch=config.steps_per_epoch, device=config.device)
    train["eval_every"] = min(int(train.get("eval_every", 1)), epochs)
    if config.device == "cpu":
        train["amp"] = "off"  # the trainer has AMP on CUDA only
    model = exp.setdefault("model", {})
    if model.get("pretrained"):
        model["pretrained_file"] = weights_file(data_root, str(model.get("backbone")))
    task = datasets.get(dataset, {}).get("task")
    if task in TASKS.names() and get_task(task).distribution_metrics:  # FID/KID without the Inception weights
        exp.setdefault("evaluate", {})["fid_features"] = "standin"
    return exp


def _rehearse_table(table: dict[str, Any], config: RehearsalConfig, rehearsed: dict[str, Any]) -> dict[str, Any]:
    rows = {rehearsal_name(r, config.rehearses): label for r, label in table.get("rows", {}).items() if r in rehearsed}
    baselines = [rehearsal_name(b, config.rehearses) for b in table.get("baselines", []) if b in rehearsed]
    return {**table, "rows": rows, "baselines": baselines,
            "title": f"REHEARSAL on stand-in data, a few steps (numbers mean nothing): {table.get('title', '')}"}
