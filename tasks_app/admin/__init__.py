"""Django admin: tasks, topics and groups through the services; records read-only.

The index links to the operators' dashboard for users who may view the rotation.
"""

from django.contrib import admin

from tasks_app.admin import records, tasks, topics

admin.site.index_template = "tasks_app/admin/index.html"

__all__ = ["records", "tasks", "topics"]
