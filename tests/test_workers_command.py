"""One Celery command line for `make dev`, the tests and docker-compose."""

import subprocess
import sys
from pathlib import Path

import yaml

from scheduler_site.devstack.dev import DevOptions, child_commands
from scheduler_site.workers import beat_argv, worker_argv

REPO = Path(__file__).resolve().parents[1]


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
    beat = commands["beat"]
    assert beat == beat_argv(beat[beat.index("--schedule") + 1])


def test_docker_compose_runs_the_same_command_line():
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]

    for name, args in {
        "worker": ["worker", "rotation", "worker"],
        "publisher": ["worker", "publish", "publisher"],
        "beat": ["beat", "/tmp/celerybeat-schedule"],
    }.items():
        assert services[name]["command"] == [
            "python",
            "-m",
            "scheduler_site.workers",
            *args,
        ]


def test_an_unknown_command_prints_the_usage():
    run = subprocess.run(
        [sys.executable, "-m", "scheduler_site.workers", "nonsense"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )

    assert run.returncode != 0
    assert "usage:" in run.stderr
