"""PostgreSQL plans a statement the pipeline repeats once per session, not at
every call: parameters are bound on the server and psycopg prepares a statement
from its sixth use (DATABASE_PREPARED_STATEMENTS turns that off for poolers
that cannot keep prepared statements)."""

from django.db import connection

from tasks_app.models import Task

from .test_deploy_settings import DOT_ENV, PRODUCTION_URLS, _manage


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_a_statement_repeated_in_a_session_is_prepared(db):
    for pk in range(10):
        list(Task.objects.filter(pk=pk).values_list("uuid", flat=True))

    prepared = _prepared_statements()

    assert any('FROM "tasks_app_task"' in statement for statement in prepared), prepared


def test_prepared_statements_can_be_turned_off_for_a_transaction_pooler():
    env = {"SECRET_KEY": DOT_ENV["SECRET_KEY"], **PRODUCTION_URLS}
    show = (
        "from django.conf import settings; "
        "print(settings.DATABASES['default']['OPTIONS'].get('prepare_threshold'))"
    )

    default = _manage("shell", "--no-imports", "-c", show, env=env)
    off = _manage(
        "shell",
        "--no-imports",
        "-c",
        show,
        env={**env, "DATABASE_PREPARED_STATEMENTS": "0"},
    )

    assert default.stdout.strip() == "5", default.stderr
    assert off.stdout.strip() == "None", off.stderr
