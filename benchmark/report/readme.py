"""results/<suite>/README.md: the suite's tables, plots, efficiency figures and a plain verdict on each claim.

Each claim of params.yaml (`claims:`) compares the best of `better` with the best of `worse` on the main metric
(fused mIoU, or L1 for translation): it *holds* when the difference has the right sign and Welch's t-test gives
p < 0.05 (and any `min_margin` is met, with the margin above 3x the larger seed std); *not significant* when the
sign is right but the test is not; *does not hold* otherwise. The verdicts are computed, never written by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from asymfusion.benchmark.config import ClaimConfig, Params
from asymfusion.benchmark.tasks import get_task
from asymfusion.benchmark.report.plots import still_improving
from asymfusion.benchmark.report.tables import attach_perf, build_table, load_records, render, welch_p


def _main_values(records: list[dict[str, Any]]) -> tuple[list[float], str, bool]:
    task = get_task(records[0]["task"])
    name, higher = task.main_metric, task.higher_is_better
    return [r["metrics"]["ensemble"][name] for r in records], name, higher


def judge(claim: ClaimConfig, groups: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Numbers and verdict of one claim."""
    def best(names: list[str]) -> tuple[str, list[float], str, bool]:
        candidates = {n: _main_values(groups[n]) for n in names if n in groups}
        if not candidates:
            raise FileNotFoundError(f"claim {claim.statement!r}: no metric files for {names}")
        higher = next(iter(candidates.values()))[2]
        pick = max if higher else min
        name = pick(candidates, key=lambda n: float(np.mean(candidates[n][0])))
        values, metric, higher = candidates[name]
        return name, values, metric, higher

    b_name, b_vals, metric, higher = best(claim.better)
    w_name, w_vals, _, _ = best(claim.worse)
    margin = (np.mean(b_vals) - np.mean(w_vals)) * (1 if higher else -1)
    p = welch_p(b_vals, w_vals)
    spread = 3 * max(np.std(b_vals, ddof=1) if len(b_vals) > 1 else 0.0, np.std(w_vals, ddof=1) if len(w_vals) > 1 else 0.0)
    right_sign = margin > 0
    significant = p is not None and p < 0.05
    margin_ok = claim.min_margin is None or (margin >= claim.min_margin and margin > spread)
    verdict = ("holds" if right_sign and significant and margin_ok else
               "not significant" if right_sign and margin_ok else "does not hold")
    return {"statement": claim.statement, "better": b_name, "worse": w_name, "metric": metric,
            "better_mean": float(np.mean(b_vals)), "worse_mean": float(np.mean(w_vals)), "margin": float(margin),
            "p": p, "three_std": float(spread), "min_margin": claim.min_margin, "verdict": verdict,
            "better_params": groups[b_name][0]["parameters"], "worse_params": groups[w_name][0]["parameters"]}


def _relative(path: Path, start: Path) -> str:
    return str(path.relative_to(start))


def write_report(params: Params, suite: str) -> Path:
    cfg = params.suites[suite]
    results = Path(cfg.results)
    groups = load_records(results / "metrics")
    if cfg.perf and (results / "perf.json").is_file():  # the same efficiency columns as tables/*.md
        attach_perf(groups, results / "perf.json")
    lines = [f"# Results: `{suite}` suite", "", cfg.description, "",
             f"Produced by `dvc repro report-{suite}` (for the quick suite: `make quick`) from the metric files in "
             f"`metrics/`; every number below is computed from them. Seeds: {cfg.seeds}.", ""]
    for name in ("data-segmentation.png", "data-translation.png"):
        if (results / "plots" / name).exists():
            lines += [f"![{name}](plots/{name})", ""]
    claims = params.claims.get(suite, [])
    if claims:
        lines += ["## The paper's claims on this suite", "",
                  "| claim | better (best of) | worse (best of) | metric | difference | p (Welch) | verdict |",
                  "|---|---|---|---|---:|---:|---|"]
        verdicts = [judge(c, groups) for c in claims]
        for v in verdicts:
            p = "–" if v["p"] is None else f"{v['p']:.3g}"
            extra = f" (needs ≥ {v['min_margin']} and > 3·std = {v['three_std']:.2f})" if v["min_margin"] else ""
            lines.append(f"| {v['statement']} | {v['better']} ({v['better_mean']:.2f}, {v['better_params'] / 1e6:.3f}M)"
                         f" | {v['worse']} ({v['worse_mean']:.2f}, {v['worse_params'] / 1e6:.3f}M) | {v['metric']} "
                         f"| {v['margin']:+.2f}{extra} | {p} | **{v['verdict']}** |")
        lines.append("")
        (results / "claims.json").write_text(json.dumps(verdicts, indent=1))
    for table in params.tables.get(suite, []):
        frame = build_table(table, groups)
        lines += [f"## {table.title}", "", render(frame, "md").split("\n", 2)[2].strip(), ""]
        if table.note:
            lines += [" ".join(table.note), ""]
        lines += [f"Files: [`tables/{table.name}.md`](tables/{table.name}.md), `.csv`, `.tex`.", ""]
        for plot in sorted((results / "plots" / "summary").glob(f"*-{table.name}.png")):
            lines += [f"![{plot.stem}]({_relative(plot, results)})", ""]
        rising = still_improving(table, groups, results / "history")
        if rising:
            lines += [f"**Training state:** still improving at the last epoch (best validation at the final "
                      f"validated epoch and better than the one before, seed mean): {', '.join(rising)}. Longer "
                      "training would change these rows' numbers.", ""]
    perf = results / "tables" / "perf.md"
    if perf.exists():
        lines += ["## Efficiency (`asymfusion bench`)", "", perf.read_text().strip(), ""]
    grids = sorted((results / "plots" / "qualitative").glob("*-s0.png"))
    if grids:
        lines += ["## Qualitative results (seed 0)", ""]
        lines += [f"![{g.stem}]({_relative(g, results)})" for g in grids]
        lines.append("")
    out = results / "README.md"
    out.write_text("\n".join(lines))
    return out
