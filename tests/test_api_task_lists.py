"""A list of tasks is held to every rule one task is, and a bad item is named by
its position: the same 400 as the single-task endpoint, under `[k]`."""

import json

import pytest
from rest_framework.utils import json as drf_json

from tasks_app.api.serializers import TaskCreateSerializer
from tasks_app.api.serializers.lists import ItemChecks
from tasks_app.models import OutboxEntry, Task

TASKS_URL = "/api/tasks/"
# Where the bad item goes in a list of LIST_SIZE otherwise good tasks.
LIST_SIZE = 4
POSITIONS = [0, 2, LIST_SIZE - 1]
TOPIC = "{topic}"  # replaced by the test's topic name

# Items that break one rule each, as JSON text (so NUL, lone surrogates and a
# number too large for a float reach the server as a client would send them).
BAD_ITEMS = {
    "topic not a Kafka name": '{"topic": "bad name", "message": 1}',
    "topic reserved by Kafka": '{"topic": "__consumer_offsets", "message": 1}',
    "topic blank": '{"topic": "", "message": 1}',
    "topic too long": json.dumps({"topic": "x" * 250, "message": 1}),
    "topic with NUL": '{"topic": "t\\u0000", "message": 1}',
    "topic a number": '{"topic": 5, "message": 1}',
    "topic null": '{"topic": null, "message": 1}',
    "topic missing": '{"message": 1}',
    "message missing": '{"topic": "{topic}"}',
    "message null": '{"topic": "{topic}", "message": null}',
    "message over the size limit": json.dumps({"topic": TOPIC, "message": "x" * 200}),
    "message with NUL": '{"topic": "{topic}", "message": {"a": "x\\u0000y"}}',
    "message with a lone surrogate": '{"topic": "{topic}", "message": ["\\ud800"]}',
    "message key with NUL": '{"topic": "{topic}", "message": {"a\\u0000": 1}}',
    "message infinite": '{"topic": "{topic}", "message": [1e999]}',
    "unknown fields": '{"topic": "{topic}", "message": 1, "mesage": 2, "b": 3}',
    "key a boolean": '{"topic": "{topic}", "message": 1, "key": true}',
    "key too long": json.dumps({"topic": TOPIC, "message": 1, "key": "k" * 256}),
    "key blank": '{"topic": "{topic}", "message": 1, "key": ""}',
    "key with a lone surrogate": '{"topic": "{topic}", "message": 1, "key": "\\udfff"}',
    "run_at not a datetime": '{"topic": "{topic}", "message": 1, "run_at": "soon"}',
    "run_at a number": '{"topic": "{topic}", "message": 1, "run_at": 0}',
    "idempotency_key too long": json.dumps(
        {"topic": TOPIC, "message": 1, "idempotency_key": "i" * 256}
    ),
    "idempotency_key a number": (
        '{"topic": "{topic}", "message": 1, "idempotency_key": 7}'
    ),
    "idempotency_key blank": (
        '{"topic": "{topic}", "message": 1, "idempotency_key": ""}'
    ),
    "several rules at once": '{"topic": "a b", "message": null, "key": 1, "x": 0}',
}

# Items that are not objects: the list names the position and the type.
NOT_OBJECTS = {
    "null": ("null", "This field may not be null."),
    "number": ("5", "Invalid data. Expected a dictionary, but got int."),
    "string": ('"t"', "Invalid data. Expected a dictionary, but got str."),
    "list": ("[]", "Invalid data. Expected a dictionary, but got list."),
}


def _post_text(client, text: str):
    return client.post(TASKS_URL, data=text, content_type="application/json")


def _good(topic: str, n: int) -> str:
    return json.dumps({"topic": topic, "message": {"n": n}})


def _list_with(item: str, position: int, topic: str) -> str:
    items = [_good(topic, n) for n in range(LIST_SIZE)]
    items[position] = item
    return "[" + ", ".join(items) + "]"


@pytest.fixture
def small_messages(settings):
    """A message limit the 'over the size limit' item passes."""
    settings.SCHEDULER_MAX_MESSAGE_BYTES = 100


@pytest.mark.usefixtures("small_messages")
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("item", BAD_ITEMS.values(), ids=BAD_ITEMS.keys())
def test_a_bad_item_at_position_k_gets_the_single_task_answer_under_k(
    submitter_client, topic_name, item, position
):
    item = item.replace(TOPIC, topic_name)
    single = _post_text(submitter_client, item)

    listed = _post_text(submitter_client, _list_with(item, position, topic_name))

    assert (single.status_code, listed.status_code) == (400, 400), single.json()
    errors = single.json()["errors"]
    assert listed.json()["errors"] == {str(position): errors}
    assert listed.json()["code"] == single.json()["code"] == "invalid"
    messages = [(name, text) for name, texts in errors.items() for text in texts]
    assert single.json()["detail"] == "; ".join(f"{n}: {t}" for n, t in messages)
    assert listed.json()["detail"] == "; ".join(
        f"[{position}].{n}: {t}" for n, t in messages
    )
    assert not Task.objects.exists(), "all or none"


@pytest.mark.usefixtures("small_messages")
@pytest.mark.parametrize("item", BAD_ITEMS.values(), ids=BAD_ITEMS.keys())
def test_the_field_of_a_bad_item_is_its_path_in_the_list(
    submitter_client, topic_name, item
):
    item = item.replace(TOPIC, topic_name)
    single = _post_text(submitter_client, item)

    listed = _post_text(submitter_client, _list_with(item, 2, topic_name))

    assert listed.json()["field"] == f"[2].{single.json()['field']}"


@pytest.mark.parametrize(("item", "says"), NOT_OBJECTS.values(), ids=NOT_OBJECTS.keys())
def test_an_item_that_is_not_an_object_is_named_by_its_position(
    submitter_client, topic_name, item, says
):
    response = _post_text(submitter_client, _list_with(item, 1, topic_name))

    assert response.status_code == 400
    assert response.json()["detail"] == f"[1]: {says}"
    assert response.json()["field"] == "[1]"
    assert not Task.objects.exists()


def test_every_bad_item_of_a_list_is_named(submitter_client, topic_name):
    items = [_good(topic_name, n) for n in range(5)]
    items[1] = '{"topic": "a b", "message": 1}'
    items[3] = json.dumps({"topic": topic_name})

    response = _post_text(submitter_client, "[" + ", ".join(items) + "]")

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"1", "3"}
    assert response.json()["detail"].startswith("[1].topic: Invalid topic name")
    assert "; [3].message: This field is required." in response.json()["detail"]
    assert response.json()["field"] == "[1].topic"


# Valid items using every field, with the topic to fill in.
GOOD_ITEMS = [
    {"message": "plain"},
    {"message": {"é": ["\U0001f600", 1.5, None, True]}},
    {"message": 0, "key": " spaced key "},
    {"message": [], "run_at": "2030-01-02T03:04:05+02:00"},
    {"message": False, "run_at": None, "key": "k"},
    {"message": "i", "idempotency_key": " idem "},
    {"message": "n", "idempotency_key": None},
    {"message": "form", "csrfmiddlewaretoken": "ignored"},
]


def test_every_field_of_a_good_item_is_stored_as_one_task_stores_it(
    submitter_client, topic_name
):
    items = [{"topic": topic_name, **item} for item in GOOD_ITEMS]
    singles = [
        submitter_client.post(TASKS_URL, item, format="json").json() for item in items
    ]
    Task.objects.all().delete()

    listed = submitter_client.post(TASKS_URL, items, format="json")

    assert listed.status_code == 201, listed.json()
    stored = ["topic", "key", "message", "run_at", "idempotency_key", "status"]
    assert [{f: t[f] for f in stored} for t in listed.json()] == [
        {f: t[f] for f in stored} for t in singles
    ]


def _item_serializer(**kwargs) -> TaskCreateSerializer:
    return TaskCreateSerializer(context={"idempotency_header": None}, **kwargs)


@pytest.mark.parametrize("item", GOOD_ITEMS[:-1])
def test_the_lean_pass_validates_a_good_item_as_the_serializer_does(item):
    item = {"topic": "t", **item}
    serializer = _item_serializer(data=item)
    serializer.is_valid(raise_exception=True)

    assert ItemChecks(_item_serializer()).validated(item) == serializer.validated_data


@pytest.mark.usefixtures("small_messages")
@pytest.mark.parametrize("item", BAD_ITEMS.values(), ids=BAD_ITEMS.keys())
def test_the_lean_pass_leaves_a_bad_item_to_the_serializer(item):
    item = json.loads(item.replace(TOPIC, "t"))

    assert ItemChecks(_item_serializer()).validated(item) is None


def test_a_lists_messages_are_encoded_by_the_size_check_alone(monkeypatch):
    # DRF's JSONField encodes each parsed value only to see that it can; the
    # size check encodes every message anyway (docs/benchmarks.md, "Ingest").
    drf_encodings = []
    monkeypatch.setattr(
        drf_json, "dumps", lambda *args, **kw: drf_encodings.append(args)
    )
    items = [{"topic": "t", "message": {"n": n}} for n in range(3)]
    serializer = _item_serializer(data=items, many=True)

    assert serializer.is_valid(), serializer.errors
    assert drf_encodings == []


@pytest.mark.parametrize("value", [{1, 2}, {"a": object()}, [b"bytes"]])
def test_a_message_json_cannot_encode_is_refused_as_not_json(value):
    # Only a Python caller can hand the serializer such a value; a parsed body
    # holds JSON values alone.
    serializer = _item_serializer(data={"topic": "t", "message": value})

    assert not serializer.is_valid()
    assert serializer.errors["message"] == ["Value must be valid JSON."]


def test_a_list_repeating_an_idempotency_key_with_another_body_is_refused(
    submitter_client, topic_name
):
    items = [
        {"topic": topic_name, "message": 1, "idempotency_key": "k"},
        {"topic": topic_name, "message": 2, "idempotency_key": "k"},
    ]

    response = submitter_client.post(TASKS_URL, items, format="json")

    assert response.status_code == 409
    assert response.json()["field"] == "idempotency_key"
    assert not Task.objects.exists()


def test_a_list_repeating_an_idempotency_key_with_one_body_stores_one_task(
    submitter_client, topic_name
):
    item = {"topic": topic_name, "message": 1, "idempotency_key": "k"}

    response = submitter_client.post(TASKS_URL, [item, item], format="json")

    assert response.status_code == 201
    assert response.json()[0]["id"] == response.json()[1]["id"]
    assert Task.objects.count() == 1


def test_a_list_mixing_tasks_with_and_without_idempotency_keys_answers_each_in_place(
    submitter_client, topic_name
):
    items = [
        {"topic": topic_name, "message": "first", "idempotency_key": "k"},
        {"topic": topic_name, "message": "second"},
        {"topic": topic_name, "message": "third"},
    ]

    response = submitter_client.post(TASKS_URL, items, format="json")

    assert response.status_code == 201
    assert [t["message"] for t in response.json()] == ["first", "second", "third"]


# Messages whose text needs escaping on the way to PostgreSQL, and the JSON
# escapes that must come back as the characters they stand for.
AWKWARD_MESSAGES = [
    {"quote": 'say "hi"', "backslash": "a\\b\\\\c", "both": '\\"'},
    ["tab\tnewline\nreturn\r", "unicode é 日本 🎉", "\\u0041 stays six characters"],
    "a plain string with a ' single quote",
    {"nested": {"list": [1, 2.5, -3, True, None, {"k": "}{][,:"}]}},
    12345678901234567890,
    {"}": "{", '"': "'"},
]


def test_a_list_stores_and_publishes_awkward_messages_exactly(
    submitter_client, topic_name
):
    items = [{"topic": topic_name, "message": m} for m in AWKWARD_MESSAGES]

    response = submitter_client.post(TASKS_URL, items, format="json")

    assert response.status_code == 201, response.json()
    tasks = list(Task.objects.filter(topic__name=topic_name).order_by("id"))
    assert [t.message for t in tasks] == AWKWARD_MESSAGES
    envelopes = OutboxEntry.objects.filter(task__in=tasks).order_by("task_id")
    assert [json.loads(e.envelope)["message"] for e in envelopes] == AWKWARD_MESSAGES
    # Stored as encoded, byte for byte (compact, keys in the order given), as a
    # single task's envelope is (tasks_app.services.envelope).
    assert [e.envelope for e in envelopes] == [
        json.dumps(json.loads(e.envelope), separators=(",", ":")) for e in envelopes
    ]
