"""The `tune` verb's command line. Its parser is built here without importing Optuna or torch, so `asymfusion
--help` stays fast; `cmd_tune` loads the study code (benchmark/tune/study.py) only when it runs.

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
import sys
from pathlib import Path
from typing import Any


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
                         description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=None,
                   help="edit the study's base experiment for this command (a dotted key, a YAML value; repeatable); "
                        "trials, checkpoints and exports then go under tries/")
    p.add_argument("--into-suite", action="store_true",
                   help="with --set: write where the study's own outputs go instead of tries/")
    p.set_defaults(func=cmd_tune)




def _shadowed_sets(sets: list[str], study: Any, where: str) -> list[str]:
    """Notes for --set keys that a trial replaces: the study's own epochs and its searched keys. The edit still
    reaches the base experiment (what --retrain trains), so it is not an error, but a user must not think the
    trials ran with it."""
    notes = []
    for item in sets:
        key = item.split("=", 1)[0].strip()
        if key == "train.epochs" and study.epochs is not None:
            notes.append(f"note: --set {item}: each trial trains {where}.epochs = {study.epochs} epochs; the edit "
                         "reaches only the base experiment (what --retrain trains)")
        elif key in study.space:
            notes.append(f"note: --set {item}: {key} is searched ({where}.space), so every trial samples its own "
                         "value; the edit reaches only the base experiment (what --retrain trains)")
    return notes


def cmd_tune(args: argparse.Namespace) -> int:
    from asymfusion.benchmark.config import load_params
    from asymfusion.benchmark.tune.study import run_tuning

    params = load_params(args.params)
    if args.set:
        from asymfusion.benchmark.config.overrides import Overrides
        from asymfusion.benchmark.errors import ConfigError

        study = params.tuning.get(args.suite, {}).get(args.method)
        if study is None:
            raise ConfigError(f"--set: no study tuning.{args.suite}.{args.method} in {args.params}")
        try:
            overrides = Overrides.for_run(study.experiment or f"{args.suite}-{args.method}", args.set, args.into_suite)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        params = load_params(args.params, overrides)
        for line in _shadowed_sets(args.set, study, f"tuning.{args.suite}.{args.method}"):
            print(line, file=sys.stderr)
    summary = run_tuning(params, args.suite, args.method, trials=args.trials, storage=args.storage,
                         workers=args.workers, study_name=args.study_name,
                         out=Path(args.out) if args.out else None, progress=not args.no_progress,
                         keep_checkpoints=args.keep_checkpoints, export_only=args.export, retrain=args.retrain)
    print(summary["text"])
    return 0
