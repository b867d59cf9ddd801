"""Topic and consumer-group writes, keeping Kafka's topics in step with the rows."""

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from rotation.kafka_admin import ensure_topics, grow_partitions
from tasks_app.errors import Conflict, InvalidInput, NotFound
from tasks_app.models import ConsumerGroup, Topic, WalkMode
from tasks_app.services.lanes import lanes_kick
from tasks_app.validators import KAFKA_TOPIC_RULE, validate_kafka_topic_name

TOPIC_POLICY_FIELDS = (
    "partitions",
    "slice_ms",
    "weight",
    "handler",
    "max_attempts",
    "retry_backoff_ms",
    "paused",
)


def _validated(instance: Topic | ConsumerGroup) -> None:
    """Run model validation and turn it into an InvalidInput naming the field."""
    try:
        instance.full_clean(validate_unique=False)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise InvalidInput(f"{field}: {' '.join(messages)}", field=field) from exc


def topic_create(*, name: str, **policy: Any) -> Topic:
    """Create a topic row and its Kafka topic (and dead-letter topic).

    Kafka failures do not undo the row: the reason is stored in `kafka_error`
    and creation is retried by `topic_sync_kafka` (the publisher does so too).
    """
    unknown = set(policy) - set(TOPIC_POLICY_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown topic fields: {', '.join(sorted(unknown))}")
    if Topic.objects.filter(name=name).exists():
        raise Conflict(f"Topic {name!r} already exists.", field="name")
    topic = Topic(name=name, **policy)
    _validated(topic)
    topic.save()
    topic_sync_kafka(topics=[topic])
    _default_group_add(topics=[topic])
    return topic


def topic_update(*, topic: Topic, **changes: Any) -> Topic:
    """Change a topic's policy; the name and the partition count cannot shrink."""
    if "name" in changes and changes.pop("name") != topic.name:
        raise Conflict("A topic cannot be renamed; create a new one.", field="name")
    if changes.get("partitions", topic.partitions) < topic.partitions:
        raise Conflict(
            f"Kafka cannot reduce a topic's partitions (it has {topic.partitions}); "
            "create a new topic.",
            field="partitions",
        )
    for field, value in changes.items():
        if field not in TOPIC_POLICY_FIELDS:
            raise InvalidInput(f"Unknown topic field {field!r}.", field=field)
        setattr(topic, field, value)
    grown = topic.partitions > Topic.objects.get(pk=topic.pk).partitions
    _validated(topic)
    topic.save()
    if grown:
        topic_sync_kafka(topics=[topic])
    return topic


def topic_set_paused(*, topic: Topic, paused: bool) -> Topic:
    """Pause (no more turns) or resume a topic's lanes; resumed lanes start at once."""
    Topic.objects.filter(pk=topic.pk).update(paused=paused)
    topic.paused = paused
    if not paused:
        transaction.on_commit(lambda: lanes_kick(topics=[topic.name]))
    return topic


def topics_get_or_create(
    *, names: Iterable[str]
) -> tuple[dict[str, Topic], list[Topic]]:
    """Return topics by name, creating missing ones when auto-create is on.

    Returns `(topics_by_name, created)`. Concurrent creators are safe: rows are
    inserted with ON CONFLICT DO NOTHING and read back.
    """
    wanted = sorted(set(names))
    for name in wanted:
        try:
            validate_kafka_topic_name(name)
        except ValidationError as exc:
            raise InvalidInput(exc.messages[0], field="topic") from exc
    found = {t.name: t for t in Topic.objects.filter(name__in=wanted)}
    missing = [name for name in wanted if name not in found]
    if missing and not settings.SCHEDULER_AUTO_CREATE_TOPICS:
        raise InvalidInput(
            f"Topic {missing[0]!r} does not exist and automatic topic creation is "
            f"off. Create it first with POST /api/topics/ "
            f'{{"name": "{missing[0]}"}} (or in the admin), or set '
            "SCHEDULER_AUTO_CREATE_TOPICS=1.",
            field="topic",
        )
    Topic.objects.bulk_create([Topic(name=n) for n in missing], ignore_conflicts=True)
    created = list(Topic.objects.filter(name__in=missing))
    found.update((t.name, t) for t in created)
    return found, created


def topic_sync_kafka(*, topics: Iterable[Topic]) -> dict[str, str]:
    """Make sure each topic and its dead-letter topic exist in Kafka.

    Store the broker's reason on each topic that failed (and clear it on the
    ones that worked); return the failures by topic name.
    """
    topics = list(topics)
    wanted = {t.name: t.partitions for t in topics}
    wanted.update({t.dead_letter_topic: 1 for t in topics})
    errors = ensure_topics(settings.KAFKA_BOOTSTRAP_SERVERS, wanted)
    grow = {t.name: t.partitions for t in topics if t.partitions > 1}
    grow = {name: count for name, count in grow.items() if name not in errors}
    errors.update(grow_partitions(settings.KAFKA_BOOTSTRAP_SERVERS, grow))
    for topic in topics:
        reason = errors.get(topic.name) or errors.get(topic.dead_letter_topic, "")
        if reason != topic.kafka_error:
            Topic.objects.filter(pk=topic.pk).update(kafka_error=reason)
            topic.kafka_error = reason
    return {t.name: t.kafka_error for t in topics if t.kafka_error}


def group_default() -> ConsumerGroup:
    """Return the default consumer group, creating it on first use."""
    group, _ = ConsumerGroup.objects.get_or_create(
        group_id=settings.SCHEDULER_DEFAULT_GROUP
    )
    return group


def _default_group_add(*, topics: Iterable[Topic]) -> None:
    """Let the default group consume new topics, so tasks run without set-up."""
    group_default().topics.add(*topics)


def topics_created_after_commit(*, topics: list[Topic]) -> None:
    """Finish auto-created topics once their transaction commits."""
    if topics:
        transaction.on_commit(lambda: _finish_auto_created(topics))


def _finish_auto_created(topics: list[Topic]) -> None:
    topic_sync_kafka(topics=topics)
    _default_group_add(topics=topics)


def group_create(
    *,
    group_id: str,
    topic_names: Iterable[str] = (),
    walk_mode: str | None = None,
) -> ConsumerGroup:
    """Create a consumer group over existing topics (parallel walk by default)."""
    if ConsumerGroup.objects.filter(group_id=group_id).exists():
        raise Conflict(f"Group {group_id!r} already exists.", field="group_id")
    group = ConsumerGroup(group_id=group_id, walk_mode=walk_mode or WalkMode.PARALLEL)
    _validated(group)
    topics = _existing_topics(topic_names)
    with transaction.atomic():
        group.save()
        group.topics.set(topics)
    return group


def group_update(
    *,
    group: ConsumerGroup,
    group_id: str | None = None,
    topic_names: Iterable[str] | None = None,
    walk_mode: str | None = None,
) -> ConsumerGroup:
    """Change a group's topics or walk mode; its id may be repeated, not changed."""
    if group_id is not None and group_id != group.group_id:
        raise Conflict(
            "A group cannot be renamed (Kafka keeps its offsets under the old id); "
            "create a new group.",
            field="group_id",
        )
    if walk_mode is not None:
        group.walk_mode = walk_mode
        _validated(group)
        group.save(update_fields=["walk_mode"])
    if topic_names is not None:
        group.topics.set(_existing_topics(topic_names))
    return group


def _existing_topics(names: Iterable[str]) -> list[Topic]:
    names = list(names)
    topics = list(Topic.objects.filter(name__in=names))
    missing = sorted(set(names) - {t.name for t in topics})
    if missing:
        raise NotFound(
            f"Unknown topics: {', '.join(missing)}. Create them first. "
            f"{KAFKA_TOPIC_RULE}",
            field="topics",
        )
    return topics
