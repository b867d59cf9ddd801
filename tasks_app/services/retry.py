"""The retry policy: when a failed task's next attempt is due, and when it is dead.

Pure functions of a task's recorded state and its topic's policy, so the rule
reads in one place and is tested without a lane.
"""

from datetime import datetime, timedelta


def retry_backoff(*, attempts: int, backoff_ms: int) -> timedelta:
    """Wait before attempt `attempts + 1`: `backoff_ms`, doubled per attempt made."""
    return timedelta(milliseconds=backoff_ms * 2 ** max(attempts - 1, 0))


def retry_due_in_s(
    *, failed_at: datetime | None, attempts: int, backoff_ms: int, now: datetime
) -> float:
    """Seconds until a failed task's next attempt (0 or less: due now)."""
    if failed_at is None:
        return 0.0
    due = failed_at + retry_backoff(attempts=attempts, backoff_ms=backoff_ms)
    return (due - now).total_seconds()


def retry_exhausted(*, attempts: int, max_attempts: int) -> bool:
    """Tell whether a task that just failed is dead: no attempt is left."""
    return attempts >= max_attempts
