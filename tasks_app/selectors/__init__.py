"""Reads that are more than a filter: tasks, slices, live members, system stats.

The windowed reads behind the dashboard live beside: `rotation` (who worked
where, lanes, timeline), `fairness` (shares and Jain's index), `throughput`.
"""

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

import redis
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db.models import QuerySet, Sum, prefetch_related_objects
from django.utils import timezone

from rotation.members import MemberInfo, Members
from tasks_app.errors import NotFound, ServiceUnavailable
from tasks_app.models import (
    EXCEPTIONAL_STATUSES,
    GroupTopic,
    LaneState,
    OutboxEntry,
    PartitionHead,
    Slice,
    Task,
    TaskCount,
    TaskStatus,
    Topic,
)
from tasks_app.redis_client import redis_client
from tasks_app.roles import VIEW_TASK

T = TypeVar("T")
LaneKey = tuple[int, int, int]  # (group pk, topic pk, partition)
PartitionKey = tuple[int, int]  # (topic pk, partition)


def tasks_visible(*, user: User | AnonymousUser) -> QuerySet[Task]:
    """Return the tasks a user may see: every task with `view_task` (operators),
    else the tasks the user submitted. Tasks without an owner are system tasks."""
    tasks = Task.objects.select_related("topic")
    if user.has_perm(VIEW_TASK):
        return tasks
    return tasks.filter(submitted_by=user) if isinstance(user, User) else tasks.none()


def task_list(
    *,
    user: User | AnonymousUser,
    status: str | None = None,
    topic: str | None = None,
    key: str | None = None,
) -> QuerySet[Task]:
    """Return the user's visible tasks matching every filter given."""
    tasks = tasks_visible(user=user)
    if status:
        tasks = tasks_in_status(tasks, status=status)
    if topic:
        tasks = tasks.filter(topic__name=topic)
    if key:
        tasks = tasks.filter(key=key)
    return tasks


def tasks_in_status(tasks: QuerySet[Task], *, status: str) -> QuerySet[Task]:
    """Narrow `tasks` to one status; for a rare status, through its partial indexes
    (Task.exceptional), which a million succeeded tasks do not slow down."""
    tasks = tasks.filter(status=status)
    if status in EXCEPTIONAL_STATUSES:
        tasks = tasks.filter(exceptional=True)
    return tasks


def task_with_events(*, user: User | AnonymousUser, task_id: UUID | str) -> Task:
    """Return a task the user may see, with its transitions loaded, or NotFound.

    A task the user may not see is "not found" too, so its existence is not
    revealed.
    """
    try:
        task = tasks_visible(user=user).get(uuid=task_id)
    except (Task.DoesNotExist, ValueError, ValidationError) as exc:
        raise NotFound(f"No task with id {task_id}.") from exc
    prefetch_related_objects([task], "events")
    return task


def tasks_pending_seed(*, user: User | AnonymousUser) -> list[dict[str, Any]]:
    """List the user's visible unpublished tasks oldest first, as the seed's
    `GET /tasks` did.

    The outbox holds exactly the tasks not yet published, and is small.
    """
    rows = (
        tasks_visible(user=user)
        .filter(pk__in=OutboxEntry.objects.values("task_id"))
        .order_by("id")
        .values_list("topic__name", "message")
    )
    return [{"topic": topic, "message": message} for topic, message in rows]


def topic_by_name(*, name: str) -> Topic:
    """Return the topic called `name`, or NotFound."""
    topic = Topic.objects.filter(name=name).first()
    if topic is None:
        raise NotFound(f"No topic named {name!r}.", field="topic")
    return topic


def slice_list(
    *,
    topic: str | None = None,
    group: str | None = None,
    member: str | None = None,
    end_reason: str | None = None,
    partition: int | None = None,
) -> QuerySet[Slice]:
    """Return recorded slices matching every filter given, with lane names joined."""
    filters = {
        "topic__name": topic,
        "group__group_id": group,
        "member": member,
        "end_reason": end_reason,
        "partition": partition,
    }
    return Slice.objects.select_related("group", "topic").filter(
        **{name: value for name, value in filters.items() if value is not None}
    )


def redis_read(read: Callable[[], T], *, what: str) -> T:
    """Run a Redis read; a lost Redis becomes a 503 that names it and what to do."""
    try:
        return read()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise ServiceUnavailable.down(
            "redis", so=f"the live {what} cannot be read"
        ) from exc


def members_reader() -> Members:
    """Read the rotation's members from Redis, where their heartbeats go."""
    return Members(redis_client(), heartbeat_s=settings.SCHEDULER_HEARTBEAT_S)


def member_list() -> list[MemberInfo]:
    """List the live rotation members (those that beat recently), by name."""
    return redis_read(members_reader().describe, what="members")


@dataclass(frozen=True)
class TaskCounts:
    """How many tasks are in each status; every status is present, zeros too."""

    by_status: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


@dataclass(frozen=True)
class TopicStats:
    """One topic's task counts."""

    topic: str
    paused: bool
    tasks: TaskCounts


@dataclass(frozen=True)
class LaneStats:
    """Where one lane (group, topic, partition) stands against its log's end."""

    group: str
    topic: str
    partition: int
    next_offset: int
    end_offset: int
    paused: bool

    @property
    def lag(self) -> int:
        """Messages published to the lane's partition that the group has not run."""
        return self.end_offset - self.next_offset


@dataclass(frozen=True)
class StatsOverview:
    """The whole system at a glance: tasks, outbox backlog, lanes, members."""

    tasks: TaskCounts
    topics: list[TopicStats]
    outbox_due: int
    lanes: list[LaneStats]
    members: int


def _task_counts(found: Mapping[str, int]) -> TaskCounts:
    return TaskCounts({status: found.get(status, 0) for status in TaskStatus.values})


def _topics_by_pk() -> dict[int, dict[str, Any]]:
    """Map each topic's pk to the fields the lane summaries need, by name."""
    rows = Topic.objects.order_by("name").values("id", "name", "paused", "partitions")
    return {row["id"]: dict(row) for row in rows}


def lane_stats() -> list[LaneStats]:
    """List every lane with its resume point, log end and paused flag (3 queries)."""
    return _lane_stats(_topics_by_pk())


def stats_overview() -> StatsOverview:
    """Summarise the system in six queries and one Redis read, whatever its size."""
    topics = _topics_by_pk()
    per_topic, overall = task_counts_by_topic()
    return StatsOverview(
        tasks=_task_counts(overall),
        topics=[
            TopicStats(
                topic=row["name"],
                paused=row["paused"],
                tasks=_task_counts(per_topic[pk]),
            )
            for pk, row in topics.items()
        ],
        outbox_due=OutboxEntry.objects.filter(available_at__lte=timezone.now()).count(),
        lanes=_lane_stats(topics),
        members=len(redis_read(members_reader().live, what="members")),
    )


def task_counts_by_topic() -> tuple[dict[int, dict[str, int]], dict[str, int]]:
    """Return task counts per topic and status, and per status overall, from the
    counts PostgreSQL keeps (TaskCount): a few rows, however many tasks."""
    per_topic: dict[int, dict[str, int]] = defaultdict(dict)
    overall: dict[str, int] = defaultdict(int)
    rows = TaskCount.objects.order_by().values("topic_id", "status")
    for row in rows.annotate(total=Sum("count")):
        per_topic[row["topic_id"]][row["status"]] = row["total"]
        overall[row["status"]] += row["total"]
    return per_topic, overall


def _lane_stats(topics: Mapping[int, Mapping[str, Any]]) -> list[LaneStats]:
    """List every partition of every group's topics, sorted by group, topic, partition.

    A lane no slice has claimed yet has no LaneState row and resumes at 0.
    """
    pairs = GroupTopic.objects.order_by("group__group_id", "topic__name").values_list(
        "group_id", "group__group_id", "topic_id"
    )
    resume, ends = _lane_offsets()
    return [
        LaneStats(
            group=group_name,
            topic=topics[topic_pk]["name"],
            partition=partition,
            next_offset=resume.get((int(group_pk), topic_pk, partition), 0),
            end_offset=ends.get((topic_pk, partition), 0),
            paused=topics[topic_pk]["paused"],
        )
        for group_pk, group_name, topic_pk in pairs
        for partition in range(topics[topic_pk]["partitions"])
    ]


def _lane_offsets() -> tuple[dict[LaneKey, int], dict[PartitionKey, int]]:
    """Map each lane to its next_offset and each partition to its end offset."""
    resume = LaneState.objects.values_list(
        "group_id", "topic_id", "partition", "next_offset"
    )
    ends = PartitionHead.objects.values_list("topic_id", "partition", "end_offset")
    return (
        {
            (group, topic, partition): offset
            for group, topic, partition, offset in resume
        },
        {(topic, partition): offset for topic, partition, offset in ends},
    )
