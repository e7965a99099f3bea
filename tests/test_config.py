"""params.yaml validation: bad input fails before any work with the key path, the value and the choices."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asymfusion.benchmark.config import ConfigError, list_runs, load_params, resolve_run

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    mutate(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_repository_params_are_valid_and_every_run_resolves() -> None:
    params = load_params(REPO / "params.yaml")
    runs = list_runs(params)
    assert runs, "params.yaml defines no runs"
    for run in runs:
        cfg = resolve_run(params, run)
        assert cfg.run == run
        assert cfg.model.modalities == cfg.data.modalities


def test_yaml_anchor_holders_are_expanded_not_treated_as_sections() -> None:
    params = load_params(REPO / "params.yaml")
    cfg = resolve_run(params, "quick-asymfusion-s1")
    assert cfg.seed == 1 and cfg.model.method == "asymfusion"
    assert cfg.model.in_channels == {"rgb": 3, "depth": 1}
    assert cfg.model.num_classes == params.datasets["synth-seg"].num_classes


def test_unknown_key_names_dotted_path_and_allowed_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["experiments"]["quick-msbn"].setdefault("optimiser", {}).update(lr_encodr=0.1))
    with pytest.raises(ConfigError) as err:
        load_params(path)
    msg = str(err.value)
    assert "experiments.quick-msbn.optimiser.lr_encodr: unknown key" in msg
    assert "lr_encoder" in msg and "lr_decoder" in msg


def test_value_outside_choices_names_value_and_choices(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["experiments"]["quick-msbn"].setdefault("optimiser", {}).update(schedule="cosine"))
    with pytest.raises(ConfigError) as err:
        load_params(path)
    msg = str(err.value)
    assert "experiments.quick-msbn.optimiser.schedule" in msg
    assert "'cosine'" in msg and "'constant', 'poly' or 'multistage'" in msg


def test_wrong_type_is_reported_with_the_value(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["experiments"]["quick-msbn"].setdefault("data", {}).update(batch_size="big"))
    with pytest.raises(ConfigError, match=r"experiments.quick-msbn.data.batch_size: .*integer.*'big'"):
        load_params(path)


def test_unknown_method_lists_registered_methods(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["experiments"]["quick-msbn"]["model"].update(method="magic"))
    with pytest.raises(ConfigError) as err:
        load_params(path)
    msg = str(err.value)
    assert "experiments.quick-msbn.model" in msg and "magic" in msg
    assert "asymfusion" in msg and "msbn" in msg


def test_reference_to_undefined_dataset_lists_defined_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["experiments"]["quick-msbn"].setdefault("data", {}).update(dataset="nyu"))
    with pytest.raises(ConfigError, match=r"experiments.quick-msbn.data.dataset: 'nyu' is not defined; allowed: .*synth-seg"):
        load_params(path)


def test_modality_the_task_does_not_know_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["experiments"]["quick-msbn"].setdefault("data", {}).update(modalities=["rgb", "thermal"]))
    with pytest.raises(ConfigError, match=r"modality 'thermal' is not one of the segmentation modalities: rgb, depth"):
        load_params(path)


def test_warmup_as_long_as_the_run_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["experiments"]["quick-msbn"].update(train={"epochs": 1}))
    with pytest.raises(ConfigError, match=r"experiments.quick-msbn.*warmup_epochs \(1.0\) must be less than train.epochs \(1\)"):
        load_params(path)


def test_unknown_run_lists_known_runs() -> None:
    params = load_params(REPO / "params.yaml")
    with pytest.raises(ConfigError, match=r"unknown run 'quick-nothing-s0'.*quick-asymfusion-s0"):
        resolve_run(params, "quick-nothing-s0")
    with pytest.raises(ConfigError, match=r"seed 9 is not among"):
        resolve_run(params, "quick-asymfusion-s9")


def test_params_hash_changes_with_the_recipe_not_with_the_run_name(tmp_path: Path) -> None:
    base = resolve_run(load_params(REPO / "params.yaml"), "quick-msbn-s0")
    path = _write(tmp_path, lambda r: r["experiments"]["quick-msbn"].setdefault("optimiser", {}).update(lr_encoder=0.5))
    changed = resolve_run(load_params(path), "quick-msbn-s0")
    assert base.params_hash() != changed.params_hash()
    assert base.params_hash() == resolve_run(load_params(REPO / "params.yaml"), "quick-msbn-s0").params_hash()


def test_cli_exits_2_on_invalid_params_and_prints_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda r: r["suites"]["quick"].update(seeds="zero"))
    proc = subprocess.run(
        [sys.executable, "-m", "asymfusion.benchmark.cli", "--params", str(path), "config", "validate"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "suites.quick.seeds" in proc.stderr


def test_cli_config_show_prints_the_resolved_run() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "asymfusion.benchmark.cli", "config", "show", "quick-asymfusion-s2"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    shown = yaml.safe_load(proc.stdout)
    assert shown["run"] == "quick-asymfusion-s2" and shown["seed"] == 2
    assert shown["model"]["method"] == "asymfusion" and shown["model"]["task"] == "segmentation"
