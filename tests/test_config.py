"""The TOML scheduler config: checked whole with file and line, applied idempotently."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.core.management import CommandError, call_command

from tasks_app.api.serializers import TopicSerializer
from tasks_app.config_file import ConfigError, config_load
from tasks_app.models import ConsumerGroup, Topic, WalkMode
from tasks_app.services.config import config_apply
from tasks_app.services.topics import group_update

EXAMPLE = Path(settings.BASE_DIR) / "config" / "scheduler.toml"


@pytest.fixture
def write(tmp_path):
    """Write TOML text to a file and return its path."""

    def _write(text: str) -> Path:
        path = tmp_path / "scheduler.toml"
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return _write


@pytest.fixture
def names(topic_name) -> tuple[str, str, str]:
    """Return two unique topic names and a unique group id."""
    return f"{topic_name}-a", f"{topic_name}-b", f"{topic_name}-g"


@pytest.fixture
def good_file(write, names) -> Path:
    """Declare two topics (one with its own policy) and a sequential group."""
    first, second, group = names
    return write(f"""
        [defaults]
        slice_ms = 1500
        [[topics]]
        name = "{first}"
        partitions = 2
        weight = 3
        [[topics]]
        name = "{second}"
        slice_ms = 500
        [[groups]]
        group_id = "{group}"
        topics = ["{first}", "{second}"]
        walk_mode = "sequential"
    """)


def _load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        config_load(path=path)
    return caught.value.message


def _kafka_topics() -> set[str]:
    admin = AdminClient({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS})
    return set(admin.list_topics(timeout=10).topics)


@pytest.mark.django_db
def test_apply_creates_topics_with_policy_groups_and_kafka_topics(good_file, names):
    first, second, group_id = names
    report = config_apply(config=config_load(path=good_file))
    assert [(c.name, c.action) for c in report.changes] == [
        (first, "created"),
        (second, "created"),
        (group_id, "created"),
    ]
    assert report.warnings == []
    a, b = Topic.objects.get(name=first), Topic.objects.get(name=second)
    assert (a.partitions, a.weight, a.slice_ms) == (2, 3, 1500)
    assert (b.partitions, b.weight, b.slice_ms) == (1, 1, 500)
    group = ConsumerGroup.objects.get(group_id=group_id)
    assert group.walk_mode == WalkMode.SEQUENTIAL
    assert set(group.topics.values_list("name", flat=True)) == {first, second}
    assert {first, second, f"{first}.dlq"} <= _kafka_topics()


@pytest.mark.django_db
def test_second_apply_changes_nothing_and_says_unchanged(good_file):
    config = config_load(path=good_file)
    config_apply(config=config)
    stamps = dict(Topic.objects.values_list("name", "updated_at"))
    report = config_apply(config=config)
    assert not report.changed
    assert {c.action for c in report.changes} == {"unchanged"}
    assert dict(Topic.objects.values_list("name", "updated_at")) == stamps


@pytest.mark.django_db
def test_apply_updates_only_the_keys_the_file_sets(good_file, write, names):
    first, _, _ = names
    config_apply(config=config_load(path=good_file))
    Topic.objects.filter(name=first).update(max_attempts=7)
    changed = write(good_file.read_text().replace("weight = 3", "weight = 5"))
    report = config_apply(config=config_load(path=changed))
    assert str(report.changes[0]) == f"topic {first}: updated (weight 3 -> 5)"
    topic = Topic.objects.get(name=first)
    assert (topic.weight, topic.max_attempts) == (5, 7)


@pytest.mark.django_db
def test_apply_never_shrinks_partitions_and_warns(good_file, write, names):
    first, _, _ = names
    config_apply(config=config_load(path=good_file))
    fewer = write(good_file.read_text().replace("partitions = 2", "partitions = 1"))
    report = config_apply(config=config_load(path=fewer))
    assert Topic.objects.get(name=first).partitions == 2
    assert report.changes[0].action == "unchanged"
    assert "keeps 2 partitions, not the 1" in report.warnings[0]


@pytest.mark.django_db
def test_apply_keeps_topics_added_to_a_group_later(good_file, names, topic_name):
    first, second, group_id = names
    config_apply(config=config_load(path=good_file))
    later = Topic.objects.create(name=f"{topic_name}-later")
    group = ConsumerGroup.objects.get(group_id=group_id)
    group_update(group=group, topic_names=[first, second, later.name])
    report = config_apply(config=config_load(path=good_file))
    assert report.changes[-1].action == "unchanged"
    assert later in group.topics.all()


def test_malformed_toml_names_file_and_line(write):
    path = write("""
        [[topics]]
        name = "A"
        partitions = = 2
    """)
    message = _load_error(path)
    assert message.startswith(f"{path}, line 3: ")
    assert "column" in message


def test_unknown_key_names_the_key_the_topic_and_the_line(write):
    path = write("""
        [[topics]]
        name = "A"

        [[topics]]
        name = "B"
        wieght = 2
    """)
    message = _load_error(path)
    assert message.startswith(f"{path}, line 6: topic 'B': unknown key 'wieght'")
    assert "weight" in message


def test_unknown_top_level_table_is_refused_at_its_line(write):
    path = write("""
        [[topics]]
        name = "A"
        [[topic]]
        name = "B"
    """)
    assert _load_error(path).startswith(f"{path}, line 3: unknown key 'topic'")


def test_value_of_the_wrong_type_is_refused(write):
    path = write("""
        [[topics]]
        name = "A"
        partitions = "2"
    """)
    message = _load_error(path)
    assert message == (
        f"{path}, line 3: topic 'A': 'partitions' must be an integer, not a string"
    )


def test_invalid_topic_name_is_refused_with_kafkas_rule(write):
    path = write("""
        [[topics]]
        name = "has space"
    """)
    message = _load_error(path)
    assert message.startswith(f"{path}, line 2: topic 'has space': 'name': ")
    assert "letters, digits" in message


@pytest.mark.parametrize(
    "table",
    [
        {"name": "A", "partitions": 3, "paused": True},
        {"name": "A", "partitions": True},
        {"name": "A", "partitions": "2"},
        {"name": "A", "weight": 1001},
        {"name": "A", "handler": "os.getenv"},
        {"name": "A", "handler": " tasks_app.handlers.noop "},
        {"name": "A", "wieght": 2},
        {"name": "__A"},
    ],
)
def test_the_file_accepts_a_topic_exactly_when_the_api_does(write, table):
    path = write(
        "[[topics]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
    )
    try:
        config_load(path=path)
    except ConfigError:
        file_accepts = False
    else:
        file_accepts = True
    assert file_accepts == TopicSerializer(data=table).is_valid()


def test_partitions_below_one_are_refused(write):
    path = write("""
        [[topics]]
        name = "A"
        partitions = 0
    """)
    assert _load_error(path).startswith(f"{path}, line 3: topic 'A': 'partitions'")


def test_bad_default_is_reported_in_defaults(write):
    path = write("""
        [defaults]
        slice_ms = 1
        [[topics]]
        name = "A"
    """)
    assert _load_error(path).startswith(f"{path}, line 2: [defaults]: 'slice_ms'")


def test_unknown_walk_mode_is_refused(write):
    path = write("""
        [[topics]]
        name = "A"
        [[groups]]
        group_id = "g"
        topics = ["A"]
        walk_mode = "round-robin"
    """)
    message = _load_error(path)
    assert message.startswith(f"{path}, line 6: group 'g': 'walk_mode' must be")
    assert "'sequential'" in message


def test_group_naming_an_undeclared_topic_is_refused(write):
    path = write("""
        [[topics]]
        name = "A"
        [[groups]]
        group_id = "g"
        topics = ["A", "Z"]
    """)
    message = _load_error(path)
    assert message.startswith(f"{path}, line 5: group 'g': 'topics' names 'Z'")


def test_topic_declared_twice_is_refused(write):
    path = write("""
        [[topics]]
        name = "A"
        [[topics]]
        name = "A"
    """)
    assert _load_error(path) == f"{path}, line 4: topic 'A': declared twice (table #2)"


def test_topic_in_two_groups_is_refused_at_the_second(write):
    path = write("""
        [[topics]]
        name = "A"
        [[groups]]
        group_id = "g"
        topics = ["A"]
        [[groups]]
        group_id = "h"
        topics = ["A"]
    """)
    assert _load_error(path) == (
        f"{path}, line 8: group 'h': 'topics' names 'A', which group 'g' "
        "consumes already; a topic belongs to exactly one group"
    )


def test_missing_file_is_reported_with_its_name(tmp_path):
    path = tmp_path / "absent.toml"
    assert _load_error(path).startswith(f"{path}: cannot read the scheduler config")


def test_example_config_declares_the_seed_topics_and_group():
    config = config_load(path=EXAMPLE)
    assert [t.name for t in config.topics] == ["A", "B", "C", "D"]
    assert config.topics[0].policy["slice_ms"] == 2000
    (group,) = config.groups
    assert (group.group_id, group.topics) == ("default", ("A", "B", "C", "D"))
    assert group.walk_mode == "parallel"  # the file shows the switch to "sequential"


@pytest.mark.django_db
def test_command_prints_each_change_then_nothing_changed(good_file, names, capsys):
    call_command("apply_config", file=good_file)
    first_run = capsys.readouterr().out
    call_command("apply_config", file=good_file)
    second_run = capsys.readouterr().out
    assert f"topic {names[0]}: created" in first_run
    assert f"group {names[2]}: unchanged" in second_run
    assert second_run.rstrip().endswith("Nothing changed.")


def test_command_without_a_config_has_nothing_to_apply(settings, capsys):
    settings.SCHEDULER_CONFIG = ""
    call_command("apply_config")
    assert "Nothing to apply" in capsys.readouterr().out


def test_command_raises_the_error_for_a_bad_file(write):
    path = write('[[topics]]\nname = "A"\nbogus = 1\n')
    with pytest.raises(CommandError, match=r"line 3: topic 'A': unknown key 'bogus'"):
        call_command("apply_config", file=path)


def test_command_line_exits_non_zero_and_prints_the_error(write):
    path = write('[[topics]]\nname = "A"\npartitions = \n')
    run = subprocess.run(
        [sys.executable, "manage.py", "apply_config", "--skip-checks", "--file", path],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert f"{path}, line 3: " in run.stderr


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("rate_limit = 50\nrate_burst = 20", {"rate_limit": 50.0, "rate_burst": 20}),
        ("key_concurrency = 16", {"key_concurrency": 16}),
        ("retention_days = 30", {"retention_days": 30.0}),
    ],
)
def test_a_topics_policy_is_declared_in_the_file(write, topic_name, lines, expected):
    path = write(f"""
        [[topics]]
        name = "{topic_name}"
        {lines}
    """)
    config_apply(config=config_load(path=path))
    topic = Topic.objects.get(name=topic_name)
    assert {field: getattr(topic, field) for field in expected} == expected


def test_a_rate_limit_below_the_minimum_is_refused_at_its_line(write, topic_name):
    path = write(f"""
        [[topics]]
        name = "{topic_name}"
        rate_limit = 0.0
    """)
    message = _load_error(path)
    assert "line 3: " in message
    assert "'rate_limit': Ensure this value is greater than or equal to" in message


@pytest.mark.django_db
def test_schedules_are_declared_in_the_file_and_reapplied_unchanged(write, topic_name):
    from tasks_app.models import Schedule

    path = write(f"""
        [[topics]]
        name = "{topic_name}"
        [[schedules]]
        name = "{topic_name}-every-5m"
        topic = "{topic_name}"
        message = {{report = "hourly"}}
        key = "reports"
        every_s = 300
        [[schedules]]
        name = "{topic_name}-nightly"
        topic = "{topic_name}"
        message = "nightly"
        crontab = "30 2 * * 1-5"
    """)
    report = config_apply(config=config_load(path=path))
    assert [str(c) for c in report.changes[1:]] == [
        f"schedule {topic_name}-every-5m: created",
        f"schedule {topic_name}-nightly: created",
    ]
    every = Schedule.objects.get(name=f"{topic_name}-every-5m")
    assert (every.message, every.key, every.interval.every) == (
        {"report": "hourly"},
        "reports",
        300,
    )
    assert every.periodic_task.interval == every.interval
    nightly = Schedule.objects.get(name=f"{topic_name}-nightly").crontab
    assert (nightly.minute, nightly.hour, nightly.day_of_week) == ("30", "2", "1-5")

    again = config_apply(config=config_load(path=path))
    assert {c.action for c in again.changes} == {"unchanged"}
    changed = write(path.read_text().replace("every_s = 300", "every_s = 60"))
    updated = config_apply(config=config_load(path=changed))
    assert str(updated.changes[1]) == (
        f"schedule {topic_name}-every-5m: updated "
        "(every 300 seconds -> every 60 seconds)"
    )


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('every_s = 60\ncrontab = "* * * * *"', "set every_s or crontab, not both"),
        ("", "set every_s or crontab"),
        ('crontab = "61 * * * *"', "'crontab': "),
        ("every_s = 0", "'every_s': Ensure this value is greater than or equal to 1"),
    ],
)
def test_a_schedule_without_one_valid_timing_is_refused(
    write, topic_name, lines, message
):
    path = write(
        f'[[topics]]\nname = "{topic_name}"\n[[schedules]]\nname = "s"\n'
        f'topic = "{topic_name}"\nmessage = 1\n{lines}\n'
    )
    assert message in _load_error(path)


def test_a_schedule_of_an_undeclared_topic_is_refused(write, topic_name):
    path = write(f"""
        [[schedules]]
        name = "s"
        topic = "{topic_name}"
        message = 1
        every_s = 5
    """)
    assert "which no [[topics]] table declares" in _load_error(path)
