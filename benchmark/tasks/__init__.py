"""Tasks: what a task means to the benchmark, in one object per task (segmentation.py, translation.py).

A `Task` owns its loss and any network trained beside the model (translation's PatchGAN), its metrics and main
metric with direction, the headline scores, the table columns, the validation curve and the qualitative panels.
The trainer, evaluation, bench, tables, report, tuning and the pipeline writer ask `get_task(name)`; none of them
branches on a task's name. A new task is a file here with `@register_task("name")` (plus its dataset loader and
model heads, which live in datasets/ and models/).
"""

from __future__ import annotations

import importlib
import pkgutil

from asymfusion.benchmark.tasks.base import Column, Critic, Task
from asymfusion.models.registry import Registry


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


TASKS: Registry[type[Task]] = Registry("task", _discover)
register_task = TASKS.register


def get_task(name: str) -> Task:
    """The task registered as `name` (an instance; tasks hold no state)."""
    return TASKS.get(name)()


__all__ = ["Column", "Critic", "Task", "TASKS", "get_task", "register_task"]
