"""Roles: what submitters, operators and users without a role may do, and the
groups, command and admin that manage them."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tasks_app.models import OutboxEntry, Task, TaskStatus
from tasks_app.roles import ROLE_GROUPS, ROLE_PERMISSIONS, Role
from tasks_app.services.tasks import TaskSpec, task_submit
from tasks_app.services.topics import group_default, topic_create
from tests.factories import SliceFactory, UserFactory

pytestmark = pytest.mark.django_db

# Routes every signed-in user may call (links only, or how to sign in).
OPEN_TO_ANY_USER = {"/api/", "/api/auth/token/"}
# Tags of the routes submitters use; every other tag is operators' only.
SUBMITTER_TAGS = {"tasks", "seed"}
# A floor, so the route walks below cannot pass by finding no routes.
MIN_OPERATOR_OPERATIONS = 15


def _operations() -> list[tuple[str, str, set[str]]]:
    """List (method, path, tags) of every operation the schema documents."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (method.upper(), path, set(operation.get("tags", [])))
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]


@pytest.fixture
def objects(topic_name):
    """One of everything a path can name, owned by a third user."""
    owner = UserFactory(role=Role.SUBMITTER)
    task = task_submit(submitted_by=owner, spec=TaskSpec(topic=topic_name, message=1))
    topic = topic_create(name=f"{topic_name}-x")
    return {
        "id": str(task.uuid),
        "name": topic.name,
        "group_id": group_default().group_id,
        "slice": SliceFactory(topic=topic).id,
    }


def _call(client: APIClient, method: str, path: str, objects: dict) -> int:
    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name == "id" and path.startswith("/api/slices/"):
            return str(objects["slice"])
        return str(objects[name])

    url = re.sub(r"\{(\w+)\}", fill, path)
    return client.generic(
        method, url, "{}", content_type="application/json"
    ).status_code


def test_a_submitter_gets_403_on_every_operator_route(submitter_client, objects):
    operator_only = [
        (method, path)
        for method, path, tags in _operations()
        if not tags & SUBMITTER_TAGS and path not in OPEN_TO_ANY_USER
    ]

    answers = {
        (method, path): _call(submitter_client, method, path, objects)
        for method, path in operator_only
    }

    assert len(operator_only) >= MIN_OPERATOR_OPERATIONS
    assert {route: code for route, code in answers.items() if code != 403} == {}


def test_a_user_without_a_role_gets_403_on_every_route(client_for, nobody, objects):
    client = client_for(nobody)
    routes = [
        (method, path)
        for method, path, _ in _operations()
        if path not in OPEN_TO_ANY_USER
    ]

    answers = {route: _call(client, *route, objects) for route in routes}

    assert len(routes) >= MIN_OPERATOR_OPERATIONS
    assert {route: code for route, code in answers.items() if code != 403} == {}
    assert client.get("/api/").status_code == 200, "the API root lists links only"


def test_a_submitter_lists_only_their_own_tasks(
    submitter, submitter_client, topic_name
):
    mine = task_submit(
        submitted_by=submitter, spec=TaskSpec(topic=topic_name, message=1)
    )
    task_submit(
        submitted_by=UserFactory(role=Role.SUBMITTER),
        spec=TaskSpec(topic=topic_name, message=2),
    )
    task_submit(submitted_by=None, spec=TaskSpec(topic=topic_name, message=3))

    listed = submitter_client.get("/api/tasks/", {"topic": topic_name}).data

    assert [task["id"] for task in listed["results"]] == [str(mine.uuid)]


@pytest.mark.parametrize(
    ("method", "suffix"), [("get", ""), ("post", "cancel/"), ("post", "retry/")]
)
def test_another_users_task_is_a_404_to_a_submitter_and_stays_as_it_was(
    submitter_client, topic_name, method, suffix
):
    other = UserFactory(role=Role.SUBMITTER)
    task = task_submit(submitted_by=other, spec=TaskSpec(topic=topic_name, message=1))

    response = getattr(submitter_client, method)(f"/api/tasks/{task.uuid}/{suffix}")

    assert response.status_code == 404
    assert response.data["detail"] == f"No task with id {task.uuid}."
    assert Task.objects.get(pk=task.pk).status == TaskStatus.PENDING
    assert OutboxEntry.objects.filter(task=task).exists()


def test_the_seed_list_shows_a_submitter_only_their_own_pending_tasks(
    submitter, submitter_client, topic_name
):
    task_submit(submitted_by=submitter, spec=TaskSpec(topic=topic_name, message="me"))
    task_submit(
        submitted_by=UserFactory(role=Role.SUBMITTER),
        spec=TaskSpec(topic=topic_name, message="them"),
    )

    assert submitter_client.get("/tasks").json() == [
        {"topic": topic_name, "message": "me"}
    ]


def test_an_operator_reads_cancels_and_lists_any_users_task(
    operator_client, topic_name
):
    other = UserFactory(role=Role.SUBMITTER)
    task = task_submit(submitted_by=other, spec=TaskSpec(topic=topic_name, message=1))
    system = task_submit(submitted_by=None, spec=TaskSpec(topic=topic_name, message=2))

    read = operator_client.get(f"/api/tasks/{task.uuid}/")
    cancelled = operator_client.post(f"/api/tasks/{task.uuid}/cancel/")
    listed = operator_client.get("/api/tasks/", {"topic": topic_name}).data

    assert (read.status_code, cancelled.data["status"]) == (200, "cancelled")
    assert {t["id"] for t in listed["results"]} == {str(task.uuid), str(system.uuid)}


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/tasks/", {"topic": "{topic}", "message": 1}),
        ("/api/tasks/", [{"topic": "{topic}", "message": 1}]),
        ("/tasks/generate", {"topic": "{topic}", "message": 1}),
    ],
)
def test_a_submitted_task_is_owned_by_who_submitted_it(
    submitter, submitter_client, topic_name, url, body
):
    filled = (
        [{**item, "topic": topic_name} for item in body]
        if isinstance(body, list)
        else {**body, "topic": topic_name}
    )

    response = submitter_client.post(url, filled, format="json")

    assert response.status_code in (200, 201), response.data
    assert Task.objects.get(topic__name=topic_name).submitted_by == submitter


def test_a_group_granted_a_permission_gets_the_power_whatever_its_name(
    client_for, topic_name
):
    topic_create(name=topic_name)
    editors = Group.objects.create(name="topic-editors")
    editors.permissions.add(
        Permission.objects.get(codename="change_topic"),
        Permission.objects.get(codename="view_topic"),
    )
    user = UserFactory()
    user.groups.add(editors)

    response = client_for(user).patch(
        f"/api/topics/{topic_name}/", {"weight": 4}, format="json"
    )
    refused = client_for(user).post("/api/groups/", {"group_id": "g"}, format="json")

    assert response.status_code == 200, response.data
    assert refused.status_code == 403


def _assert_role_groups_hold_their_permissions() -> None:
    for role, permissions in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=ROLE_GROUPS[role])
        held = set(group.permissions.values_list("codename", flat=True))
        assert held == {codename for _, codename in permissions}


def test_the_migration_created_both_groups_with_their_permissions():
    _assert_role_groups_hold_their_permissions()


@pytest.mark.django_db(transaction=True)
def test_the_role_groups_come_back_after_a_flush():
    # `flush` empties every table, the groups a migration wrote included, and
    # then sends post_migrate, as Django does to recreate permissions.
    call_command("flush", interactive=False, verbosity=0)

    _assert_role_groups_hold_their_permissions()


@pytest.mark.parametrize("role", list(Role))
def test_create_user_prints_a_password_and_a_token_that_work(role, capsys, topic_name):
    call_command("create_user", "alice", "--role", role.value)
    output = capsys.readouterr().out
    password = re.search(r"Password: (\S+)", output).group(1)
    token = re.search(r"API token: (\S+)", output).group(1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    submitted = client.post(
        "/api/tasks/", {"topic": topic_name, "message": 1}, format="json"
    )
    topics = client.get("/api/topics/")

    user = get_user_model().objects.get(username="alice")
    assert user.check_password(password)
    assert Token.objects.get(user=user).key == token
    assert submitted.status_code == 201
    assert topics.status_code == (200 if role == Role.OPERATOR else 403)
    assert user.is_staff == (role == Role.OPERATOR), "operators may use the admin"


def test_create_user_refuses_a_name_that_exists(submitter):
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_user", submitter.username, "--role", "operator")

    submitter.refresh_from_db()
    assert not submitter.is_staff


def test_an_operator_manages_topics_in_the_admin(client, operator, topic_name):
    topic = topic_create(name=topic_name)
    client.force_login(operator)

    page = client.get("/admin/tasks_app/topic/")
    client.post(
        "/admin/tasks_app/topic/",
        {"action": "pause_topics", "_selected_action": [str(topic.pk)]},
    )

    assert page.status_code == 200
    topic.refresh_from_db()
    assert topic.paused


def test_a_submitter_cannot_use_the_admin(client, submitter):
    client.force_login(submitter)

    response = client.get("/admin/tasks_app/task/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_restoring_roles_on_a_database_migrated_back_before_their_models_skips():
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    from tasks_app.roles import roles_restore

    Group.objects.filter(name__in=ROLE_GROUPS.values()).delete()
    # What `migrate tasks_app zero` leaves: auth's models, none of tasks_app's.
    loader = MigrationLoader(connection)
    without_tasks_app = loader.project_state(loader.graph.leaf_nodes("auth"))

    roles_restore(sender=None, apps=without_tasks_app.apps)

    assert not Group.objects.filter(name__in=ROLE_GROUPS.values()).exists()
