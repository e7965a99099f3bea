"""Every result states its protocol (benchmark/engine/protocol.py), and every table summarises it in its footnote."""

from __future__ import annotations

from pathlib import Path

import pytest

from asymfusion.benchmark.config import TableConfig, load_params, resolve_run
from asymfusion.benchmark.engine.evaluate import evaluate_run
from asymfusion.benchmark.engine.train import train_run
from asymfusion.benchmark.report.tables import build_table, load_records, protocol_summary, render
from tests.engine_helpers import micro_params


@pytest.mark.parametrize("translation", [False, True], ids=["segmentation", "translation"])
def test_the_metrics_json_states_the_protocol_it_was_computed_under(translation: bool, tmp_path: Path,
                                                                     synthetic_data_dir: Path) -> None:
    params = micro_params(tmp_path, synthetic_data_dir, ["msbn"], epochs=1, translation=translation)
    cfg = resolve_run(load_params(params), "micro-msbn-s0")
    train_run(cfg, progress=False)
    protocol = evaluate_run(cfg, checkpoint="last.pt")["protocol"]
    assert protocol["split"] == "val" and protocol["samples"] == 5
    assert protocol["data"] == "procedurally rendered scenes (datasets/synthetic)"
    assert protocol["input_size"] == [32, 32] and protocol["scales"] == [1.0] and protocol["flip"] is False
    assert protocol["checkpoint"] == "last: epoch 1 of 1"
    assert protocol["pretrained"] == "none (random init)"
    assert protocol["batch"] == {"per_device": 4, "devices": 1, "effective": 4}
    assert protocol["hardware"]["train"]["device"] == "cpu" and protocol["hardware"]["train"]["cpu_capability"]
    if translation:
        assert set(protocol["inputs"]) == {"reshading", "depth_zbuffer"}
        assert protocol["inputs"]["depth_zbuffer"].startswith("log(1 + 16-bit PNG) scaled by 255/11.1")
        assert "[0, 1]" in protocol["scoring"]
    else:
        assert protocol["inputs"]["depth"] == "depth in metres (16-bit PNG / 5000), 0 where not measured"
        assert "bilinearly" in protocol["scoring"]


def _record(**protocol: object) -> dict:
    base = {"data": "nyudv2 (the published data)", "split": "val", "samples": 654, "input_size": [480, 640], "scales": [1.0], "flip": False,
            "checkpoint": "best: the validated epoch with the highest ensemble mIoU on the val split (epoch 3 of 9)",
            "pretrained": "timm timm/resnet101.a1h_in1k", "batch": {"per_device": 6, "devices": 1, "effective": 6},
            "hardware": {"train": {"device": "NVIDIA H200", "devices": 1}}, "inputs": {"rgb": "8-bit RGB"}}
    return {"protocol": {**base, **protocol}}


def test_the_table_footnote_states_the_shared_protocol_and_flags_what_varies() -> None:
    same = protocol_summary([_record(), _record()])
    assert same.startswith("Protocol: data nyudv2 (the published data); val split (654 images) at 480x640, single scale; checkpoint best: the "
                           "validated epoch with the highest ensemble mIoU on the val split;")
    assert "pretrained: timm timm/resnet101.a1h_in1k" in same and "batch 6 per device x 1 = 6" in same
    assert "trained on 1x NVIDIA H200" in same
    mixed = protocol_summary([_record(), _record(scales=[0.75, 1.0, 1.25], flip=True)])
    assert "at 480x640, varies by row (see each metrics JSON)" in mixed


def test_a_rendered_table_carries_the_protocol_line(tmp_path: Path, synthetic_data_dir: Path) -> None:
    params = micro_params(tmp_path, synthetic_data_dir, ["early"], epochs=1)
    cfg = resolve_run(load_params(params), "micro-early-s0")
    train_run(cfg, progress=False)
    evaluate_run(cfg, checkpoint="last.pt")
    table = TableConfig(name="t", title="T", kind="segmentation", rows={"micro-early": "early"})
    frame = build_table(table, load_records(cfg.results_dir / "metrics"))
    for fmt in ("md", "tex"):
        assert "Protocol: data procedurally rendered scenes (datasets/synthetic); val split (5 images) at 32x32, single scale; checkpoint last: epoch 1 of 1" in render(frame, fmt)
