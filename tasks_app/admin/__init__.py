"""Django admin: tasks, topics and groups through the services; records read-only."""

from tasks_app.admin import records, tasks, topics

__all__ = ["records", "tasks", "topics"]
