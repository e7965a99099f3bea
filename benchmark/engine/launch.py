"""Start the trainings of one command: in this process, or `jobs` at a time in worker processes.

This module imports no torch: with `jobs > 1` the command's own process only resolves the runs and waits, while
a forkserver imports torch, timm and the trainer once (started first, so its ~7 s of imports overlap this
process's config loading) and forks every worker from there. Before this split the parent imported the trainer
too, for nothing: ~8 s of every `asymfusion train ... --jobs 3` stage (docs/performance.md, "Stage overhead").
"""

from __future__ import annotations

import multiprocessing
from typing import Any

TRAINER = "asymfusion.benchmark.engine.train"


def _train_by_name(params_path: str, run: str, restart: bool, progress: bool,
                   on_change: str = "refuse") -> tuple[str, list[dict[str, Any]]]:
    from asymfusion.benchmark.config import load_params, resolve_run
    from asymfusion.benchmark.engine.train import train_run

    return run, train_run(resolve_run(load_params(params_path), run), restart=restart, progress=progress,
                          on_change=on_change)


def worker_context(jobs: int) -> multiprocessing.context.BaseContext | None:
    """The process context `train_many` will use for `jobs` workers, its server already importing the trainer.

    forkserver, not fork: the workers must not inherit a parent's torch thread pools. Platforms without forkserver
    use spawn (each worker then imports torch itself). None for `jobs == 1` (training runs in this process).
    """
    if jobs == 1:
        return None
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([TRAINER])
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return context


def train_many(params_path: str, runs: list[str], *, jobs: int = 1, restart: bool = False,
               progress: bool = True, on_change: str = "refuse",
               context: multiprocessing.context.BaseContext | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    """Train several runs, `jobs` at a time in separate processes (each sets its own thread count).

    On 2 cores, two single-threaded small-model trainings side by side beat one two-threaded one.
    """
    if jobs == 1 or len(runs) == 1:
        return [_train_by_name(params_path, run, restart, progress, on_change) for run in runs]
    context = context or worker_context(jobs)
    with context.Pool(min(jobs, len(runs))) as pool:
        return pool.starmap(_train_by_name, [(params_path, run, restart, False, on_change) for run in runs])
