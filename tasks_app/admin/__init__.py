"""Django admin: tasks, topics, groups and schedules through the services;
records read-only."""

from tasks_app.admin import records, schedules, tasks, topics

__all__ = ["records", "schedules", "tasks", "topics"]
