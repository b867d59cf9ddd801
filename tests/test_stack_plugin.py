"""The devstack plugin under pytest-xdist: each worker gets services of its own.

Tests use fixed Redis databases, Celery queues and topic names, so two test
processes sharing one Redis or broker would take each other's work. Each case
runs pytest in a subprocess with a one-test file that reports its worker's URLs.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from scheduler_site.devstack.services import SPECS

REPO_ROOT = Path(__file__).resolve().parents[1]
URL_VARS = [spec.env_var for spec in SPECS]
REPORTING_TEST = f"""
import json, os

def test_report(tmp_path_factory):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    urls = {{name: os.environ[name] for name in {URL_VARS!r}}}
    out = os.path.join(os.environ["REPORT_DIR"], worker + ".json")
    with open(out, "w") as report:
        json.dump(urls, report)
"""


def run_pytest(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run the reporting test in a fresh pytest of its own."""
    (tmp_path / "test_report.py").write_text(REPORTING_TEST)
    reports = tmp_path / "reports"
    reports.mkdir()
    # Neither this run's services nor, when it runs under xdist, its worker's role.
    child_env = {
        name: value
        for name, value in os.environ.items()
        if name not in URL_VARS and not name.startswith("PYTEST_XDIST_")
    }
    child_env.update(REPORT_DIR=str(reports), **env)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(REPO_ROOT),
            "-c",
            str(REPO_ROOT / "pytest.ini"),
            *args,
            str(tmp_path / "test_report.py"),
        ],
        cwd=REPO_ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def reported(tmp_path: Path) -> dict[str, dict[str, str]]:
    return {
        path.stem: json.loads(path.read_text())
        for path in sorted((tmp_path / "reports").glob("*.json"))
    }


def test_each_xdist_worker_runs_against_services_of_its_own(tmp_path):
    result = run_pytest(tmp_path, "-n", "2", "--dist", "each")

    assert result.returncode == 0, result.stdout + result.stderr
    urls = reported(tmp_path)
    assert sorted(urls) == ["gw0", "gw1"]
    for name in URL_VARS:
        assert urls["gw0"][name] != urls["gw1"][name], name


def test_xdist_workers_refuse_to_share_a_given_redis(tmp_path, devstack):
    given = os.environ["REDIS_URL"]

    result = run_pytest(tmp_path, "-n", "2", "--dist", "each", REDIS_URL=given)

    assert result.returncode != 0
    assert "REDIS_URL" in result.stdout + result.stderr
    assert "-n 0" in result.stdout + result.stderr
    assert reported(tmp_path) == {}


def test_with_xdist_off_the_run_starts_one_stack(tmp_path):
    result = run_pytest(tmp_path, "-n", "0")

    assert result.returncode == 0, result.stdout + result.stderr
    assert list(reported(tmp_path)) == ["main"]
