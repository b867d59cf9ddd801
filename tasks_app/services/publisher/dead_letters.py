"""The dead-letter path: a dead task's envelope, stored, then sent to `<topic>.dlq`.

A lane records a task `dead` and its dead letter in one fenced transaction and
never talks to Kafka while it holds the lane's row; the publisher sends the
letters afterwards, in batches, like tasks: taken, produced, and deleted only
when Kafka confirmed them all.
"""

import logging
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction

from rotation.kafka.producer import BatchProducer, Headers, OutgoingMessage
from tasks_app.models import DeadLetter, Task, Topic
from tasks_app.models.topic import dead_letter_topic_for
from tasks_app.services.envelope import CONTENT_TYPE, TASK_ID_HEADER
from tasks_app.services.publisher.topics_ready import topics_check_ready
from tasks_app.services.sql import sql

logger = logging.getLogger(__name__)

# A dead letter's `error` header carries this much of the error message.
ERROR_CHARS = 1000

_TAKE_SQL = sql(
    """
DELETE FROM {deadletter}
 WHERE id = ANY(ARRAY(
       SELECT id FROM {deadletter} ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED))
RETURNING (SELECT uuid::text FROM {task} t WHERE t.id = task_id),
          (SELECT name FROM {topic} t WHERE t.id = topic_id),
          key, envelope, error
"""
)


def dead_letter_for(
    *, task: Task, topic: Topic, envelope: bytes, error: Exception
) -> DeadLetter:
    """Build the dead letter of a task that just died (saved with its outcome)."""
    return DeadLetter(
        task=task,
        topic=topic,
        key=task.key,
        envelope=envelope.decode(errors="replace"),
        error=str(error)[:ERROR_CHARS],
    )


class _Letter(NamedTuple):
    """One taken dead letter."""

    task_uuid: str
    topic: str
    key: str
    envelope: str
    error: str

    def message(self) -> OutgoingMessage:
        """Build the record for `<topic>.dlq`, with the task id and the error."""
        headers: Headers = [
            (TASK_ID_HEADER, self.task_uuid),
            ("content-type", CONTENT_TYPE),
            ("error", self.error),
        ]
        topic = dead_letter_topic_for(self.topic)
        return OutgoingMessage(topic, self.key, self.envelope, headers)


def dead_letters_publish(*, producer: BatchProducer) -> int:
    """Send waiting dead letters in batches until none is left; return how many.

    Raise ProduceError (the batch stays stored) or TopicsNotReady.
    """
    sent = 0
    while DeadLetter.objects.exists():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_TAKE_SQL, [settings.SCHEDULER_PUBLISH_BATCH])
                letters = [_Letter(*row) for row in cursor.fetchall()]
            topics_check_ready(names={letter.topic for letter in letters})
            producer.produce_batch([letter.message() for letter in letters])
        sent += len(letters)
        logger.info("Sent %d dead letters to their topics' .dlq", len(letters))
    return sent
