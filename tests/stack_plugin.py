"""Pytest plugin: start the embedded services before Django's settings are imported.

pytest-django imports the settings inside `pytest_load_initial_conftests`, and the
settings read DATABASE_URL, REDIS_URL and KAFKA_BOOTSTRAP_SERVERS at import time,
so the stack must be up (and the variables exported) before that hook runs.
Settings also refuse to load without SECRET_KEY (unless DEBUG), so a random one is
provided for the run when none is set; tests speak plain HTTP, so the HTTPS
redirect that production settings default to is off; and the test handlers
(tests/handlers.py) are registered through SCHEDULER_HANDLER_MODULES. The test
process and every worker and server it starts share these. Registered with
`-p tests.stack_plugin`.

Under pytest-xdist (`-n 2`, as `make test` runs) each xdist worker starts a
stack of its own: tests use fixed Redis databases, Celery queues and beat
entries, so two test processes on one Redis would take each other's work. The
controlling process runs no test; it starts nothing and gives Django addresses
nothing listens on, which its workers drop before starting their own.
"""

from __future__ import annotations

import atexit
import functools
import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from types import FrameType

import pytest

from scheduler_site.devstack.services import Stack, StackError

STACK_KEY = pytest.StashKey[Stack]()
SECRET_KEY_BYTES = 50
TEST_HANDLER_MODULES = "tests.handlers"
# Service URLs nothing listens on: what the xdist controller gives Django's
# settings (never connected to); the variable names the ones it set, for its
# workers to drop.
UNREACHABLE_URLS = {
    "DATABASE_URL": "postgres://xdist-controller@127.0.0.1:1/none",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
}
STAND_INS_VAR = "DEVSTACK_XDIST_STAND_INS"


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    """Start the services the environment lacks and export their URLs; then Django."""
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(SECRET_KEY_BYTES))
    os.environ.setdefault("SCHEDULER_HANDLER_MODULES", TEST_HANDLER_MODULES)
    os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
    options = parser.parse_known_args(args)
    if not (options.help or options.version):
        xdist_controller = bool(getattr(options, "numprocesses", None)) and (
            "PYTEST_XDIST_WORKER" not in os.environ
        )
        if xdist_controller:
            _stand_in_for_workers()
        else:
            _drop_stand_ins()
            _start_stack(early_config)
    yield


def _stand_in_for_workers() -> None:
    """As xdist's controller: give the settings unreachable URLs, start nothing."""
    missing = [name for name in UNREACHABLE_URLS if not os.environ.get(name)]
    if "REDIS_URL" not in missing:
        raise pytest.UsageError(
            "REDIS_URL is set, and xdist workers would share that Redis: tests use "
            "fixed Redis databases and Celery queues. Run with `-n 0` "
            "(make test PYTEST_WORKERS=0), or unset REDIS_URL."
        )
    os.environ.update({name: UNREACHABLE_URLS[name] for name in missing})
    os.environ[STAND_INS_VAR] = " ".join(missing)


def _drop_stand_ins() -> None:
    """As an xdist worker: forget the controller's stand-in URLs."""
    for name in os.environ.pop(STAND_INS_VAR, "").split():
        os.environ.pop(name, None)


def _start_stack(config: pytest.Config) -> None:
    """Start a throw-away stack and publish its variables through os.environ."""
    stack = Stack(persistent=False)
    owner = os.getpid()
    atexit.register(_stop_if_owner, stack, owner)  # a run that dies early
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, functools.partial(_die_cleanly, stack, owner))
    try:
        env = stack.start()
    except StackError as exc:
        raise pytest.UsageError(f"devstack could not start: {exc}") from exc
    os.environ.update(env)
    config.stash[STACK_KEY] = stack


def _stop_if_owner(stack: Stack, owner: int) -> None:
    """Stop the stack, unless this is a forked child that merely inherited it."""
    if os.getpid() == owner:
        stack.stop()


def _die_cleanly(
    stack: Stack, owner: int, signum: int, frame: FrameType | None
) -> None:
    """On SIGTERM stop the servers first (atexit does not run), then die of it."""
    _stop_if_owner(stack, owner)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which services were started for this run and how long that took."""
    stack = config.stash.get(STACK_KEY, None)
    if stack is None:
        return []
    parts = [
        f"{svc.name} {'started' if svc.started else 'reused'} ({svc.url})"
        for svc in stack.services.values()
    ]
    return [f"devstack: {', '.join(parts)}; ready in {stack.start_seconds or 0:.1f} s"]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop what the plugin started, once the session is over."""
    stack = config.stash.get(STACK_KEY, None)
    if stack is not None:
        stack.stop()
        del config.stash[STACK_KEY]


@pytest.fixture(scope="session")
def devstack(pytestconfig: pytest.Config) -> Stack:
    """Return the session's Stack (its `services` carry URLs, pids and log paths)."""
    stack = pytestconfig.stash.get(STACK_KEY, None)
    if stack is None:
        pytest.skip("the devstack plugin did not start a stack in this run")
    return stack


@pytest.fixture
def stack_dir() -> Iterator[Path]:
    """Return a fresh data directory for a second Stack, removed afterwards.

    Not pytest's tmp_path: as root, PostgreSQL runs as another user, and every
    pytest start makes /tmp/pytest-of-<user> private again, cutting off the
    servers of any other run that lives below it.
    """
    path = Path(tempfile.mkdtemp(prefix="devstack-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
