"""The dev launcher: options, child commands, teardown, clean-up, and a real run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scheduler_site.devstack.dev import (
    DevOptions,
    banner,
    child_commands,
    clean_dev,
    setup_steps,
)
from scheduler_site.devstack.process import (
    StackError,
    free_port,
    processes_mentioning,
)
from scheduler_site.devstack.services import SPECS
from scheduler_site.devstack.supervise import start_child, stop_children

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


def test_web_serves_on_the_chosen_port_without_the_reloader(tmp_path: Path) -> None:
    options = DevOptions(tmp_path, port=8123, workers=0, config=None)
    web = dict(child_commands(options))["web"]
    assert web[-3:] == ["runserver", "127.0.0.1:8123", "--noreload"]


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


def test_stop_children_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    script = "trap '' TERM; echo trap-set; while true; do sleep 0.1; done"
    argv = ["sh", "-c", script]
    child = start_child("stubborn", argv, os.environ, tmp_path, tmp_path)
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
    dev_dir: Path
    output: Path

    def wait_for_web(self) -> None:
        """Wait until the web child answers HTTP, failing early if dev exits."""
        deadline = time.monotonic() + DEV_READY_DEADLINE_S
        while not _answers_http(self.port):
            assert self.process.poll() is None, self.output.read_text()[-3000:]
            assert time.monotonic() < deadline, "dev never served HTTP"
            time.sleep(0.5)


def _answers_http(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the web child is serving
    except OSError:
        return False
    return True


def _start_dev(base: Path, workers: int) -> DevRun:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in URL_VARS}
    env.update(DEVSTACK_DIR=str(base / "dev"), PORT=str(port), WORKERS=str(workers))
    output = base / "dev.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler_site.devstack", "dev"],
            cwd=REPO_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return DevRun(process, port, base / "dev", output)


@pytest.fixture
def dev_run(stack_dir: Path, request: pytest.FixtureRequest) -> Iterator[DevRun]:
    """Run `dev` on its own stack and directory; never leave it running."""
    run = _start_dev(stack_dir, workers=request.param)
    yield run
    if run.process.poll() is None:
        run.process.terminate()
        run.process.wait(DEV_STOP_DEADLINE_S)


@pytest.mark.parametrize("dev_run", [1], indirect=True)
def test_dev_serves_http_and_sigint_stops_every_process(dev_run: DevRun) -> None:
    dev_run.wait_for_web()
    assert (dev_run.dev_dir / "services.env").exists()
    dev_run.process.send_signal(signal.SIGINT)
    assert dev_run.process.wait(DEV_STOP_DEADLINE_S) == 0
    assert processes_mentioning(str(dev_run.dev_dir)) == []
    assert not (dev_run.dev_dir / "services.env").exists()


@pytest.mark.parametrize("dev_run", [0], indirect=True)
def test_dev_stops_everything_when_a_child_dies(dev_run: DevRun) -> None:
    dev_run.wait_for_web()
    web = [
        pid
        for pid in processes_mentioning(f"127.0.0.1:{dev_run.port}")
        if b"runserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(web) == 1
    os.kill(web[0], signal.SIGKILL)
    assert dev_run.process.wait(DEV_STOP_DEADLINE_S) == 1
    assert "devstack: web exited with code -9" in dev_run.output.read_text()
    assert processes_mentioning(str(dev_run.dev_dir)) == []
