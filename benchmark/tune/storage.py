"""Where a study lives and how workers share it: storages (SQLite, RDB URL, journal file) with heartbeats and
Optuna's retry callback, the study's identity check, and the gate that lets K workers stop at exactly N trials.

The gate is a file lock on one machine and, on PostgreSQL, a session-level advisory lock held by the database
itself, so workers on several machines sharing one study URL also stop at exactly N; a worker that dies while
holding it drops its connection and the server frees the lock."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path
from typing import Any, Iterator

from asymfusion.benchmark.config import ConfigError
from asymfusion.benchmark.config.tuning import TuningConfig, encode_params


def storage_location(storage: str | None, out: Path) -> str:
    """The default SQLite URL, an RDB URL as given, or a journal file path."""
    if storage is None:
        return f"sqlite:///{out / 'study.db'}"
    if "://" not in storage and Path(storage).suffix in (".db", ".sqlite", ".sqlite3"):
        raise ConfigError(f"--storage {storage}: for an SQLite file write sqlite:///{storage}; a plain path is read "
                          "as a journal file (e.g. study.journal)")
    if storage.startswith("redis"):
        raise ConfigError(f"--storage {storage}: use an RDB URL (postgresql://...) or a journal file path")
    if storage.startswith(("postgresql://", "postgres://")):
        return _postgres_driver(storage)
    return storage


def _postgres_driver(url: str) -> str:
    """`postgresql://` names SQLAlchemy's default driver, psycopg2; with only psycopg (3) installed, use that."""
    import importlib.util

    if importlib.util.find_spec("psycopg2") is not None:
        return url.replace("postgres://", "postgresql://", 1)
    if importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    raise ConfigError(f"--storage {shown(url)}: no PostgreSQL driver is installed; pip install 'psycopg[binary]' "
                      "(or the project's extra: pip install -e '.[postgres]')")


def shown(location: str) -> str:
    """The storage as printed and exported: an RDB URL's password masked."""
    if "://" not in location or location.startswith("sqlite"):
        return location
    from sqlalchemy.engine import make_url

    try:
        return make_url(location).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: Optuna will name the problem when it opens it
        return location


def _sqlite_path(location: str) -> Path | None:
    if location.startswith("sqlite:///") and ":memory:" not in location:
        return Path(location[len("sqlite:///"):])
    return None


def gate_lock_path(location: str, out: Path, study_name: str) -> Path:
    """The file lock that admits trials one at a time: beside a local storage (SQLite, journal file), else in the
    output folder (it then orders the workers of this machine only)."""
    if "://" not in location:
        return Path(location + ".tune-gate")
    db = _sqlite_path(location)
    return Path(str(db) + ".tune-gate") if db is not None else out / f".{study_name}.tune-gate"


def gate_lock(location: str, out: Path, study_name: str, storage: Any) -> "FileLock | AdvisoryLock":
    """The gate's lock: PostgreSQL's advisory lock (every machine on the study URL), else a file lock."""
    engine = getattr(storage, "engine", None)
    if engine is not None and engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, study_name)
    return FileLock(gate_lock_path(location, out, study_name))


class FileLock:
    """An exclusive flock on a file: orders the processes of one machine."""

    def __init__(self, path: Path) -> None:
        self.path, self._handle = Path(path), None

    def acquire(self) -> None:
        if self._handle is not None:
            return
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a")
        fcntl.flock(self._handle, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._handle is not None:
            import fcntl

            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class AdvisoryLock:
    """`pg_advisory_lock` on a connection of its own, keyed by the study name: orders workers on every machine."""

    def __init__(self, engine: Any, study_name: str) -> None:
        import zlib

        self.engine, self.key, self._conn = engine, zlib.crc32(f"asymfusion-tune:{study_name}".encode()), None

    def acquire(self) -> None:
        if self._conn is not None:
            return
        from sqlalchemy import text

        conn = self.engine.connect()
        try:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
            conn.commit()
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def release(self) -> None:
        if self._conn is not None:
            from sqlalchemy import text

            conn, self._conn = self._conn, None
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
                conn.commit()
            finally:
                conn.close()


def retry_callback(max_retry: int) -> Any:
    from optuna import storages

    cls = getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or storages.RetryFailedTrialCallback
    with quiet():
        return cls(max_retry=max_retry)


def open_storage(location: str, spec: TuningConfig) -> Any:
    """RDBStorage with heartbeats and the retry callback, or JournalStorage over a journal file."""
    import inspect

    import optuna

    if "://" not in location:
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(location))
    db = _sqlite_path(location)
    engine_kwargs = None
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}
    hb = spec.heartbeat
    names = inspect.signature(optuna.storages.RDBStorage).parameters
    key = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in names else "failed_trial_callback"
    with quiet():
        return optuna.storages.RDBStorage(location, engine_kwargs=engine_kwargs, heartbeat_interval=hb.interval,
                                          grace_period=hb.grace_period, **{key: retry_callback(hb.max_retry)})


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning (heartbeats, the retry callback and the constant liar are marked so)."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def create_or_load_study(study_name: str, location: str, storage: Any, spec: TuningConfig, digest: str,
                         key: str) -> Any:
    """The stored study (created on first use); refuses one made with a different space, metric or recipe."""
    import optuna

    study = optuna.create_study(study_name=study_name, storage=storage, direction=spec.direction,
                                load_if_exists=True)
    stored = study.user_attrs.get("asymfusion_spec_hash")
    if stored is None and not study.trials:
        study.set_user_attr("asymfusion_spec_hash", digest)
        study.set_user_attr("asymfusion_spec", spec.spec_hash_payload())
        for point in spec.enqueue:
            study.enqueue_trial(encode_params(spec, point), skip_if_exists=True)
    elif stored != digest:
        raise ConfigError(
            f"study {study_name!r} in {location} was made with a different search space, metric, direction, "
            f"epochs or base recipe than {key} now has; restore those settings to continue it, or start a new "
            "study with --study-name NAME (or another --storage)")
    return study


def _alive(pid: Any) -> bool:
    """Whether the worker process `pid` of this host still runs (a zombie does not; neither does this process:
    between trials it owns no running trial, so a match is an earlier worker whose pid was reused)."""
    if not isinstance(pid, int):
        return True  # unknown owner: leave it to the heartbeat
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except (OSError, IndexError):
        return True


def recover_dead_trials(study: Any, retry: Any) -> list[int]:
    """Fail (and re-queue) RUNNING trials whose worker ran on this host and no longer exists."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    host, failed = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("worker_host") == host and not _alive(attrs.get("worker_pid")):
            try:
                study.tell(trial.number, state=TrialState.FAIL)
            except (ValueError, UpdateFinishedTrialError):
                continue  # finished since it was read (its heartbeat check failed and re-queued it): one copy only
            retry(study, study.get_trials(deepcopy=True)[trial.number])
            failed.append(trial.number)
            print(f"trial {trial.number}: its worker (pid {attrs['worker_pid']}) is gone; failed and re-queued",
                  file=sys.stderr)
    return failed


class Gate:
    """Admits one trial at a time: under a file lock, dead trials are failed and re-queued, then a trial may start
    only while complete + pruned + running trials are fewer than N. The lock is held until the admitted trial has
    been created and has recorded its worker, so K workers on one machine (file lock), or on every machine of a
    PostgreSQL study (advisory lock), stop at exactly N."""

    def __init__(self, lock: "Path | FileLock | AdvisoryLock", n_trials: int, retry: Any) -> None:
        self.lock = FileLock(lock) if isinstance(lock, (str, Path)) else lock
        self.n_trials, self.retry = n_trials, retry

    def admit(self, study: Any) -> bool:
        import optuna
        from optuna.trial import TrialState

        self._acquire()
        try:
            recover_dead_trials(study, self.retry)
            with quiet():
                optuna.storages.fail_stale_trials(study)
            counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
            if len(study.get_trials(deepcopy=False, states=counted)) < self.n_trials:
                return True
        except BaseException:
            self.release()
            raise
        self.release()
        return False

    def _acquire(self) -> None:
        self.lock.acquire()

    def release(self) -> None:
        self.lock.release()
