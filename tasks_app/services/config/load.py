"""Read the scheduler config file and check it whole before anything is applied."""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from tasks_app.models import ConsumerGroup, Topic, WalkMode
from tasks_app.services.config.source import ConfigError, Source, Table

# The TOML type each key must have; true/false is never taken for an integer.
POLICY_TYPES: dict[str, type] = {
    "partitions": int,
    "slice_ms": int,
    "weight": int,
    "handler": str,
    "max_attempts": int,
    "retry_backoff_ms": int,
    "paused": bool,
}
TOPIC_TYPES: dict[str, type] = {"name": str, **POLICY_TYPES}
GROUP_TYPES: dict[str, type] = {"group_id": str, "topics": list, "walk_mode": str}
TOP_LEVEL_TYPES: dict[str, type] = {"defaults": dict, "topics": list, "groups": list}
_TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
}


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


def config_load(*, path: Path) -> SchedulerConfig:
    """Read and check the whole file, so a mistake is reported before any change."""
    try:
        source = Source(path, path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the scheduler config: {exc}") from exc
    data = source.parse()
    _top_level_check(source, data)
    defaults = _defaults_check(source, data.get("defaults", {}))
    topics = [
        _topic_check(_table(source, "[[topics]]", i), raw, defaults)
        for i, raw in enumerate(data.get("topics", []))
    ]
    _unique_check(source, "[[topics]]", [decl.name for decl in topics])
    declared = {decl.name for decl in topics}
    groups = [
        _group_check(_table(source, "[[groups]]", i), raw, declared)
        for i, raw in enumerate(data.get("groups", []))
    ]
    _unique_check(source, "[[groups]]", [decl.group_id for decl in groups])
    _one_group_per_topic_check(source, groups)
    return SchedulerConfig(path=path, topics=tuple(topics), groups=tuple(groups))


def _top_level_check(source: Source, data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        expected = TOP_LEVEL_TYPES.get(key)
        if expected is None:
            raise source.error(source.top_line(key), _unknown_key(key, TOP_LEVEL_TYPES))
        tables = not isinstance(value, list) or all(isinstance(v, dict) for v in value)
        if not isinstance(value, expected) or not tables:
            shape = "a [defaults] table" if key == "defaults" else f"[[{key}]] tables"
            raise source.error(source.top_line(key), f"{key!r} must be {shape}")


def _unknown_key(key: str, allowed: Mapping[str, type]) -> str:
    return f"unknown key {key!r}; allowed keys: {', '.join(sorted(allowed))}"


def _types_check(
    table: Table, raw: Mapping[str, Any], types: Mapping[str, type]
) -> None:
    """Refuse unknown keys and values of the wrong TOML type."""
    for key, value in raw.items():
        expected = types.get(key)
        if expected is None:
            raise table.error(key, _unknown_key(key, types))
        if not isinstance(value, expected) or (
            expected is int and isinstance(value, bool)
        ):
            got = _TYPE_NAMES.get(type(value), type(value).__name__)
            wanted = _TYPE_NAMES[expected]
            raise table.error(key, f"{key!r} must be {wanted}, not {got}")


def _fields_check(table: Table, instance: models.Model) -> None:
    """Apply the model's own field rules, so the file accepts what the API accepts."""
    try:
        instance.clean_fields()
    except ValidationError as exc:
        key, messages = next(iter(exc.message_dict.items()))
        raise table.error(key, f"{key!r}: {' '.join(messages)}") from exc


def _table(source: Source, header: str, index: int) -> Table:
    return Table(source, header, index, f"{header} table #{index + 1}")


def _named(table: Table, kind: str, name: Any) -> Table:
    """Name a table by its topic or group once it has one, as a reader would."""
    return replace(table, label=f"{kind} {name!r}") if isinstance(name, str) else table


def _defaults_check(source: Source, raw: dict[str, Any]) -> dict[str, Any]:
    table = Table(source, "[defaults]", 0, "[defaults]")
    _types_check(table, raw, POLICY_TYPES)
    _fields_check(table, Topic(name="defaults", **raw))
    return raw


def _topic_check(
    table: Table, raw: dict[str, Any], defaults: dict[str, Any]
) -> TopicDecl:
    table = _named(table, "topic", raw.get("name"))
    _types_check(table, raw, TOPIC_TYPES)
    if "name" not in raw:
        raise table.error(None, "the 'name' key is missing")
    policy = {**defaults, **{k: v for k, v in raw.items() if k != "name"}}
    _fields_check(table, Topic(name=raw["name"], **policy))
    return TopicDecl(name=raw["name"], policy=policy)


def _group_check(table: Table, raw: dict[str, Any], declared: set[str]) -> GroupDecl:
    table = _named(table, "group", raw.get("group_id"))
    _types_check(table, raw, GROUP_TYPES)
    if "group_id" not in raw:
        raise table.error(None, "the 'group_id' key is missing")
    walk_mode = raw.get("walk_mode")
    if walk_mode is not None and walk_mode not in WalkMode.values:
        choices = " or ".join(map(repr, WalkMode.values))
        raise table.error(
            "walk_mode", f"'walk_mode' must be {choices}, not {walk_mode!r}"
        )
    _fields_check(table, ConsumerGroup(group_id=raw["group_id"]))
    names = raw.get("topics", [])
    for name in names:
        if not isinstance(name, str):
            raise table.error("topics", "'topics' must list topic names as strings")
        if name not in declared:
            raise table.error(
                "topics",
                f"'topics' names {name!r}, which no [[topics]] table declares; "
                "declare it or remove it from the list",
            )
    return GroupDecl(group_id=raw["group_id"], topics=tuple(names), walk_mode=walk_mode)


def _one_group_per_topic_check(source: Source, groups: list[GroupDecl]) -> None:
    """Refuse a topic two groups declare: a topic belongs to exactly one group."""
    owner: dict[str, str] = {}
    for index, decl in enumerate(groups):
        for name in decl.topics:
            if name in owner:
                table = Table(source, "[[groups]]", index, f"group {decl.group_id!r}")
                raise table.error(
                    "topics",
                    f"'topics' names {name!r}, which group {owner[name]!r} consumes "
                    "already; a topic belongs to exactly one group",
                )
            owner[name] = decl.group_id


def _unique_check(source: Source, header: str, names: list[str]) -> None:
    """Refuse a name declared twice: which of the two should win is not obvious."""
    kind, key = ("topic", "name") if header == "[[topics]]" else ("group", "group_id")
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            table = Table(source, header, index, f"{kind} {name!r}")
            raise table.error(key, f"declared twice (table #{index + 1})")
        seen.add(name)
