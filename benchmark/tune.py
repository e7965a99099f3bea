"""Hyperparameter tuning with Optuna: `asymfusion tune --suite SUITE --method METHOD --trials N` (docs/tuning.md).

A study searches the `space` of `tuning.<suite>.<method>` in params.yaml around a base experiment. A trial is the
base experiment with the sampled keys overridden, validated through the normal resolution, trained by the real
trainer (`train_run`) into its own folders (results/tuning/<suite>-<method>/trials/<number>/, checkpoints under
<paths.checkpoints>/tuning/), reporting the configured metric to Optuna every epoch; the seeded TPE sampler proposes,
the MedianPruner stops trials that fall behind. `--trials N` is the study's total of finished (complete + pruned)
trials: a rerun continues the stored study up to N.

Storage: a local SQLite file by default (results/tuning/<suite>-<method>/study.db, one worker); `--storage URL` an RDB
URL (PostgreSQL for many machines) or a journal file path (several workers on one machine). RDB storages record
heartbeats and re-queue a trial whose worker died (Optuna's retry callback); on one machine, a RUNNING trial whose
worker process is gone is failed and re-queued at once, for journal files too. `--workers K` runs K processes on one
storage; a file lock makes the workers of one machine stop at exactly N finished trials.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import traceback
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from asymfusion.benchmark.config import ConfigError, Params, load_params, resolve_run
from asymfusion.benchmark.tune_config import (
    CategoricalParam,
    FloatParam,
    TuningConfig,
    base_experiment,
    check_study,
    experiment_mapping,
    set_dotted,
    spec_hash,
    validate_experiment,
)
from asymfusion.benchmark.tune_storage import (
    Gate,
    create_or_load_study,
    gate_lock_path,
    open_storage,
    quiet,
    retry_callback,
    storage_location,
)


class TuningError(RuntimeError):
    """The study could not reach its target (failed trials, a dead worker, a missing study); exit code 1."""


@dataclass(frozen=True)
class Job:
    """Everything one worker process needs (picklable: spawn sends it to the workers)."""

    params: Params
    suite: str
    method: str
    spec: TuningConfig
    study_name: str
    storage: str
    n_trials: int
    out: Path
    progress: bool = False
    keep_checkpoints: bool = False
    sampler_offset: int = 0
    worker: int = 0


def default_out(params: Params, suite: str, method: str) -> Path:
    """results/tuning/<suite>-<method> next to the suite's results folder (results/quick -> results/tuning)."""
    return Path(params.suites[suite].results).parent / "tuning" / f"{suite}-{method}"


# ---------------------------------------------------------------------------------------------------------------------
# Trials


def suggest(trial: Any, spec: TuningConfig) -> dict[str, Any]:
    values = {}
    for key, dist in spec.space.items():
        if isinstance(dist, FloatParam):
            values[key] = trial.suggest_float(key, dist.low, dist.high, log=dist.log, step=dist.step)
        elif isinstance(dist, CategoricalParam):
            values[key] = dist.decode(trial.suggest_categorical(key, dist.encoded()))
        else:
            values[key] = trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
    return values


def trial_config(job: Job, values: dict[str, Any], number: int) -> Any:
    """The base experiment with `values` applied, resolved into a RunConfig with the trial's own folders."""
    spec, params = job.spec, job.params
    name = base_experiment(params, job.suite, job.method, spec)
    overrides = {**values, "seeds": [spec.seed]}
    if spec.epochs is not None:
        overrides["train.epochs"] = spec.epochs
    where = f"{params.source or 'params.yaml'}: tuning.{job.suite}.{job.method} (trial {number}, {values})"
    resolved = validate_experiment(params, name, set_dotted(experiment_mapping(params, name), overrides), where)
    cfg = resolve_run(resolved, f"{name}-s{spec.seed}")
    return cfg.model_copy(update={
        "run": f"{job.study_name}-trial{number}",
        "results_dir": job.out / "trials" / str(number),
        "checkpoint_dir": Path(params.paths.checkpoints) / "tuning" / job.study_name / f"trial-{number}",
    })


class Objective:
    """Train one trial with the real trainer, reporting the metric each epoch and pruning through Optuna."""

    def __init__(self, job: Job, gate: Gate) -> None:
        self.job, self.gate = job, gate

    def __call__(self, trial: Any) -> float:
        import optuna

        from asymfusion.benchmark.errors import NonFiniteLoss
        from asymfusion.benchmark.train import train_run

        trial.set_user_attr("worker_host", socket.gethostname())
        trial.set_user_attr("worker_pid", os.getpid())
        self.gate.release()
        spec = self.job.spec
        cfg = trial_config(self.job, suggest(trial, spec), trial.number)
        trial.set_user_attr("run_dir", str(cfg.results_dir))
        shutil.rmtree(cfg.checkpoint_dir, ignore_errors=True)  # a stale folder of an older study with this number
        scores: list[float] = []

        def on_epoch_end(row: dict[str, Any]) -> None:
            if spec.metric not in row:
                if any(k.startswith("val_") for k in row):
                    raise ConfigError(f"tuning.{self.job.suite}.{self.job.method}.metric: the trainer does not report "
                                      f"{spec.metric!r}; it reports: {', '.join(sorted(row))}")
                return  # an epoch without validation (train.eval_every)
            value = float(row[spec.metric])
            scores.append(value)
            trial.report(value, step=row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"{spec.metric}={value:.4g} at epoch {row['epoch']}")

        try:
            train_run(cfg, progress=self.job.progress, on_epoch_end=on_epoch_end)
        except NonFiniteLoss as exc:
            trial.set_user_attr("error", str(exc))
            raise
        finally:
            if not self.job.keep_checkpoints:
                shutil.rmtree(cfg.checkpoint_dir, ignore_errors=True)
        if not scores:
            raise ConfigError(f"tuning.{self.job.suite}.{self.job.method}.metric: {spec.metric!r} was never reported")
        return max(scores) if spec.direction == "maximize" else min(scores)


def run_worker(job: Job) -> None:
    """One worker: trials until the study holds N finished ones (or this worker saw too many failures)."""
    import numpy as np
    import optuna

    from asymfusion.benchmark.errors import NonFiniteLoss

    spec = job.spec
    # Workers differ by index; a continued study by the trials it already holds (no replay of the first proposals);
    # machines sharing a server database by host name. One worker on one machine is reproducible from `seed`.
    entropy = [spec.seed, job.worker, job.sampler_offset]
    if "://" in job.storage and not job.storage.startswith("sqlite"):
        entropy.append(zlib.crc32(socket.gethostname().encode()))
    seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
    with quiet():
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.sampler.n_startup_trials,
                                             constant_liar=True)
        storage = open_storage(job.storage, spec)
    pruner = (optuna.pruners.NopPruner() if spec.pruner.name == "none" else optuna.pruners.MedianPruner(
        n_startup_trials=spec.pruner.n_startup_trials, n_warmup_steps=spec.pruner.n_warmup_steps,
        interval_steps=spec.pruner.interval_steps))
    study = optuna.load_study(study_name=job.study_name, storage=storage, sampler=sampler, pruner=pruner)
    lock = gate_lock_path(job.storage, job.out, job.study_name)
    gate = Gate(lock, job.n_trials, retry_callback(spec.heartbeat.max_retry))
    failures = [0]

    def after_trial(study: Any, frozen: Any) -> None:
        failures[0] += frozen.state == optuna.trial.TrialState.FAIL
        if failures[0] >= max(3, job.n_trials) or not gate.admit(study):
            study.stop()

    if not gate.admit(study):
        return
    try:
        study.optimize(Objective(job, gate), callbacks=[after_trial], catch=(NonFiniteLoss,), gc_after_trial=True)
    finally:
        gate.release()


def _worker_entry(job: Job) -> None:
    try:
        run_worker(job)
    except ConfigError as exc:
        print(f"worker {job.worker}: error: invalid configuration\n{exc}", file=sys.stderr)
        sys.exit(2)
    except BaseException:
        traceback.print_exc()
        sys.exit(1)


# ---------------------------------------------------------------------------------------------------------------------
# The whole loop


def get_spec(params: Params, suite: str, method: str) -> TuningConfig:
    if suite not in params.suites:
        raise ConfigError(f"unknown suite {suite!r}; allowed: {', '.join(params.suites)}")
    studies = (getattr(params, "tuning", None) or {}).get(suite, {})
    if method not in studies:
        defined = [f"--suite {s} --method {m}" for s, ms in (getattr(params, "tuning", None) or {}).items() for m in ms]
        raise ConfigError(f"no study tuning.{suite}.{method} in {params.source or 'params.yaml'}; defined: "
                          f"{'; '.join(defined) or '(none)'}")
    return studies[method]


def run_tuning(params: Params, suite: str, method: str, *, trials: int | None = None, storage: str | None = None,
               workers: int = 1, study_name: str | None = None, out: Path | None = None, progress: bool = False,
               keep_checkpoints: bool = False, export_only: bool = False, retrain: bool = False) -> dict[str, Any]:
    """Run (or continue) the study to `trials` finished trials, write its outputs, optionally retrain the best."""
    import multiprocessing

    import optuna

    from asymfusion.benchmark.tune_outputs import export_study, retrain_tuned

    spec = get_spec(params, suite, method)
    check_study(params, suite, method, spec, str(params.source or "params.yaml"))
    out = Path(out) if out is not None else default_out(params, suite, method)
    location = storage_location(storage, out)
    if workers > 1 and location.startswith("sqlite") and not export_only:
        raise ConfigError(f"--workers {workers}: SQLite takes one writer at a time; give several workers a journal "
                          f"file (--storage {out / 'study.journal'}) or a server database (--storage postgresql://...)")
    job = Job(params=params, suite=suite, method=method, spec=spec, study_name=study_name or f"{suite}-{method}",
              storage=location, n_trials=trials or spec.trials, out=out, progress=progress and workers == 1,
              keep_checkpoints=keep_checkpoints)
    opened = open_storage(location, spec)
    if export_only:
        try:
            study = optuna.load_study(study_name=job.study_name, storage=opened)
        except KeyError:
            raise TuningError(f"no study {job.study_name!r} in {location}") from None
    else:
        digest = spec_hash(params, suite, method, spec)
        study = create_or_load_study(job.study_name, location, opened, spec, digest, f"tuning.{suite}.{method}")
        job = replace(job, sampler_offset=len(study.trials))
        if workers == 1:
            run_worker(job)
        else:
            context = multiprocessing.get_context("spawn")
            procs = [context.Process(target=_worker_entry, args=(replace(job, worker=i),), name=f"tune-worker-{i}")
                     for i in range(workers)]
            for proc in procs:
                proc.start()
            for proc in procs:
                proc.join()
            codes = [proc.exitcode for proc in procs]
            if 2 in codes:
                raise ConfigError(f"a tuning worker stopped on an invalid configuration (exit codes {codes})")
            if any(codes):
                raise TuningError(f"tuning workers exited with codes {codes}; see their messages above")
        study = optuna.load_study(study_name=job.study_name, storage=opened)
    summary = export_study(study, job)
    if not export_only and summary["finished"] < job.n_trials:
        raise TuningError(f"{job.study_name}: stopped at {summary['finished']} of {job.n_trials} finished trials "
                          f"({summary['states']}); see {out / 'trials.csv'}")
    if retrain:
        summary["retrained"] = retrain_tuned(job, summary, progress=progress)
    return summary


# ---------------------------------------------------------------------------------------------------------------------
# Command line


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_tune_parser(verbs: argparse._SubParsersAction) -> None:
    """The `tune` verb; cli.py calls this with its sub-parsers."""
    p = verbs.add_parser("tune", help="tune hyperparameters with Optuna (params.yaml `tuning:`; docs/tuning.md)",
                         description=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", required=True, help="suite of the study (a key under `tuning:` and `suites:`)")
    p.add_argument("--method", required=True, help="study under tuning.<suite> (usually the fusion method's name)")
    p.add_argument("--trials", type=_positive, default=None, metavar="N",
                   help="finished (complete + pruned) trials the study should hold in total; a rerun continues up "
                        "to N (default: tuning.<suite>.<method>.trials)")
    p.add_argument("--storage", default=None, metavar="URL|FILE",
                   help="RDB URL (e.g. postgresql://user:pass@host/db for many machines) or a journal file path "
                        "(several workers on one machine); default sqlite:///<out>/study.db")
    p.add_argument("--workers", type=int, default=1, choices=range(1, 65), metavar="{1..64}",
                   help="worker processes on this machine sharing the storage (K > 1 needs a journal file or a "
                        "server database); set train.threads to cores / K")
    p.add_argument("--study-name", default=None, help="study name in the storage (default: <suite>-<method>)")
    p.add_argument("--out", default=None,
                   help="output folder (default: results/tuning/<suite>-<method>, beside the suite's results)")
    p.add_argument("--export", action="store_true",
                   help="run no trials: write best_params.yaml, trials.csv, tuned_experiment.yaml and plots from "
                        "the stored study (e.g. one that workers on several machines filled)")
    p.add_argument("--retrain", action="store_true",
                   help="then train and evaluate the best configuration as experiment <experiment>-tuned with every "
                        "seed of the suite (metrics land beside the suite's other runs)")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each trial's checkpoints (default: deleted when the trial ends)")
    p.add_argument("--no-progress", action="store_true", help="no per-epoch progress bar")
    p.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    try:
        summary = run_tuning(params, args.suite, args.method, trials=args.trials, storage=args.storage,
                             workers=args.workers, study_name=args.study_name,
                             out=Path(args.out) if args.out else None, progress=not args.no_progress,
                             keep_checkpoints=args.keep_checkpoints, export_only=args.export, retrain=args.retrain)
    except TuningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary["text"])
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m asymfusion.benchmark.tune [--params FILE] tune ...` (the same verb as `asymfusion tune`)."""
    from asymfusion.benchmark.checkpoint import ResumeMismatch
    from asymfusion.benchmark.errors import NonFiniteLoss
    from asymfusion.datasets.formats import DataFormatError

    parser = argparse.ArgumentParser(prog="asymfusion")
    parser.add_argument("--params", default="params.yaml", help="the params file to read (default: params.yaml)")
    add_tune_parser(parser.add_subparsers(dest="verb", required=True, metavar="VERB"))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ResumeMismatch) as exc:
        print(f"error: invalid configuration\n{exc}", file=sys.stderr)
        return 2
    except (DataFormatError, FileNotFoundError, NonFiniteLoss) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
