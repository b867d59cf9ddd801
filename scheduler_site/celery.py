"""The Celery application: configured from Django settings (CELERY_* names)."""

import os

from celery import Celery
from celery.signals import task_prerun
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")

app = Celery("scheduler_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _database_connections_check(**_: object) -> None:
    """Treat each task like a request: drop obsolete or broken connections only.

    Celery would otherwise close them all around every task (see
    CELERY_DB_REUSE_MAX in settings).
    """
    close_old_connections()
