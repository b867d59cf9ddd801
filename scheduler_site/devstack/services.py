"""Start the embedded PostgreSQL, Redis and Kafka that the environment does not provide.

Deliberately free of Django: the pytest plugin starts the stack before Django's
settings are imported, because the settings read the service URLs at import time.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from scheduler_site.devstack import brokers, postgres
from scheduler_site.devstack.process import (
    Service,
    StackError,
    ensure_port_free,
    free_ports,
)

__all__ = ["SPECS", "Service", "Stack", "StackError"]

logger = logging.getLogger(__name__)

Launcher = Callable[..., Service]


@dataclass(frozen=True)
class Spec:
    """How to provide one service: its URL variable, port variable and launcher."""

    key: str
    name: str
    env_var: str
    port_var: str
    launch: Launcher


SPECS: tuple[Spec, ...] = (
    Spec(
        "postgres",
        postgres.NAME,
        postgres.ENV_VAR,
        "DEVSTACK_POSTGRES_PORT",
        postgres.start_postgres,
    ),
    Spec(
        "redis",
        brokers.REDIS_NAME,
        brokers.REDIS_ENV_VAR,
        "DEVSTACK_REDIS_PORT",
        brokers.start_redis,
    ),
    Spec(
        "kafka",
        brokers.KAFKA_NAME,
        brokers.KAFKA_ENV_VAR,
        "DEVSTACK_KAFKA_PORT",
        brokers.start_kafka,
    ),
)


class Stack:
    """Provide the three services for one run, and stop exactly what it started.

    `data_dir=None` means a fresh temporary directory, removed on stop.
    `persistent=True` keeps durable PostgreSQL settings (dev data must survive).
    """

    def __init__(self, data_dir: Path | None = None, *, persistent: bool) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="devstack-")) if data_dir is None else data_dir
        )
        self.persistent = persistent
        self.services: dict[str, Service] = {}
        self.ports: dict[str, int] = {}
        self.start_seconds: float | None = None

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        """Return the URL variables of every provided service."""
        return {svc.env_var: svc.url for svc in self.services.values()}

    def start(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Reuse each service whose URL variable is set; start the rest in parallel."""
        environ = os.environ if environ is None else environ
        began = time.monotonic()
        missing = []
        for spec in SPECS:
            url = environ.get(spec.env_var)
            if url:
                self.services[spec.key] = Service(spec.name, spec.env_var, url)
                logger.info(
                    "%s: using %s from the environment", spec.name, spec.env_var
                )
            else:
                missing.append(spec)
        try:
            if missing:
                self.data_dir.mkdir(parents=True, exist_ok=True)
                self._start_parallel(missing, _choose_ports(missing, environ))
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self.env

    def _start_parallel(self, specs: list[Spec], ports: dict[str, int]) -> None:
        """Launch each service in its own thread; raise the first failure."""
        self.ports.update(ports)
        with ThreadPoolExecutor(len(specs), thread_name_prefix="devstack") as pool:
            futures = {
                spec.key: pool.submit(
                    spec.launch,
                    self.data_dir,
                    ports[spec.key],
                    persistent=self.persistent,
                )
                for spec in specs
            }
            errors: list[BaseException] = []
            for key, future in futures.items():
                errors += self._settle(key, future)
        if errors:
            # Interrupts first: Ctrl-C must win over a start-up error it caused.
            errors.sort(key=lambda exc: isinstance(exc, StackError))
            for extra in errors[1:]:
                logger.error("%s", extra)
            raise errors[0]

    def _settle(self, key: str, future: Future[Service]) -> list[BaseException]:
        """Wait out one launch even through Ctrl-C, so no started server goes unseen."""
        interrupts: list[BaseException] = []
        while True:
            try:
                error = future.exception()
                break
            except BaseException as exc:  # noqa: BLE001 - an interrupt, re-raised later
                interrupts.append(exc)
        if error is None:
            self.services[key] = future.result()
            return interrupts
        return [*interrupts, error]

    def stop_service(self, key: str) -> None:
        """Stop one server this stack started; `start_service` brings it back.

        For fault-injection tests: PostgreSQL keeps its data directory, while
        Redis and the broker hold everything in memory and come back empty.
        """
        self._started(key).stop()

    def start_service(self, key: str) -> Service:
        """Start a stopped server again on its old port and data directory, so
        clients that know its URL reconnect to it."""
        service = self._started(key)
        assert service.process is not None  # _started checked it
        if service.process.poll() is None:
            raise StackError(service.name, "is still running; stop it first")
        spec = next(spec for spec in SPECS if spec.key == key)
        self.services[key] = spec.launch(
            self.data_dir, self.ports[key], persistent=self.persistent
        )
        return self.services[key]

    def _started(self, key: str) -> Service:
        """Return a service this stack started; refuse one it merely reuses."""
        service = self.services[key]
        if not service.started:
            raise StackError(
                service.name, f"was provided by {service.env_var}, not started here"
            )
        return service

    def stop(self) -> None:
        """Stop, in reverse start order, only the servers this stack started."""
        for key in reversed([spec.key for spec in SPECS]):
            service = self.services.get(key)
            if service is not None:
                service.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _choose_ports(specs: list[Spec], environ: Mapping[str, str]) -> dict[str, int]:
    """Take explicit ports from DEVSTACK_*_PORT (checked free), free ones otherwise."""
    explicit = {
        spec.key: _explicit_port(spec, raw)
        for spec in specs
        if (raw := environ.get(spec.port_var))
    }
    implicit = [spec.key for spec in specs if spec.key not in explicit]
    return explicit | dict(zip(implicit, free_ports(len(implicit)), strict=True))


def _explicit_port(spec: Spec, raw: str) -> int:
    """Validate a port number from the environment and check that it is free."""
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise StackError(
            spec.name, f"{spec.port_var}={raw!r} is not a port number (1-65535)"
        )
    advice = (
        f"free it, pick another with {spec.port_var}, or set {spec.env_var} "
        "to use an existing server"
    )
    ensure_port_free(spec.name, port, advice)
    return port
