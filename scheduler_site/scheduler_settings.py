"""The scheduler's own policy (SCHEDULER_*) and how Celery runs it (CELERY_*).

Each SCHEDULER_* value can be overridden in the environment (README, Configuration).
`scheduler_site.settings` imports every name here.
"""

from django.core.exceptions import ImproperlyConfigured

from scheduler_site.env import env


def beat_seconds(var: str, default: int) -> int:
    """Read a beat interval: django-celery-beat stores intervals in whole
    seconds, so 0.5 would silently become 0 (a task sent on every beat tick)."""
    value = env.float(var, default=float(default))
    if value < 1 or not value.is_integer():
        raise ImproperlyConfigured(
            f"{var} must be whole seconds, at least 1, got {value:g}"
        )
    return int(value)


SCHEDULER_CONFIG = env.str("SCHEDULER_CONFIG", default="")
SCHEDULER_AUTO_CREATE_TOPICS = env.bool("SCHEDULER_AUTO_CREATE_TOPICS", default=True)
SCHEDULER_MAX_MESSAGE_BYTES = env.int("SCHEDULER_MAX_MESSAGE_BYTES", default=256 * 1024)
SCHEDULER_MAX_BULK_TASKS = env.int("SCHEDULER_MAX_BULK_TASKS", default=1000)
SCHEDULER_DEFAULT_GROUP = env.str("SCHEDULER_DEFAULT_GROUP", default="default")
# Workers run only registered handlers (tasks_app/handlers/registry.py). Besides
# the `handlers` module of every installed app, these modules are imported at
# start-up so their @register_handler functions are registered too.
SCHEDULER_HANDLER_MODULES = env.list("SCHEDULER_HANDLER_MODULES", default=[])
# Beat's safety net; submissions also nudge the publisher right after commit.
SCHEDULER_PUBLISH_INTERVAL_S = beat_seconds("SCHEDULER_PUBLISH_INTERVAL", 1)
# Larger batches amortise round trips; smaller ones hold row locks for less time.
# One bulk submission's worth by default: the publisher never holds more than a
# submission did, and under a backlog end to end over HTTP ran 7,294-7,417
# tasks/s at 1,000 against 5,441-6,397 at 500 and 5,233-6,890 at 2,000
# (alternating runs; docs/benchmarks.md, "Throughput over time, 12-02 afternoon").
SCHEDULER_PUBLISH_BATCH = env.int(
    "SCHEDULER_PUBLISH_BATCH", default=SCHEDULER_MAX_BULK_TASKS
)
# One publisher run stops after this long so beat can start a fresh one.
SCHEDULER_PUBLISH_BUDGET_S = env.float("SCHEDULER_PUBLISH_BUDGET_S", default=10.0)
SCHEDULER_DEFAULT_SLICE_MS = env.int("SCHEDULER_SLICE_MS", default=2000)
# Lease TTL = slice + grace: room for the last handler and the commit.
SCHEDULER_LEASE_GRACE_MS = env.int("SCHEDULER_LEASE_GRACE_MS", default=3000)
# Messages per poll after a slice's first (that one takes 20: FIRST_BATCH in
# rotation/lane_reader.py). Each batch costs a read and two fenced writes; 500
# against 200 took the backlog benchmark from 11,756-12,611 to 13,500-14,681
# tasks/s (docs/benchmarks.md). A crash re-runs at most one batch's finished
# tasks (fewer when the 0.1 s flush comes first); the next holder is careful
# for one batch.
SCHEDULER_CONSUME_BATCH = env.int("SCHEDULER_CONSUME_BATCH", default=500)
SCHEDULER_POLL_TIMEOUT_MS = env.int("SCHEDULER_POLL_TIMEOUT_MS", default=50)
SCHEDULER_HEARTBEAT_S = env.float("SCHEDULER_HEARTBEAT_S", default=2.0)
SCHEDULER_WATCHDOG_S = beat_seconds("SCHEDULER_WATCHDOG_S", 2)
# Succeeded and cancelled tasks (and their history) are deleted this many days
# after they finished (0 keeps everything); dead tasks stay until retried or
# purged on purpose (`manage.py tasks_purge --dead`); services/retention.py.
SCHEDULER_RETENTION_DAYS = env.float("SCHEDULER_RETENTION_DAYS", default=3.0)
SCHEDULER_PURGE_INTERVAL_S = beat_seconds("SCHEDULER_PURGE_INTERVAL_S", 60)
SCHEDULER_PURGE_BATCH = env.int("SCHEDULER_PURGE_BATCH", default=1000)
# Per run, so the publisher's queue (where the purge runs) is held up this long at most.
SCHEDULER_PURGE_BUDGET_S = env.float("SCHEDULER_PURGE_BUDGET_S", default=2.0)

# https://docs.celeryq.dev/en/stable/userguide/configuration.html
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Longer than the longest slice, so Redis never redelivers a turn still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes every database connection around every task
# unless this is set; a rotation turn then reconnects to PostgreSQL (3-10 ms of
# each hand-off, measured by bench/rotation.py). Set high, connections are kept
# and Django's CONN_MAX_AGE and health checks decide (see scheduler_site/celery.py).
CELERY_DB_REUSE_MAX = 1_000_000
# Each worker also consumes its own queue, so a lane's next turn can go to a
# member other than the last one (DESIGN invariant 5, "take turns").
CELERY_WORKER_DIRECT = True
# Celery task events (received, started, succeeded, ...), for Flower or `celery
# events`: CELERY_SEND_EVENTS=1 turns them on in every process (workers, and the
# "sent" event where tasks are sent). Each task then costs a few more Redis
# publishes, so they are off unless asked for; `make dev` with FLOWER=1 asks.
# Workers send their own online/heartbeat events either way.
# https://docs.celeryq.dev/en/stable/userguide/monitoring.html#events
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_SEND_EVENTS", default=False)
CELERY_TASK_SEND_SENT_EVENT = CELERY_WORKER_SEND_TASK_EVENTS
CELERY_TASK_ROUTES = {
    "tasks_app.tasks.publish_pending": {"queue": "publish"},
    "tasks_app.tasks.watchdog": {"queue": "publish"},
    "tasks_app.tasks.run_slice": {"queue": "rotation"},
    "tasks_app.tasks.lanes_kick": {"queue": "publish"},
    "tasks_app.tasks.purge_finished": {"queue": "publish"},
    "tasks_app.tasks.schedule_run": {"queue": "publish"},
}
# Beat keeps its schedule in PostgreSQL (django-celery-beat): the entries below
# and the operators' recurring schedules (tasks_app.models.Schedule).
# https://django-celery-beat.readthedocs.io/en/latest/
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "publish-pending": {
        "task": "tasks_app.tasks.publish_pending",
        "schedule": SCHEDULER_PUBLISH_INTERVAL_S,
        "options": {"expire_seconds": SCHEDULER_PUBLISH_INTERVAL_S * 5},
    },
    "rotation-watchdog": {
        "task": "tasks_app.tasks.watchdog",
        "schedule": SCHEDULER_WATCHDOG_S,
        "options": {"expire_seconds": SCHEDULER_WATCHDOG_S * 5},
    },
    "purge-finished": {
        "task": "tasks_app.tasks.purge_finished",
        "schedule": SCHEDULER_PURGE_INTERVAL_S,
        "options": {"expires": SCHEDULER_PURGE_INTERVAL_S},
    },
}
