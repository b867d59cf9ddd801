"""The two roles: Django groups holding model permissions, managed in the admin.

- **submitters** hold `add_task`: they submit tasks and see, cancel and retry
  their own (the API's permission classes and selectors enforce "own").
- **operators** hold the topic, group, task, slice and lane permissions plus
  `view_rotation` (live members and stats): they manage everything else.

A user's powers come from permissions, never from the group's name: granting
`change_topic` to another group makes its members able to change topics in the
API and the admin alike. Superusers hold every permission.
"""

from enum import StrEnum
from typing import Any

from django.apps import apps as installed_apps

APP_LABEL = "tasks_app"
# The permissions the API asks for by name (besides each model's own).
ADD_TASK = "tasks_app.add_task"
VIEW_TASK = "tasks_app.view_task"
CHANGE_TASK = "tasks_app.change_task"
CHANGE_TOPIC = "tasks_app.change_topic"
VIEW_ROTATION = "tasks_app.view_rotation"


class Role(StrEnum):
    """The roles `manage.py create_user --role` knows."""

    SUBMITTER = "submitter"
    OPERATOR = "operator"


ROLE_GROUPS = {Role.SUBMITTER: "submitters", Role.OPERATOR: "operators"}

# (model, codename) pairs in tasks_app; "view_rotation" is LaneState's own.
ROLE_PERMISSIONS: dict[Role, tuple[tuple[str, str], ...]] = {
    Role.SUBMITTER: (("task", "add_task"),),
    Role.OPERATOR: (
        ("task", "add_task"),
        ("task", "view_task"),
        ("task", "change_task"),
        ("taskevent", "view_taskevent"),
        ("topic", "view_topic"),
        ("topic", "add_topic"),
        ("topic", "change_topic"),
        ("consumergroup", "view_consumergroup"),
        ("consumergroup", "add_consumergroup"),
        ("consumergroup", "change_consumergroup"),
        ("slice", "view_slice"),
        ("lanestate", "view_lanestate"),
        ("lanestate", "view_rotation"),
    ),
}


def roles_ensure(apps: Any = installed_apps) -> None:
    """Create each role's group and grant it its permissions; never remove any.

    Takes an app registry so the data migration can run it on historical models.
    Permissions are created when missing: on a fresh database, migrations run
    before Django's post_migrate signal creates them.
    """
    group_model = apps.get_model("auth", "Group")
    for role, permissions in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=ROLE_GROUPS[role])
        group.permissions.add(
            *(_permission(apps, model, codename) for model, codename in permissions)
        )


def roles_restore(sender: Any, apps: Any = installed_apps, **kwargs: Any) -> None:
    """post_migrate receiver: put back role groups that `flush` emptied.

    `flush` (and a test's reset) deletes the rows the data migration wrote,
    then sends post_migrate, as Django does to recreate permissions. Skipped
    on a database migrated back past the models the roles refer to.
    """
    try:
        for model_name in {m for perms in ROLE_PERMISSIONS.values() for m, _ in perms}:
            apps.get_model(APP_LABEL, model_name)
    except LookupError:
        return
    roles_ensure(apps)


def _permission(apps: Any, model_name: str, codename: str) -> Any:
    """Return the permission, creating it with the name Django would give it."""
    model = apps.get_model(APP_LABEL, model_name)
    content_type, _ = apps.get_model(
        "contenttypes", "ContentType"
    ).objects.get_or_create(app_label=APP_LABEL, model=model_name)
    custom = dict(model._meta.permissions)
    action = codename.split("_", 1)[0]
    name = custom.get(codename, f"Can {action} {model._meta.verbose_name_raw}")
    permission, _ = apps.get_model("auth", "Permission").objects.get_or_create(
        content_type=content_type, codename=codename, defaults={"name": name}
    )
    return permission
