"""`make dev`: services, migrations, config and admin, then web, beat and workers
(and Flower with FLOWER=1)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from scheduler_site.devstack.dev_env import dev_defaults, write_services_env
from scheduler_site.devstack.postgres import refuse_if_locked
from scheduler_site.devstack.process import (
    StackError,
    ensure_port_free,
    pid_alive,
    processes_mentioning,
    tcp_open,
)
from scheduler_site.devstack.restarts import Supervisor
from scheduler_site.devstack.services import Stack
from scheduler_site.devstack.supervise import (
    ChildSpec,
    Shutdown,
    shutdown_on_signals,
)
from scheduler_site.workers import (
    WebServer,
    beat_argv,
    flower_argv,
    web_argv,
    worker_argv,
)

logger = logging.getLogger(__name__)

DEV_DIR_NAME = ".devstack"
DEFAULT_PORT = 8000
DEFAULT_WORKERS = 2
DEFAULT_FLOWER_PORT = 5555  # Flower's own default
DEFAULT_CONFIG = Path("config") / "scheduler.toml"
WEB_READY_TIMEOUT_S = 60.0
WEB_POLL_INTERVAL_S = 0.2
# The web server `make dev` runs (bench/e2e_http.py measures the same one):
# gunicorn, as production and the tests run it. runserver is one process, so
# the GIL keeps its Python on one core whatever the machine (docs/benchmarks.md,
# "End to end over HTTP", says what was measured).
DEV_WEB_SERVER: WebServer = "gunicorn"
# Where gunicorn's processes keep their Prometheus metrics (gunicorn_conf.py).
METRICS_DIR_NAME = "prometheus"
# Only these children's deaths stop the stack; the others are restarted.
ESSENTIAL_CHILDREN = frozenset({"web"})


@dataclass(frozen=True)
class DevOptions:
    """What `make dev` reads from the environment: web port, workers, config file,
    and Flower's port when FLOWER=1 asks for it (None: no Flower)."""

    root: Path
    port: int
    workers: int
    config: Path | None
    flower_port: int | None = None

    @property
    def dev_dir(self) -> Path:
        """Return the persistent state directory (database, logs, credentials)."""
        return dev_dir_for(self.root)

    @classmethod
    def from_env(cls, root: Path) -> DevOptions:
        """Read PORT, WORKERS, SCHEDULER_CONFIG, FLOWER and FLOWER_PORT, failing
        on malformed values."""
        port = _env_int("PORT", DEFAULT_PORT, low=1, high=65535)
        workers = _env_int("WORKERS", DEFAULT_WORKERS, low=0, high=64)
        flower = _env_int("FLOWER", 0, low=0, high=1)
        flower_port = _env_int("FLOWER_PORT", DEFAULT_FLOWER_PORT, low=1, high=65535)
        raw_config = os.environ.get("SCHEDULER_CONFIG")
        config: Path | None = Path(raw_config) if raw_config else root / DEFAULT_CONFIG
        if not raw_config and not (root / DEFAULT_CONFIG).exists():
            config = None
        return cls(root, port, workers, config, flower_port if flower else None)


def dev_dir_for(root: Path) -> Path:
    """Return DEVSTACK_DIR if set (tests, second checkouts), else `<root>/.devstack`."""
    override = os.environ.get("DEVSTACK_DIR")
    return Path(override).resolve() if override else root / DEV_DIR_NAME


def _env_int(name: str, default: int, *, low: int, high: int) -> int:
    """Read a bounded integer from the environment."""
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise StackError("dev", f"{name}={raw!r} must be an integer in {low}..{high}")
    return value


def running_dev_pid(dev_dir: Path) -> int | None:
    """Return the PID of a live `make dev` using this directory, if any."""
    try:
        pid = int((dev_dir / "dev.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid != os.getpid() and pid_alive(pid) else None


def run_dev(root: Path) -> int:
    """Run the whole dev environment until a signal or an essential death."""
    options = DevOptions.from_env(root)
    dev_dir = options.dev_dir
    other = running_dev_pid(dev_dir)
    if other is not None:
        raise StackError("dev", f"make dev is already running here (pid {other})")
    dev_dir.mkdir(parents=True, exist_ok=True)
    (dev_dir / "dev.pid").write_text(str(os.getpid()))
    stack = Stack(dev_dir, persistent=True)
    supervisor = Supervisor(services=stack.services.values, report=_say)
    with shutdown_on_signals():
        try:
            return _serve(options, stack, supervisor)
        except Shutdown as stop:
            _say(f"{stop} received; stopping everything")
            return 0
        finally:
            supervisor.stop()
            stack.stop()
            for name in ("services.env", "dev.pid"):
                (dev_dir / name).unlink(missing_ok=True)
            _say("all stopped")


def _say(line: str) -> None:
    """Print one launcher line, told apart from the children's prefixed output."""
    print(f"devstack: {line}", flush=True)


def _serve(options: DevOptions, stack: Stack, supervisor: Supervisor) -> int:
    """Start services, prepare the database, start the children, and supervise."""
    ensure_port_free("web", options.port, "free it or pick another with PORT=<port>")
    if options.flower_port is not None:
        advice = "free it or pick another with FLOWER_PORT=<port>"
        ensure_port_free("flower", options.flower_port, advice)
    stack_env = stack.start()
    _say(f"services ready in {stack.start_seconds:.1f} s")
    defaults = dev_defaults(options.dev_dir, os.environ)
    write_services_env(options.dev_dir / "services.env", {**stack_env, **defaults})
    child_env = {**os.environ, **defaults, **stack_env}
    if options.config is not None:
        child_env["SCHEDULER_CONFIG"] = str(options.config)
    if options.flower_port is not None:
        child_env.setdefault("CELERY_SEND_EVENTS", "1")  # what Flower shows
    for step in setup_steps(options):
        _run_step(step, child_env, options.root)
    for name, argv in child_commands(options):
        restart = name not in ESSENTIAL_CHILDREN
        logs = options.dev_dir / "logs"
        env = _env_of(name, options, child_env)
        spec = ChildSpec(name, tuple(argv), env, options.root, logs, restart)
        supervisor.start(spec)
    fatal = _await_web(options.port, supervisor)
    if fatal is None:
        print(banner(options, stack), flush=True)
        fatal = supervisor.run()
    _say(f"{fatal}; stopping everything")
    return 1


def _await_web(port: int, supervisor: Supervisor) -> str | None:
    """Hold the banner until the web server answers; return why to stop, if so."""
    deadline = time.monotonic() + WEB_READY_TIMEOUT_S
    while not tcp_open(port) and time.monotonic() < deadline:
        fatal = supervisor.step()
        if fatal is not None:
            return fatal
        time.sleep(WEB_POLL_INTERVAL_S)
    return None


def manage(*args: str) -> list[str]:
    """Build a `manage.py` command line with the venv's Python."""
    return [sys.executable, "manage.py", *args]


def setup_steps(options: DevOptions) -> list[list[str]]:
    """List the one-shot commands that prepare the database before serving."""
    steps = [manage("migrate", "--noinput")]
    if options.config is not None:
        steps.append(manage("apply_config"))
    credentials = options.dev_dir / "credentials.json"
    steps.append(manage("ensure_admin", "--credentials", str(credentials)))
    return steps


def _run_step(argv: list[str], env: dict[str, str], cwd: Path) -> None:
    """Run one setup command in the foreground; fail naming it."""
    label = " ".join(argv[1:])
    print(f"devstack: running {label}", flush=True)
    code = subprocess.run(argv, env=env, cwd=cwd, check=False).returncode
    if code != 0:
        raise StackError(
            "dev", f"`{label}` exited with code {code}; see its output above"
        )


def child_commands(options: DevOptions) -> list[tuple[str, list[str]]]:
    """List the long-running children: web, beat, the publisher and rotation workers."""
    commands = [
        ("web", web_argv(options.port, server=DEV_WEB_SERVER)),
        ("beat", beat_argv()),
        ("publisher", worker_argv("publish", "publisher")),
    ]
    for i in range(1, options.workers + 1):
        commands.append((f"worker{i}", worker_argv("rotation", f"worker{i}")))
    if options.flower_port is not None:
        commands.append(("flower", flower_argv(options.flower_port)))
    return commands


def _env_of(
    name: str, options: DevOptions, child_env: dict[str, str]
) -> dict[str, str]:
    """Return the environment of the child `name`: Flower's and the web server's
    add their own variables."""
    if name == "flower":
        return flower_env(options, child_env)
    if name == "web":
        return web_env(options, child_env)
    return child_env


def web_env(options: DevOptions, child_env: dict[str, str]) -> dict[str, str]:
    """Give the web server a directory in the dev dir where its processes share
    their metrics, so /metrics adds them up (unless the user named one)."""
    metrics_dir = str(options.dev_dir / METRICS_DIR_NAME)
    return {"PROMETHEUS_MULTIPROC_DIR": metrics_dir, **child_env}


def flower_env(options: DevOptions, child_env: dict[str, str]) -> dict[str, str]:
    """Give Flower the dev admin's login, unless FLOWER_BASIC_AUTH names another.

    Only Flower gets it, in its environment: a command line is readable by
    every user of the machine.
    """
    if child_env.get("FLOWER_BASIC_AUTH"):
        return child_env
    creds = _read_credentials(options.dev_dir / "credentials.json")
    login = f"{creds.get('username', '')}:{creds.get('password', '')}"
    return {**child_env, "FLOWER_BASIC_AUTH": login}


def banner(options: DevOptions, stack: Stack) -> str:
    """Describe where everything is: URLs, credentials, env file, logs."""
    base = f"http://127.0.0.1:{options.port}"
    creds = _read_credentials(options.dev_dir / "credentials.json")
    token = creds.get("token", "?")
    rel_dir = os.path.relpath(options.dev_dir, Path.cwd())
    lines = [
        "",
        "devstack: ready. Press Ctrl-C to stop everything.",
        f"  API       {base}/api/",
        f"  API docs  {base}/api/docs/",
        f"  admin     {base}/admin/",
        f"  health    {base}/healthz",
        *_flower_lines(options),
        f"  login     {creds.get('username', '?')} / {creds.get('password', '?')}",
        f"  token     {token}",
        "  users     DEBUG=1 .venv/bin/python manage.py create_user NAME "
        "--role submitter   (or operator; prints its password and token)",
        f"  logs      {rel_dir}/logs/",
        f"  services  source {rel_dir}/services.env   (for a second shell)",
        f'  try       curl -H "Authorization: Token {token}" {base}/api/',
    ]
    lines += [f"  {svc.env_var}={svc.url}" for svc in stack.services.values()]
    return "\n".join(lines) + "\n"


def _flower_lines(options: DevOptions) -> list[str]:
    """Say where Flower is and which login it takes, when it runs."""
    if options.flower_port is None:
        return []
    login = "login below"
    if os.environ.get("FLOWER_BASIC_AUTH"):
        login = "login from FLOWER_BASIC_AUTH"
    return [
        f"  flower    http://127.0.0.1:{options.flower_port}/   ({login}; Celery "
        "tasks and workers, docs/observability.md)"
    ]


def _read_credentials(path: Path) -> dict[str, str]:
    """Read what `ensure_admin` wrote; tolerate its absence."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def clean_dev(root: Path) -> int:
    """Remove `.devstack/`, but only when nothing is using it."""
    dev_dir = dev_dir_for(root)
    pid = running_dev_pid(dev_dir)
    if pid is not None:
        raise StackError("dev", f"make dev is still running (pid {pid}); stop it first")
    refuse_if_locked(dev_dir / "postgres")
    users = processes_mentioning(str(dev_dir))
    if users:
        pids = ", ".join(map(str, users))
        raise StackError(
            "dev", f"processes still use {dev_dir} (pids {pids}); stop them"
        )
    if dev_dir.exists():
        shutil.rmtree(dev_dir)
        print(f"devstack: removed {dev_dir}")
    return 0
