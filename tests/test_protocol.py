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
        assert protocol["scoring"].startswith("logits resized bilinear (align_corners=False)")


def _record(**protocol: object) -> dict:
    base = {"data": "nyudv2 (the published data)", "split": "val", "samples": 654, "input_size": [480, 640],
            "scales": [1.0], "flip": False,
            "checkpoint": "best: the validated epoch with the highest ensemble mIoU on the val split (epoch 3 of 9)",
            "pretrained": "timm timm/resnet101.a1h_in1k", "batch": {"per_device": 6, "devices": 1, "effective": 6},
            "hardware": {"train": {"device": "NVIDIA H200", "devices": 1}}, "inputs": {"rgb": "8-bit RGB"}}
    return {"protocol": {**base, **protocol}}


def test_the_table_footnote_states_the_shared_protocol_and_flags_what_varies() -> None:
    same = protocol_summary([_record(), _record()])
    assert same.startswith("Protocol: data: nyudv2 (the published data); split: val (654 images); input size: 480x640; "
                           "test time: single scale; checkpoint: best: the validated epoch with the highest ensemble "
                           "mIoU on the val split;")
    assert "pretrained: timm timm/resnet101.a1h_in1k" in same and "batch: 6 per device x 1 = 6" in same
    assert "trained on: 1x NVIDIA H200" in same
    mixed = protocol_summary([_record(), _record(scales=[0.75, 1.0, 1.25], flip=True)])
    assert "input size: 480x640; test time: varies by row (see each metrics JSON)" in mixed
    older = protocol_summary([{"protocol": {"scales": [1.0], "flip": False, "split": "val", "samples": 200}}])
    assert older == "Protocol: split: val (200 images); test time: single scale."  # fields it lacks are left out


def test_a_rendered_table_carries_the_protocol_line(tmp_path: Path, synthetic_data_dir: Path) -> None:
    params = micro_params(tmp_path, synthetic_data_dir, ["early"], epochs=1)
    cfg = resolve_run(load_params(params), "micro-early-s0")
    train_run(cfg, progress=False)
    evaluate_run(cfg, checkpoint="last.pt")
    table = TableConfig(name="t", title="T", kind="segmentation", rows={"micro-early": "early"})
    frame = build_table(table, load_records(cfg.results_dir / "metrics"))
    for fmt in ("md", "tex"):
        assert ("Protocol: data: procedurally rendered scenes (datasets/synthetic); split: val (5 images); input size: "
                "32x32; test time: single scale; checkpoint: last: epoch 1 of 1") in render(frame, fmt)


def test_logits_resize_switches_to_bicubic_inside_the_block_only() -> None:
    import torch
    import torch.nn.functional as F

    from asymfusion.models.encoder import logits_resize, upsample_to

    x = torch.randn(1, 3, 5, 7)
    bilinear = F.interpolate(x, size=(20, 28), mode="bilinear", align_corners=False)
    bicubic = F.interpolate(x, size=(20, 28), mode="bicubic", align_corners=False)
    assert torch.equal(upsample_to(x, (20, 28)), bilinear)
    with logits_resize("bicubic"):
        assert torch.equal(upsample_to(x, (20, 28)), bicubic)
    assert torch.equal(upsample_to(x, (20, 28)), bilinear)
    with pytest.raises(ValueError, match="bicubic"):
        with logits_resize("nearest"):
            pass


def test_evaluate_scores_the_checkpoint_and_resize_the_experiment_names(tmp_path: Path,
                                                                       synthetic_data_dir: Path) -> None:
    import json

    import yaml

    from tests.engine_helpers import cli

    params = micro_params(tmp_path, synthetic_data_dir, ["msbn"], epochs=2)
    raw = yaml.safe_load(params.read_text())
    raw["experiments"]["micro-msbn"]["evaluate"].update(checkpoint="last", logits_resize="bicubic")
    raw["experiments"]["micro-msbn"]["train"]["eval_every"] = 1
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    cli("train", "micro-msbn-s0", "--no-progress", params=params)
    cli("evaluate", "micro-msbn-s0", params=params)
    record = json.loads((tmp_path / "results" / "metrics" / "micro-msbn-s0.json").read_text())
    assert record["checkpoint"]["file"] == "last.pt" and record["checkpoint"]["epoch"] == 2
    assert record["protocol"]["checkpoint"] == "last: epoch 2 of 2"
    assert record["protocol"]["scoring"].startswith("logits resized bicubic")
    cli("evaluate", "micro-msbn-s0", "--checkpoint", "best", params=params)  # the command line wins
    record = json.loads((tmp_path / "results" / "metrics" / "micro-msbn-s0.json").read_text())
    assert record["checkpoint"]["file"] == "best.pt" and record["protocol"]["checkpoint"].startswith("best: ")


def test_fid_and_kid_are_not_computed_on_fewer_than_two_images_and_say_why(tmp_path: Path,
                                                                           synthetic_data_dir: Path) -> None:
    from asymfusion.benchmark.engine.evaluate import _distribution_metrics

    params = micro_params(tmp_path, synthetic_data_dir, ["msbn"], translation=True)
    cfg = resolve_run(load_params(params), "micro-msbn-s0")
    metrics, note = _distribution_metrics(cfg, ["ensemble"], 1, extractor=None)
    assert metrics is None and note == {"computed": False,
                                        "reason": "FID/KID need at least 2 validation images; the split has 1"}


def test_stand_in_weights_are_never_called_imagenet_weights(tmp_path: Path, synthetic_data_dir: Path) -> None:
    from asymfusion.benchmark.engine.protocol import pretraining
    from asymfusion.datasets.standins import mark_stand_in

    cfg = resolve_run(load_params(micro_params(tmp_path, synthetic_data_dir, ["msbn"], epochs=1)), "micro-msbn-s0")
    real, standin = tmp_path / "real" / "resnet.pth", tmp_path / "standin" / "resnet.pth"
    mark_stand_in(standin.parent, "pretrained weights (random init)")
    real.parent.mkdir()
    for file, expected in ((real, f"ImageNet weights from {real}"),
                           (standin, f"STAND-IN weights (random init, not ImageNet) from {standin}")):
        model = cfg.model.model_copy(update={"pretrained": True, "pretrained_file": str(file)})
        assert pretraining(cfg.model_copy(update={"model": model})) == expected
