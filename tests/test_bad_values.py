"""Values that used to pass validation and crash or misbehave later: each is rejected when params.yaml (or the
command line) is read, naming the key and what is allowed, before any file is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml

from asymfusion.benchmark.config import ConfigError, load_params, resolve_run
from asymfusion.benchmark.engine import evaluate as evaluate_module
from asymfusion.benchmark.engine.modelcheck import check_model_builds
from asymfusion.benchmark.engine.train import train_run

from tests.engine_helpers import REPO, cli, micro_params


def _write(tmp_path: Path, mutate: Callable[[dict[str, Any]], None]) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    mutate(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _exp(raw: dict[str, Any], section: str) -> dict[str, Any]:
    return raw["experiments"]["quick-msbn"].setdefault(section, {})


CASES = {
    "zero test scale": (lambda r: _exp(r, "evaluate").update(scales=[1.0, 0.0]), "evaluate.scales.1"),
    "negative test scale": (lambda r: _exp(r, "evaluate").update(scales=[-0.5]), "evaluate.scales.0"),
    "Adam beta of one": (lambda r: _exp(r, "optimiser").update(betas=[0.5, 1.0]), "optimiser.betas.1"),
    "negative Adam beta": (lambda r: _exp(r, "optimiser").update(betas=[-0.1, 0.9]), "optimiser.betas.0"),
    "absurd learning rate": (lambda r: _exp(r, "optimiser").update(lr_encoder=1e4), "optimiser.lr_encoder"),
    "absurd weight decay": (lambda r: _exp(r, "optimiser").update(weight_decay=5.0), "optimiser.weight_decay"),
    "empty seed list": (lambda r: r["experiments"]["quick-msbn"].update(seeds=[]), "quick-msbn.seeds"),
    "repeated seed": (lambda r: r["experiments"]["quick-msbn"].update(seeds=[1, 1]), "quick-msbn.seeds"),
    "negative seed": (lambda r: r["suites"]["quick"].update(seeds=[-1]), "suites.quick.seeds.0"),
    "zero benchmark batch": (lambda r: r["perf"]["quick"].update(batches=[0]), "perf.quick.batches.0"),
    "tiny benchmark size": (lambda r: r["perf"]["quick"].update(sizes=[[2, 64]]), "perf.quick.sizes.0"),
    "flip on translation": (lambda r: r["experiments"]["quick-t2-msbn"].setdefault("evaluate", {}).update(flip=True),
                            "quick-t2-msbn.evaluate: flip / scales"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_value_that_would_fail_later_is_rejected_when_params_are_read(case: str, tmp_path: Path) -> None:
    mutate, key = CASES[case]
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_params(_write(tmp_path, mutate))


def test_a_key_given_twice_is_rejected_with_both_lines(tmp_path: Path) -> None:
    text = (REPO / "params.yaml").read_text()
    twice = text.replace("  quick-esanet: {base: quick-seg, model: {method: esanet}}\n",
                         "  quick-esanet: {base: quick-seg, model: {method: esanet}}\n"
                         "  quick-esanet: {base: quick-seg, model: {method: msbn}}\n")
    assert twice != text
    path = tmp_path / "params.yaml"
    path.write_text(twice)
    with pytest.raises(ConfigError, match=r"line \d+: key 'quick-esanet' given twice .*first on line \d+"):
        load_params(path)


@pytest.mark.parametrize("model, expected", [
    ({"backbone": "resnet_does_not_exist"}, "Unknown model"),
    ({"backbone_kwargs": {"chanels": [8, 16, 32, 64]}}, "chanels"),
    ({"method": "asymfusion", "fusion": {"stages": [5]}}, "stage"),
])
def test_what_only_the_model_knows_fails_before_the_log_file_is_written(model: dict[str, Any], expected: str,
                                                                       tmp_path: Path, synthetic_data_dir: Path) -> None:
    params = micro_params(tmp_path, synthetic_data_dir, ["msbn"], epochs=1)
    raw = yaml.safe_load(params.read_text())
    raw["experiments"]["micro-msbn"]["model"].update(model)
    params.write_text(yaml.safe_dump(raw))
    try:
        cfg = resolve_run(load_params(params), "micro-msbn-s0")
    except ConfigError as exc:  # caught even earlier (method options are validated with the params)
        assert expected in str(exc)
        return
    with pytest.raises(ConfigError, match=f"experiments.micro-msbn.model: cannot build the model: .*{expected}"):
        train_run(cfg, progress=False)
    assert not (tmp_path / "results").exists() and not (tmp_path / "checkpoints").exists()


def test_config_validate_builds_every_model_and_names_the_experiment(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["experiments"]["quick-msbn"].setdefault("model", {}).update(
        backbone="resnet_does_not_exist"))
    proc = cli("config", "validate", params=path, check=False)
    assert proc.returncode == 2 and "experiments.quick-msbn.model: cannot build the model" in proc.stderr
    assert cli("config", "validate", "--no-models", params=path).returncode == 0


def test_check_model_builds_accepts_every_repository_experiment_quickly() -> None:
    params = load_params(REPO / "params.yaml")
    for name in ("quick-cmx", "quick-acnet", "quick-t2-asymfusion"):
        check_model_builds(resolve_run(params, name).model, name)


@pytest.mark.parametrize("argv, message", [
    (["prepare", "synthetic", "--size", "4"], "--size 4"),
    (["prepare", "synthetic", "--n-train", "0"], "--n-train 0"),
    (["fetch", "nyudv2", "--timeout", "0"], "--timeout"),
    (["fetch", "nyudv2", "--backoff", "-1"], "--backoff"),
    (["fetch", "taskonomy", "--commit", "main"], "--commit"),
])
def test_command_line_values_out_of_range_exit_2_naming_the_option(argv: list[str], message: str,
                                                                  tmp_path: Path) -> None:
    proc = cli(*argv, "--data-dir" if argv[0] == "fetch" else "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("modalities", [("rgb", "depth"), ("rgb",), ("depth",)])
def test_multi_scale_flip_test_time_augmentation_runs_on_every_modality_kind(modalities: tuple[str, ...]) -> None:
    calls = []

    def model(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        calls.append({k: v.shape[-2:] for k, v in inputs.items()})
        x = next(iter(inputs.values()))
        return {"ensemble": torch.zeros(x.shape[0], 3, *x.shape[-2:])}

    channels = {"rgb": 3, "depth": 1}
    inputs = {m: torch.rand(2, channels[m], 20, 30) for m in modalities}
    probs = evaluate_module.TestTimeAugment(model, [0.5, 1.0, 1.5], flip=True, nearest=frozenset({"depth"}))(inputs)["ensemble"]
    assert probs.shape == (2, 3, 20, 30)
    torch.testing.assert_close(probs.sum(dim=1), torch.full((2, 20, 30), 6.0))  # 3 scales x 2 flips
    assert [c[modalities[0]] for c in calls] == [(10, 15)] * 2 + [(20, 30)] * 2 + [(30, 45)] * 2


def test_a_start_without_its_data_leaves_no_log_or_folder_behind(tmp_path: Path) -> None:
    params = micro_params(tmp_path, tmp_path / "no-data-here", ["msbn"], epochs=1)
    proc = cli("train", "micro-msbn-s0", "--no-progress", params=params, check=False)
    assert proc.returncode == 1 and "split list not found" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()
