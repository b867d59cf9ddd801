"""Read the scheduler config file and check it whole before anything is applied.

Each table is checked by the API's own serializers, so the file accepts exactly
what the API accepts (and TOML's types as strictly as JSON's). Only the words
are the file's: keys and TOML types, at the file's line.
"""

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from rest_framework import serializers

from tasks_app.api.serializers import GroupSerializer, TopicSerializer
from tasks_app.api.serializers.base import json_type_mismatch
from tasks_app.config_file.source import ConfigError, Source, Table
from tasks_app.models import Topic
from tasks_app.services.config import GroupDecl, SchedulerConfig, TopicDecl

TOP_LEVEL_TYPES: dict[str, type] = {"defaults": dict, "topics": list, "groups": list}
# TOML's words for the JSON types the serializers name, where they differ.
_TOML_WORDS = {
    "boolean": "true or false",
    "object": "a table",
    "null": "a date or time",
}


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


def _unknown_key(key: str, allowed: Mapping[str, Any]) -> str:
    return f"unknown key {key!r}; allowed keys: {', '.join(sorted(allowed))}"


def _keys_check(
    table: Table, raw: Mapping[str, Any], fields: Mapping[str, serializers.Field]
) -> None:
    """Refuse unknown keys and values of the wrong type, in the file's words."""
    for key, value in raw.items():
        if key not in fields:
            raise table.error(key, _unknown_key(key, fields))
        mismatch = json_type_mismatch(fields[key], value)
        if mismatch:
            wanted, got = (_toml_type(name, value) for name in mismatch)
            raise table.error(key, f"{key!r} must be {wanted}, not {got}")


def _toml_type(json_type: str, value: Any) -> str:
    """Name a type as TOML does: it tells integers from floats, and has no null."""
    if json_type == "number":
        json_type = "integer" if isinstance(value, int) else "float"
    article = "an" if json_type[0] in "aeiou" else "a"
    return _TOML_WORDS.get(json_type, f"{article} {json_type}")


def _rules_check(table: Table, serializer: serializers.Serializer) -> dict[str, Any]:
    """Apply the serializer's rules (the API's); return the values it accepted."""
    if serializer.is_valid():
        return dict(serializer.validated_data)
    key, details = next(iter(serializer.errors.items()))
    if details[0].code == "required":
        raise table.error(key, f"the {key!r} key is missing")
    if details[0].code == "invalid_choice":
        field = cast(serializers.ChoiceField, serializer.fields[key])
        choices = " or ".join(map(repr, field.choices))
        given = serializer.initial_data[key]
        raise table.error(key, f"{key!r} must be {choices}, not {given!r}")
    raise table.error(key, f"{key!r}: {' '.join(details)}")


def _writable(serializer: serializers.Serializer) -> dict[str, serializers.Field]:
    return {name: f for name, f in serializer.fields.items() if not f.read_only}


def _table(source: Source, header: str, index: int) -> Table:
    return Table(source, header, index, f"{header} table #{index + 1}")


def _named(table: Table, kind: str, name: Any) -> Table:
    """Name a table by its topic or group once it has one, as a reader would."""
    return replace(table, label=f"{kind} {name!r}") if isinstance(name, str) else table


def _defaults_check(source: Source, raw: dict[str, Any]) -> dict[str, Any]:
    table = Table(source, "[defaults]", 0, "[defaults]")
    serializer = TopicSerializer(data=raw, partial=True)
    _keys_check(table, raw, {k: serializer.fields[k] for k in Topic.POLICY_FIELDS})
    return _rules_check(table, serializer)


def _topic_check(
    table: Table, raw: dict[str, Any], defaults: dict[str, Any]
) -> TopicDecl:
    table = _named(table, "topic", raw.get("name"))
    serializer = TopicSerializer(data={**defaults, **raw})
    _keys_check(table, raw, _writable(serializer))
    policy = _rules_check(table, serializer)
    return TopicDecl(name=policy.pop("name"), policy=policy)


def _group_check(table: Table, raw: dict[str, Any], declared: set[str]) -> GroupDecl:
    table = _named(table, "group", raw.get("group_id"))
    # The serializer looks topics up in the database; the file's must be declared
    # in the file, so they are checked against `declared` instead.
    names = raw.get("topics", [])
    serializer = GroupSerializer(data={k: v for k, v in raw.items() if k != "topics"})
    _keys_check(table, raw, _writable(serializer))
    checked = _rules_check(table, serializer)
    for name in names:
        if name not in declared:
            raise table.error(
                "topics",
                f"'topics' names {name!r}, which no [[topics]] table declares; "
                "declare it or remove it from the list",
            )
    return GroupDecl(
        group_id=checked["group_id"],
        topics=tuple(names),
        walk_mode=checked.get("walk_mode"),
    )


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
