"""App configuration for tasks_app."""

from django.apps import AppConfig


class TasksAppConfig(AppConfig):
    """Tasks, topics, consumer groups and the records of their execution."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "tasks_app"
    verbose_name = "Workload scheduler"
