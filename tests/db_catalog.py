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


def _fresh_count(query: str, parameters: list[str]) -> int:
    """Run a one-number query on the statistics views, read afresh (a
    transaction reads them once unless told to read them again)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(query, parameters)
        return int(cursor.fetchone()[0])


def waiting_for_a_lock(statement_start: str = "") -> bool:
    """Tell whether a connection to this database waits for a lock (in a
    statement that starts with `statement_start`, if given)."""
    waiting = _fresh_count(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND datname = current_database() AND query LIKE %s",
        [statement_start + "%"],
    )
    return waiting > 0


def vacuums_so_far(model: type[models.Model]) -> int:
    """How many times the model's table was VACUUMed (by hand) so far."""
    return _fresh_count(
        "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = %s::regclass",
        [model._meta.db_table],
    )


def rows_read_so_far(model: type[models.Model]) -> int:
    """Index entries and rows the scans of the model's table read so far, this
    connection's own scans included."""
    with connection.cursor() as cursor:
        # Sent to the shared statistics when this statement ends.
        cursor.execute("SELECT pg_stat_force_next_flush()")
    return _fresh_count(
        "SELECT coalesce(sum(i.idx_tup_read), 0) + max(t.seq_tup_read) "
        "FROM pg_stat_user_tables t "
        "LEFT JOIN pg_stat_user_indexes i ON i.relid = t.relid "
        "WHERE t.relid = %s::regclass",
        [model._meta.db_table],
    )
