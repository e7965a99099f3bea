"""`asymfusion bench`: parameters, GFLOPs, training-step time, inference latency, peak memory and the data-loading
share of every method x backbone x input size x batch of a suite, stacked vs per-modality-loop execution of the
shared encoder on the same weights, and this machine's dense matmul throughput. Writes
`results/<suite>/perf.json` and `results/<suite>/tables/perf.{md,csv}` (docs/performance.md).

    asymfusion bench --suite quick
    asymfusion bench --suite quick --methods asymfusion msbn --batches 2 16 --repeats 30 --threads 2

Timing design. All variants of one input size and batch (every experiment, stacked and loop) are built together,
warmed up, then timed **round-robin**: round r times one training step of each variant, in an order rotated by r.
A ratio (asymfusion/msbn, loop/stacked) is the median of per-round ratios, so load from other processes that
drifts over seconds hits both sides of a pair alike. Every figure is a median with its IQR over the rounds.
"""

from __future__ import annotations

import argparse
import gc
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from asymfusion.benchmark.config import ConfigError, Params, RunConfig, load_params, resolve_run
from asymfusion.benchmark.perf_measure import (
    CpuUse,
    MatmulProbe,
    PeakMemory,
    available_cores,
    load_average,
    machine_info,
    matmul_throughput,
    merge_matmul,
    ratio_summary,
    state_megabytes,
    summarize,
    time_call,
)
from asymfusion.benchmark.perf_report import SCHEMA_VERSION, evaluate_targets, write_outputs
from asymfusion.benchmark.perf_select import (
    Size,
    default_size,
    parse_size,
    resolve_device,
    select_experiments,
    size_name,
    suite_settings,
)
from asymfusion.benchmark.perf_steps import (
    Setup,
    Variant,
    build_variant,
    compare_outputs,
    forward_gflops_per_image,
    loop_applies,
    measure_data_share,
    synthetic_batch,
)

Log = Callable[[str], None]


def run_benchmark(params: Params, suite: str, *, methods: list[str] | None = None,
                  sizes: list[Any] | None = None, batches: list[int] | None = None, repeats: int | None = None,
                  warmup: int | None = None, device: str = "auto", amp: str = "auto",
                  channels_last: bool | None = None, compile: bool = False, threads: int | None = None,
                  executions: list[str] | None = None, data: bool = True, command: str | None = None,
                  log: Log | None = None) -> dict[str, Any]:
    """Measure the suite; returns the perf.json record (see docs/performance.md). Arguments left None come from the
    suite's `perf:` settings, then from its experiments."""
    log = log or (lambda message: None)
    settings = suite_settings(params, suite)
    repeats = max(3, repeats if repeats is not None else settings.repeats)
    warmup = warmup if warmup is not None else settings.warmup
    executions = list(executions or settings.executions)
    names = select_experiments(params, suite, methods or settings.methods)
    cfgs = {name: resolve_run(params, name) for name in names}
    dev = resolve_device(device)
    threads = threads or settings.threads or available_cores()
    torch.set_num_threads(threads)
    amp = ("bf16" if dev.type == "cuda" else "off") if amp == "auto" else amp
    if channels_last is None:
        channels_last = dev.type == "cuda" or all(c.train.channels_last for c in cfgs.values())
    setup = Setup(dev, amp, channels_last, compile)
    user_sizes = [parse_size(s) for s in (sizes or settings.sizes or [])]
    user_batches = list(batches or settings.batches or [])
    own_size = {name: default_size(cfg) for name, cfg in cfgs.items()}
    groups: dict[tuple[Size, int], list[str]] = {}
    for name, cfg in cfgs.items():
        for size in user_sizes or [own_size[name]]:
            for batch in user_batches or sorted({2, cfg.data.batch_size}):
                groups.setdefault((size, batch), []).append(name)

    loadavg_start = load_average()
    cpu_use = CpuUse()
    log(f"bench {suite}: {len(names)} experiments, {len(groups)} size x batch groups, {dev}, {threads} threads")
    matmul_dtype = torch.bfloat16 if amp == "bf16" and dev.type == "cuda" else torch.float32
    matmul_runs = [matmul_throughput(dev, settings.matmul_size, repeats, warmup, matmul_dtype)]
    rows: list[dict[str, Any]] = []
    paired: list[dict[str, Any]] = []
    for (size, batch), group in sorted(groups.items()):
        log(f"{size_name(size)} batch {batch}: {', '.join(group)}")
        probe = MatmulProbe(dev, settings.matmul_size, matmul_dtype)
        group_rows, group_pairs = _measure_group(size, batch, group, cfgs, executions, setup, repeats, warmup,
                                                 cpu_use, log, probe)
        for row in group_rows:
            row["default_shape"] = (size == own_size[row["experiment"]]
                                    and batch == cfgs[row["experiment"]].data.batch_size)
        rows += group_rows
        paired += group_pairs
    matmul_runs.append(matmul_throughput(dev, settings.matmul_size, repeats, warmup, matmul_dtype))
    matmul = merge_matmul(matmul_runs)
    for row in rows:
        if row.get("status") == "measured":
            row["matmul_fraction_separate"] = row["achieved_gflops"] / matmul["gflops"]

    data_rows = []
    for name in names:
        if not data:
            data_rows.append({"experiment": name, "status": "skipped", "reason": "--no-data"})
            continue
        # As the experiment trains: its train.threads (if set) and its num_workers.
        data_threads = cfgs[name].train.threads or threads
        log(f"data loading: {name} ({data_threads} threads, {cfgs[name].data.num_workers} workers)")
        torch.set_num_threads(data_threads)
        try:
            variant = build_variant(name, cfgs[name], "stacked", setup)
            measured = measure_data_share(variant, settings.data_batches, max(1, warmup))
        finally:
            torch.set_num_threads(threads)
        data_rows.append({"experiment": name, "threads": data_threads, **measured})
        del variant
        gc.collect()

    info = machine_info(dev)
    info.update(loadavg_start=loadavg_start, loadavg_end=load_average(), cpu_utilisation=cpu_use.utilisation(threads))
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "suite": suite,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command or f"asymfusion bench --suite {suite}",
        "settings": {"experiments": names, "sizes": sorted({size_name(s) for s, _ in groups}),
                     "batches": sorted({b for _, b in groups}), "executions": executions, "repeats": repeats,
                     "warmup": warmup, "device": str(dev), "amp": amp, "channels_last": channels_last,
                     "compile": compile, "threads": threads, "data_batches": settings.data_batches,
                     "targets": settings.targets.model_dump()},
        "machine": info, "matmul": matmul, "memory_method": _memory_method(rows),
        "rows": rows, "paired": paired, "data": data_rows, "notes": _notes(info, threads, dev),
    }
    record["targets"] = evaluate_targets(record, settings.targets)
    return record


def _measure_group(size: Size, batch: int, names: list[str], cfgs: dict[str, RunConfig], executions: list[str],
                   setup: Setup, repeats: int, warmup: int, cpu_use: CpuUse, log: Log, probe: MatmulProbe
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    variants: list[Variant] = []
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    skipped: list[dict[str, Any]] = []
    base = {"size": size_name(size), "batch": batch}
    for name in names:
        cfg = cfgs[name]
        model_cfg = cfg.model
        backbone = model_cfg.backbone if model_cfg.task == "segmentation" else f"unet{model_cfg.generator.depth}"
        head = {"experiment": name, "method": model_cfg.method, "backbone": backbone, "task": model_cfg.task,
                "dataset": cfg.dataset_name, "modalities": list(cfg.data.modalities), **base}
        try:
            stacked = build_variant(name, cfg, "stacked", setup)
            stacked.set_batch(synthetic_batch(cfg, batch, size, seed=cfg.seed))
            common = {**head, "params": sum(p.numel() for p in stacked.model.parameters()),
                      "gflops_per_image": forward_gflops_per_image(stacked, size),
                      "train_gflops_per_step": stacked.training_flops() / 1e9}
        except Exception as error:  # e.g. an input size the architecture cannot take: recorded, not fatal
            skipped.append({**head, "execution": "stacked", "status": "skipped",
                            "reason": f"{type(error).__name__}: {error}"})
            continue
        if "stacked" in executions:
            variants.append(stacked)
            rows[stacked.key] = {**common, "execution": "stacked"}
        if "loop" in executions:
            loop = build_variant(name, cfg, "loop", setup, state=stacked.model.state_dict())
            if not loop_applies(loop.model):
                skipped.append({**head, "execution": "loop", "status": "skipped",
                                "reason": "no shared encoder over a modality stack: loop execution changes nothing"})
            else:
                loop.set_batch({**stacked.inputs, "target": stacked.target})
                check = compare_outputs(stacked.model, loop.model, stacked.inputs, setup.device)
                if not check["outputs_match"]:
                    log(f"  {name}: loop and stacked outputs DIFFER: {check.get('error')}")
                variants.append(loop)
                rows[loop.key] = {**common, "execution": "loop", **check}

    for v in variants:
        for _ in range(warmup):
            v.train_step()
    for v in variants:  # one untimed step each, for the memory high-water mark
        with PeakMemory(setup.device) as pm:
            v.train_step()
        state = state_megabytes(v.model, v.optimisers()) + (
            state_megabytes(v.discriminator, []) if v.discriminator is not None else 0.0)
        rows[v.key].update(step_memory_mb=pm.delta_mb, state_memory_mb=state, peak_memory_mb=state + pm.delta_mb,
                           memory_method=pm.method)
    for _ in range(max(1, warmup)):
        probe.train_step()
    with cpu_use.region():
        _rounds([*variants, probe] if variants else [], "train_step", "train_times", repeats, setup)
    for v in variants:
        v.train(False)
        for _ in range(warmup):
            v.infer()
    with cpu_use.region():
        _rounds(variants, "infer", "infer_times", repeats, setup)

    for v in variants:
        row = rows[v.key]
        train, infer = summarize(v.train_times), summarize(v.infer_times)
        seconds = train["median_ms"] / 1e3
        # (training FLOP/s) / (matmul FLOP/s) per round: both timed in the same round, under the same load
        fractions = ratio_summary([row["train_gflops_per_step"] * 1e9 * t for t in probe.train_times],
                                  [probe.flops * t for t in v.train_times])
        row.update(status="measured", train_step=train, inference=infer, train_images_per_s=batch / seconds,
                   inference_images_per_s=batch / (infer["median_ms"] / 1e3),
                   achieved_gflops=row["train_gflops_per_step"] / seconds,
                   matmul_gflops_in_rounds=probe.flops / (summarize(probe.train_times)["median_ms"] / 1e3) / 1e9,
                   matmul_fraction=fractions["median"], matmul_fraction_iqr=[fractions["q1"], fractions["q3"]])
        log(f"  {v.experiment:28s} {v.execution:7s} train {train['median_ms']:8.1f} ms (IQR {train['iqr_ms']:.1f})"
            f"  infer {infer['median_ms']:7.1f} ms  {row['achieved_gflops']:.1f} GFLOP/s")
    pairs = _pairs(variants, rows, base)
    del variants
    gc.collect()
    if setup.device.type == "cuda":
        torch.cuda.empty_cache()
    return [*rows.values(), *skipped], pairs


def _rounds(variants: list[Variant], call: str, store: str, repeats: int, setup: Setup) -> None:
    """Round r times each variant once, starting at variant r mod n (so no variant always runs first)."""
    n = len(variants)
    for r in range(repeats):
        for v in variants[r % n:] + variants[:r % n] if n else []:
            getattr(v, store).append(time_call(getattr(v, call), setup.device))


def _pairs(variants: list[Variant], rows: dict[tuple[str, str], dict[str, Any]], base: dict[str, Any]
           ) -> list[dict[str, Any]]:
    """Per-round ratios: loop/stacked per experiment; asymfusion/msbn per backbone, dataset and execution."""
    by_key = {v.key: v for v in variants}
    out = []

    def ratio(a: Variant, b: Variant) -> dict[str, Any]:
        return {"train": ratio_summary(a.train_times, b.train_times),
                "inference": ratio_summary(a.infer_times, b.infer_times)}

    for (name, execution), v in by_key.items():
        if execution == "loop" and (name, "stacked") in by_key:
            out.append({"comparison": "loop/stacked", "experiment": name, "method": rows[v.key]["method"],
                        "backbone": rows[v.key]["backbone"], "task": rows[v.key]["task"],
                        "execution": "loop vs stacked", **base,
                        **ratio(v, by_key[(name, "stacked")])})
    for v in variants:
        row = rows[v.key]
        if row["method"] != "asymfusion":
            continue
        for w in variants:
            other = rows[w.key]
            if other["method"] == "msbn" and w.execution == v.execution and all(
                    other[k] == row[k] for k in ("backbone", "dataset", "modalities")):
                out.append({"comparison": "asymfusion/msbn", "experiment": f"{v.experiment} / {w.experiment}",
                            "method": "asymfusion", "backbone": row["backbone"], "task": row["task"],
                            "execution": v.execution, **base,
                            **ratio(v, w)})
                break
    return out


def _memory_method(rows: list[dict[str, Any]]) -> str:
    return next((r["memory_method"] for r in rows if r.get("memory_method")), "not measured")


def _notes(info: dict[str, Any], threads: int, device: torch.device) -> list[str]:
    notes = []
    use, load = info.get("cpu_utilisation"), info.get("loadavg_start")
    if device.type == "cpu" and use is not None and use < 0.85:
        notes.append(f"CPU utilisation while timing was {use} of {threads} threads (load average {load} -> "
                     f"{info.get('loadavg_end')}): other processes competed for the cores, so absolute timings are "
                     "noisy; paired ratios are less affected. Rerun on a quiet machine for reference figures.")
    if threads > info["cores_available"]:
        notes.append(f"{threads} threads on {info['cores_available']} available cores: oversubscribed")
    return notes


# ---------------------------------------------------------------------------------------------------------------------
# Command line


def add_bench_parser(verbs: argparse._SubParsersAction) -> None:
    """The `bench` verb (wired into benchmark/cli.py)."""
    p = verbs.add_parser("bench", help="measure params, GFLOPs, step time, latency, memory and data-loading share "
                         "of a suite's models; write results/<suite>/perf.json and tables/perf.{md,csv}",
                         description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="quick", help="a suite under `suites:` in params.yaml, e.g. quick or paper "
                   "(default: quick)")
    p.add_argument("--methods", nargs="+", metavar="NAME", default=None,
                   help="only these methods (or experiment names) of the suite (default: every method)")
    p.add_argument("--sizes", nargs="+", metavar="S|HxW", default=None,
                   help="input sizes, e.g. 64 or 480x640 (default: each experiment's training crop)")
    p.add_argument("--batches", nargs="+", type=int, metavar="N", default=None,
                   help="batch sizes per modality (default: 2 and each experiment's batch size)")
    p.add_argument("--repeats", type=int, default=None, choices=range(3, 10001), metavar="{3..10000}",
                   help="timed rounds per measurement (default: params perf.<suite>.repeats, else 15)")
    p.add_argument("--warmup", type=int, default=None, choices=range(0, 1001), metavar="{0..1000}",
                   help="untimed steps per model first (default: params perf.<suite>.warmup, else 3)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to run (auto: cuda when available)")
    p.add_argument("--amp", default="auto", choices=["auto", "off", "bf16"],
                   help="autocast dtype (auto: bf16 on CUDA, off on CPU)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last memory format (default: on with CUDA; on CPU as the experiments' "
                   "train.channels_last)")
    p.add_argument("--compile", action="store_true", help="torch.compile every model (warm-up includes compiling)")
    p.add_argument("--threads", type=int, default=None, choices=range(1, 257), metavar="{1..256}",
                   help="torch intra-op threads (default: every core this process may use)")
    p.add_argument("--executions", nargs="+", default=None, choices=["stacked", "loop"],
                   help="shared-encoder executions to time (default: both)")
    p.add_argument("--no-data", action="store_true", help="skip the data-loading measurement (recorded as skipped)")
    p.add_argument("--out", default=None, help="output folder (default: the suite's results folder): writes "
                   "perf.json and tables/perf.{md,csv}")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    command = "asymfusion " + " ".join(shlex.quote(a) for a in (sys.argv[1:] or ["bench", "--suite", args.suite]))
    started = time.perf_counter()
    record = run_benchmark(
        params, args.suite, methods=args.methods, sizes=args.sizes, batches=args.batches, repeats=args.repeats,
        warmup=args.warmup, device=args.device, amp=args.amp, channels_last=args.channels_last,
        compile=args.compile, threads=args.threads, executions=args.executions, data=not args.no_data,
        command=command, log=None if args.quiet else lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(args.out) if args.out else Path(params.suites[args.suite].results)
    paths = write_outputs(record, out)
    for t in record["targets"]:
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        noisy = "  [within noise]" if t.get("clear") is False else ""
        print(f"{t['status']:>12}  {t['name']}: {value} ({t['threshold']}){noisy}")
    print(f"wrote {paths['json']}, {paths['md']}, {paths['csv']} in {time.perf_counter() - started:.0f} s")
    mismatched = [r["experiment"] for r in record["rows"] if r.get("outputs_match") is False]
    if mismatched:
        print(f"error: loop and stacked outputs differ for {', '.join(mismatched)} (see perf.json)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m asymfusion.benchmark.perf ...` until the verb is wired into cli.py."""
    parser = argparse.ArgumentParser(prog="asymfusion")
    parser.add_argument("--params", default="params.yaml", help="the params file to read (default: params.yaml)")
    add_bench_parser(parser.add_subparsers(dest="verb", required=True, metavar="VERB"))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: invalid configuration\n{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
