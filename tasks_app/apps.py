"""App configuration for tasks_app."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TasksAppConfig(AppConfig):
    """Tasks, topics, consumer groups and the records of their execution."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "tasks_app"
    verbose_name = "Workload scheduler"

    def ready(self) -> None:
        """Fill the handler registry from the deployed code (see handlers/),
        register the OpenAPI extensions before any schema is built, connect
        the Celery worker's signal receivers (tasks_app/worker.py), and put the
        role groups back after every migrate or flush (tasks_app/roles.py)."""
        from tasks_app import worker
        from tasks_app.api import schema  # noqa: F401
        from tasks_app.handlers import handlers_discover
        from tasks_app.roles import roles_restore

        handlers_discover()
        worker.signals_connect()
        post_migrate.connect(roles_restore, sender=self)
