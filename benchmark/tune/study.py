"""Optuna studies over the experiments: workers, trials, pruning and the gate that stops at N finished trials.

`asymfusion tune` (benchmark/tune/cli.py, which documents the study's semantics and storages) calls `run_tuning`;
a trial is the base experiment with the sampled keys overridden, trained by the real trainer (`train_run`).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import traceback
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from asymfusion.benchmark.config import ConfigError, Params, resolve_run
from asymfusion.benchmark.errors import describe, exit_code
from asymfusion.benchmark.config.tuning import (
    CategoricalParam,
    FloatParam,
    TuningConfig,
    base_experiment,
    experiment_mapping,
    set_dotted,
    spec_hash,
)
from asymfusion.benchmark.config.tuning_checks import check_study, validate_experiment
from asymfusion.benchmark.tune.storage import (
    Gate,
    create_or_load_study,
    gate_lock,
    open_storage,
    quiet,
    retry_callback,
    storage_location,
)


class TuningError(RuntimeError):
    """The study could not reach its target (failed trials, a dead worker, a missing study); exit code 1."""

    exit_code = 1


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
        from asymfusion.benchmark.engine.train import train_run

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
    # workers sharing a server database by host name and process. One worker on one machine is reproducible from
    # `seed`.
    entropy = [spec.seed, job.worker, job.sampler_offset]
    if "://" in job.storage and not job.storage.startswith("sqlite"):
        entropy += [zlib.crc32(socket.gethostname().encode()), os.getpid()]
    seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
    with quiet():
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.sampler.n_startup_trials,
                                             constant_liar=True)
        storage = open_storage(job.storage, spec)
    pruner = (optuna.pruners.NopPruner() if spec.pruner.name == "none" else optuna.pruners.MedianPruner(
        n_startup_trials=spec.pruner.n_startup_trials, n_warmup_steps=spec.pruner.n_warmup_steps,
        interval_steps=spec.pruner.interval_steps))
    study = optuna.load_study(study_name=job.study_name, storage=storage, sampler=sampler, pruner=pruner)
    lock = gate_lock(job.storage, job.out, job.study_name, storage)
    gate = Gate(lock, job.n_trials, retry_callback(spec.heartbeat.max_retry))
    failures = [0]

    def after_trial(study: Any, frozen: Any) -> None:
        print(trial_line(study, frozen, job.n_trials), file=sys.stderr, flush=True)
        failures[0] += frozen.state == optuna.trial.TrialState.FAIL
        if failures[0] >= max(3, job.n_trials) or not gate.admit(study):
            study.stop()

    if not gate.admit(study):
        return
    try:
        study.optimize(Objective(job, gate), callbacks=[after_trial], catch=(NonFiniteLoss,), gc_after_trial=True)
    finally:
        gate.release()


def trial_line(study: Any, frozen: Any, n_trials: int) -> str:
    """`study: trial 3/8 complete, value 35.2 (lr_decoder=0.02, ...); best so far: trial 1, 36.0`. The rank counts
    what the study's N counts (complete and pruned trials); a failed trial is named as not counted."""
    import optuna

    TrialState = optuna.trial.TrialState
    counted = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    value = f", value {frozen.value:.4g}" if frozen.value is not None else ""
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in frozen.params.items())
    best = ""
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        top = study.best_trial
        best = f"; best so far: trial {top.number}, {top.value:.4g}"
    if frozen.state == TrialState.FAIL:
        return (f"{study.study_name}: trial #{frozen.number} failed, not counted ({counted}/{n_trials} so far; "
                f"{params}){best}")
    return (f"{study.study_name}: trial {counted}/{n_trials} {frozen.state.name.lower()} (#{frozen.number}"
            f"{value}; {params}){best}")


def _worker_entry(job: Job) -> None:
    try:
        run_worker(job)
    except BaseException as exc:
        code = exit_code(exc)
        if code is None:
            traceback.print_exc()
            sys.exit(1)
        print(f"worker {job.worker}: {describe(exc)}", file=sys.stderr)
        sys.exit(code)


# ---------------------------------------------------------------------------------------------------------------------
# The whole loop


def _exit_reason(code: int) -> str:
    if code < 0:
        import signal

        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


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

    from asymfusion.benchmark.tune.outputs import export_study, retrain_tuned

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
    lost: list[str] = []
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
            lost = [f"worker {i}: {_exit_reason(code)}" for i, code in enumerate(codes) if code]
        study = optuna.load_study(study_name=job.study_name, storage=opened)
    summary = export_study(study, job)
    if not export_only and summary["finished"] < job.n_trials:
        cause = f"; {', '.join(lost)} (see their messages above)" if lost else ""
        raise TuningError(f"{job.study_name}: stopped at {summary['finished']} of {job.n_trials} finished trials "
                          f"({summary['states']}){cause}; see {out / 'trials.csv'}")
    if lost:  # the others finished the study: what was asked for is done, so this is not a failure
        summary["lost_workers"] = lost
        print(f"warning: {', '.join(lost)}; the other workers finished all {job.n_trials} trials", file=sys.stderr)
    if retrain:
        summary["retrained"] = retrain_tuned(job, summary, progress=progress)
    return summary
