"""One Celery command line for `make dev`, the tests and docker-compose."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from scheduler_site.devstack.dev import DevOptions, child_commands
from scheduler_site.workers import beat_argv, flower_argv, worker_argv

REPO = Path(__file__).resolve().parents[1]


def run_workers_module(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m scheduler_site.workers ARGS` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "scheduler_site.workers", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        check=False,
    )


def test_a_worker_runs_one_task_at_a_time_without_gossip_or_mingle():
    argv = worker_argv("rotation", "w1")

    assert argv[argv.index("-Q") + 1] == "rotation"
    assert argv[argv.index("--pool") + 1] == "solo"
    assert argv[argv.index("-n") + 1] == "w1@%h"
    assert {"--without-gossip", "--without-mingle"} <= set(argv)


def test_make_dev_starts_the_same_workers_and_beat(tmp_path):
    options = DevOptions(root=REPO, port=8000, workers=2, config=None)

    commands = dict(child_commands(options))

    assert commands["worker2"] == worker_argv("rotation", "worker2")
    assert commands["publisher"] == worker_argv("publish", "publisher")
    assert commands["beat"] == beat_argv()


def test_beat_keeps_its_schedule_in_the_database():
    argv = beat_argv()

    scheduler = argv[argv.index("--scheduler") + 1]
    assert scheduler == "django_celery_beat.schedulers:DatabaseScheduler"


def test_docker_compose_runs_the_same_command_line():
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]

    for name, args in {
        "worker": ["worker", "rotation", "worker"],
        "publisher": ["worker", "publish", "publisher"],
        "beat": ["beat"],
        "flower": ["flower", "5555", "0.0.0.0"],
    }.items():
        assert services[name]["command"] == [
            "python",
            "-m",
            "scheduler_site.workers",
            *args,
        ]


def test_flower_refuses_to_start_without_a_login():
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    run = run_workers_module("flower", "5555", env=env)

    assert run.returncode != 0
    assert "set FLOWER_BASIC_AUTH=user:password" in run.stderr


def test_flower_listens_on_this_host_only_unless_told_otherwise():
    argv = flower_argv(5555)

    assert argv[argv.index("-A") + 1 :] == [
        "scheduler_site",
        "flower",
        "--port=5555",
        "--address=127.0.0.1",
    ]
    assert "--address=0.0.0.0" in flower_argv(5555, address="0.0.0.0")


def test_compose_runs_flower_only_when_asked_and_on_loopback_only():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    flower = compose["services"]["flower"]

    assert flower["profiles"] == ["flower"]
    assert flower["ports"] == ["127.0.0.1:${FLOWER_PORT:-5555}:5555"]
    app_environment = compose["x-app"]["environment"]
    assert flower["environment"]["DATABASE_URL"] == app_environment["DATABASE_URL"]


def test_an_unknown_command_prints_the_usage():
    run = run_workers_module("nonsense")

    assert run.returncode != 0
    assert "usage:" in run.stderr
