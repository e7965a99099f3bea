"""Metric JSON files -> the paper's tables (Markdown, CSV, LaTeX booktabs). Tables never re-run a model.

Every cell is mean ± std over the seeds found; the best mean of each metric column is bold; the main metric of each
row is compared with the best baseline row by Welch's t-test (two-sided, scipy), and the p-value is shown beside it,
with † where p < `alpha`. Which experiments form a table, and which of them are baselines, is declared in
params.yaml under `tables:`; nothing here names a fusion method. Parameters and GFLOPs come with each metric file;
training throughput and peak memory come from the suite's `perf.json` (`asymfusion bench`: every model timed
round-robin on the same machine, so they compare), not from the training runs, whose speed depends on what else ran.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd
from scipy import stats

from asymfusion.benchmark.config import TableConfig
from asymfusion.benchmark.tasks import Column, get_task
from asymfusion.benchmark.tasks.base import metric_of

Kind = str  # a task name, or "robustness"


def _blanked(modality: str, name: str) -> Callable[[dict[str, Any]], float | None]:
    def get(record: dict[str, Any]) -> float | None:
        return record["robustness"]["blanked"].get(modality, {}).get("ensemble", {}).get(name)

    return get


def columns_for(kind: Kind, records: list[dict[str, Any]]) -> tuple[list[Column], str]:
    """The table's columns and the name of its main metric column: the task's own table, or (robustness) the
    task's main metric with all inputs and with each modality blanked in turn."""
    task = get_task(records[0]["task"])
    branches: list[str] = []
    for r in records:
        branches += [m for m in r["outputs"] if m != "ensemble" and m not in branches]
    if kind == "corruptions":
        from asymfusion.benchmark.report.robustness import corruption_columns

        return corruption_columns(records)
    if kind != "robustness":
        return task.table_columns(branches)
    inputs = sorted({m for r in records for m in r["robustness"]["blanked"]}, key=lambda m: (m != "rgb", m))
    label, name = task.main_label, task.main_metric
    cols = [Column(f"{label} all inputs", metric_of("ensemble", name), task.higher_is_better)]
    cols += [Column(f"{label} without {m}", _blanked(m, name), task.higher_is_better) for m in inputs]
    return cols, f"{label} all inputs"


def load_records(metrics_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Metric records grouped by experiment, each group sorted by seed."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(metrics_dir.glob("*.json")):
        record = json.loads(path.read_text())
        groups.setdefault(record["experiment"], []).append(record)
    return {k: sorted(v, key=lambda r: r["seed"]) for k, v in groups.items()}


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch t-test p-value; None when either side has fewer than two values or no variance at all."""
    if len(a) < 2 or len(b) < 2 or (np.std(a) == 0 and np.std(b) == 0):
        return None
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values over the tests of one table (None: no test): the i-th smallest of m is
    multiplied by m - i + 1, then made monotone; controls the chance of any false "†" in the table."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    out: list[float | None] = [None] * len(p_values)
    running, m = 0.0, len(tested)
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


# Columns whose empty cells mean "not measured" (a benchmark not run for that row, FID/KID not computed); any other
# empty cell is "not applicable" (e.g. a per-branch mIoU of a method without branches).
NOT_MEASURED = {"train img/s", "peak MB", "FID", "KID×100"}


def build_table(table: TableConfig, groups: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """One row per experiment: `<col>` mean, `<col> std`, `<col> n`, plus the main metric's p vs the best baseline."""
    missing = [e for e in table.rows if e not in groups]
    if missing:
        raise FileNotFoundError(f"table {table.name!r}: no metric files for {missing} (run their evaluate stages)")
    records = [r for e in table.rows for r in groups[e]]
    tasks = sorted({r["task"] for r in records})
    if len(tasks) > 1 or (table.kind not in ("robustness", "corruptions") and tasks != [table.kind]):
        raise ValueError(f"table {table.name!r} (kind {table.kind}) has rows of task(s) {tasks}: a table holds one "
                         "task, and its kind is that task's name, 'robustness' or 'corruptions'")
    if table.kind == "corruptions":
        bare = [e for e in table.rows if not all((r.get("corruptions") or {}).get("scores") for r in groups[e])]
        if bare:
            raise ValueError(f"table {table.name!r} (kind corruptions): {bare} were evaluated without corruptions "
                             "(set their evaluate.corruptions)")
    columns, main = columns_for(table.kind, records)
    values: dict[str, dict[str, list[float]]] = {}
    rows = []
    for experiment, label in table.rows.items():
        row: dict[str, Any] = {"row": label, "experiment": experiment, "method": groups[experiment][0]["method"],
                               "seeds": len(groups[experiment])}
        values[experiment] = {}
        for col in columns:
            vals = [v * col.scale for v in (col.get(r) for r in groups[experiment]) if v is not None]
            values[experiment][col.name] = vals
            row[col.name] = float(np.mean(vals)) if vals else math.nan
            row[f"{col.name} std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
        rows.append(row)
    frame = pd.DataFrame(rows)
    main_col = next(c for c in columns if c.name == main)
    frame.attrs.update(columns=columns, main=main, alpha=table.alpha, title=table.title, name=table.name,
                       task=records[0]["task"], protocol=protocol_summary(records), values=values)
    if table.baselines:
        base_means = {b: frame.loc[frame.experiment == b, main].item() for b in table.baselines}
        pick = max if main_col.higher_is_better else min
        best_base = pick(base_means, key=lambda b: base_means[b])
        raw = [None if e == best_base else welch_p(values[e][main], values[best_base][main]) for e in frame.experiment]
        frame[f"p vs {table.rows[best_base]}"] = raw
        frame["p (Holm)"] = holm(raw)
        frame.attrs["baseline"] = table.rows[best_base]
    if table.kind == "corruptions" and table.baselines:  # mCE against the first baseline (ImageNet-C)
        from asymfusion.benchmark.report.robustness import mce

        reference = table.baselines[0]
        per_row = mce(groups, list(table.rows), reference)
        name = f"mCE vs {table.rows[reference]} (%)"
        frame[name] = [float(np.mean(per_row[e])) if per_row[e] else math.nan for e in frame.experiment]
        frame[f"{name} std"] = [float(np.std(per_row[e], ddof=1)) if len(per_row[e]) > 1 else math.nan
                                for e in frame.experiment]
        frame.attrs["columns"] = [*columns, Column(name, lambda r: None, False, 1.0, 1)]
    return frame


def protocol_summary(records: list[dict[str, Any]]) -> str:
    """One line for a table's footnote: the protocol fields its records share ("varies by row" where they differ;
    a field no record states, e.g. in results written before it existed, is left out)."""
    def size(p: dict[str, Any]) -> str | None:
        return "x".join(map(str, p["input_size"])) if p.get("input_size") else None

    def tta(p: dict[str, Any]) -> str | None:
        if "scales" not in p:
            return None
        return ("single scale" if p["scales"] == [1.0] else f"scales {p['scales']}") + (" + flip" if p.get("flip") else "")

    def batch(p: dict[str, Any]) -> str | None:
        b = p.get("batch")
        return f"{b['per_device']} per device x {b['devices']} = {b['effective']}" if b else None

    def trained_on(p: dict[str, Any]) -> str | None:
        train = (p.get("hardware") or {}).get("train")
        if not train:
            return None
        return f"{train['devices']}x {train['device']}" + (f" ({train.get('cpu')})" if train["device"] == "cpu" else "")

    def precision(p: dict[str, Any]) -> str | None:
        value = p.get("precision")
        return f"{value['train']}{', channels_last' if value['channels_last'] else ''}" if value else None

    parts = [
        ("data", lambda p: p.get("data")),
        ("split", lambda p: f"{p['split']} ({p['samples']} images)" if "split" in p else None),
        ("input size", size), ("test time", tta),
        ("checkpoint", lambda p: p["checkpoint"].split(" (")[0] if p.get("checkpoint") else None),
        ("pretrained", lambda p: p.get("pretrained")), ("batch", batch), ("precision", precision),
        ("trained on", trained_on),
        ("inputs", lambda p: "; ".join(f"{k}: {v}" for k, v in p["inputs"].items()) if p.get("inputs") else None),
    ]
    out = []
    for label, get in parts:
        values = []
        for record in records:
            value = get(record.get("protocol") or {})
            if value not in values:
                values.append(value)
        if values == [None]:
            continue
        out.append(f"{label}: {values[0] if len(values) == 1 else 'varies by row (see each metrics JSON)'}")
    return ("Protocol: " + "; ".join(out) + ".") if out else ""


def _cell(frame: pd.DataFrame, i: int, col: Column, bold: bool, latex: bool) -> str:
    mean, std = frame.at[i, col.name], frame.at[i, f"{col.name} std"]
    if isinstance(mean, float) and math.isnan(mean):
        return "n/m" if col.name in NOT_MEASURED else "n/a"
    no_spread = col.higher_is_better is None or (isinstance(std, float) and math.isnan(std))
    text = f"{mean:.{col.digits}f}" + ("" if no_spread else
                                       (r" $\pm$ " if latex else " ± ") + f"{std:.{col.digits}f}")
    if bold:
        return rf"\textbf{{{text}}}" if latex else f"**{text}**"
    return text


def _escape(text: str) -> str:
    return text.replace("%", r"\%").replace("_", r"\_").replace("&", r"\&").replace("×", r"$\times$")


def render(frame: pd.DataFrame, fmt: Literal["md", "tex"]) -> str:
    """Markdown or LaTeX (booktabs) text of a built table, best means in bold, † for p < alpha."""
    columns: list[Column] = frame.attrs["columns"]
    latex = fmt == "tex"
    best = {}
    for col in columns:
        if col.higher_is_better is not None and frame[col.name].notna().any():
            best[col.name] = frame[col.name].max() if col.higher_is_better else frame[col.name].min()
    p_col = next((c for c in frame.columns if str(c).startswith("p vs ")), None)
    arrow = {True: " ↑", False: " ↓", None: ""}
    header = ["", *[c.name + arrow[c.higher_is_better] for c in columns], "seeds"]
    header += [p_col, "p (Holm)"] if p_col else []
    lines = []
    for i in frame.index:
        cells = [_escape(str(frame.at[i, "row"])) if latex else str(frame.at[i, "row"])]
        for col in columns:
            is_best = col.name in best and math.isclose(frame.at[i, col.name], best[col.name], rel_tol=0, abs_tol=1e-12)
            cells.append(_cell(frame, i, col, is_best, latex))
        cells.append(str(frame.at[i, "seeds"]))
        for key in ([p_col, "p (Holm)"] if p_col else []):
            p = frame.at[i, key]
            if p is None or (isinstance(p, float) and math.isnan(p)):
                cells.append("(best baseline)" if frame.at[i, "row"] == frame.attrs.get("baseline") else "n/a")
            else:
                cells.append(f"{p:.3f}" + (r"$^\dagger$" if latex and p < frame.attrs["alpha"] else
                                           " †" if p < frame.attrs["alpha"] else ""))
        lines.append(cells)
    seeds = sorted({int(n) for n in frame["seeds"]})
    spread = (f"Mean ± std over {'/'.join(map(str, seeds))} seeds" if seeds != [1]
              else "One seed per row (no std, no test)")
    note = (f"{spread}; best in bold; ↑ higher is better, ↓ lower is better. "
            "n/a: not applicable (e.g. a per-branch score of a method without branches); n/m: not measured.")
    n_tests = int(frame["p (Holm)"].notna().sum()) if p_col else 0
    if n_tests:
        note += (f" p: two-sided Welch t-test of {frame.attrs['main']} against the best baseline "
                 f"({frame.attrs['baseline']}); p (Holm): Holm-adjusted over the table's {n_tests} tests (with few "
                 f"seeds a single raw p < {frame.attrs['alpha']} is weak evidence); † p < {frame.attrs['alpha']}.")
    if any(c.name == "train img/s" for c in columns):
        note += (" train img/s and peak MB: `asymfusion bench` (perf.json), training step at the experiment's input "
                 "size and batch (n/m where not benchmarked).")
    if frame.attrs.get("protocol"):
        note += " " + frame.attrs["protocol"]
    if latex:
        body = "\n".join(" & ".join(row) + r" \\" for row in lines)
        return (f"% {frame.attrs['title']}\n\\begin{{tabular}}{{l{'r' * (len(header) - 1)}}}\n\\toprule\n"
                + " & ".join(_escape(h) for h in header) + " \\\\\n\\midrule\n" + body
                + f"\n\\bottomrule\n\\end{{tabular}}\n% {note}\n")
    out = [f"**{frame.attrs['title']}**", "", "| " + " | ".join(header) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in lines]
    return "\n".join(out + ["", note, ""])


def attach_perf(groups: dict[str, list[dict[str, Any]]], perf_json: Path) -> None:
    """Give every metric record of a benchmarked experiment its efficiency row from perf.json (key "perf")."""
    from asymfusion.benchmark.perf.report import efficiency_table

    efficiency = efficiency_table(perf_json)
    for experiment, records in groups.items():
        if experiment in efficiency.index:
            row = {k: float(v) for k, v in efficiency.loc[experiment].items()}
            for record in records:
                record["perf"] = row


def write_tables(tables: list[TableConfig], metrics_dir: Path, out_dir: Path,
                 perf_json: Path | None = None) -> list[Path]:
    """Every table as .md, .tex and .csv; efficiency columns from `perf_json` when it exists."""
    groups = load_records(metrics_dir)
    if perf_json is not None and perf_json.is_file():
        attach_perf(groups, perf_json)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        frame = build_table(table, groups)
        for fmt in ("md", "tex"):
            path = out_dir / f"{table.name}.{fmt}"
            path.write_text(render(frame, fmt))
            written.append(path)
        csv = out_dir / f"{table.name}.csv"
        frame.to_csv(csv, index=False, float_format="%.6g")
        written.append(csv)
    return written
