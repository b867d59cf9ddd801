"""The API does what its OpenAPI schema says: schemathesis against a live server.

Every operation, every check (`--checks all`): no server error, no response
that breaks the schema, no status the schema does not list, no schema-valid
request refused and no schema-violating one accepted. Runs as an operator (who
may call every route) and as a submitter (the routes that answer by owner).
tests/schemathesis_hooks.py states the few rules a schema cannot.

The server is gunicorn, as in production, on the test database
(tests/web_server.py): Django's threaded test server made the run four times
longer.

Reproduce a failure with the `st run` command line the assertion prints
(against `make dev`, with a token of the same role).
"""

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from tasks_app.roles import Role
from tasks_app.services.topics import topic_create
from tests.cluster import worker_database_url
from tests.factories import UserFactory
from tests.schemathesis_hooks import KNOWN_TOPICS_ENV
from tests.web_server import BIN, REPO, gunicorn

# Cases per operation and phase; the coverage phase adds its boundary cases.
MAX_EXAMPLES = 5
# Fixed, so a failure replays exactly; change it to explore other inputs.
SEED = 7
RUN_TIMEOUT_S = 600
# A submitter's run covers the routes that answer by owner; tests/test_access.py
# walks every other route and expects a 403.
SUBMITTER_ROUTES = ("--include-tag", "tasks", "--include-tag", "seed")
OPTIONS = {Role.OPERATOR: (), Role.SUBMITTER: SUBMITTER_ROUTES}
# Floors, so a run that tested little (a schema that failed to load, routes
# filtered away) cannot pass.
MIN_OPERATIONS = {Role.OPERATOR: 20, Role.SUBMITTER: 7}
MIN_REQUESTS = {Role.OPERATOR: 800, Role.SUBMITTER: 300}
KNOWN_TOPIC = "fuzz-known"

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Run:
    """What one schemathesis run did, read from its NDJSON event report."""

    command: str
    exit_code: int
    output: str
    operations: set[str]
    requests: int
    server_errors: list[str]
    checks: set[str]


def _run(url: str, token: str, report: Path, *options: str) -> Run:
    """Run `st run` with every check against the live server; read its report."""
    command = [
        str(BIN / "st"), "run", f"{url}/api/schema/?format=json",
        "--checks", "all",
        "--header", f"Authorization: Token {token}",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--generation-database", "none",
        # PostgreSQL text cannot hold U+0000: every string field refuses it
        # with a 400 (tests/test_api_errors.py), which no JSON Schema for the
        # free-form message can state.
        "--generation-allow-x00", "false",
        "--no-color",
        "--report", "ndjson", "--report-ndjson-path", str(report),
        *options,
    ]  # fmt: skip
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
        KNOWN_TOPICS_ENV: KNOWN_TOPIC,
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        command,
        env=env,
        cwd=report.parent,  # st keeps a cache directory where it runs
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    shown = " ".join(command).replace(token, "$TOKEN")
    return Run(shown, done.returncode, done.stdout + done.stderr, *_read(report))


def _read(report: Path) -> tuple[set[str], int, list[str], set[str]]:
    """Count the operations, requests, 5xx answers and checks in the report."""
    operations: set[str] = set()
    requests, server_errors, checks = 0, [], set[str]()
    for line in report.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished["recorder"]
        operations.add(recorder["label"])
        for interaction in recorder.get("interactions", {}).values():
            requests += 1
            status = (interaction.get("response") or {}).get("status_code", 0)
            if status >= 500:
                server_errors.append(f"{status} {interaction['request']['uri']}")
        for results in recorder.get("checks", {}).values():
            checks.update(result["name"] for result in results)
    return operations, requests, server_errors, checks


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[str]:
    """Serve the app with gunicorn on the test database; return its base URL."""
    with django_db_blocker.unblock():
        env = {**os.environ, "DATABASE_URL": worker_database_url()}
    with gunicorn(env, tmp_path_factory.mktemp("gunicorn") / "server.log") as url:
        yield url


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.SUBMITTER])
def test_the_api_answers_as_its_schema_says(server, tmp_path, role):
    topic_create(name=KNOWN_TOPIC)
    token, _ = Token.objects.get_or_create(user=UserFactory(role=role))

    run = _run(server, token.key, tmp_path / "events.ndjson", *OPTIONS[role])

    print(f"{role}: {len(run.operations)} operations, {run.requests} requests")
    assert run.exit_code == 0, f"{run.command}\n{run.output[-20000:]}"
    assert run.server_errors == []
    assert len(run.operations) >= MIN_OPERATIONS[role], run.operations
    assert run.requests >= MIN_REQUESTS[role]
    assert {"not_a_server_error", "positive_data_acceptance"} <= run.checks
    assert {"negative_data_rejection", "status_code_conformance"} <= run.checks
