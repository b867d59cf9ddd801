"""App configuration for tasks_app."""

from django.apps import AppConfig


class TasksAppConfig(AppConfig):
    """Tasks, topics, consumer groups and the records of their execution."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "tasks_app"
    verbose_name = "Workload scheduler"

    def ready(self) -> None:
        """Fill the handler registry from the deployed code (see handlers/),
        register the OpenAPI extensions before any schema is built, and connect
        the Celery worker's signal receivers (tasks_app/worker.py)."""
        from tasks_app import worker
        from tasks_app.api import schema  # noqa: F401
        from tasks_app.handlers import handlers_discover

        handlers_discover()
        worker.signals_connect()
