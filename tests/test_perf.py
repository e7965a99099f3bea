"""`asymfusion bench` on a micro suite: the record and its files are complete, loop and stacked execution agree on
the same weights, FLOPs are sane. No timing threshold is asserted here: the targets are measured by the command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from asymfusion.benchmark.config import ConfigError, load_params, resolve_run
from asymfusion.benchmark.perf.bench import parse_size, run_benchmark, select_experiments
from asymfusion.benchmark.perf.cli import add_bench_parser
from asymfusion.benchmark.config.perf import PerfSuiteConfig
from asymfusion.benchmark.perf.report import efficiency_table, write_outputs
from asymfusion.benchmark.perf.steps import Setup, build_variant, compare_outputs, loop_applies, synthetic_batch

from tests.engine_helpers import micro_params

TARGETS = {"fusion_overhead", "stacked_speedup", "matmul_fraction", "data_share"}


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory, synthetic_data_dir: Path) -> Path:
    tmp = tmp_path_factory.mktemp("perf")
    return micro_params(tmp, synthetic_data_dir, ["msbn", "asymfusion", "early"])


@pytest.fixture(scope="module")
def record(micro: Path) -> dict:
    params = load_params(micro)
    return run_benchmark(params, "micro", batches=[2, 4], repeats=3, warmup=1, device="cpu", threads=1,
                         command="test")


def test_record_has_every_field_and_writes_valid_files(record: dict, tmp_path: Path) -> None:
    assert record["suite"] == "micro" and record["settings"]["threads"] == 1
    for key in ("cpu_model", "cores_available", "torch_threads", "torch", "device", "cpu_utilisation"):
        assert key in record["machine"], key
    assert record["matmul"]["gflops"] > 0 and record["matmul"]["n"] == 2048
    measured = [r for r in record["rows"] if r["status"] == "measured"]
    # msbn and asymfusion: stacked + loop; early: stacked only (no shared stack) -> 5 per batch, 2 batches
    assert len(measured) == 10
    for row in measured:
        for key in ("params", "gflops_per_image", "train_gflops_per_step", "peak_memory_mb", "achieved_gflops",
                    "matmul_fraction", "matmul_fraction_separate", "matmul_gflops_in_rounds", "train_images_per_s"):
            assert row[key] > 0, (row["experiment"], key)
        for key in ("train_step", "inference"):
            stats = row[key]
            assert stats["n"] == 3 and 0 < stats["min_ms"] <= stats["median_ms"] and stats["iqr_ms"] >= 0
        assert row["default_shape"] == (row["batch"] == 4)  # micro experiments: crop 32, batch 4
    skipped = [r for r in record["rows"] if r["status"] == "skipped"]
    assert {(r["experiment"], r["execution"]) for r in skipped} == {("micro-early", "loop")}
    comparisons = {(p["comparison"], p["batch"]) for p in record["paired"]}
    assert comparisons == {(c, b) for c in ("loop/stacked", "asymfusion/msbn") for b in (2, 4)}
    assert all(p["train"]["median"] > 0 and p["train"]["best_of_n"] > 0 for p in record["paired"])
    assert {d["status"] for d in record["data"]} == {"measured"}
    assert all(0 < d["share"] < 1 and d["num_workers"] == 0 for d in record["data"])
    assert {t["name"] for t in record["targets"]} == TARGETS
    assert all(t["status"] in {"pass", "fail", "not measured"} and t["detail"] for t in record["targets"])

    paths = write_outputs(record, tmp_path)
    assert json.loads(paths["json"].read_text())["rows"] == json.loads(json.dumps(record["rows"]))
    assert "## Targets" in paths["md"].read_text() and "micro-asymfusion" in paths["csv"].read_text()
    table = efficiency_table(paths["json"])
    assert set(table.index) == {"micro-msbn", "micro-asymfusion", "micro-early"}
    assert (table["params_m"] > 0).all() and (table["train_step_ms"] > 0).all()


def test_flops_training_exceeds_forward_and_fusion_adds_no_parameters(record: dict) -> None:
    rows = {(r["experiment"], r["execution"], r["batch"]): r for r in record["rows"] if r["status"] == "measured"}
    for row in rows.values():
        # backward costs about twice the forward: a step is well above batch x forward per image
        assert row["train_gflops_per_step"] > 2 * row["batch"] * row["gflops_per_image"]
    asym, msbn = rows[("micro-asymfusion", "stacked", 4)], rows[("micro-msbn", "stacked", 4)]
    assert asym["params"] == msbn["params"]
    assert rows[("micro-asymfusion", "loop", 4)]["train_gflops_per_step"] == asym["train_gflops_per_step"]


def test_loop_rows_record_matching_outputs(record: dict) -> None:
    loops = [r for r in record["rows"] if r.get("execution") == "loop" and r["status"] == "measured"]
    assert loops and all(r["outputs_match"] and r["max_abs_diff"] <= 1e-4 for r in loops)


@pytest.mark.parametrize("method", ["msbn", "asymfusion"])
def test_stacked_and_loop_outputs_match_on_the_same_weights(micro: Path, method: str) -> None:
    cfg = resolve_run(load_params(micro), f"micro-{method}")
    setup = Setup(torch.device("cpu"))
    stacked = build_variant(cfg.experiment, cfg, "stacked", setup)
    stacked.set_batch(synthetic_batch(cfg, 3, (32, 32)))
    stacked.train_step()  # move the weights and BN statistics away from their initialisation first
    loop = build_variant(cfg.experiment, cfg, "loop", setup, state=stacked.model.state_dict())
    assert loop_applies(loop.model) and not loop_applies(stacked.model)
    check = compare_outputs(stacked.model, loop.model, stacked.inputs, setup.device)
    assert check["outputs_match"], check
    assert set(check["keys"]) == {"rgb", "depth", "ensemble"}
    with torch.no_grad():  # a different weight must be caught
        next(loop.model.parameters()).add_(0.1)
    assert not compare_outputs(stacked.model, loop.model, stacked.inputs, setup.device)["outputs_match"]


def test_gpu_path_options_run_on_cpu_too(micro: Path) -> None:
    """autocast bf16 and channels_last (the GPU defaults) through the same code; outputs still checked in fp32."""
    record = run_benchmark(load_params(micro), "micro", methods=["asymfusion"], batches=[2], repeats=3, warmup=1,
                           device="cpu", amp="bf16", channels_last=True, threads=1, data=False, command="test")
    assert record["settings"]["amp"] == "bf16" and record["settings"]["channels_last"] is True
    rows = [r for r in record["rows"] if r["status"] == "measured"]
    assert {r["execution"] for r in rows} == {"stacked", "loop"}
    assert all(r["train_step"]["median_ms"] > 0 for r in rows)
    assert next(r for r in rows if r["execution"] == "loop")["outputs_match"]


def test_data_measurement_is_skipped_with_a_reason_when_the_data_is_not_rendered(tmp_path: Path) -> None:
    params = load_params(micro_params(tmp_path, tmp_path / "no-data", ["msbn"]))
    record = run_benchmark(params, "micro", batches=[2], repeats=3, warmup=0, device="cpu", threads=1,
                           executions=["stacked"], command="test")
    (data,) = record["data"]
    assert data["status"] == "skipped" and "not prepared" in data["reason"]
    statuses = {t["name"]: t["status"] for t in record["targets"]}
    assert statuses["data_share"] == statuses["stacked_speedup"] == statuses["fusion_overhead"] == "not measured"


def test_cli_writes_json_and_tables(micro: Path, tmp_path: Path) -> None:
    from tests.engine_helpers import cli

    out = tmp_path / "out"
    proc = cli("bench", "--suite", "micro", "--methods", "asymfusion", "--batches", "2", "--repeats", "3",
               "--warmup", "0", "--threads", "1", "--no-data", "--quiet", "--out", str(out), params=micro)
    assert "stacked_speedup" in proc.stdout
    written = json.loads((out / "perf.json").read_text())
    assert written["settings"]["experiments"] == ["micro-asymfusion"]
    assert written["data"][0]["reason"] == "--no-data"
    assert (out / "tables" / "perf.md").is_file() and (out / "tables" / "perf.csv").is_file()


def test_unknown_suite_or_method_exits_2(micro: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from asymfusion.benchmark.cli import main

    assert main(["--params", str(micro), "bench", "--suite", "nope"]) == 2
    assert "unknown suite 'nope'" in capsys.readouterr().err
    assert main(["--params", str(micro), "bench", "--suite", "micro", "--methods", "no-such-method"]) == 2
    assert "allowed: asymfusion, early" in capsys.readouterr().err


def test_parser_options_have_help_and_choices() -> None:
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers(dest="verb"))
    bench = parser._subparsers._group_actions[0].choices["bench"]  # type: ignore[union-attr]
    for action in bench._actions:
        assert action.help, action.dest
    choices = {a.dest: a.choices for a in bench._actions}
    assert list(choices["device"]) == ["auto", "cpu", "cuda"] and list(choices["amp"]) == ["auto", "off", "bf16"]
    args = parser.parse_args(["bench", "--sizes", "64", "48x96", "--no-channels-last", "--compile"])
    assert [parse_size(s) for s in args.sizes] == [(64, 64), (48, 96)]
    assert args.channels_last is False and args.compile is True


def test_settings_and_selection(micro: Path) -> None:
    with pytest.raises(ConfigError):
        parse_size("64x")
    with pytest.raises(ValueError):
        PerfSuiteConfig(sizes=[4])
    assert PerfSuiteConfig().targets.fusion_overhead_max == 1.05
    params = load_params(micro)
    assert select_experiments(params, "micro", ["asymfusion", "micro-early"]) == ["micro-asymfusion", "micro-early"]
    with pytest.raises(ConfigError, match="no experiments|unknown suite"):
        select_experiments(params, "quick", None)
