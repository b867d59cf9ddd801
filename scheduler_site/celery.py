"""The Celery application: configured from Django settings (CELERY_* names)."""

import os
from typing import Any

from celery import Celery
from celery.app.amqp import AMQP
from celery.signals import task_prerun
from django.db import close_old_connections
from kombu import Connection

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")

# Reconnecting to the broker (the scheduler's Redis): first retry after 0.1 s,
# then 0.1 s longer each time, never more than 0.5 s apart.
RECONNECT_FIRST_S = 0.1
RECONNECT_STEP_S = 0.1
RECONNECT_MAX_S = 0.5


class PromptConnection(Connection):
    """A broker connection that retries a lost connection within half a second.

    kombu waits 2 s, then 4, 6... (Celery's worker calls `ensure_connection`
    without intervals and has no setting for them): after a Redis restart a
    worker took no turn for up to 2 s more. Redis is cheap to retry.
    """

    def ensure_connection(self, *args: Any, **kwargs: Any) -> Connection:
        kwargs.setdefault("interval_start", RECONNECT_FIRST_S)
        kwargs.setdefault("interval_step", RECONNECT_STEP_S)
        kwargs.setdefault("interval_max", RECONNECT_MAX_S)
        return super().ensure_connection(*args, **kwargs)


class PromptAMQP(AMQP):
    """Celery's AMQP layer with PromptConnection for every broker connection."""

    Connection = PromptConnection


app = Celery("scheduler_site", amqp="scheduler_site.celery:PromptAMQP")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _database_connections_check(**_: object) -> None:
    """Treat each task like a request: drop obsolete or broken connections only.

    Celery would otherwise close them all around every task (see
    CELERY_DB_REUSE_MAX in settings).
    """
    close_old_connections()
