"""Bad input to the task API gets a 4xx that names the problem, never a 500."""

import pytest
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from tasks_app.models import Task

TASKS_URL = "/api/tasks/"


def _post(client, body):
    return client.post(TASKS_URL, body, format="json")


def _post_raw(client, text: str):
    return client.post(TASKS_URL, data=text, content_type="application/json")


@pytest.mark.parametrize(
    "name", ["has space", ".", "..", "x" * 250, "ümlaut", "", "newline\n"]
)
def test_an_invalid_topic_name_is_refused_with_kafkas_rule(submitter_client, name):
    response = _post(submitter_client, {"topic": name, "message": "m"})

    assert response.status_code == 400
    assert response.data["detail"].startswith("topic: ")
    assert "topic" in response.data["errors"]
    if name:
        assert "1 to 249 characters of letters, digits" in response.data["detail"]


def test_a_body_that_is_not_json_is_refused_saying_where(submitter_client):
    response = _post_raw(submitter_client, '{"topic": "a", "message": }')

    assert response.status_code == 400
    assert response.data["detail"].startswith("The request body is not valid JSON")
    assert "line 1 column 27" in response.data["detail"]


def test_nan_in_the_body_is_refused_as_not_json(submitter_client, topic_name):
    response = _post_raw(
        submitter_client, f'{{"topic": "{topic_name}", "message": NaN}}'
    )

    assert response.status_code == 400
    assert "NaN is not a JSON value" in response.data["detail"]


def test_a_message_over_the_size_limit_is_refused_naming_the_limit(
    submitter_client, topic_name, settings
):
    settings.SCHEDULER_MAX_MESSAGE_BYTES = 100

    response = _post(submitter_client, {"topic": topic_name, "message": "x" * 200})

    assert response.status_code == 400
    assert response.data["detail"].startswith("message: The message is 202 bytes")
    assert "limit of 100 bytes" in response.data["detail"]


@pytest.mark.parametrize(
    ("message", "named"), [('{"a": "x\\u0000y"}', "U+0000"), ('["\\ud800"]', "U+D800")]
)
def test_a_message_postgresql_cannot_store_is_refused_naming_the_character(
    submitter_client, topic_name, message, named
):
    response = _post_raw(
        submitter_client, f'{{"topic": "{topic_name}", "message": {message}}}'
    )

    assert response.status_code == 400
    assert f"contains the character {named}" in response.data["detail"]


def test_a_body_nested_too_deeply_is_refused(submitter_client, topic_name):
    nested = "[" * 100_000 + "]" * 100_000

    response = _post_raw(
        submitter_client, f'{{"topic": "{topic_name}", "message": {nested}}}'
    )

    assert response.status_code == 400
    assert "nests JSON too deeply" in response.data["detail"]


def test_an_unknown_field_is_refused_naming_it(submitter_client, topic_name):
    response = _post(submitter_client, {"topic": topic_name, "mesage": "typo"})

    assert response.status_code == 400
    assert response.data["detail"].startswith("mesage: Unknown field.")
    assert "message" in response.data["detail"], "lists the fields that exist"


def test_a_run_at_that_is_not_a_datetime_is_refused(submitter_client, topic_name):
    response = _post(
        submitter_client, {"topic": topic_name, "message": 1, "run_at": "next tuesday"}
    )

    assert response.status_code == 400
    assert response.data["detail"].startswith("run_at: Datetime has wrong format")


def test_a_missing_message_is_refused(submitter_client, topic_name):
    response = _post(submitter_client, {"topic": topic_name})

    assert response.status_code == 400
    assert response.data["detail"] == "message: This field is required."


def test_a_body_that_is_not_an_object_or_list_is_refused(submitter_client):
    response = _post(submitter_client, "just a string")

    assert response.status_code == 400
    assert "Expected a dictionary" in response.data["detail"]


class _FailingView(APIView):
    """Fail as a view does when PostgreSQL refuses or loses a request."""

    error: type[Exception] = OperationalError

    def get(self, request) -> Response:
        raise self.error("as PostgreSQL would say it")


urlpatterns = [
    path("operational/", _FailingView.as_view()),
    path("interface/", _FailingView.as_view(error=InterfaceError)),
    path("integrity/", _FailingView.as_view(error=IntegrityError)),
    path("data/", _FailingView.as_view(error=DataError)),
]


@pytest.mark.urls("tests.test_api_errors")
@pytest.mark.parametrize("url", ["/operational/", "/interface/"])
def test_an_unreachable_database_answers_503_naming_postgresql(submitter_client, url):
    response = submitter_client.get(url)

    assert response.status_code == 503
    assert response.data["service"] == "postgresql"
    assert response.data["detail"].startswith("PostgreSQL is unreachable")
    assert response["Retry-After"] == "5"


@pytest.mark.urls("tests.test_api_errors")
@pytest.mark.parametrize(
    ("url", "status", "says"),
    [("/integrity/", 409, "Retry it."), ("/data/", 400, "PostgreSQL refused a value")],
)
def test_a_value_postgresql_refuses_answers_4xx_not_500(
    submitter_client, url, status, says
):
    response = submitter_client.get(url)

    assert response.status_code == status
    assert says in response.data["detail"]


@pytest.mark.parametrize(
    "charset", ["rot13", "hex", "base64", "zlib", "bz2", "utf-16", "no-such-codec"]
)
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", '{"topic": "t", "message": 1}'),
        ("application/x-www-form-urlencoded", "topic=t&message=1"),
    ],
)
def test_a_charset_other_than_utf8_answers_415_in_the_api_shape(
    submitter_client, charset, content_type, body
):
    response = submitter_client.post(
        TASKS_URL, data=body, content_type=f"{content_type}; charset={charset}"
    )

    assert response.status_code == 415
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "unsupported_charset"
    assert f"charset {charset!r}" in response.json()["detail"]
    assert "UTF-8" in response.json()["detail"]
    assert not Task.objects.exists()


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8"])
def test_utf8_named_in_any_spelling_is_accepted(submitter_client, topic_name, charset):
    response = submitter_client.post(
        TASKS_URL,
        data=f'{{"topic": "{topic_name}", "message": "é"}}'.encode(),
        content_type=f"application/json; charset={charset}",
    )

    assert response.status_code == 201, response.json()


def test_a_body_over_the_limit_answers_413_naming_the_limit(submitter_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = submitter_client.post(
        TASKS_URL, data="x" * 1001, content_type="application/json"
    )

    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert "1001 bytes, over the limit of 1000 bytes" in response.json()["detail"]
    assert "MAX_REQUEST_BYTES" in response.json()["detail"]


def test_a_ten_megabyte_form_answers_413_in_the_api_shape(submitter_client):
    response = submitter_client.post(
        TASKS_URL,
        data="message=" + "a" * 10_000_000,
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "request_too_large"


@pytest.mark.parametrize("url", [TASKS_URL, "/tasks/generate"])
@pytest.mark.parametrize(
    ("form", "says"),
    [
        ("&message=null", "This field may not be null."),
        ("", "This field is required."),
    ],
)
def test_a_null_or_missing_message_in_a_form_is_a_400_naming_the_field(
    submitter_client, topic_name, url, form, says
):
    response = submitter_client.post(
        url,
        data=f"topic={topic_name}{form}",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 400
    assert response.json()["detail"] == f"message: {says}"
    assert response.json()["field"] == "message"
    assert not Task.objects.exists()


@pytest.mark.parametrize("name", ["__consumer_offsets", "__x"])
def test_a_topic_name_kafka_reserves_is_refused(submitter_client, name):
    response = _post(submitter_client, {"topic": name, "message": 1})

    assert response.status_code == 400
    assert "reserved" in response.json()["detail"]
    assert not Task.objects.exists()


def test_an_unknown_url_answers_a_json_404(submitter_client):
    response = submitter_client.get("/api/tasks/0.5/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"topic": 5, "message": 1}, "topic", "Send a JSON string, not number."),
        ({"topic": "t", "message": 1, "key": True}, "key", "not boolean"),
        ({"topic": "t", "message": 1, "run_at": 0}, "run_at", "not number"),
    ],
)
def test_a_json_value_of_another_type_is_refused_not_coerced(
    submitter_client, body, field, says
):
    response = _post(submitter_client, body)

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert says in response.json()["detail"]
    assert not Task.objects.exists()


@pytest.mark.parametrize("as_list", [False, True], ids=["one task", "a list"])
def test_a_message_nested_at_any_depth_is_stored_or_refused_never_a_500(
    submitter_client, topic_name, as_list
):
    # The parser, the JSON field and the storable check each meet Python's
    # recursion limit at a different depth, which moves with the call stack
    # (~455 in a plain run, ~445 in an xdist worker): walk every depth from
    # well below to past the parser's limit.
    answers = set()
    for depth in range(350, 1050):
        task = f'{{"topic": "{topic_name}", "message": {"[" * depth + "]" * depth}}}'
        response = _post_raw(submitter_client, f"[{task}]" if as_list else task)
        answers.add(response.status_code)
        assert response.status_code in (201, 400), (depth, response.content[:200])
    assert answers == {201, 400}, "the walk reached both sides of the limit"
