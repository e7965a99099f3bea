"""Robustness summaries from the metric files' `corruptions` records (benchmark/engine/robustness.py).

Per run, from the ensemble's main metric (mIoU) on the same validation images:

* **clean**: without corruption;
* **mean under corruption**: over every corruption and severity scored (and per modality: RGB, depth);
* **relative robustness**: mean under corruption / clean (1 = unaffected);
* **mCE** (ImageNet-C's mean corruption error, Hendrycks & Dietterich 2019) against a named baseline row: for each
  corruption c, CE_c = sum over severities of (100 - mIoU %) / the same sum for the baseline (its mean over seeds);
  mCE = the mean of CE_c over corruptions, in % (100 = as robust as the baseline, lower is better).

A table of kind `corruptions` shows these per row as mean ± std over seeds; `severity_curves` gives the per-severity
means the robustness plot draws (mIoU vs severity, one line per method, a band of ± std over seeds).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Callable

import numpy as np

from asymfusion.benchmark.tasks import Column, get_task

__all__ = ["corruption_columns", "corruption_errors", "mce", "severity_curves"]


def _scores(record: dict[str, Any]) -> dict[str, Any]:
    return (record.get("corruptions") or {}).get("scores") or {}


def _main(record: dict[str, Any]) -> str:
    return get_task(record["task"]).main_metric


def _value(row: dict[str, Any], name: str) -> float | None:
    value = row.get("ensemble", {}).get(name)
    return float(value) if isinstance(value, (int, float)) else None


def _corrupted(record: dict[str, Any], modality: str | None = None) -> list[float]:
    name = _main(record)
    out = []
    for key, row in _scores(record).items():
        if key == "clean" or (modality is not None and not key.startswith(f"{modality}/")):
            continue
        value = _value(row, name)
        if value is not None:
            out.append(value)
    return out


def _clean(record: dict[str, Any]) -> float | None:
    return _value(_scores(record).get("clean", {}), _main(record))


def _mean_corrupted(modality: str | None) -> Callable[[dict[str, Any]], float | None]:
    def get(record: dict[str, Any]) -> float | None:
        values = _corrupted(record, modality)
        return float(np.mean(values)) if values else None

    return get


def _relative(record: dict[str, Any]) -> float | None:
    clean, values = _clean(record), _corrupted(record)
    return float(np.mean(values) / clean) if clean and values else None


def corruption_columns(records: list[dict[str, Any]]) -> tuple[list[Column], str]:
    """Columns of a `corruptions` table: clean, mean under corruption (all, then per corrupted modality), relative."""
    task = get_task(records[0]["task"])
    label, scale = task.main_label, 1.0  # the main metric as the metric files hold it (mIoU in %)
    modalities = sorted({k.split("/")[0] for r in records for k in _scores(r) if k != "clean"},
                        key=lambda m: (m != "rgb", m))
    cols = [Column(f"{label} clean", _clean, True, scale),
            Column(f"{label} under corruption", _mean_corrupted(None), True, scale)]
    cols += [Column(f"{label} under {m} corruption", _mean_corrupted(m), True, scale) for m in modalities]
    cols.append(Column("relative robustness", _relative, True, 1.0, digits=3))
    return cols, f"{label} under corruption"


def corruption_errors(record: dict[str, Any]) -> dict[str, float]:
    """Per corruption (modality/name): the sum over its severities of the error, 100 - main metric (mIoU in %)."""
    name, sums = _main(record), defaultdict(float)
    for key, row in _scores(record).items():
        value = _value(row, name)
        if key != "clean" and value is not None:
            sums[key.split("@")[0]] += 100.0 - value
    return dict(sums)


def mce(groups: dict[str, list[dict[str, Any]]], rows: list[str], baseline: str) -> dict[str, list[float]]:
    """Per row, the mCE (%) of each seed against the baseline's seed-mean errors (module docstring)."""
    base = [corruption_errors(r) for r in groups[baseline]]
    keys = sorted(set.intersection(*(set(b) for b in base))) if base else []
    reference = {k: float(np.mean([b[k] for b in base])) for k in keys}
    out: dict[str, list[float]] = {}
    for row in rows:
        per_seed = []
        for record in groups[row]:
            errors = corruption_errors(record)
            ratios = [errors[k] / reference[k] for k in keys if k in errors and reference[k] > 0]
            if ratios and len(ratios) == len(keys):
                per_seed.append(100.0 * float(np.mean(ratios)))
        out[row] = per_seed
    return out


def severity_curves(groups: dict[str, list[dict[str, Any]]], rows: list[str], modality: str
                    ) -> dict[str, dict[int, tuple[float, float, int]]]:
    """Per row: severity -> (mean over seeds, std over seeds, seeds) of the main metric averaged over the
    modality's corruptions at that severity; severity 0 is clean."""
    curves: dict[str, dict[int, tuple[float, float, int]]] = {}
    for row in rows:
        per_severity: dict[int, list[float]] = defaultdict(list)
        for record in groups[row]:
            name, by_level = _main(record), defaultdict(list)
            clean = _clean(record)
            if clean is not None:
                by_level[0].append(clean)
            for key, scores in _scores(record).items():
                value = _value(scores, name)
                if key.startswith(f"{modality}/") and value is not None:
                    by_level[int(key.rsplit("@", 1)[1])].append(value)
            for level, values in by_level.items():
                per_severity[level].append(float(np.mean(values)))
        curves[row] = {level: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else math.nan, len(v))
                       for level, v in sorted(per_severity.items())}
    return curves
