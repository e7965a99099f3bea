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
                   on_change: str = "refuse", sets: tuple[str, ...] = (), into_suite: bool = False,
                   events: Any = None) -> tuple[str, list[dict[str, Any]]]:
    from asymfusion.benchmark.config import load_params, resolve_run
    from asymfusion.benchmark.config.overrides import Overrides

    from asymfusion.benchmark.engine.train import train_run

    overrides = Overrides.for_run(run, list(sets), into_suite) if sets else None
    return run, train_run(resolve_run(load_params(params_path, overrides), run), restart=restart, progress=progress,
                          on_change=on_change, events=events)


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
               progress: bool = True, on_change: str = "refuse", sets: tuple[str, ...] = (), into_suite: bool = False,
               context: multiprocessing.context.BaseContext | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    """Train several runs, `jobs` at a time in separate processes (each sets its own thread count), showing their
    progress here (benchmark/engine/progress.py `JobsDisplay`: a line per run on a terminal, else epoch lines).

    On 2 cores, two single-threaded small-model trainings side by side beat one two-threaded one. The pool is
    closed and joined, not terminated, so no worker dies holding a semaphore (resource_tracker's "leaked
    semaphore" warnings).
    """
    if jobs == 1 or len(runs) == 1:
        return [_train_by_name(params_path, run, restart, progress, on_change, sets, into_suite) for run in runs]
    from asymfusion.benchmark.engine.progress import JobsDisplay

    context = context or worker_context(jobs)
    manager = context.Manager()
    events = manager.Queue()
    display = JobsDisplay(runs, live=None if progress else False)
    pool = context.Pool(min(jobs, len(runs)))
    try:
        pending = pool.starmap_async(_train_by_name, [(params_path, run, restart, False, on_change, sets,
                                                       into_suite, events) for run in runs])
        while not pending.ready():
            display.drain(events, timeout=0.5)
        display.drain(events)
        results = pending.get()
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
        display.close()
        manager.shutdown()
    return results
