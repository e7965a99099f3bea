"""Optuna tuning: a pruned micro study and its outputs, kill + rerun, two workers on a journal, the optuna CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from asymfusion.benchmark import config
from asymfusion.benchmark.config.tuning import TuningConfig

from tests.engine_helpers import REPO, micro_params

if "tuning" not in config.Params.model_fields:
    # Until benchmark/config/schema.py declares `tuning:` itself (Params.tuning), the tests add the field here; spawned
    # tuning workers unpickle this class by name, so it must live at module level.
    class _ParamsWithTuning(config.Params):
        tuning: dict[str, dict[str, TuningConfig]] = {}

    config.Params = _ParamsWithTuning

from asymfusion.benchmark.cli import main  # noqa: E402
from asymfusion.benchmark.tune.study import Gate, open_storage, retry_callback, run_tuning  # noqa: E402

LR = {"type": "float", "low": 1.0e-6, "high": 0.2, "log": True}
LAUNCHER = [sys.executable, "-c",
            "import sys, tests.test_tune; from asymfusion.benchmark.cli import main; sys.exit(main(sys.argv[1:]))"]
optuna.logging.set_verbosity(optuna.logging.WARNING)


def tune_params(tmp: Path, data_dir: Path, *, epochs: int = 2, name: str = "params.yaml", extra_train=None,
                **study: Any) -> Path:
    """The micro params (tests/engine_helpers.py) plus a study tuning.micro.asymfusion."""
    path = micro_params(tmp, data_dir, ["asymfusion"], epochs=epochs, extra_train=extra_train)
    raw = yaml.safe_load(path.read_text())
    spec = {"trials": 4, "seed": 0, "heartbeat": {"interval": 1, "grace_period": 2},
            "space": {"optimiser.lr_encoder": LR, "optimiser.lr_decoder": LR,
                      "model.fusion.stages": {"type": "categorical", "choices": [[1, 2, 3, 4], [3, 4]]}}, **study}
    raw["tuning"] = {"micro": {"asymfusion": spec}}
    out = tmp / name
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def tune(params: Path, *args: str) -> list[str]:
    return ["--params", str(params), "tune", "--suite", "micro", "--method", "asymfusion", "--no-progress", *args]


def load(url: str) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url)) if "://" not in url \
        else url
    return optuna.load_study(study_name="micro-asymfusion", storage=storage).get_trials()


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory, synthetic_data_dir: Path) -> Path:
    """A finished 4-trial study: a good and a bad learning rate are queued first, so trial 2 falls behind."""
    tmp = tmp_path_factory.mktemp("tune")
    good, bad = {"optimiser.lr_encoder": 0.1, "optimiser.lr_decoder": 0.1}, {"optimiser.lr_encoder": 1e-6,
                                                                            "optimiser.lr_decoder": 1e-6}
    params = tune_params(tmp, synthetic_data_dir, pruner={"n_startup_trials": 2, "n_warmup_steps": 0},
                         enqueue=[good, {**good, "optimiser.lr_decoder": 0.05}, bad])
    assert main(tune(params)) == 0
    return tmp


def test_four_trial_study_prunes_through_the_trainer_and_writes_outputs(study_dir: Path) -> None:
    out = study_dir / "tuning" / "micro-asymfusion"
    trials = load(f"sqlite:///{out / 'study.db'}")
    states = [t.state for t in trials]
    assert len(trials) == 4 and states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 4
    assert states.count(TrialState.PRUNED) >= 1 and trials[2].state == TrialState.PRUNED
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    for t in pruned:  # pruned on the trainer's own per-epoch report, before the last epoch
        history = json.loads((out / "trials" / str(t.number) / "history" / f"micro-asymfusion-trial{t.number}.json")
                             .read_text())
        assert len(history) == max(t.intermediate_values) < 2
        assert history[-1]["val_ensemble_miou"] == pytest.approx(t.intermediate_values[len(history)])
    best = yaml.safe_load((out / "best_params.yaml").read_text())
    assert best["finished_trials"] == 4 and best["metric"] == "val_ensemble_miou"
    assert best["params"]["model.fusion.stages"] in ([1, 2, 3, 4], [3, 4])  # decoded from Optuna's JSON string
    for name in ("trials.csv", "tuned_experiment.yaml", "plots/history.png", "plots/intermediate.png",
                 "plots/importances.png", "plots/contour.png", "plots/slice.png"):
        assert (out / name).is_file(), name
    header = (out / "trials.csv").read_text().splitlines()[0]
    assert "params_optimiser.lr_encoder" in header and "state" in header
    assert not list((study_dir / "checkpoints" / "tuning").rglob("*.pt")), "trial checkpoints were not removed"


def test_tuned_experiment_pastes_into_params_and_retrains_with_every_seed(study_dir: Path) -> None:
    out = study_dir / "tuning" / "micro-asymfusion"
    assert main(tune(study_dir / "params.yaml", "--export", "--retrain")) == 0
    assert (study_dir / "results" / "metrics" / "micro-asymfusion-tuned-s0.json").is_file()
    block = yaml.safe_load((out / "tuned_experiment.yaml").read_text())
    raw = yaml.safe_load((study_dir / "params.yaml").read_text())
    raw["experiments"].update(block)
    pasted = study_dir / "params-pasted.yaml"
    pasted.write_text(yaml.safe_dump(raw))
    cfg = config.resolve_run(config.load_params(pasted), "micro-asymfusion-tuned-s0")
    best = yaml.safe_load((out / "best_params.yaml").read_text())["params"]
    assert cfg.optimiser.lr_encoder == best["optimiser.lr_encoder"]
    assert cfg.model.fusion["stages"] == best["model.fusion.stages"] and cfg.train.epochs == 2


def test_optuna_cli_reads_the_storage(study_dir: Path) -> None:
    url = f"sqlite:///{study_dir / 'tuning' / 'micro-asymfusion' / 'study.db'}"
    exe = Path(sys.executable).with_name("optuna")
    base = [str(exe)] if exe.exists() else [sys.executable, "-c", "import sys, optuna.cli; sys.exit(optuna.cli.main())"]
    common = ["--storage", url, "--study-name", "micro-asymfusion", "-f", "json"]
    rows = json.loads(subprocess.run([*base, "trials", *common], capture_output=True, text=True, check=True).stdout)
    assert len(rows) == 4
    best = json.loads(subprocess.run([*base, "best-trial", *common], capture_output=True, text=True, check=True).stdout)
    assert best["number"] == yaml.safe_load(
        (study_dir / "tuning" / "micro-asymfusion" / "best_params.yaml").read_text())["best_trial"]


def test_a_changed_search_space_refuses_to_continue_the_study(study_dir: Path, synthetic_data_dir: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    changed = tune_params(study_dir, synthetic_data_dir, name="params-changed.yaml",
                          space={"optimiser.lr_encoder": {**LR, "high": 0.3}})
    assert main(tune(changed)) == 2
    assert "different search space" in capsys.readouterr().err


@pytest.mark.parametrize("space, expected", [
    ({"optimiser.lr_encodr": LR}, "tuning.micro.asymfusion.space.optimiser.lr_encodr: 'lr_encodr' is not a key"),
    ({"optimiser.lr_encoder": {**LR, "low": 0.0}}, "tuning.micro.asymfusion.space.optimiser.lr_encoder"),
    ({"model.fusion.exchanged_fraction": {"type": "float", "low": 0.1, "high": 1.5}},
     "tuning.micro.asymfusion.space.model.fusion.exchanged_fraction=1.5"),
    ({"data.batch_size": {"type": "categorical", "choices": [4, 0]}},
     "tuning.micro.asymfusion.space.data.batch_size=0"),
    ({"model.fusion.shuffle_ratio": LR}, "'shuffle_ratio' is not a key of model.fusion"),
])
def test_a_bad_space_fails_before_any_trial_naming_the_key(space: dict, expected: str, tmp_path: Path,
                                                           synthetic_data_dir: Path, capsys) -> None:
    params = tune_params(tmp_path, synthetic_data_dir, space=space)
    assert main(tune(params)) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "tuning" / "micro-asymfusion" / "trials").exists()


def test_several_workers_need_a_shared_storage_and_unknown_studies_are_named(tmp_path: Path, synthetic_data_dir: Path,
                                                                            capsys) -> None:
    params = tune_params(tmp_path, synthetic_data_dir)
    assert main(tune(params, "--workers", "2")) == 2
    assert "journal" in capsys.readouterr().err
    assert main(["--params", str(params), "tune", "--suite", "micro", "--method", "msbn"]) == 2
    assert "--suite micro --method asymfusion" in capsys.readouterr().err


def test_kill_mid_trial_then_rerun_keeps_finished_trials_and_retries_the_killed_one(
        tmp_path: Path, synthetic_data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    params = tune_params(tmp_path, synthetic_data_dir, epochs=4, trials=3, pruner={"name": "none"})
    db = tmp_path / "tuning" / "micro-asymfusion" / "study.db"
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen([*LAUNCHER, *tune(params)], cwd=REPO, stdout=log, stderr=log,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    # Trial 1 writes its history after its first epoch: trial 0 has completed (one worker), trial 1 is mid-way.
    # (Polling the files, not the database: opening a half-created SQLite study from here races its creation.)
    history = tmp_path / "tuning" / "micro-asymfusion" / "trials" / "1" / "history" / "micro-asymfusion-trial1.json"
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not history.exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    trials = load(f"sqlite:///{db}")
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.RUNNING], (tmp_path / "first.log").read_text()
    first_value, killed_params = trials[0].value, trials[1].params

    assert main(tune(params)) == 0  # the rerun, in this process
    assert "trial 1: its worker" in capsys.readouterr().err
    trials = load(f"sqlite:///{db}")
    assert trials[0].state == TrialState.COMPLETE and trials[0].value == first_value
    assert trials[1].state == TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == 1]
    assert len(retried) == 1 and retried[0].params == killed_params and retried[0].state == TrialState.COMPLETE
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 3
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_a_dead_local_worker_is_failed_and_requeued_on_a_journal_storage(tmp_path: Path) -> None:
    spec = TuningConfig.model_validate({"space": {"x": {"type": "float", "low": 0, "high": 1}}})
    location = str(tmp_path / "study.journal")
    study = optuna.create_study(study_name="s", storage=open_storage(location, spec))
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial.set_user_attr("worker_host", socket.gethostname())
    trial.set_user_attr("worker_pid", dead.pid)
    gate = Gate(tmp_path / "gate", n_trials=1, retry=retry_callback(3))
    assert gate.admit(study)
    gate.release()
    trials = optuna.load_study(study_name="s", storage=open_storage(location, spec)).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].params == trials[0].params and trials[1].system_attrs["failed_trial"] == 0


def test_a_dead_workers_trial_failed_meanwhile_by_another_process_is_requeued_once(tmp_path: Path) -> None:
    from asymfusion.benchmark.tune.storage import recover_dead_trials

    spec = TuningConfig.model_validate({"space": {"x": {"type": "float", "low": 0, "high": 1}}})
    location = str(tmp_path / "study.journal")
    study = optuna.create_study(study_name="s", storage=open_storage(location, spec))
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial.set_user_attr("worker_host", socket.gethostname())
    trial.set_user_attr("worker_pid", dead.pid)
    running_view = study.get_trials(deepcopy=True, states=(TrialState.RUNNING,))
    retry = retry_callback(3)
    other = optuna.load_study(study_name="s", storage=open_storage(location, spec))
    other.tell(trial.number, state=TrialState.FAIL)  # another machine's heartbeat check, after our read
    retry(other, other.get_trials()[trial.number])
    real_get_trials = study.get_trials
    study.get_trials = lambda deepcopy=True, states=None: (running_view if states == (TrialState.RUNNING,)
                                                          else real_get_trials(deepcopy=deepcopy, states=states))
    assert recover_dead_trials(study, retry) == []
    trials = optuna.load_study(study_name="s", storage=open_storage(location, spec)).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]

def test_two_workers_on_one_journal_complete_n_trials_without_loss_or_duplicates(
        tmp_path: Path, synthetic_data_dir: Path) -> None:
    params = tune_params(tmp_path, synthetic_data_dir, epochs=4, trials=4, pruner={"name": "none"})
    journal = tmp_path / "tuning" / "study.journal"
    summary = run_tuning(config.load_params(params), "micro", "asymfusion", storage=str(journal), workers=2)
    trials = load(str(journal))
    assert summary["finished"] == 4
    assert [t.number for t in trials] == list(range(4)) and all(t.state == TrialState.COMPLETE for t in trials)
    workers = {t.user_attrs["worker_pid"] for t in trials}
    assert len(workers) == 2, "both workers should have run trials"
    runs = sorted(p.name for p in (tmp_path / "tuning" / "micro-asymfusion" / "trials").iterdir())
    assert runs == [str(i) for i in range(4)]
    for i in range(4):  # each trial trained once, to its last epoch
        history = tmp_path / "tuning" / "micro-asymfusion" / "trials" / str(i) / "history"
        rows = json.loads((history / f"micro-asymfusion-trial{i}.json").read_text())
        assert [row["epoch"] for row in rows] == [1, 2, 3, 4]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_trial_whose_heartbeat_stopped_on_another_machine_is_failed_and_requeued(tmp_path: Path) -> None:
    spec = TuningConfig.model_validate({"space": {"x": {"type": "float", "low": 0, "high": 1}},
                                        "heartbeat": {"interval": 1, "grace_period": 2}})
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url, spec)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.set_user_attr("worker_host", "another-machine")
    trial.set_user_attr("worker_pid", 1)
    storage.record_heartbeat(trial._trial_id)  # what Optuna's heartbeat thread does while a trial runs
    time.sleep(3)  # > grace_period
    gate = Gate(tmp_path / "gate", n_trials=1, retry=retry_callback(3))
    assert gate.admit(study)
    gate.release()
    trials = optuna.load_study(study_name="s", storage=url).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].params == trials[0].params and trials[1].system_attrs["failed_trial"] == 0


def test_a_worker_killed_mid_trial_does_not_fail_a_study_its_peer_finished(tmp_path: Path,
                                                                          synthetic_data_dir: Path) -> None:
    params = tune_params(tmp_path, synthetic_data_dir, epochs=4, trials=4, pruner={"name": "none"})
    journal = tmp_path / "tuning" / "study.journal"
    log = (tmp_path / "tune.log").open("w")
    proc = subprocess.Popen([*LAUNCHER, *tune(params, "--workers", "2", "--storage", str(journal))], cwd=REPO,
                            stdout=log, stderr=log, env={**os.environ, "OMP_NUM_THREADS": "1"})
    victim, deadline = None, time.time() + 180
    while victim is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
        if journal.exists():
            try:
                running = [t for t in load(str(journal)) if t.state == TrialState.RUNNING and "worker_pid" in t.user_attrs]
            except Exception:  # the journal is being written by the workers
                continue
            victim = running[0].user_attrs["worker_pid"] if running else None
    assert victim is not None, (tmp_path / "tune.log").read_text()
    os.kill(victim, signal.SIGKILL)
    assert proc.wait(timeout=300) == 0, (tmp_path / "tune.log").read_text()
    trials = load(str(journal))
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4
    killed = [t for t in trials if t.user_attrs.get("worker_pid") == victim and t.state == TrialState.FAIL
              and "error" not in t.user_attrs]  # not a diverged learning rate (NonFiniteLoss)
    assert len(killed) == 1, [(t.number, t.state, t.user_attrs.get("worker_pid")) for t in trials]
    assert "killed by SIGKILL" in (tmp_path / "tune.log").read_text()


def test_each_finished_trial_prints_its_rank_out_of_n_and_the_best_so_far() -> None:
    from asymfusion.benchmark.tune.study import trial_line

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", direction="maximize")
    lines = []
    study.optimize(lambda t: t.suggest_float("lr", 0.1, 0.1) * 100 + t.number,
                   n_trials=2, callbacks=[lambda s, t: lines.append(trial_line(s, t, 5))])
    assert lines[0] == "s: trial 1/5 complete (#0, value 10; lr=0.1); best so far: trial 0, 10"
    assert lines[1] == "s: trial 2/5 complete (#1, value 11; lr=0.1); best so far: trial 1, 11"


def test_a_failed_trial_prints_that_it_is_not_counted_toward_n() -> None:
    from asymfusion.benchmark.tune.study import trial_line

    optuna.logging.set_verbosity(optuna.logging.CRITICAL)
    study = optuna.create_study(study_name="s", direction="maximize")
    lines = []

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 0.1, 0.1)
        if trial.number == 1:
            raise FloatingPointError("diverged")
        return lr

    study.optimize(objective, n_trials=3, catch=(FloatingPointError,),
                   callbacks=[lambda s, t: lines.append(trial_line(s, t, 5))])
    assert lines[1] == "s: trial #1 failed, not counted (1/5 so far; lr=0.1); best so far: trial 0, 0.1"
    assert lines[2].startswith("s: trial 2/5 complete (#2, value 0.1;")


def test_a_set_that_every_trial_replaces_is_named_not_silently_dropped() -> None:
    from asymfusion.benchmark.tune.cli import _shadowed_sets

    study = TuningConfig.model_validate({"experiment": "quick-asymfusion", "epochs": 4, "space": {
        "optimiser.lr_encoder": LR}})
    notes = _shadowed_sets(["train.epochs=2", "optimiser.lr_encoder=0.1", "optimiser.lr_decoder=0.1"], study,
                           "tuning.quick.asymfusion")
    assert len(notes) == 2
    assert "each trial trains tuning.quick.asymfusion.epochs = 4 epochs" in notes[0]
    assert "optimiser.lr_encoder is searched (tuning.quick.asymfusion.space)" in notes[1]
    unbudgeted = study.model_copy(update={"epochs": None})
    assert _shadowed_sets(["train.epochs=2"], unbudgeted, "tuning.quick.asymfusion") == []
