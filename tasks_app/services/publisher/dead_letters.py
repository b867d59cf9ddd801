"""Produce recorded dead letters to each topic's `<topic>.dlq`, then forget them.

A lane records a task `dead` and its dead letter in one fenced transaction and
never talks to Kafka while it holds the lane's row; the publisher sends the
letters afterwards, in batches, exactly like tasks: taken, produced, and
deleted only when Kafka confirmed them all.
"""

import logging
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction

from rotation.producer import BatchProducer, OutgoingMessage
from tasks_app.models import DeadLetter
from tasks_app.models.topic import dead_letter_topic_for
from tasks_app.services.publisher.batch import CONTENT_TYPE, topics_check_ready

logger = logging.getLogger(__name__)

TAKE_SQL = """
DELETE FROM tasks_app_deadletter
 WHERE id = ANY(ARRAY(
       SELECT id FROM tasks_app_deadletter ORDER BY id LIMIT %s
          FOR UPDATE SKIP LOCKED))
RETURNING (SELECT uuid::text FROM tasks_app_task t WHERE t.id = task_id),
          (SELECT name FROM tasks_app_topic t WHERE t.id = topic_id),
          key, envelope, error
"""


class Letter(NamedTuple):
    """One taken dead letter."""

    task_uuid: str
    topic: str
    key: str
    envelope: str
    error: str

    def message(self) -> OutgoingMessage:
        """Build the record for `<topic>.dlq`, with the task id and the error."""
        headers = [
            ("task_id", self.task_uuid),
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
                cursor.execute(TAKE_SQL, [settings.SCHEDULER_PUBLISH_BATCH])
                letters = [Letter(*row) for row in cursor.fetchall()]
            topics_check_ready(names={letter.topic for letter in letters})
            producer.produce_batch([letter.message() for letter in letters])
        sent += len(letters)
        logger.info("Sent %d dead letters to their topics' .dlq", len(letters))
    return sent
