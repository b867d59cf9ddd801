"""Apply a checked scheduler config (tasks_app.config_file) idempotently.

The database stays the live truth. Applying creates what is missing and sets only
the keys the file gives: omitted keys, topics added to a group at run time and
partitions above the file's count are left alone, so re-applying at every start
never undoes a change made through the API or the admin.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction

from tasks_app.errors import Conflict
from tasks_app.models import ConsumerGroup, Topic, WalkMode
from tasks_app.services.topics import (
    group_create,
    group_update,
    topic_create,
    topic_partitions_check,
    topic_sync_kafka,
    topic_update,
)


@dataclass(frozen=True)
class TopicDecl:
    """A topic the file declares, with the policy keys it sets (defaults merged)."""

    name: str
    policy: Mapping[str, Any]


@dataclass(frozen=True)
class GroupDecl:
    """A consumer group the file declares; `walk_mode` None leaves it as it is."""

    group_id: str
    topics: tuple[str, ...]
    walk_mode: str | None


@dataclass(frozen=True)
class SchedulerConfig:
    """A checked config file: every value valid, every group topic declared."""

    path: Path
    topics: tuple[TopicDecl, ...]
    groups: tuple[GroupDecl, ...]


@dataclass(frozen=True)
class ConfigChange:
    """What applying did to one topic or group: created, updated or unchanged."""

    kind: str
    name: str
    action: str
    detail: str = ""

    def __str__(self) -> str:
        suffix = f" ({self.detail})" if self.detail else ""
        return f"{self.kind} {self.name}: {self.action}{suffix}"


@dataclass
class ConfigReport:
    """Every change `config_apply` made, and what it could not do."""

    path: Path
    changes: list[ConfigChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Tell whether anything was created or updated."""
        return any(change.action != "unchanged" for change in self.changes)


def config_apply(*, config: SchedulerConfig) -> ConfigReport:
    """Create or update the declared topics and groups; a second run changes nothing.

    Every declared topic is also checked in Kafka, so one whose creation failed
    earlier is created now. Kafka failures are reported, not raised: the row is
    the truth and the publisher retries the creation.
    """
    report = ConfigReport(path=config.path)
    with transaction.atomic():
        topics = [_topic_apply(decl=decl, report=report) for decl in config.topics]
        for group in config.groups:
            _group_apply(decl=group, report=report)
    failures = topic_sync_kafka(topics=topics)
    report.warnings.extend(
        f"topic {name} is not in Kafka yet: {reason}"
        for name, reason in failures.items()
    )
    return report


def _topic_apply(*, decl: TopicDecl, report: ConfigReport) -> Topic:
    topic = Topic.objects.select_for_update().filter(name=decl.name).first()
    if topic is None:
        report.changes.append(ConfigChange("topic", decl.name, "created"))
        return topic_create(name=decl.name, **decl.policy)
    changes = {k: v for k, v in decl.policy.items() if getattr(topic, k) != v}
    try:
        topic_partitions_check(topic=topic, partitions=changes.get("partitions"))
    except Conflict as exc:
        report.warnings.append(
            f"topic {decl.name} keeps {topic.partitions} partitions, not the "
            f"{changes.pop('partitions')} the file asks for: {exc.message}"
        )
    if not changes:
        report.changes.append(ConfigChange("topic", decl.name, "unchanged"))
        return topic
    detail = ", ".join(
        f"{key} {getattr(topic, key)!r} -> {value!r}" for key, value in changes.items()
    )
    report.changes.append(ConfigChange("topic", decl.name, "updated", detail))
    return topic_update(topic=topic, **changes)


def _group_apply(*, decl: GroupDecl, report: ConfigReport) -> None:
    group = ConsumerGroup.objects.filter(group_id=decl.group_id).first()
    if group is None:
        group_create(
            group_id=decl.group_id,
            topic_names=decl.topics,
            walk_mode=decl.walk_mode or str(WalkMode.PARALLEL),
        )
        report.changes.append(ConfigChange("group", decl.group_id, "created"))
        return
    current = set(group.topics.values_list("name", flat=True))
    missing = [name for name in decl.topics if name not in current]
    walk_mode = decl.walk_mode if decl.walk_mode != group.walk_mode else None
    details = [f"adds topics {', '.join(missing)}"] if missing else []
    if walk_mode:
        details.append(f"walk_mode {group.walk_mode!r} -> {walk_mode!r}")
    if not details:
        report.changes.append(ConfigChange("group", decl.group_id, "unchanged"))
        return
    group_update(
        group=group,
        topic_names=sorted(current.union(missing)) if missing else None,
        walk_mode=walk_mode,
    )
    report.changes.append(
        ConfigChange("group", decl.group_id, "updated", "; ".join(details))
    )
