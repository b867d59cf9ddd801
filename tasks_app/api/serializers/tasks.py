"""Task serializers: the submitted body (one or a list) and the task as answered."""

import math
import re
from functools import cached_property
from typing import Any, cast

from django.conf import settings
from rest_framework import serializers

from tasks_app.api.serializers.base import (
    MESSAGE_TOO_DEEP,
    KafkaNameField,
    MessageField,
    QueryParamsSerializer,
    RejectUnknownFieldsMixin,
)
from tasks_app.api.serializers.links import IdentityLinkField
from tasks_app.api.serializers.lists import ItemChecks
from tasks_app.models import Task, TaskEvent, TaskStatus
from tasks_app.services.tasks import TaskSpec

IDEMPOTENCY_KEY_MAX_CHARS = 255
IDEMPOTENCY_HEADER = "Idempotency-Key"


# jsonb refuses U+0000 and lone surrogates (what JSON's "\ud800" decodes to).
_UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")


def _unstorable(value: Any) -> str | None:
    """Name what in a JSON value PostgreSQL cannot store as jsonb, if anything."""
    if isinstance(value, str):
        found = _UNSTORABLE_CHARS.search(value)
        return f"the character U+{ord(found.group()):04X}" if found else None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"the number {value}"
    if isinstance(value, dict):
        items: list[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    return next((reason for reason in map(_unstorable, items) if reason), None)


# Row ids are PostgreSQL bigints: a larger number is no id (and not a 500).
MAX_ROW_ID = 2**63 - 1


class TaskMessageSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """A topic and a JSON message: the body the Rust seed accepted."""

    topic = KafkaNameField(
        help_text="Topic name; created with defaults if missing "
        "(SCHEDULER_AUTO_CREATE_TOPICS)."
    )
    message = MessageField(
        help_text="Any JSON value but null, handed to the handler; strings hold "
        "no U+0000, which PostgreSQL cannot store."
    )

    def validate_message(self, value: Any) -> Any:
        """Refuse messages PostgreSQL cannot store (the field refuses large ones).

        A JSON `null` body field is refused by the field itself; a form's
        `message=null` decodes to None only here.
        """
        if value is None:
            raise serializers.ValidationError(
                self.fields["message"].error_messages["null"]
            )
        try:
            reason = _unstorable(value)
        except RecursionError as exc:
            raise serializers.ValidationError(MESSAGE_TOO_DEEP) from exc
        if reason:
            raise serializers.ValidationError(
                f"The message contains {reason}, which PostgreSQL cannot store as "
                "JSON; remove it or encode the data (e.g. base64)."
            )
        return value

    def spec(self) -> TaskSpec:
        """Build the service's request from the validated data."""
        return TaskSpec(**self.validated_data)


class TaskCreateListSerializer(serializers.ListSerializer):
    """A list of tasks submitted together: all are stored, or none.

    Items are validated in one lean pass by the item serializer's own rules
    (`ItemChecks`); an item that breaks one is validated again the usual way,
    so the answer names it exactly as a single task's would, under `[k]`.
    """

    default_error_messages = {
        "max_length": "Send at most {max_length} tasks in one request "
        "(SCHEDULER_MAX_BULK_TASKS); split the list.",
        "empty": "Send at least one task.",
    }

    @cached_property
    def _item_checks(self) -> ItemChecks:
        return ItemChecks(cast(serializers.Serializer, self.child))

    def run_child_validation(self, data: Any) -> Any:
        validated = self._item_checks.validated(data)
        if validated is None:
            return super().run_child_validation(data)
        return validated

    def specs(self) -> list[TaskSpec]:
        """Build the service's requests from the validated items."""
        return [TaskSpec(**item) for item in self.validated_data]


class TaskCreateSerializer(TaskMessageSerializer):
    """One task to submit; a JSON list of these submits many at once."""

    key = serializers.CharField(
        required=False,
        max_length=255,
        trim_whitespace=False,
        help_text="Ordering key; tasks with one key run in submission order. "
        "Defaults to the topic name.",
    )
    run_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="Not run before this time (ISO 8601, with a time zone).",
    )
    idempotency_key = serializers.CharField(
        required=False,
        allow_null=True,
        trim_whitespace=False,
        max_length=IDEMPOTENCY_KEY_MAX_CHARS,
        help_text="Repeat a request with the same key and body to get the same "
        f"task back; also accepted as the {IDEMPOTENCY_HEADER} header.",
    )

    class Meta:
        list_serializer_class = TaskCreateListSerializer

    @classmethod
    def many_init(cls, *args: Any, **kwargs: Any) -> TaskCreateListSerializer:
        """Bound a list by SCHEDULER_MAX_BULK_TASKS before validating any item."""
        kwargs.setdefault("max_length", settings.SCHEDULER_MAX_BULK_TASKS)
        kwargs.setdefault("allow_empty", False)
        return cast(TaskCreateListSerializer, super().many_init(*args, **kwargs))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Take the idempotency key from the header when the body has none."""
        header = (self.context.get("idempotency_header") or "").strip()
        if not header:
            return attrs
        field = self.fields["idempotency_key"]
        try:
            header = field.run_validation(header)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({IDEMPOTENCY_HEADER: exc.detail}) from exc
        if attrs.get("idempotency_key") not in (None, header):
            raise serializers.ValidationError(
                {
                    IDEMPOTENCY_HEADER: "The header and the body field idempotency_key "
                    "differ; send the key in one of them."
                }
            )
        return {**attrs, "idempotency_key": header}


class TaskEventSerializer(serializers.ModelSerializer):
    """One recorded transition of a task."""

    class Meta:
        model = TaskEvent
        fields = ["status", "at", "worker", "attempt", "detail"]
        read_only_fields = fields


class TaskSerializer(serializers.ModelSerializer):
    """A task as the API answers it; `id` is the public UUID."""

    id = serializers.UUIDField(source="uuid", read_only=True)
    topic = serializers.CharField(source="topic.name", read_only=True)
    schedule: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name",
        read_only=True,
        allow_null=True,
        help_text="Name of the recurring schedule that submitted it, if one did.",
    )
    url = IdentityLinkField(
        view_name="task-detail", lookup_field="uuid", lookup_url_kwarg="id"
    )

    class Meta:
        model = Task
        fields = [
            "id",
            "topic",
            "key",
            "message",
            "run_at",
            "idempotency_key",
            "schedule",
            "status",
            "attempts",
            "created_at",
            "published_at",
            "started_at",
            "finished_at",
            "partition",
            "offset",
            "worker",
            "result",
            "error",
            "url",
        ]
        read_only_fields = fields


class TaskAcceptedSerializer(serializers.Serializer):
    """A stored task, as answered to `Prefer: return=minimal`."""

    id = serializers.UUIDField(source="uuid", read_only=True)
    status = serializers.CharField(read_only=True)


class TaskDetailSerializer(TaskSerializer):
    """A task with its history of transitions."""

    events = TaskEventSerializer(many=True, read_only=True)

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "events"]
        read_only_fields = fields


class TaskListQuerySerializer(QueryParamsSerializer):
    """The filters of the task list, from the query string."""

    status = serializers.ChoiceField(
        choices=TaskStatus.choices,
        required=False,
        error_messages={
            "invalid_choice": "Unknown status {input!r}. Valid statuses: "
            + ", ".join(TaskStatus.values)
            + "."
        },
        help_text="Only tasks in this status.",
    )
    topic = KafkaNameField(required=False, help_text="Only this topic's tasks.")
    key = serializers.CharField(
        required=False,
        max_length=255,
        trim_whitespace=False,
        help_text="Only tasks with this key.",
    )
    schedule = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ROW_ID,
        help_text="Only the runs of the recurring schedule with this id.",
    )
