"""`/healthz`: whether PostgreSQL, Redis and Kafka answer, checked concurrently."""

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

# Short enough for a load balancer's probe, long enough for a busy machine.
CHECK_TIMEOUT_S = 2.0
# Each check has its own timeout; this bounds the wait if a client ignores it.
OVERALL_TIMEOUT_S = 4.0
OK = "ok"


def postgresql_check() -> None:
    """Run SELECT 1 on this thread's connection (reused between requests)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def redis_check() -> None:
    """PING the Redis at REDIS_URL with a fresh, short-timeout connection."""
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=CHECK_TIMEOUT_S,
        socket_connect_timeout=CHECK_TIMEOUT_S,
    )
    try:
        client.ping()
    finally:
        client.close()


def kafka_check() -> None:
    """Ask the brokers at KAFKA_BOOTSTRAP_SERVERS for cluster metadata."""
    admin = AdminClient(
        {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "socket.timeout.ms": int(CHECK_TIMEOUT_S * 1000),
            "log_level": 0,
        }
    )
    admin.list_topics(timeout=CHECK_TIMEOUT_S)


CHECKS: dict[str, Callable[[], None]] = {
    "redis": redis_check,
    "kafka": kafka_check,
}
# The setting that names each service, for the error's "what to check" hint.
SERVICE_SETTINGS = {
    "postgresql": "DATABASE_URL",
    "redis": "REDIS_URL",
    "kafka": "KAFKA_BOOTSTRAP_SERVERS",
}
# A check failing with one of these means the service is down; anything else is
# a bug in the check and is left to surface as a 500.
SERVICE_ERRORS = (DatabaseError, redis.RedisError, KafkaException, OSError)


def _run(name: str, check: Callable[[], None]) -> str | None:
    """Run one check; return None when the service answered, else the reason."""
    try:
        check()
    except SERVICE_ERRORS as exc:
        logger.warning("Health check: %s failed: %s", name, exc)
        return (
            f"{type(exc).__name__}: {exc} (check that the server runs and "
            f"{SERVICE_SETTINGS[name]} points at it)"
        )
    return None


def services_status() -> dict[str, str | None]:
    """Check all three services at once; map each name to None (ok) or its error.

    Redis and Kafka run on worker threads while PostgreSQL runs on the request
    thread, whose connection Django reuses, so the total is the slowest check.
    """
    pool = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="health")
    futures = {name: pool.submit(_run, name, check) for name, check in CHECKS.items()}
    results = {"postgresql": _run("postgresql", postgresql_check)}
    for name, future in futures.items():
        try:
            results[name] = future.result(timeout=OVERALL_TIMEOUT_S)
        except FutureTimeout:
            results[name] = f"no answer within {OVERALL_TIMEOUT_S:.0f} s"
    pool.shutdown(wait=False, cancel_futures=True)
    return results


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when every service answers, else 503 naming the ones that failed."""
    results = services_status()
    failed = {name: error for name, error in results.items() if error}
    body: dict[str, object] = {
        "status": "unavailable" if failed else OK,
        "services": {
            name: "unavailable" if error else OK for name, error in results.items()
        },
    }
    if failed:
        body["errors"] = failed
    return JsonResponse(body, status=503 if failed else 200)
