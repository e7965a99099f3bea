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

import gc
from datetime import datetime, timezone
from typing import Any, Callable

import torch

from asymfusion.benchmark.config import Params, RunConfig, resolve_run
from asymfusion.benchmark.perf.measure import (
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
from asymfusion.benchmark.perf.report import SCHEMA_VERSION, evaluate_targets
from asymfusion.benchmark.perf.select import (
    Size,
    default_size,
    parse_size,
    resolve_device,
    select_experiments,
    size_name,
    suite_settings,
)
from asymfusion.benchmark.perf.steps import (
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
        backbone = model_cfg.encoder_name()
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
            state_megabytes(v.critic.module, []) if v.critic is not None else 0.0)
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
