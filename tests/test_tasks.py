"""Tasks own everything task-specific: each registered task honours the interface, and no module outside
benchmark/tasks/ branches on a task's name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from asymfusion.benchmark.tasks import TASKS, get_task
from asymfusion.models.config import ModelConfig
from tests.engine_helpers import REPO


def _model(task: str) -> ModelConfig:
    return ModelConfig(method="msbn", task=task, modalities=["rgb", "depth"], in_channels={"rgb": 3, "depth": 1},
                       num_classes=5 if task == "segmentation" else None,
                       out_channels=3 if task == "translation" else None, backbone="test_resnet",
                       decoder={"width": 8}, generator={"base_channels": 4, "depth": 5},
                       discriminator={"base_channels": 4, "downsampling": 2})


def test_both_paper_tasks_are_registered() -> None:
    assert {"segmentation", "translation"} <= set(TASKS.names())


@pytest.mark.parametrize("name", TASKS.names())
def test_a_task_computes_its_loss_metrics_and_columns_on_tiny_tensors(name: str) -> None:
    from asymfusion.models import build_model

    task = get_task(name)
    assert task.headline[0] == task.main_metric and task.direction in ("maximize", "minimize")
    config = _model(name)
    model = build_model(config).train()
    gen = torch.Generator().manual_seed(0)
    inputs = {m: torch.randn(2, c, 32, 32, generator=gen) for m, c in config.in_channels.items()}
    target = task.synthetic_target(config, 2, (32, 32), gen)
    critic = task.build_critic(config, type("Opt", (), {"lr_discriminator": 2e-4, "betas": (0.5, 0.999)})(),
                               torch.device("cpu"), False)
    outputs = model(inputs)
    loss = task.loss(outputs, target, inputs, critic, type("Train", (), {"l1_weight": 100.0})())
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    collection = task.metrics(5)
    with torch.no_grad():
        task.update_metrics(collection, outputs["ensemble"], target)
    row = task.metric_row(collection.compute())
    assert isinstance(row[task.main_metric], float)
    columns, main = task.table_columns(["rgb", "depth"])
    assert main in [c.name for c in columns]
    record = {"metrics": {"ensemble": row, "rgb": row, "depth": row}, "parameters": 1, "gflops_per_image": 1.0}
    assert next(c for c in columns if c.name == main).get(record) == row[task.main_metric]
    assert task.curve()[0] == f"val_ensemble_{task.main_metric}"


def test_better_follows_the_direction() -> None:
    seg, trans = get_task("segmentation"), get_task("translation")
    assert seg.better(2.0, 1.0) and not seg.better(1.0, 2.0) and seg.better(1.0, None)
    assert trans.better(1.0, 2.0) and not trans.better(2.0, 1.0)


def _task_branches(path: Path, names: set[str]) -> list[str]:
    """Comparisons of anything with a task's name (`task == "segmentation"`, `kind in ("translation", ...)`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                values = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                if any(isinstance(v, ast.Constant) and v.value in names for v in values):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_no_module_outside_the_task_modules_branches_on_a_task_name() -> None:
    """Task modules: benchmark/tasks/ (training, metrics, reports), models/tasks.py (encoders, decoders, critics'
    networks), datasets/tasks.py (modalities, loaders, previews)."""
    names = set(TASKS.names())
    branches = [b for folder in ("benchmark", "models", "datasets") for p in sorted((REPO / folder).rglob("*.py"))
                if "tasks" not in p.parts and p.name != "tasks.py" for b in _task_branches(p, names)]
    assert branches == [], branches


def test_the_three_task_registries_know_the_same_tasks() -> None:
    from asymfusion.datasets.tasks import DATA_TASKS
    from asymfusion.models.tasks import MODEL_TASKS

    assert TASKS.names() == MODEL_TASKS.names() == DATA_TASKS.names()
