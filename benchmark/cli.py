"""The `asymfusion` command line. Every verb validates params.yaml before doing any work.

    asymfusion config show quick-asymfusion-s0     # the resolved configuration of one run
    asymfusion config list --suite quick           # run names
    asymfusion prepare synthetic                   # render the procedural scenes (params.yaml `synthetic:`)
    asymfusion show synth-seg --n 8 --out grid.png # a grid of every modality and the labels
    asymfusion train quick-asymfusion-s0           # train (resumes automatically)
    asymfusion evaluate quick-asymfusion-s0        # metrics JSON, robustness, qualitative grid

Exit codes: 0 success, 1 runtime failure (e.g. a bad data file), 2 invalid configuration or arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from typing import TYPE_CHECKING

from asymfusion.benchmark.errors import ConfigError, describe, exit_code

if TYPE_CHECKING:
    from asymfusion.benchmark.config import Params


def _params(args: argparse.Namespace) -> Params:
    """params.yaml, validated (with the run's `--set` edits, where the verb has them). The schema (pydantic, ~0.4 s
    to import) loads when a verb runs, not for `--help`."""
    from asymfusion.benchmark.config import load_params

    sets = getattr(args, "set", None)
    if not sets:
        return load_params(args.params)
    from asymfusion.benchmark.config.overrides import Overrides

    try:
        overrides = Overrides.for_run(args.run, sets, getattr(args, "into_suite", False))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return load_params(args.params, overrides)


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=None,
                   help="edit the run's experiment for this try: a dotted key after its bases merge, a YAML value "
                        "(repeatable; e.g. --set optimiser.lr_decoder=0.01 --set train.epochs=2); validated like "
                        "params.yaml; outputs go under tries/ (results and checkpoints) and record the edits")
    p.add_argument("--into-suite", action="store_true",
                   help="with --set: write into the suite's own results and checkpoints instead of tries/")


def cmd_config_show(args: argparse.Namespace) -> int:
    from asymfusion.benchmark.config import resolve_run

    run = resolve_run(_params(args), args.run)
    text = yaml.safe_dump(run.to_dict(), sort_keys=False)
    print(f"# run {run.run}  params-hash {run.params_hash()}\n{text}", end="")
    return 0


def cmd_config_list(args: argparse.Namespace) -> int:
    from asymfusion.benchmark.config import list_runs

    params = _params(args)
    if args.suite is not None and args.suite not in params.suites:
        raise ConfigError(f"unknown suite {args.suite!r}; allowed: {', '.join(params.suites)}")
    print("\n".join(list_runs(params, args.suite)))
    return 0


def cmd_config_validate(args: argparse.Namespace) -> int:
    from asymfusion.benchmark.config import list_runs

    params = _params(args)
    models = ""
    if not args.no_models:
        from asymfusion.benchmark.config import resolve_run
        from asymfusion.benchmark.engine.modelcheck import check_model_builds

        for name in params.experiments:
            check_model_builds(resolve_run(params, name).model, f"{args.params}: experiments.{name}.model")
        models = ", every model built on the meta device"
    print(f"{args.params}: valid ({len(params.experiments)} experiments, {len(list_runs(params))} runs{models})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from asymfusion.benchmark.engine.launch import train_many, worker_context

    context = worker_context(args.jobs)  # the workers' server imports the trainer while params load here
    from asymfusion.benchmark.config import runs_of

    from asymfusion.benchmark.config import resolve_run
    from asymfusion.benchmark.tasks import get_task

    params = _params(args)
    runs = runs_of(params, args.run)
    for run, history in train_many(args.params, runs, jobs=args.jobs, restart=args.restart,
                                   progress=not args.no_progress, on_change=args.on_change,
                                   sets=tuple(args.set or ()), into_suite=args.into_suite, context=context):
        print(train_summary(run, history, get_task(resolve_run(params, run).dataset.task)))
    return 0


def train_summary(run: str, history: list[dict], task) -> str:
    """The last epoch's validation and which epoch best.pt holds: `evaluate` scores one of the two
    (evaluate.checkpoint), and the line says which numbers are which."""
    key = f"val_ensemble_{task.main_metric}"
    validated = [r for r in history if isinstance(r.get(key), float)]
    if not validated:
        return f"{run}: trained {len(history)} epochs (no validation)"
    last = validated[-1]
    best = (max if task.higher_is_better else min)(validated, key=lambda r: r[key])
    scores = ", ".join(f"{k.removeprefix('val_ensemble_')}={v:.4g}" for k, v in last.items()
                       if k.startswith("val_ensemble_"))
    return (f"{run}: trained {len(history)} epochs; last.pt (epoch {last['epoch']}): {scores}; best.pt: epoch "
            f"{best['epoch']}, {task.main_metric}={best[key]:.4g}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _corruption_spec(text: str) -> str:
    """argparse type: a corruption spec of datasets/corruptions.py (unknown names exit 2, listing the known)."""
    from asymfusion.datasets.corruptions import parse_corruption

    try:
        parse_corruption(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def cmd_evaluate(args: argparse.Namespace) -> int:
    from asymfusion.benchmark.config import resolve_run, runs_of

    from asymfusion.benchmark.engine.evaluate import evaluate_run

    params = _params(args)
    for run in runs_of(params, args.run):
        cfg = resolve_run(params, run)
        if args.corruptions:
            from asymfusion.datasets.tasks import data_task

            if not data_task(cfg.dataset.task).corruptible:
                raise ConfigError(f"--corruptions: the {cfg.dataset.task} loader of {cfg.run} applies no corruptions "
                                  "(segmentation does)")
        for spec in args.corruptions or []:
            if spec.split("/")[0].split("@")[0] not in cfg.data.modalities:
                raise ConfigError(f"--corruptions {spec}: {cfg.run} has no such input (modalities: "
                                  f"{', '.join(cfg.data.modalities)})")
        record = evaluate_run(cfg, checkpoint=f"{args.checkpoint or cfg.evaluate.checkpoint}.pt",
                              corruptions=args.corruptions, max_samples=args.max_samples,
                              progress=not args.no_progress and sys.stderr.isatty())
        ensemble = record["metrics"]["ensemble"]
        summary = ", ".join(f"{k}={v:.4g}" for k, v in ensemble.items() if isinstance(v, float))
        which = record["checkpoint"]
        print(f"{cfg.run}: {which['file']} (epoch {which['epoch']}): {summary}; wrote "
              f"{cfg.results_dir / 'metrics' / (cfg.run + '.json')}")
    return 0


def _suite(params: Params, suite: str) -> str:
    if suite not in params.suites:
        raise ConfigError(f"unknown suite {suite!r}; allowed: {', '.join(params.suites)}")
    return suite


def cmd_tables(args: argparse.Namespace) -> int:
    from asymfusion.benchmark.report.tables import write_tables

    params = _params(args)
    suite = _suite(params, args.suite)
    results = Path(params.suites[suite].results)
    for path in write_tables(params.tables.get(suite, []), results / "metrics", results / "tables",
                             perf_json=results / "perf.json" if params.suites[suite].perf else None):
        print(f"wrote {path}")
    return 0


def cmd_plots(args: argparse.Namespace) -> int:
    from asymfusion.benchmark.report.plots import write_plots

    params = _params(args)
    results = Path(params.suites[_suite(params, args.suite)].results)
    for path in write_plots(params.tables.get(args.suite, []), results / "metrics", results / "plots" / "summary"):
        print(f"wrote {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from asymfusion.benchmark.report.readme import write_report

    params = _params(args)
    print(f"wrote {write_report(params, _suite(params, args.suite))}")
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from asymfusion.benchmark.pipeline.stages import render_pipeline, write_pipeline

    params = _params(args)
    path = Path(args.dvc_yaml)
    if args.specs:
        from asymfusion.benchmark.pipeline.specs import write_specs

        written = write_specs(params, path)
        print(f"wrote {len(written)} stage specs under {written[0].parent if written else 'results/specs'}")
        return 0
    if args.check:
        if not path.exists() or path.read_text() != render_pipeline(params):
            print(f"{path} is out of date with {args.params}: run `asymfusion pipeline`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    print(f"{'rewrote' if write_pipeline(params, path) else 'unchanged:'} {path}")
    return 0


def cmd_prepare_synthetic(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from asymfusion.datasets.synthetic import render_dataset

    params = _params(args)
    render = params.synthetic
    overrides = {k: getattr(args, k) for k in ("size", "n_train", "n_val", "views_per_scene", "seed")}
    try:
        render = render.model_validate({**render.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
    except ValidationError as exc:  # a command-line value out of range: name the option, as argparse would
        problems = "; ".join(f"--{str(e['loc'][0]).replace('_', '-')} {e.get('input')!r}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"prepare synthetic: {problems}") from None
    out = Path(args.out) if args.out else params.data_dir() / "synthetic"
    summary = render_dataset(out, **render.model_dump(), workers=args.workers, progress=not args.quiet)
    print(f"wrote {out}: {summary}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from asymfusion.datasets.show import show_grid

    params = _params(args)
    if args.dataset not in params.datasets:
        raise ConfigError(f"unknown dataset {args.dataset!r}; allowed: {', '.join(params.datasets)}")
    root = Path(args.root) if args.root else params.dataset_root(args.dataset)
    out = show_grid(params.datasets[args.dataset], root, Path(args.out), n=args.n, split=args.split,
                    title=f"{args.dataset} ({args.split})")
    print(f"wrote {out}")
    return 0


# Verbs whose parsers are all defined in this module; any other verb (or none, or a typo) builds the full parser.
_OWN_VERBS = {"config", "train", "evaluate", "tables", "plots", "report", "pipeline", "show"}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The command line; `verb` limits it to what that verb needs (None: every verb, e.g. for --help)."""
    only = verb if verb in _OWN_VERBS | {"tune", "bench", "prepare", "fetch"} else None
    parser = argparse.ArgumentParser(prog="asymfusion", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="the params file to read (default: params.yaml)")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    config = verbs.add_parser("config", help="inspect and validate params.yaml")
    config_verbs = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = config_verbs.add_parser("show", help="print the resolved configuration of one run as YAML")
    p.add_argument("run", help="run name <experiment>-s<seed> (or an experiment name: its first seed)")
    p.set_defaults(func=cmd_config_show)
    p = config_verbs.add_parser("list", help="list run names")
    p.add_argument("--suite", default=None, help="only runs of this suite (a name under `suites:`)")
    p.set_defaults(func=cmd_config_list)
    p = config_verbs.add_parser("validate", help="validate params.yaml and exit 0, or exit 2 naming every error")
    p.add_argument("--no-models", action="store_true",
                   help="skip building each experiment's model on the meta device (backbone names, backbone_kwargs, "
                   "method options that only the model checks); train and evaluate always build it first")
    p.set_defaults(func=cmd_config_validate)

    p = verbs.add_parser("train", help="train runs (each resumes automatically from its last checkpoint)")
    p.add_argument("run", help="run name <experiment>-s<seed>, or an experiment name: all its seeds "
                   "(see `asymfusion config list`)")
    p.add_argument("--jobs", type=int, default=1, choices=range(1, 65), metavar="{1..64}",
                   help="seeds trained side by side in separate processes (each with train.threads threads)")
    p.add_argument("--restart", action="store_true",
                   help="start over even if a checkpoint exists (the old checkpoints are moved aside, not deleted)")
    p.add_argument("--on-change", default="refuse", choices=["refuse", "restart"],
                   help="a checkpoint written by another configuration: refuse (exit 2, keep it) or restart (move it "
                   "aside and train from scratch; also when the training code changed). DVC stages use restart")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar: one line per epoch and run on stderr instead (the log file is still written)")
    _add_overrides(p)
    p.set_defaults(func=cmd_train)

    p = verbs.add_parser("evaluate", help="evaluate trained runs and write results/<suite>/metrics/<run>.json")
    p.add_argument("run", help="run name <experiment>-s<seed>, or an experiment name: all its seeds")
    p.add_argument("--checkpoint", default=None, choices=["best", "last"],
                   help="which checkpoint to evaluate (default: the experiment's evaluate.checkpoint; best: by "
                        "validation metric during training, last: the final epoch)")
    p.add_argument("--corruptions", nargs="+", default=None, type=_corruption_spec, metavar="SPEC",
                   help="also score under sensor corruptions (segmentation; default: the experiment's "
                        "evaluate.corruptions): modality/name@severity, modality/name (severities 1-5) or a "
                        "modality (all of its corruptions), e.g. depth/holes@3 rgb/jpeg depth")
    p.add_argument("--max-samples", type=_positive_int, default=None, metavar="N",
                   help="score the first N validation images only (a smoke check; the metrics JSON says so)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar over the validation batches")
    _add_overrides(p)
    p.set_defaults(func=cmd_evaluate)

    prepare = verbs.add_parser("prepare", help="write a dataset in the on-disk layout the loaders read")
    prepare_sources = prepare.add_subparsers(dest="source", required=True, metavar="SOURCE")
    p = prepare_sources.add_parser("synthetic", help="render the procedural scenes (both layouts)")
    p.add_argument("--out", default=None, help="output folder (default: <data dir>/synthetic)")
    p.add_argument("--size", type=int, default=None, help="image side in pixels (default: params synthetic.size)")
    p.add_argument("--n-train", type=int, default=None, help="training views (default: params synthetic.n_train)")
    p.add_argument("--n-val", type=int, default=None, help="validation views (default: params synthetic.n_val)")
    p.add_argument("--views-per-scene", type=int, default=None, help="camera poses per room")
    p.add_argument("--seed", type=int, default=None, help="scene seed (default: params synthetic.seed)")
    p.add_argument("--workers", type=int, default=1, choices=range(1, 33), metavar="{1..32}",
                   help="render processes (the files do not depend on it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare_synthetic)

    for verb, func, text in (("tables", cmd_tables, "results/<suite>/tables/*.{md,csv,tex} from the metric files"),
                             ("plots", cmd_plots, "results/<suite>/plots/summary/*.png from the metric files"),
                             ("report", cmd_report, "results/<suite>/README.md: tables, plots, claims verdicts")):
        p = verbs.add_parser(verb, help=f"write {text}")
        p.add_argument("--suite", required=True, help="a suite name under `suites:` (e.g. quick, paper)")
        p.set_defaults(func=func)

    p = verbs.add_parser("pipeline", help="generate dvc.yaml from params.yaml (one stage per step and experiment)")
    p.add_argument("--check", action="store_true", help="only check that dvc.yaml is up to date (exit 1 if not)")
    p.add_argument("--specs", action="store_true", help="write results/specs/<stage>.json, what each stage depends "
                   "on (the `specs` stage runs this; exit 2 if dvc.yaml is out of date)")
    p.add_argument("--dvc-yaml", default="dvc.yaml", help="the file to write or check (default: dvc.yaml)")
    p.set_defaults(func=cmd_pipeline)

    # These verbs' parsers live beside their (heavier) implementations: build them only when the command line may
    # need them, so `asymfusion train` imports the training code and no other (benchmark/engine/codedeps.py).
    if only in (None, "tune"):
        from asymfusion.benchmark.tune.cli import add_tune_parser

        add_tune_parser(verbs)
    if only in (None, "bench"):
        from asymfusion.benchmark.perf.cli import add_bench_parser

        add_bench_parser(verbs)
    if only in (None, "prepare", "fetch", "standins"):
        from asymfusion.datasets.commands import add_fetch_parser, add_prepare_parsers, add_standins_parser

        add_prepare_parsers(prepare_sources)
        add_fetch_parser(verbs)
        add_standins_parser(verbs)

    p = verbs.add_parser("show", help="write a PNG grid of every modality and the labels of a few samples")
    p.add_argument("dataset", help="a dataset name under `datasets:` in params.yaml")
    p.add_argument("--n", type=int, default=8, choices=range(1, 65), metavar="{1..64}", help="samples (rows)")
    p.add_argument("--split", default="train", choices=["train", "val"], help="which split list to read")
    p.add_argument("--root", default=None, help="read this folder instead of the dataset's configured root")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.set_defaults(func=cmd_show)
    return parser


def _verb(argv: list[str]) -> str | None:
    """The verb of a command line (the first word after the global options), or None when there is none yet."""
    words = iter(argv)
    for word in words:
        if word == "--params":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_verb(argv)).parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # noqa: BLE001 - errors.exit_code decides which are reported, the rest re-raise
        code = exit_code(exc)
        if code is None:
            raise
        print(describe(exc), file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
