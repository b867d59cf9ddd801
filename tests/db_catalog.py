"""What PostgreSQL's catalog and activity views say about the project's tables
and the connections to its database."""

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


def waiting_for_a_lock(statement_start: str = "") -> bool:
    """Tell whether a connection to this database waits for a lock (in a
    statement that starts with `statement_start`, if given)."""
    with connection.cursor() as cursor:
        # A transaction reads the activity once unless told to read it again.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND query LIKE %s",
            [statement_start + "%"],
        )
        return cursor.fetchone()[0] > 0
