"""The training engine: every method trains and evaluates; exact resume after kill -9; NaN stops cleanly; DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asymfusion.benchmark.engine import checkpoint as ckpt
from asymfusion.benchmark.engine import train as train_module
from asymfusion.benchmark.tasks.segmentation import Segmentation
from asymfusion.benchmark.config import ConfigError, load_params, resolve_run
from asymfusion.benchmark.errors import NonFiniteLoss
from asymfusion.benchmark.engine.evaluate import evaluate_run
from asymfusion.benchmark.engine.train import train_run
from asymfusion.models import list_fusions
from asymfusion.models.fusion import get_fusion

from tests.engine_helpers import REPO, cli, micro_params


def _run(params: Path, name: str):
    return resolve_run(load_params(params), name)


@pytest.mark.parametrize("method", [m for m in list_fusions() if "segmentation" in get_fusion(m).tasks])
def test_every_method_trains_and_evaluates_on_segmentation(method: str, tmp_path: Path, synthetic_data_dir: Path) -> None:
    params = micro_params(tmp_path, synthetic_data_dir, [method], epochs=1)
    cfg = _run(params, f"micro-{method}-s0")
    history = train_run(cfg, progress=False)
    assert len(history) == 1 and history[0]["train_loss"] > 0
    record = evaluate_run(cfg)
    assert "ensemble" in record["metrics"]
    for key, row in record["metrics"].items():
        assert 0 <= row["miou"] <= 100 and len(row["iou"]) == 11
        assert sum(map(sum, row["confusion"])) > 0
    assert set(record["robustness"]["blanked"]) == set(cfg.data.modalities)
    assert record["parameters"] > 0 and record["gflops_per_image"] > 0
    assert (cfg.results_dir / "metrics" / f"{cfg.run}.json").is_file()
    assert (cfg.results_dir / "plots" / "qualitative" / f"{cfg.run}.png").is_file()


@pytest.mark.parametrize("method", [m for m in list_fusions() if "translation" in get_fusion(m).tasks])
def test_translation_trains_and_records_fid_as_not_computed_without_weights(
        method: str, tmp_path: Path, synthetic_data_dir: Path) -> None:
    params = micro_params(tmp_path, synthetic_data_dir, [method], epochs=1, translation=True)
    cfg = _run(params, f"micro-{method}-s0")
    train_run(cfg, progress=False)
    record = evaluate_run(cfg)
    row = record["metrics"]["ensemble"]
    assert 0 <= row["l1"] <= 1 and row["psnr"] > 0 and -1 <= row["ssim"] <= 1
    assert row["fid"]["computed"] is False and "Inception weights not found" in row["fid"]["reason"]


class TinyFeatures(torch.nn.Module):
    """A deterministic stand-in for Inception: uint8 images -> 8 pooled features."""

    num_features = 8

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.float() / 255).mean(dim=(2, 3))


def test_fid_and_kid_are_computed_with_a_feature_extractor_passed_in(tmp_path: Path, synthetic_data_dir: Path) -> None:
    params = micro_params(tmp_path, synthetic_data_dir, ["msbn"], epochs=1, translation=True)
    cfg = _run(params, "micro-msbn-s0")
    train_run(cfg, progress=False)
    row = evaluate_run(cfg, extractor=TinyFeatures())["metrics"]["ensemble"]
    assert isinstance(row["fid"], float) and row["fid"] >= 0
    assert isinstance(row["kid_x100"], float)


def test_nan_loss_stops_naming_the_step_and_keeps_the_best_checkpoint(
        tmp_path: Path, synthetic_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = micro_params(tmp_path, synthetic_data_dir, ["msbn"], epochs=2)
    cfg = _run(params, "micro-msbn-s0")
    calls = {"n": 0}
    real_loss = Segmentation.loss

    def loss_that_explodes(self, *args):
        calls["n"] += 1
        loss = real_loss(self, *args)
        return loss * float("nan") if calls["n"] == 4 else loss  # 2 steps per epoch: epoch 2, step 2

    monkeypatch.setattr(Segmentation, "loss", loss_that_explodes)
    with pytest.raises(NonFiniteLoss, match=r"epoch 2, step 2 \(global step 4\)"):
        train_run(cfg, progress=False)
    best = ckpt.load(cfg.checkpoint_dir / ckpt.BEST)
    assert best["epoch"] == 1 and all(torch.isfinite(v).all() for v in best["model"].values() if v.is_floating_point())
    assert ckpt.load(cfg.checkpoint_dir / ckpt.LAST)["epoch"] == 1


def test_changed_config_refuses_to_resume_unless_restarted(tmp_path: Path, synthetic_data_dir: Path) -> None:
    params = micro_params(tmp_path, synthetic_data_dir, ["msbn"], epochs=1)
    cli("train", "micro-msbn-s0", "--no-progress", params=params)
    changed = micro_params(tmp_path, synthetic_data_dir, ["msbn"], epochs=1, extra_train={"l1_weight": 50.0})
    proc = cli("train", "micro-msbn-s0", "--no-progress", params=changed, check=False)
    assert proc.returncode == 2 and "different configuration" in proc.stderr and "--restart" in proc.stderr
    cli("train", "micro-msbn-s0", "--no-progress", "--restart", params=changed)
    assert list(tmp_path.glob("checkpoints/micro/micro-msbn-s0.old-*/last.pt")), "old checkpoints were not kept"


def test_on_change_restart_retrains_a_changed_configuration_without_asking(tmp_path: Path,
                                                                         synthetic_data_dir: Path) -> None:
    params = micro_params(tmp_path, synthetic_data_dir, ["msbn"], epochs=1)
    first_hash = _run(params, "micro-msbn-s0").train_hash()
    first = train_run(_run(params, "micro-msbn-s0"), progress=False)
    changed = _run(micro_params(tmp_path, synthetic_data_dir, ["msbn"], epochs=1, extra_train={"l1_weight": 50.0}),
                   "micro-msbn-s0")
    with pytest.raises(ckpt.ResumeMismatch):
        train_run(changed, progress=False)  # the command line's default still refuses
    again = train_run(changed, progress=False, on_change="restart")
    assert len(again) == 1 and again[0]["seconds"] != first[0]["seconds"], "it must have trained again"
    moved = list(tmp_path.glob("checkpoints/micro/micro-msbn-s0.old-*/last.pt"))
    assert len(moved) == 1 and ckpt.load(moved[0])["params_hash"] == first_hash
    assert ckpt.load(changed.checkpoint_dir / ckpt.LAST)["params_hash"] == changed.train_hash()


def test_a_complete_current_checkpoint_rewrites_its_history_without_training(
        tmp_path: Path, synthetic_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _run(micro_params(tmp_path, synthetic_data_dir, ["msbn"], epochs=1), "micro-msbn-s0")
    history = train_run(cfg, progress=False)
    path = cfg.results_dir / "history" / "micro-msbn-s0.json"
    path.unlink()  # what DVC does to a stage's outputs before it reruns the stage
    monkeypatch.setattr(train_module, "make_loaders", lambda *a: pytest.fail("a complete run must not load data"))
    assert train_run(cfg, progress=False, on_change="restart") == history
    assert json.loads(path.read_text()) == json.loads(json.dumps(history))
    assert not list(tmp_path.glob("checkpoints/micro/*.old-*"))


def test_changed_training_code_restarts_under_on_change_restart_and_only_warns_otherwise(
        tmp_path: Path, synthetic_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _run(micro_params(tmp_path, synthetic_data_dir, ["msbn"], epochs=1), "micro-msbn-s0")
    train_run(cfg, progress=False)
    monkeypatch.setattr(train_module, "training_code_hash", lambda cfg: "edited-code")
    monkeypatch.setattr(train_module, "make_loaders", lambda *a: pytest.fail("refuse mode resumes the complete run"))
    train_run(cfg, progress=False)  # refuse: same configuration, so it resumes (complete: nothing to do)
    assert not list(tmp_path.glob("checkpoints/micro/*.old-*"))
    monkeypatch.undo()
    monkeypatch.setattr(train_module, "training_code_hash", lambda cfg: "edited-code")
    train_run(cfg, progress=False, on_change="restart")
    assert len(list(tmp_path.glob("checkpoints/micro/micro-msbn-s0.old-*"))) == 1
    assert ckpt.load(cfg.checkpoint_dir / ckpt.LAST)["code_hash"] == "edited-code"


def test_kill_9_mid_epoch_then_rerun_matches_an_uninterrupted_run_exactly(tmp_path: Path, synthetic_data_dir: Path) -> None:
    extra = {"max_steps_per_epoch": None}
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir(), b.mkdir()
    small_batches = {"batch_size": 2}  # 4 steps per epoch, so the kill lands inside an epoch
    params_a = micro_params(a, synthetic_data_dir, ["asymfusion"], epochs=3, extra_train=extra, extra_data=small_batches)
    params_b = micro_params(b, synthetic_data_dir, ["asymfusion"], epochs=3, extra_train=extra, extra_data=small_batches)
    cli("train", "micro-asymfusion-s0", "--no-progress", params=params_a)

    argv = [sys.executable, "-m", "asymfusion.benchmark.cli", "--params", str(params_b), "train",
            "micro-asymfusion-s0", "--no-progress"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    last = b / "checkpoints" / "micro" / "micro-asymfusion-s0" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = ckpt.load(last)["epoch"]
    assert killed_at < 3, "the run finished before it could be killed; make the epoch longer"
    cli("train", "micro-asymfusion-s0", "--no-progress", params=params_b)

    state_a = ckpt.load(a / "checkpoints" / "micro" / "micro-asymfusion-s0" / "last.pt")
    state_b = ckpt.load(last)
    for key, value in state_a["model"].items():
        assert torch.equal(value, state_b["model"][key]), f"{key} differs after resume"
    strip = lambda h: [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in h]
    assert strip(state_a["history"]) == strip(state_b["history"])


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_and_reduce_metrics_over_all_ranks(tmp_path: Path, synthetic_data_dir: Path) -> None:
    params = micro_params(tmp_path, synthetic_data_dir, ["asymfusion"], epochs=1)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "asymfusion.benchmark.cli"]
    cli("train", "micro-asymfusion-s0", "--no-progress", params=params, runner=torchrun)
    cli("evaluate", "micro-asymfusion-s0", params=params, runner=torchrun)
    metrics_file = tmp_path / "results" / "metrics" / "micro-asymfusion-s0.json"
    two = json.loads(metrics_file.read_text())
    assert two["environment"]["world_size"] == 2
    batch = two["protocol"]["batch"]  # trained on two processes: the effective batch is twice the per-device one
    assert batch["devices"] == 2 and batch["effective"] == 2 * batch["per_device"] == 8
    cli("evaluate", "micro-asymfusion-s0", params=params)
    one = json.loads(metrics_file.read_text())
    assert one["environment"]["world_size"] == 1
    for key in one["metrics"]:
        # 5 validation samples over 2 ranks (3 + 2): the reduced confusion matrix must count each exactly once.
        assert sum(map(sum, two["metrics"][key]["confusion"])) == sum(map(sum, one["metrics"][key]["confusion"]))
        assert two["metrics"][key]["miou"] == pytest.approx(one["metrics"][key]["miou"], abs=1e-4)


class _GammaL1(torch.nn.Module):
    """A fusion-free module that brings an auxiliary loss and a diagnostic along, as a CEN-like method would."""

    def __init__(self, norm: torch.nn.Module) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def auxiliary_losses(self) -> dict[str, torch.Tensor]:
        return {"gamma_l1": 5.0 * sum(n.weight.abs().sum() for n in self.norm.norms)}

    def diagnostics(self) -> dict[str, float]:
        return {"small_gammas": float(sum((n.weight.abs() < 0.5).float().mean() for n in self.norm.norms) / 2)}


@pytest.fixture
def gamma_method(monkeypatch: pytest.MonkeyPatch) -> str:
    from asymfusion.models.fusion import FusionMethod, StackedModel, register_fusion, registry

    list_fusions()
    monkeypatch.setattr(registry.FUSIONS, "entries", dict(registry.FUSIONS.entries))

    @register_fusion("test_gamma_l1")
    class GammaL1(FusionMethod):
        tasks = ("segmentation",)

        def build(self):
            model = StackedModel(self.config)
            model.encoder.fuse_stage_output(4, _GammaL1(model.encoder.body.get_submodule("bn1")))
            return model

    return "test_gamma_l1"


def test_auxiliary_losses_join_the_loss_and_are_logged_and_diagnostics_reach_history_and_metrics(
        gamma_method: str, tmp_path: Path, synthetic_data_dir: Path) -> None:
    params = micro_params(tmp_path, synthetic_data_dir, [gamma_method], epochs=2)
    cfg = _run(params, f"micro-{gamma_method}-s0")
    history = train_run(cfg, progress=False)
    for row in history:
        assert row["train_aux_gamma_l1"] > 0 and row["train_loss"] > row["train_aux_gamma_l1"]
        assert 0.0 <= row["diag_small_gammas"] <= 1.0
    # The term is in the optimised loss: 5 * sum|gamma| shrinks the stem's scaling factors under SGD.
    assert history[1]["train_aux_gamma_l1"] < history[0]["train_aux_gamma_l1"]
    record = evaluate_run(cfg)
    assert set(record["diagnostics"]) == {"small_gammas"}
    saved = json.loads((cfg.results_dir / "history" / f"{cfg.run}.json").read_text())
    assert saved[-1]["train_aux_gamma_l1"] == history[-1]["train_aux_gamma_l1"]


def test_a_method_is_rejected_for_a_task_it_does_not_declare(gamma_method: str, tmp_path: Path,
                                                             synthetic_data_dir: Path) -> None:
    params = micro_params(tmp_path, synthetic_data_dir, [gamma_method], translation=True)
    with pytest.raises(ConfigError, match=r"'test_gamma_l1' supports segmentation only.*translation dataset"):
        _run(params, f"micro-{gamma_method}-s0")
