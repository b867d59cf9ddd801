"""Rotation serializers: recorded slices, live members, and the stats overview."""

from datetime import UTC, datetime

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from rotation.store import EndReason
from tasks_app.api.serializers.base import KafkaNameField, QueryParamsSerializer
from tasks_app.api.serializers.links import IdentityLinkField
from tasks_app.models import Slice, TaskStatus
from tasks_app.models.topic import MAX_PARTITIONS

MS_PER_S = 1000


class SliceSerializer(serializers.ModelSerializer):
    """One turn of one member on one lane, as recorded when it ended."""

    group = serializers.CharField(source="group.group_id", read_only=True)
    topic = serializers.CharField(source="topic.name", read_only=True)
    duration_ms = serializers.SerializerMethodField(
        help_text="ended_at - started_at, in whole milliseconds."
    )
    url = IdentityLinkField(view_name="slice-detail")

    class Meta:
        model = Slice
        fields = [
            "id",
            "group",
            "topic",
            "partition",
            "member",
            "token",
            "started_at",
            "ended_at",
            "duration_ms",
            "messages",
            "first_offset",
            "last_offset",
            "end_reason",
            "url",
        ]
        read_only_fields = fields

    def get_duration_ms(self, record: Slice) -> int:
        return round((record.ended_at - record.started_at).total_seconds() * MS_PER_S)


class SliceListQuerySerializer(QueryParamsSerializer):
    """The filters of the slice list, from the query string."""

    topic = KafkaNameField(required=False, help_text="Only this topic's slices.")
    group = KafkaNameField(
        required=False, help_text="Only slices of this consumer group (group_id)."
    )
    member = serializers.CharField(
        required=False,
        max_length=255,
        help_text="Only slices this member took (its Celery node name).",
    )
    end_reason = serializers.ChoiceField(
        choices=[reason.value for reason in EndReason],
        required=False,
        error_messages={
            "invalid_choice": "Unknown end reason {input!r}. Valid reasons: "
            + ", ".join(reason.value for reason in EndReason)
            + "."
        },
        help_text="Only slices that ended for this reason.",
    )
    partition = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_PARTITIONS - 1,
        help_text="Only slices on this partition.",
    )


class EpochDateTimeField(serializers.DateTimeField):
    """Show seconds since the epoch (as Redis stores them) as an ISO UTC datetime."""

    def to_representation(self, value: float) -> str:  # type: ignore[override]
        # The value is what Redis holds (epoch seconds), not a datetime.
        return super().to_representation(datetime.fromtimestamp(value, tz=UTC))


class MemberSerializer(serializers.Serializer):
    """A live rotation member: a Celery worker process that takes turns on lanes."""

    name = serializers.CharField(help_text="Celery node name (celery@host).")
    hostname = serializers.CharField(help_text="Host the worker runs on.")
    pid = serializers.IntegerField(help_text="Process id of the worker.")
    lane = serializers.CharField(
        help_text='Lane it works on now (group/topic/partition); "" between slices.'
    )
    last_heartbeat = EpochDateTimeField(help_text="When it last beat (UTC).")


class TaskCountsSerializer(serializers.Serializer):
    """Task counts: the total and one count per status."""

    total = serializers.IntegerField()
    by_status = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Tasks per status; every status is present: "
        + ", ".join(TaskStatus.values)
        + ".",
    )


class TopicStatsSerializer(serializers.Serializer):
    """One topic's task counts."""

    topic = serializers.CharField()
    paused = serializers.BooleanField()
    rate_limit = serializers.FloatField(
        allow_null=True, help_text="Most tasks a second, across workers; null: none."
    )
    tasks = TaskCountsSerializer()


class LaneStatsSerializer(serializers.Serializer):
    """One lane's resume point, its partition's end, and the lag between them."""

    group = serializers.CharField()
    topic = serializers.CharField()
    partition = serializers.IntegerField()
    next_offset = serializers.IntegerField(help_text="Offset the next slice starts at.")
    end_offset = serializers.IntegerField(
        help_text="Offset after the last task published to the partition."
    )
    lag = serializers.IntegerField(help_text="end_offset - next_offset.")
    paused = serializers.BooleanField(help_text="The topic is paused.")


# The stats answer one object although the view is a router `list`.
@extend_schema_serializer(many=False)
class StatsSerializer(serializers.Serializer):
    """Tasks by status (overall and per topic), outbox backlog, lanes, members."""

    tasks = TaskCountsSerializer()
    topics = TopicStatsSerializer(many=True)
    outbox_due = serializers.IntegerField(
        help_text="Outbox entries due now (stored, waiting to be published)."
    )
    lanes = LaneStatsSerializer(many=True)
    members = serializers.IntegerField(help_text="Live rotation members.")
