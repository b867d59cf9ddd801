"""Move due tasks from the outbox to Kafka in order, one active publisher at a time."""

from tasks_app.services.publisher.batch import publish_batch
from tasks_app.services.publisher.run import publish_pending_run
from tasks_app.services.publisher_lock import PUBLISHER_LOCK_KEY

__all__ = ["PUBLISHER_LOCK_KEY", "publish_batch", "publish_pending_run"]
