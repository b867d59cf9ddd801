"""Who may call what: DRF permission classes over Django's model permissions.

Roles are groups of permissions (tasks_app/roles.py); these classes only ask
for permissions, so a group an admin builds by hand works the same way. Tasks
are scoped by owner in the selectors too, so another user's task is a 404 to a
submitter, not a 403 that would reveal it.
"""

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.permissions import DjangoModelPermissions as _ModelPermissions
from rest_framework.request import Request
from rest_framework.views import APIView

from tasks_app.models import Task
from tasks_app.roles import ADD_TASK, CHANGE_TASK, VIEW_ROTATION, VIEW_TASK

_VIEW = ["%(app_label)s.view_%(model_name)s"]
_ADD = ["%(app_label)s.add_%(model_name)s"]
_CHANGE = ["%(app_label)s.change_%(model_name)s"]


class ModelPermissions(_ModelPermissions):
    """Need the model's view permission to read, add to create, change to update.

    DRF's own class lets any signed-in user read; operators' routes need `view_*`.
    """

    perms_map = {
        **_ModelPermissions.perms_map,
        "GET": _VIEW,
        "HEAD": _VIEW,
        "OPTIONS": _VIEW,
    }

    def has_permission(self, request: Request, view: APIView) -> bool:
        """Let a method the route lacks answer 405 (not 403) to a signed-in user."""
        if request.method not in view.allowed_methods:
            return bool(request.user and request.user.is_authenticated)
        return super().has_permission(request, view)


class ChangeModelPermissions(ModelPermissions):
    """For actions that change an object with a POST (pause, resume)."""

    perms_map = {**ModelPermissions.perms_map, "POST": _CHANGE}


class CanViewRotation(BasePermission):
    """Live members and stats: need `view_rotation` (operators)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return request.user.has_perm(VIEW_ROTATION)


class CanSubmitTasks(BasePermission):
    """Submitting needs `add_task` (submitters and operators)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return request.user.has_perm(ADD_TASK)


class CanUseTasks(BasePermission):
    """Own tasks need `add_task`; other users' need `view_task` to read them and
    `change_task` to cancel or retry them. Which tasks exist for a user at all is
    the selectors' `tasks_visible`."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return user.has_perm(ADD_TASK) or user.has_perm(VIEW_TASK)

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        task: Task = obj
        if task.submitted_by_id is not None and task.submitted_by_id == request.user.pk:
            return True
        needed = VIEW_TASK if request.method in SAFE_METHODS else CHANGE_TASK
        return request.user.has_perm(needed)
