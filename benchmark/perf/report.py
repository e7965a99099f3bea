"""`asymfusion bench` outputs: the four targets with pass/fail, perf.json, tables/perf.{md,csv}, and the efficiency
columns the main results table reads from perf.json (`efficiency_table`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from asymfusion.benchmark.config.perf import PerfTargets
from asymfusion.datasets.files import atomic_write

SCHEMA_VERSION = 1
EFFICIENCY_COLUMNS = ["params_m", "gflops_per_image", "train_step_ms", "train_images_per_s", "inference_ms",
                      "peak_memory_mb"]


def _status(ok: bool | None) -> str:
    return "not measured" if ok is None else "pass" if ok else "fail"


def _clear(checks: list[tuple[float, float, float, bool]]) -> bool | None:
    """True when every (q1, q3, threshold, upper_bound) interquartile range lies wholly on one side of its threshold:
    the verdict does not hang on timing noise."""
    if not checks:
        return None
    return all((q3 <= t or q1 > t) if upper else (q1 >= t or q3 < t) for q1, q3, t, upper in checks)


def evaluate_targets(record: dict[str, Any], targets: PerfTargets) -> list[dict[str, Any]]:
    """The issue's four targets, each with the value measured, the threshold, pass/fail and the rows it read.

    `clear` is False when an interquartile range straddles a threshold (the verdict is within the noise)."""
    out = []
    in_scope = [p for p in record["paired"] if targets.task in (None, p["task"])]
    other = [p for p in record["paired"] if p not in in_scope]
    scope = f" ({targets.task} models)" if targets.task else ""

    def info(pairs: list[dict[str, Any]], comparison: str) -> list[str]:
        return [f"for information, not judged: {_pair_detail(p)}" for p in pairs if p["comparison"] == comparison]

    fusion = [p for p in in_scope if p["comparison"] == "asymfusion/msbn" and p["execution"] == "stacked"]
    worst = max(fusion, key=lambda p: p["train"]["median"], default=None)
    out.append({
        "name": "fusion_overhead",
        "description": f"asymfusion / msbn training-step time (same backbone, shapes, batch){scope}",
        "threshold": f"<= {targets.fusion_overhead_max}",
        "value": worst and worst["train"]["median"],
        "status": _status(None if worst is None else all(p["train"]["median"] <= targets.fusion_overhead_max
                                                          for p in fusion)),
        "clear": _clear([(p["train"]["q1"], p["train"]["q3"], targets.fusion_overhead_max, True) for p in fusion]),
        "detail": ([_pair_detail(p) for p in fusion]
                   or ["no asymfusion and msbn experiments with the same backbone were measured"])
        + info([p for p in other if p["execution"] == "stacked"], "asymfusion/msbn"),
    })

    loops = [p for p in in_scope if p["comparison"] == "loop/stacked"]
    at_batch = [p for p in loops if p["batch"] == targets.stacked_speedup_batch]
    ok = None
    if at_batch:
        ok = all(p["train"]["median"] >= targets.stacked_speedup_min for p in at_batch) and all(
            p["train"]["median"] >= 1.0 for p in loops)
    out.append({
        "name": "stacked_speedup",
        "description": f"loop / stacked training-step time: >= {targets.stacked_speedup_min} at batch "
                       f"{targets.stacked_speedup_batch}, >= 1 at every batch{scope}",
        "threshold": f">= {targets.stacked_speedup_min} (batch {targets.stacked_speedup_batch}); >= 1.0 (all)",
        "value": min((p["train"]["median"] for p in at_batch), default=None),
        "status": _status(ok),
        "clear": _clear([(p["train"]["q1"], p["train"]["q3"], targets.stacked_speedup_min, False) for p in at_batch]
                        + [(p["train"]["q1"], p["train"]["q3"], 1.0, False) for p in loops]) if at_batch else None,
        "detail": ([_pair_detail(p) for p in loops]
                   or [f"no loop/stacked pair at batch {targets.stacked_speedup_batch} (measure it with --batches)"])
        + info(other, "loop/stacked"),
    })

    candidates = [r for r in record["rows"] if r.get("status") == "measured" and r["execution"] == "stacked"
                  and r["method"] == targets.matmul_fraction_method
                  and r["backbone"] == targets.matmul_fraction_backbone]
    row = next((r for r in candidates if r["default_shape"]), None) or max(
        candidates, key=lambda r: r["batch"], default=None)
    out.append({
        "name": "matmul_fraction",
        "description": f"achieved training FLOP/s of {targets.matmul_fraction_backbone} "
                       f"{targets.matmul_fraction_method} / measured dense matmul FLOP/s",
        "threshold": f">= {targets.matmul_fraction_min}",
        "value": row and row["matmul_fraction"],
        "status": _status(None if row is None else row["matmul_fraction"] >= targets.matmul_fraction_min),
        "clear": _clear([(*row["matmul_fraction_iqr"], targets.matmul_fraction_min, False)]) if row else None,
        "detail": [f"{row['experiment']} {row['size']} batch {row['batch']}: {row['achieved_gflops']:.1f} GFLOP/s "
                   f"({row['train_gflops_per_step']:.2f} GFLOP per step / {row['train_step']['median_ms']:.1f} ms) "
                   f"vs matmul {row['matmul_gflops_in_rounds']:.1f} GFLOP/s in the same rounds: per-round median "
                   f"{row['matmul_fraction']:.3f} (IQR {row['matmul_fraction_iqr'][0]:.3f}-"
                   f"{row['matmul_fraction_iqr'][1]:.3f}); against the matmul timed alone before and after "
                   f"({record['matmul']['gflops']:.1f} GFLOP/s): {row['matmul_fraction_separate']:.3f}"] if row else
        [f"no stacked {targets.matmul_fraction_backbone} {targets.matmul_fraction_method} row was measured"],
    })

    data = [d for d in record["data"] if d["status"] == "measured"]
    worst_data = max(data, key=lambda d: d["share"], default=None)
    out.append({
        "name": "data_share", "description": "data-loading share of a training step (real DataLoader)",
        "threshold": f"<= {targets.data_share_max}",
        "value": worst_data and worst_data["share"],
        "status": _status(None if worst_data is None else all(d["share"] <= targets.data_share_max for d in data)),
        "clear": None if worst_data is None else True,
        "detail": [f"{d['experiment']}: {d['share']:.3f} (fetch {d['load']['median_ms']:.1f} ms, step "
                   f"{d['step']['median_ms']:.1f} ms, num_workers {d['num_workers']}, {d['threads']} threads"
                   + (f"; first epoch {d['first_epoch']['share']:.3f}, later epochs {d['later_epochs']['share']:.3f}"
                      if "first_epoch" in d else "") + ")"
                   for d in data]
        or sorted({f"skipped: {d['reason']}" for d in record["data"]}) or ["not measured"],
    })
    return out


def _pair_detail(p: dict[str, Any]) -> str:
    t = p["train"]
    return (f"{p['experiment']} {p['size']} batch {p['batch']}: {t['median']:.3f} (IQR {t['q1']:.3f}-{t['q3']:.3f}, "
            f"best-of-{t['n']} {t['best_of_n']:.3f})")


def rows_frame(record: dict[str, Any]) -> pd.DataFrame:
    """One line per measured variant, flat columns (what perf.csv holds)."""
    lines = []
    for r in record["rows"]:
        if r.get("status") != "measured":
            continue
        lines.append({
            "experiment": r["experiment"], "method": r["method"], "backbone": r["backbone"], "size": r["size"],
            "batch": r["batch"], "execution": r["execution"], "params_m": r["params"] / 1e6,
            "gflops_per_image": r["gflops_per_image"], "train_gflops_per_step": r["train_gflops_per_step"],
            "train_step_ms": r["train_step"]["median_ms"], "train_step_iqr_ms": r["train_step"]["iqr_ms"],
            "inference_ms": r["inference"]["median_ms"], "inference_iqr_ms": r["inference"]["iqr_ms"],
            "train_images_per_s": r["train_images_per_s"], "achieved_gflops": r["achieved_gflops"],
            "matmul_fraction": r["matmul_fraction"], "peak_memory_mb": r["peak_memory_mb"],
            "step_memory_mb": r["step_memory_mb"], "outputs_match": r.get("outputs_match"),
            "default_shape": r["default_shape"],
        })
    return pd.DataFrame(lines)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def markdown(record: dict[str, Any]) -> str:
    m, s = record["machine"], record["settings"]
    lines = [f"# Performance: suite `{record['suite']}`", "",
             f"`{record['command']}`", "",
             f"Device {m['device']} ({m['device_name']}), {m['torch_threads']} torch threads of "
             f"{m['cores_available']} cores, torch {m['torch']}; amp {s['amp']}, channels_last {s['channels_last']}, "
             f"compile {s['compile']}; {s['repeats']} timed rounds after {s['warmup']} warm-up steps "
             f"(median, IQR). CPU utilisation during timing {m.get('cpu_utilisation')}, load average "
             f"{m.get('loadavg_start')} -> {m.get('loadavg_end')}.", "",
             f"Dense matmul ({record['matmul']['n']}^2, {record['matmul']['dtype']}, "
             f"{record['matmul'].get('calls', 1)} per timed call): "
             f"{record['matmul']['gflops']:.1f} GFLOP/s (best {record['matmul']['gflops_best']:.1f}).", ""]
    for note in record.get("notes", []):
        lines.append(f"> {note}")
    lines += ["", "## Targets", "", "| target | threshold | value | status |", "|---|---|---|---|"]
    for t in record["targets"]:
        noisy = " (within noise: an IQR straddles the threshold)" if t.get("clear") is False else ""
        lines.append(f"| {t['description']} | {t['threshold']} | {_fmt(t['value'])} | **{t['status']}**{noisy} |")
    lines += ["", *[f"- {t['name']}: " + "; ".join(t["detail"]) for t in record["targets"]], ""]
    frame = rows_frame(record)
    if len(frame):
        lines += ["## Models", "", "| experiment | size | batch | execution | params (M) | GFLOPs/img | train GFLOP/step "
                  "| train step ms (IQR) | inference ms (IQR) | img/s | GFLOP/s | of matmul | peak MB |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for _, r in frame.iterrows():
            lines.append(f"| {r.experiment} | {r['size']} | {r.batch} | {r.execution} | {r.params_m:.2f} | "
                         f"{r.gflops_per_image:.3f} | {r.train_gflops_per_step:.2f} | {r.train_step_ms:.1f} "
                         f"({r.train_step_iqr_ms:.1f}) | {r.inference_ms:.1f} ({r.inference_iqr_ms:.1f}) | "
                         f"{r.train_images_per_s:.1f} | {r.achieved_gflops:.1f} | {r.matmul_fraction:.2f} | "
                         f"{r.peak_memory_mb:.0f} |")
    skipped = [r for r in record["rows"] if r.get("status") != "measured"]
    lines += [f"- skipped {r['experiment']} {r.get('size')} batch {r.get('batch')}: {r['reason']}" for r in skipped]
    if record["paired"]:
        lines += ["", "## Paired ratios (per round, median and IQR)", "",
                  "| comparison | experiment | size | batch | execution | train: median (IQR) | train: best-of-n "
                  "| inference: median (IQR) | inference: best-of-n |", "|---|---|---|---|---|---|---|---|---|"]
        for p in record["paired"]:
            tr, inf = p["train"], p["inference"]
            lines.append(f"| {p['comparison']} | {p['experiment']} | {p['size']} | {p['batch']} | {p['execution']} | "
                         f"{tr['median']:.3f} ({tr['q1']:.3f}-{tr['q3']:.3f}) | {tr['best_of_n']:.3f} | "
                         f"{inf['median']:.3f} ({inf['q1']:.3f}-{inf['q3']:.3f}) | {inf['best_of_n']:.3f} |")
    if record["data"]:
        lines += ["", "## Data loading (real DataLoader; the experiment's num_workers and train.threads)", "",
                  "| experiment | workers | threads | batch | fetch ms (IQR) | step ms (IQR) | share |",
                  "|---|---|---|---|---|---|---|"]
        for d in record["data"]:
            if d["status"] != "measured":
                lines.append(f"| {d['experiment']} | - | - | - | skipped: {d['reason']} | - | - |")
                continue
            lines.append(f"| {d['experiment']} | {d['num_workers']} | {d['threads']} | {d['batch']} | "
                         f"{d['load']['median_ms']:.1f} "
                         f"({d['load']['iqr_ms']:.1f}) | {d['step']['median_ms']:.1f} ({d['step']['iqr_ms']:.1f}) | "
                         f"{d['share']:.3f} |")
    lines += ["", f"Peak memory: {record['memory_method']}; peak MB = parameters, buffers and optimiser state + "
              "the step's peak above the memory before it.", ""]
    return "\n".join(lines)


def write_outputs(record: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """<out>/perf.json, <out>/tables/perf.md and perf.csv (atomic replace, so a killed run leaves no half file)."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "perf.json", "md": out_dir / "tables" / "perf.md",
             "csv": out_dir / "tables" / "perf.csv"}
    texts = {"json": json.dumps(record, indent=1, default=_json_default) + "\n", "md": markdown(record),
             "csv": rows_frame(record).to_csv(index=False)}
    for key, path in paths.items():
        atomic_write(path, texts[key])
    return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def efficiency_table(perf: dict[str, Any] | str | Path) -> pd.DataFrame:
    """Efficiency columns for the main results table, indexed by experiment: the stacked row at the experiment's own
    input size and batch (params in millions, forward GFLOPs per image, training-step and inference ms, peak MB)."""
    record = perf if isinstance(perf, dict) else json.loads(Path(perf).read_text())
    frame = rows_frame(record)
    if frame.empty:
        return pd.DataFrame(columns=EFFICIENCY_COLUMNS)
    frame = frame[(frame.execution == "stacked") & frame.default_shape]
    return frame.drop_duplicates("experiment").set_index("experiment")[EFFICIENCY_COLUMNS]
