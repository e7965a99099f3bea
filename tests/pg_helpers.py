"""A throwaway PostgreSQL server for tests: its own cluster in a temporary folder, on a free local TCP port.

The server binaries come from the Debian packages (`apt-get install postgresql`, which `.ci/run` does when they are
missing). PostgreSQL refuses to run as root, so under root the cluster belongs to the packages' `postgres` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl (PATH first, then the Debian layout), or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").is_file() and Path(folder, "pg_ctl").is_file():
            return Path(folder)
    return None


def missing_reason() -> str | None:
    """Why a server cannot be started here, or None when it can."""
    if server_binaries() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found; install them: apt-get install postgresql"
    if os.geteuid() == 0 and not _user_exists("postgres"):
        return "running as root and there is no 'postgres' user to own the throwaway cluster"
    return None


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a cluster (trust authentication on 127.0.0.1 only) and yield its SQLAlchemy URL; stop and delete it."""
    binaries = server_binaries()
    assert binaries is not None, missing_reason()
    root = Path(tempfile.mkdtemp(prefix="asymfusion-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port, data = _free_port(), root / "data"

    def pg(*argv: str) -> None:
        subprocess.run([*as_user, *argv], check=True, capture_output=True, text=True)

    try:
        pg(str(binaries / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        pg(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60",
           "-o", f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off", "start")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if data.exists():
            subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
