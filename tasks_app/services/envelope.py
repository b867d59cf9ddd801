"""What a task looks like in Kafka: its envelope, its headers, the healing marker.

The publisher and a healing lane write records; a lane's slice reads them back.
Both sides use this module, so the format is written down once.
"""

import json
import logging
import uuid
from typing import Any

from rotation.kafka.consumer import Record
from rotation.kafka.producer import Headers, OutgoingMessage
from tasks_app.models import Task
from tasks_app.services.json_text import compact_json

logger = logging.getLogger(__name__)

CONTENT_TYPE = b"application/json"
TASK_ID_HEADER = "task_id"
# The header of the record that opens a healed log (tasks_app.services.healing);
# readers pass over it.
MARKER_HEADER = "scheduler-marker"


def task_envelope(*, task: Task, topic_name: str) -> str:
    """Build the JSON envelope produced to Kafka; it carries the task id so a
    consumer can skip a task that already finished."""
    return compact_json(envelope_fields(task=task, topic_name=topic_name))


def envelope_fields(*, task: Task, topic_name: str) -> dict[str, Any]:
    """The envelope before encoding, for a caller encoding many at once: the
    compact encoding of this is, to the byte, what task_envelope gives."""
    return {
        "task_id": str(task.uuid),
        "topic": topic_name,
        "key": task.key,
        "message": task.message,
        "attempt": task.attempts + 1,
        "submitted_at": task.created_at.isoformat(),
    }


def task_record(
    *, topic: str, key: str, envelope: str, task_uuid: str, partition: int
) -> OutgoingMessage:
    """Build a task's Kafka record: the envelope, keyed, with the id header."""
    headers: Headers = [(TASK_ID_HEADER, task_uuid), ("content-type", CONTENT_TYPE)]
    return OutgoingMessage(topic, key, envelope, headers, partition)


def marker_record(*, topic: str, partition: int) -> OutgoingMessage:
    """Build the record that opens a healed log; its offset shows where it starts."""
    return OutgoingMessage(topic, "", b"", [(MARKER_HEADER, "healed")], partition)


def task_id_of(record: Record) -> str | None:
    """Return the record's task id, from its headers or else its envelope.

    Anything else on the topic (a healing marker, another producer's message, a
    malformed header) gives None, the unexpected ones with a log line: they are
    passed over and must never wedge a lane.
    """
    if MARKER_HEADER in record.headers:
        return None
    raw: Any = record.headers.get(TASK_ID_HEADER)
    if raw is None:
        try:
            raw = json.loads(record.value)["task_id"]
        except (ValueError, KeyError, TypeError):
            raw = None
    try:
        return str(uuid.UUID(raw.decode() if isinstance(raw, bytes) else raw))
    except (ValueError, TypeError, AttributeError):  # UnicodeDecodeError included
        logger.warning(
            "Message at %s/%d/%d carries no valid task id (%r); skipping it",
            record.topic,
            record.partition,
            record.offset,
            raw if raw is None else raw[:64],
        )
        return None
