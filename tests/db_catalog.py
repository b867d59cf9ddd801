"""What PostgreSQL's catalog says about the project's tables."""

from django.db import connection, models


def trigger_functions(model: type[models.Model]) -> list[str]:
    """Name the function of each trigger on the model's table (a foreign key's
    check is `RI_FKey_check_ins`)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
            "WHERE t.tgrelid = %s::regclass",
            [model._meta.db_table],
        )
        return [name for (name,) in cursor.fetchall()]
