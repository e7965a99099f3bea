"""What a training shows while it runs, in the three places it runs.

* one process on a terminal (`asymfusion train RUN`): a tqdm bar per epoch whose postfix has the loss, images/s and
  the whole run's ETA (time per step so far x steps left in all epochs);
* no progress bar (`--no-progress`, every DVC stage, logs): one line per epoch on stderr — run, epoch, loss,
  validation metric, seconds, run ETA — so `dvc repro` shows where it is;
* `--jobs N`: each worker sends its steps and epochs to the parent (`RunProgress(queue=...)`), whose `JobsDisplay`
  draws one rich progress line per run on a terminal, or prints the workers' epoch lines, whole, otherwise.
"""

from __future__ import annotations

import queue as queue_module
import sys
import time
from typing import Any

from tqdm.auto import tqdm

__all__ = ["JobsDisplay", "RunProgress", "format_eta"]


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def epoch_line(run: str, epoch: int, epochs: int, loss: float, metric: str, value: float | None, seconds: float,
               eta: float | None) -> str:
    val = f", val {metric} {value:.4g}" if value is not None else ""
    return (f"{run}: epoch {epoch}/{epochs} loss {loss:.4f}{val} ({seconds:.0f} s; run ETA "
            f"{format_eta(eta)})")


class RunProgress:
    """One run's reporting: a bar (`bar=True`), epoch lines on stderr, or events into `queue` (a worker's)."""

    def __init__(self, run: str, epochs: int, steps: int, start_epoch: int, *, bar: bool,
                 queue: Any = None, enabled: bool = True) -> None:
        self.run, self.epochs, self.steps, self.enabled = run, epochs, steps, enabled
        self.bar_wanted, self.queue = bar and queue is None, queue
        self.left = (epochs - start_epoch) * steps  # steps this invocation still runs
        self.done, self.started, self.bar, self.last_sent = 0, time.perf_counter(), None, 0.0
        self.epoch, self.in_epoch = start_epoch, 0

    def eta(self) -> float | None:
        if self.done == 0:
            return None
        return (time.perf_counter() - self.started) / self.done * (self.left - self.done)

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.in_epoch = epoch, 0
        if self.enabled and self.bar_wanted:
            self.bar = tqdm(total=self.steps, desc=f"{self.run} epoch {epoch + 1}/{self.epochs}", leave=False,
                            mininterval=1.0)

    def step(self, loss: float, images_per_s: float) -> None:
        self.done += 1
        self.in_epoch += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{images_per_s:.1f}", run_eta=format_eta(self.eta()),
                                 refresh=False)
        elif self.queue is not None and time.perf_counter() - self.last_sent > 0.5:
            self.last_sent = time.perf_counter()
            self.queue.put({"run": self.run, "kind": "step", "epoch": self.epoch + 1, "epochs": self.epochs,
                            "done": self.epoch * self.steps + self.in_epoch, "total": self.epochs * self.steps,
                            "loss": loss, "eta": self.eta()})

    def end_epoch(self, row: dict[str, Any], metric: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if not self.enabled:
            return
        line = epoch_line(self.run, row["epoch"], self.epochs, row["train_loss"], metric,
                          row.get(f"val_ensemble_{metric}"), row["seconds"], self.eta())
        if self.queue is not None:
            self.queue.put({"run": self.run, "kind": "epoch", "epoch": row["epoch"], "epochs": self.epochs,
                            "done": row["epoch"] * self.steps, "total": self.epochs * self.steps,
                            "loss": row["train_loss"], "eta": self.eta(), "line": line})
        elif not self.bar_wanted:
            print(line, file=sys.stderr, flush=True)


class JobsDisplay:
    """The parent's view of `--jobs N` workers: one rich line per run on a terminal, else their epoch lines."""

    def __init__(self, runs: list[str], live: bool | None = None) -> None:
        self.live = sys.stderr.isatty() if live is None else live
        self.tasks: dict[str, Any] = {}
        self.progress = None
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[status]}"), TimeElapsedColumn(), transient=False)
            self.tasks = {run: self.progress.add_task(run, total=None, status="waiting") for run in runs}
            self.progress.start()

    def handle(self, event: dict[str, Any]) -> None:
        if self.progress is None:
            if event["kind"] == "epoch":
                print(event["line"], file=sys.stderr, flush=True)
            return
        status = f"epoch {event['epoch']}/{event['epochs']} loss {event['loss']:.3f} run ETA {format_eta(event['eta'])}"
        self.progress.update(self.tasks[event["run"]], total=event["total"], completed=event["done"], status=status)

    def drain(self, events: Any, timeout: float = 0.0) -> None:
        """Show every event waiting in `events`, waiting up to `timeout` s for the first."""
        try:
            event = events.get(timeout=timeout) if timeout else events.get_nowait()
            while True:
                self.handle(event)
                event = events.get_nowait()
        except queue_module.Empty:
            return

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
