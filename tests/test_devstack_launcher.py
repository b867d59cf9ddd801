"""The dev launcher: options, child commands, teardown, clean-up, and a real run."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from scheduler_site.devstack.dev import (
    DevOptions,
    banner,
    child_commands,
    clean_dev,
    flower_env,
    setup_steps,
    web_env,
)
from scheduler_site.devstack.process import (
    StackError,
    free_port,
    processes_mentioning,
)
from scheduler_site.devstack.services import SPECS
from scheduler_site.devstack.supervise import ChildSpec, start_child, stop_children
from scheduler_site.workers import WEB_WORKERS, flower_argv

READY_DEADLINE_S = 30.0
DEV_READY_DEADLINE_S = 180.0
DEV_STOP_DEADLINE_S = 60.0
REPO_ROOT = Path(__file__).resolve().parents[1]
URL_VARS = [spec.env_var for spec in SPECS]


def test_zero_workers_starts_only_web_beat_and_publisher(tmp_path: Path) -> None:
    options = DevOptions(tmp_path, port=8000, workers=0, config=None)
    assert [name for name, _ in child_commands(options)] == ["web", "beat", "publisher"]


def test_each_rotation_worker_consumes_the_rotation_queue_under_its_own_name(
    tmp_path: Path,
) -> None:
    options = DevOptions(tmp_path, port=8000, workers=2, config=None)
    argvs = dict(child_commands(options))
    for i in (1, 2):
        argv = argvs[f"worker{i}"]
        assert argv[argv.index("-Q") + 1] == "rotation"
        assert argv[argv.index("-n") + 1] == f"worker{i}@%h"


def test_web_is_gunicorn_with_its_config_on_the_chosen_port(tmp_path: Path) -> None:
    options = DevOptions(tmp_path, port=8123, workers=0, config=None)
    web = dict(child_commands(options))["web"]
    assert Path(web[0]).name == "gunicorn"
    assert web[web.index("--bind") + 1] == "127.0.0.1:8123"
    assert web[web.index("--config") + 1] == "python:scheduler_site.gunicorn_conf"
    assert "--reload" not in web


def test_web_processes_share_metrics_in_a_directory_of_the_dev_dir(
    tmp_path: Path,
) -> None:
    options = DevOptions(tmp_path, port=8123, workers=0, config=None)
    env = web_env(options, {"DEBUG": "1"})
    assert env["DEBUG"] == "1"
    assert Path(env["PROMETHEUS_MULTIPROC_DIR"]).parent == options.dev_dir


def test_apply_config_runs_only_when_there_is_a_config(tmp_path: Path) -> None:
    without = DevOptions(tmp_path, port=8000, workers=0, config=None)
    with_config = DevOptions(tmp_path, port=8000, workers=0, config=tmp_path / "s.toml")
    assert [step[2] for step in setup_steps(without)] == ["migrate", "ensure_admin"]
    steps = [step[2] for step in setup_steps(with_config)]
    assert steps == ["migrate", "apply_config", "ensure_admin"]


def test_the_banner_says_how_to_create_a_submitter(tmp_path: Path, devstack) -> None:
    options = DevOptions(tmp_path, port=8000, workers=0, config=None)

    text = banner(options, devstack)

    assert "manage.py create_user NAME --role submitter" in text


def test_dev_options_reject_a_bad_worker_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKERS", "many")
    with pytest.raises(StackError, match="WORKERS='many' must be an integer"):
        DevOptions.from_env(tmp_path)


def test_flower_runs_only_when_flower_1_asks_on_flower_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWER", raising=False)
    monkeypatch.setenv("FLOWER_PORT", "5601")
    assert "flower" not in dict(child_commands(DevOptions.from_env(tmp_path)))

    monkeypatch.setenv("FLOWER", "1")
    options = DevOptions.from_env(tmp_path)

    assert dict(child_commands(options))["flower"] == flower_argv(5601)


def test_dev_options_reject_a_bad_flower_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWER", "yes")
    with pytest.raises(StackError, match=r"FLOWER=.yes. must be an integer in 0\.\.1"):
        DevOptions.from_env(tmp_path)


def test_flower_logs_in_with_the_dev_admin_unless_told_another_login(
    tmp_path: Path,
) -> None:
    options = DevOptions(tmp_path, port=8000, workers=0, config=None, flower_port=1)
    (options.dev_dir).mkdir()
    creds = {"username": "admin", "password": "pw-1", "token": "t"}
    (options.dev_dir / "credentials.json").write_text(json.dumps(creds))

    assert flower_env(options, {"A": "1"}) == {
        "A": "1",
        "FLOWER_BASIC_AUTH": "admin:pw-1",
    }
    mine = {"FLOWER_BASIC_AUTH": "ops:secret"}
    assert flower_env(options, mine) == mine


def test_the_banner_prints_flowers_address_only_when_it_runs(
    tmp_path: Path, devstack
) -> None:
    without = DevOptions(tmp_path, port=8000, workers=0, config=None)
    with_flower = DevOptions(tmp_path, 8000, 0, None, flower_port=5601)

    assert "  flower  " not in banner(without, devstack)
    assert "  flower    http://127.0.0.1:5601/" in banner(with_flower, devstack)


def test_stop_children_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    script = "trap '' TERM; echo trap-set; while true; do sleep 0.1; done"
    argv = ("sh", "-c", script)
    child = start_child(ChildSpec("stubborn", argv, os.environ, tmp_path, tmp_path))
    log = tmp_path / "stubborn.log"
    deadline = time.monotonic() + READY_DEADLINE_S
    while not (log.exists() and "trap-set" in log.read_text()):
        assert time.monotonic() < deadline, "the child never reported its trap"
        time.sleep(0.05)
    stop_children([child], timeout_s=0.5)
    assert child.process.returncode == -signal.SIGKILL


def test_clean_refuses_while_dev_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEVSTACK_DIR", raising=False)
    dev_dir = tmp_path / ".devstack"
    dev_dir.mkdir()
    with subprocess.Popen(["sleep", "30"]) as sleeper:
        (dev_dir / "dev.pid").write_text(str(sleeper.pid))
        with pytest.raises(StackError, match="still running"):
            clean_dev(tmp_path)
        sleeper.kill()
    assert clean_dev(tmp_path) == 0
    assert not dev_dir.exists()


@dataclass
class DevRun:
    """A `python -m scheduler_site.devstack dev` process under test."""

    process: subprocess.Popen[bytes]
    port: int
    redis_port: int
    dev_dir: Path
    output: Path

    def wait_for_web(self) -> None:
        """Wait until the web child answers HTTP, failing early if dev exits."""
        self.wait_until(lambda: _answers_http(self.port), "dev never served HTTP")

    def wait_for_output(self, text: str) -> None:
        """Wait until dev prints `text`."""
        self.wait_until(
            lambda: text in self.output.read_text(), f"never printed {text}"
        )

    def wait_for_member(self, prefix: str, pid: int | None) -> int:
        """Wait until a rotation member named `prefix...` beats with a live PID.

        With `pid` given, wait for that PID; without, for the member's current
        process as `dev` runs it. Return the member's PID.
        """

        def beating() -> bool:
            wanted = pid or next(iter(self.child_pids(prefix.encode())), None)
            return any(
                m["name"].startswith(prefix) and m["pid"] == wanted
                for m in self.api("/api/members/")
            )

        self.wait_until(beating, f"{prefix} never beat as a member")
        return pid or self.child_pids(prefix.encode())[0]

    def child_pids(self, marker: bytes) -> list[int]:
        """List this run's processes whose command line contains `marker`."""
        return [
            pid
            for pid in processes_mentioning(str(self.dev_dir))
            if marker in _cmdline(pid)
        ]

    def api(self, path: str) -> Any:
        """GET an API route with the admin token that dev wrote."""
        creds = json.loads((self.dev_dir / "credentials.json").read_text())
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            headers={"Authorization": f"Token {creds['token']}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)

    def wait_until(self, condition: Callable[[], bool], failure: str) -> None:
        """Poll `condition` generously; fail early, with dev's output, if dev exits."""
        deadline = time.monotonic() + DEV_READY_DEADLINE_S
        while not condition():
            assert self.process.poll() is None, self.output.read_text()[-3000:]
            assert time.monotonic() < deadline, failure
            time.sleep(0.5)


def _pids_with(*markers: bytes) -> list[int]:
    """List live processes whose command line holds every marker.

    Redis rewrites its title over its environment, so `processes_mentioning`
    cannot find it by the dev directory.
    """
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and all(marker in _cmdline(int(entry.name)) for marker in markers)
    ]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _answers_http(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the web child is serving
    except OSError:
        return False
    return True


def _start_dev(base: Path, workers: int, **extra_env: str) -> DevRun:
    port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in URL_VARS}
    env.update(DEVSTACK_DIR=str(base / "dev"), PORT=str(port), WORKERS=str(workers))
    env.update(extra_env)
    env["DEVSTACK_REDIS_PORT"] = str(redis_port)
    output = base / "dev.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler_site.devstack", "dev"],
            cwd=REPO_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return DevRun(process, port, redis_port, base / "dev", output)


@pytest.fixture
def dev_run(stack_dir: Path, request: pytest.FixtureRequest) -> Iterator[DevRun]:
    """Run `dev` on its own stack and directory; never leave it running."""
    run = _start_dev(stack_dir, workers=request.param)
    yield run
    if run.process.poll() is None:
        run.process.terminate()
        run.process.wait(DEV_STOP_DEADLINE_S)


@pytest.fixture
def flower_dev_run(stack_dir: Path) -> Iterator[tuple[DevRun, int]]:
    """Run `dev` with FLOWER=1 and one worker; return it and Flower's port.

    Flower is told not to turn the workers' task events on itself, so the
    tasks it lists prove that `dev` asked the workers to send them.
    """
    flower_port = free_port()
    run = _start_dev(
        stack_dir,
        1,
        FLOWER="1",
        FLOWER_PORT=str(flower_port),
        FLOWER_ENABLE_EVENTS="false",
    )
    yield run, flower_port
    if run.process.poll() is None:
        run.process.terminate()
        run.process.wait(DEV_STOP_DEADLINE_S)


def _flower_get(port: int, path: str, login: str | None) -> tuple[int, Any]:
    """GET a Flower route, with a basic-auth login if given: (status, JSON or None);
    status 0 when nothing answers."""
    headers = {}
    if login is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError:
        return 0, None  # not listening yet


def test_dev_with_flower_1_runs_flower_with_task_events_behind_the_admin_login(
    flower_dev_run: tuple[DevRun, int],
) -> None:
    run, port = flower_dev_run
    run.wait_for_output(f"  flower    http://127.0.0.1:{port}/")
    creds = json.loads((run.dev_dir / "credentials.json").read_text())
    login = f"{creds['username']}:{creds['password']}"

    def worker_seen() -> bool:
        status, workers = _flower_get(port, "/api/workers?refresh=1", login)
        return status == 200 and any(n.startswith("worker1@") for n in workers)

    run.wait_until(worker_seen, "Flower never listed worker1")

    def publisher_runs_listed() -> bool:
        path = "/api/tasks?taskname=tasks_app.tasks.publish_pending"
        status, tasks = _flower_get(port, path, login)
        return status == 200 and bool(tasks)

    run.wait_until(publisher_runs_listed, "Flower never saw a task event")
    assert _flower_get(port, "/api/workers", None)[0] == 401
    assert _flower_get(port, "/api/workers", "admin:wrong")[0] == 401
    run.process.send_signal(signal.SIGINT)
    assert run.process.wait(DEV_STOP_DEADLINE_S) == 0
    assert processes_mentioning(str(run.dev_dir)) == []


@pytest.mark.parametrize("dev_run", [1], indirect=True)
def test_dev_serves_http_and_sigint_stops_every_process(dev_run: DevRun) -> None:
    dev_run.wait_for_web()
    assert len(dev_run.child_pids(b"gunicorn")) == 1 + WEB_WORKERS  # master, workers
    for asset in ("admin/css/base.css", "tasks_app/dashboard/dashboard.js"):
        with urllib.request.urlopen(
            f"http://127.0.0.1:{dev_run.port}/static/{asset}", timeout=10
        ) as answer:
            assert answer.status == 200, asset
    assert (dev_run.dev_dir / "services.env").exists()
    dev_run.process.send_signal(signal.SIGINT)
    assert dev_run.process.wait(DEV_STOP_DEADLINE_S) == 0
    assert processes_mentioning(str(dev_run.dev_dir)) == []
    assert not (dev_run.dev_dir / "services.env").exists()


@pytest.mark.parametrize("dev_run", [0], indirect=True)
def test_dev_stops_everything_when_the_web_server_dies(dev_run: DevRun) -> None:
    dev_run.wait_for_web()
    [web] = [  # gunicorn's master: its workers are its own children
        pid
        for pid in dev_run.child_pids(b"gunicorn")
        if psutil.Process(pid).ppid() == dev_run.process.pid
    ]
    os.kill(web, signal.SIGKILL)
    assert dev_run.process.wait(DEV_STOP_DEADLINE_S) == 1
    assert (
        f"devstack: web (pid {web}) was killed by SIGKILL" in dev_run.output.read_text()
    )
    assert processes_mentioning(str(dev_run.dev_dir)) == []


@pytest.mark.parametrize("dev_run", [0], indirect=True)
def test_dev_stops_everything_when_an_embedded_service_dies(dev_run: DevRun) -> None:
    dev_run.wait_for_web()
    [redis_server] = _pids_with(b"redis-server", str(dev_run.redis_port).encode())
    os.kill(redis_server, signal.SIGKILL)
    assert dev_run.process.wait(DEV_STOP_DEADLINE_S) == 1
    assert (
        f"devstack: Redis (pid {redis_server}) was killed by SIGKILL"
        in dev_run.output.read_text()
    )
    assert processes_mentioning(str(dev_run.dev_dir)) == []


@pytest.mark.parametrize("dev_run", [1], indirect=True)
def test_dev_restarts_a_killed_worker_which_rejoins_the_rotation(
    dev_run: DevRun,
) -> None:
    dev_run.wait_for_web()
    [first] = dev_run.child_pids(b"worker1@")
    dev_run.wait_for_member("worker1@", first)
    os.kill(first, signal.SIGKILL)
    dev_run.wait_for_output(f"devstack: worker1 (pid {first}) was killed by SIGKILL")
    second = dev_run.wait_for_member("worker1@", None)
    assert second != first
    assert dev_run.child_pids(b"worker1@") == [second]
    assert dev_run.process.poll() is None, "the stack stopped"
    assert _answers_http(dev_run.port)
    dev_run.process.send_signal(signal.SIGINT)
    assert dev_run.process.wait(DEV_STOP_DEADLINE_S) == 0
    assert processes_mentioning(str(dev_run.dev_dir)) == []


@pytest.mark.parametrize("dev_run", [0], indirect=True)
def test_a_second_shell_reaches_the_dev_stack_after_sourcing_services_env(
    dev_run: DevRun,
) -> None:
    dev_run.wait_for_web()
    env_file = dev_run.dev_dir / "services.env"
    probe = (
        "from django.contrib.auth.models import User; "
        "print('admin exists:', User.objects.filter(username='admin').exists())"
    )
    shell = second_shell(env_file, f"{sys.executable} manage.py shell -c {probe!r}")
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.splitlines()[-1] == "admin exists: True"
    worker = second_shell_worker(env_file, dev_run.dev_dir / "second-shell.log")
    assert "second@" in worker
    assert "ready." in worker


def second_shell(env_file: Path, command: str) -> subprocess.CompletedProcess[str]:
    """Run `source services.env && command` in bash, as a user's second shell would."""
    return subprocess.run(
        ["bash", "-c", f"source {env_file} && {command}"],
        cwd=REPO_ROOT,
        env=_bare_shell_env(),
        capture_output=True,
        text=True,
        timeout=DEV_STOP_DEADLINE_S,
    )


def second_shell_worker(env_file: Path, log: Path) -> str:
    """Start a Celery worker from a second shell; return its log once it is ready."""
    celery = Path(sys.executable).parent / "celery"
    command = (
        f"source {env_file} && exec {celery} -A scheduler_site worker "
        "-Q second-shell --pool solo -n second@%h --loglevel INFO"
    )
    with log.open("wb") as sink:
        worker = subprocess.Popen(
            ["bash", "-c", command],
            cwd=REPO_ROOT,
            env=_bare_shell_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + DEV_READY_DEADLINE_S
        while "ready." not in log.read_text() and worker.poll() is None:
            assert time.monotonic() < deadline, "the worker never got ready"
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(DEV_STOP_DEADLINE_S)
    return log.read_text()


def _bare_shell_env() -> dict[str, str]:
    """Return a login-like environment: none of the variables services.env sets."""
    dropped = {*URL_VARS, "DEBUG", "SECRET_KEY", "DEVSTACK_DIR"}
    return {k: v for k, v in os.environ.items() if k not in dropped}
