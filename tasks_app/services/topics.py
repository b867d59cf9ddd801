"""Topic and consumer-group writes, keeping Kafka's topics in step with the rows."""

import logging
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from rotation.kafka.admin import (
    KEEP_FOREVER,
    ensure_topics,
    grow_partitions,
    topic_ids,
)
from tasks_app.errors import Conflict, InvalidInput, NotFound
from tasks_app.models import ConsumerGroup, GroupTopic, Topic, WalkMode
from tasks_app.services.background import LANES_KICK, task_send
from tasks_app.services.growth import partitions_grow
from tasks_app.services.partition_heads import partition_lost
from tasks_app.validators import KAFKA_TOPIC_RULE, validate_kafka_topic_name

logger = logging.getLogger(__name__)


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
    unknown = set(policy) - set(Topic.POLICY_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown topic fields: {', '.join(sorted(unknown))}")
    if Topic.objects.filter(name=name).exists():
        raise Conflict(f"Topic {name!r} already exists.", field="name")
    topic = Topic(name=name, **policy)
    _validated(topic)
    with transaction.atomic():
        topic.save()
        _default_group_add(topics=[topic])
    topic_sync_kafka(topics=[topic])
    return topic


def topic_update(*, topic: Topic, **changes: Any) -> Topic:
    """Change a topic's policy; the name cannot change and partitions only grow
    (see `topic_partitions_check` and tasks_app.services.growth)."""
    if "name" in changes and changes.pop("name") != topic.name:
        raise Conflict("A topic cannot be renamed; create a new one.", field="name")
    topic_partitions_check(topic=topic, partitions=changes.get("partitions"))
    for field, value in changes.items():
        if field not in Topic.POLICY_FIELDS:
            raise InvalidInput(f"Unknown topic field {field!r}.", field=field)
        setattr(topic, field, value)
    _validated(topic)
    old = Topic.objects.get(pk=topic.pk)
    if topic.partitions > old.partitions:
        partitions_grow(topic=topic, old=old)
    else:
        topic.save()
    return topic


def topic_partitions_check(*, topic: Topic, partitions: int | None) -> None:
    """Refuse fewer partitions than `topic` has (None: no change): Kafka cannot
    remove partitions. The admin form and config apply ask here first."""
    if partitions is not None and partitions < topic.partitions:
        raise Conflict(
            f"Kafka cannot reduce a topic's partitions (it has {topic.partitions}); "
            "create a new topic.",
            field="partitions",
        )


def topic_set_paused(*, topic: Topic, paused: bool) -> Topic:
    """Pause (no more turns) or resume a topic's lanes; resumed lanes start at once."""
    Topic.objects.filter(pk=topic.pk).update(paused=paused)
    topic.paused = paused
    if not paused:
        transaction.on_commit(
            lambda: task_send(
                LANES_KICK, [topic.name], instead="the watchdog starts its lanes"
            )
        )
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
    _default_group_add(topics=created)
    found.update((t.name, t) for t in created)
    return found, created


def topic_sync_kafka(*, topics: Iterable[Topic]) -> dict[str, str]:
    """Make sure each topic and its dead-letter topic exist in Kafka, the task
    topic with a retention that never deletes unfinished work (KEEP_FOREVER).

    Store the broker's reason on each topic that failed (and clear it on the
    ones that worked), and each topic's Kafka id (see `_topic_ids_record`);
    return the failures by topic name.
    """
    topics = list(topics)
    wanted = {t.name: t.partitions for t in topics}
    wanted.update({t.dead_letter_topic: 1 for t in topics})
    configs = {t.name: KEEP_FOREVER for t in topics}
    errors = ensure_topics(settings.KAFKA_BOOTSTRAP_SERVERS, wanted, configs)
    grow = {t.name: t.partitions for t in topics if t.partitions > 1}
    grow = {name: count for name, count in grow.items() if name not in errors}
    errors.update(grow_partitions(settings.KAFKA_BOOTSTRAP_SERVERS, grow))
    for topic in topics:
        reason = errors.get(topic.name) or errors.get(topic.dead_letter_topic, "")
        if reason != topic.kafka_error:
            Topic.objects.filter(pk=topic.pk).update(kafka_error=reason)
            topic.kafka_error = reason
    _topic_ids_record([t for t in topics if not t.kafka_error])
    return {t.name: t.kafka_error for t in topics if t.kafka_error}


def _topic_ids_record(topics: list[Topic]) -> None:
    """Store each topic's Kafka id; flag the partitions of a re-created one lost.

    A topic deleted and created again gets a new id: the messages it held are
    gone, so its lanes must heal before they run anything.
    """
    try:
        ids = topic_ids(settings.KAFKA_BOOTSTRAP_SERVERS, [t.name for t in topics])
    except KafkaException as exc:
        logger.warning("Could not read topic ids from Kafka (%s); later, then", exc)
        return
    for topic in topics:
        current = ids.get(topic.name) or ""
        if not current or current == topic.kafka_topic_id:
            continue
        if topic.kafka_topic_id:
            reason = (
                f"topic {topic.name} was created again in Kafka (its id was "
                f"{topic.kafka_topic_id}, now {current})"
            )
            for partition in range(topic.partitions):
                partition_lost(topic_pk=topic.pk, partition=partition, reason=reason)
        Topic.objects.filter(pk=topic.pk).update(kafka_topic_id=current)
        topic.kafka_topic_id = current


def group_default() -> ConsumerGroup:
    """Return the default consumer group, creating it on first use."""
    group, _ = ConsumerGroup.objects.get_or_create(
        group_id=settings.SCHEDULER_DEFAULT_GROUP
    )
    return group


def _default_group_add(*, topics: Iterable[Topic]) -> None:
    """Let the default group consume new topics, so tasks run without set-up.

    Call in the transaction that creates the topics: a topic is never without
    a group, even for a moment a crash could make permanent.
    """
    default = group_default()
    GroupTopic.objects.bulk_create(
        [GroupTopic(group=default, topic=topic) for topic in topics],
        ignore_conflicts=True,
    )


def topics_created_after_commit(*, topics: list[Topic]) -> None:
    """Create auto-created topics in Kafka once their transaction commits.

    Only a head start: the publisher creates any topic Kafka lacks anyway.
    """
    if topics:
        transaction.on_commit(lambda: topic_sync_kafka(topics=topics))


def group_create(
    *,
    group_id: str,
    topic_names: Iterable[str] = (),
    walk_mode: str | None = None,
) -> ConsumerGroup:
    """Create a consumer group over existing topics (parallel walk by default).

    Its topics move here from the default group; see `group_topics_check`.
    """
    if ConsumerGroup.objects.filter(group_id=group_id).exists():
        raise Conflict(f"Group {group_id!r} already exists.", field="group_id")
    group = ConsumerGroup(group_id=group_id, walk_mode=walk_mode or WalkMode.PARALLEL)
    _validated(group)
    topics = _existing_topics(topic_names)
    with transaction.atomic():
        group.save()
        _group_topics_set(group=group, topics=topics)
    return group


def group_update(
    *,
    group: ConsumerGroup,
    group_id: str | None = None,
    topic_names: Iterable[str] | None = None,
    walk_mode: str | None = None,
) -> ConsumerGroup:
    """Change a group's topics or walk mode; its id may be repeated, not changed.

    Topics it gains move here from the default group; topics it gives up go
    back to the default group; see `group_topics_check`.
    """
    if group_id is not None and group_id != group.group_id:
        raise Conflict(
            "A group cannot be renamed (Kafka keeps its offsets under the old id); "
            "create a new group.",
            field="group_id",
        )
    with transaction.atomic():
        if walk_mode is not None:
            group.walk_mode = walk_mode
            _validated(group)
            group.save(update_fields=["walk_mode"])
        if topic_names is not None:
            _group_topics_set(group=group, topics=_existing_topics(topic_names))
    return group


def group_topics_check(*, group: ConsumerGroup | None, topics: Iterable[Topic]) -> None:
    """Refuse a topic set for `group` (None: a new group) that breaks the rule
    that every topic belongs to exactly one group.

    A task has one status, so two groups consuming one topic would overwrite
    each other's outcomes; a topic in no group would never be consumed. Topics
    may come from the default group, not from another one, and the default
    group cannot give a topic up except to another group.
    """
    default_id = settings.SCHEDULER_DEFAULT_GROUP
    wanted = [topic.pk for topic in topics]
    elsewhere = GroupTopic.objects.filter(topic_id__in=wanted).exclude(
        group__group_id=default_id
    )
    if group is not None and group.pk:
        elsewhere = elsewhere.exclude(group=group)
    for found in elsewhere.select_related("group", "topic").order_by("topic__name"):
        raise InvalidInput(
            f"Topic {found.topic.name!r} belongs to group {found.group.group_id!r}; "
            "a topic belongs to exactly one group (a task has one status). Remove "
            f"it from {found.group.group_id!r} first.",
            field="topics",
        )
    if group is None or group.group_id != default_id:
        return
    dropped = group.topics.exclude(pk__in=wanted).order_by("name")
    names = ", ".join(dropped.values_list("name", flat=True))
    if names:
        raise InvalidInput(
            f"Every topic belongs to a group: to take {names} out of the default "
            "group, move it to another group instead.",
            field="topics",
        )


def _group_topics_set(*, group: ConsumerGroup, topics: list[Topic]) -> None:
    """Make `topics` exactly the group's topics (see `group_update`).

    The topics are locked first, so two requests moving the same topic are
    checked one after the other.
    """
    wanted = {topic.pk for topic in topics}
    list(Topic.objects.select_for_update().filter(pk__in=wanted).order_by("pk"))
    group_topics_check(group=group, topics=topics)
    current = set(group.topics.values_list("pk", flat=True))
    gained, dropped = wanted - current, current - wanted
    GroupTopic.objects.filter(topic_id__in=gained).delete()  # from the default group
    GroupTopic.objects.filter(group=group, topic_id__in=dropped).update(
        group=group_default()
    )
    GroupTopic.objects.bulk_create(
        [GroupTopic(group=group, topic_id=pk) for pk in sorted(gained)]
    )


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
