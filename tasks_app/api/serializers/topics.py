"""Topic and consumer-group serializers; uniqueness is left to the services."""

from typing import Any

from rest_framework import serializers

from tasks_app.api.serializers.base import RejectUnknownFieldsMixin
from tasks_app.models import ConsumerGroup, Topic
from tasks_app.validators import validate_kafka_topic_name

# The model's UniqueValidator is replaced so the service's message (which says
# what to do) is the one a caller sees.
_NAME_KWARGS = {"validators": [validate_kafka_topic_name]}


class TopicSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    """A topic and its policy; `kafka_error` holds the broker's reason if any."""

    url = serializers.HyperlinkedIdentityField(
        view_name="topic-detail", lookup_field="name"
    )

    class Meta:
        model = Topic
        fields = [
            "name",
            "partitions",
            "slice_ms",
            "weight",
            "handler",
            "max_attempts",
            "retry_backoff_ms",
            "paused",
            "kafka_error",
            "created_at",
            "updated_at",
            "url",
        ]
        read_only_fields = ["kafka_error", "created_at", "updated_at"]
        extra_kwargs = {"name": _NAME_KWARGS}


class TopicUpdateSerializer(TopicSerializer):
    """Changes to a topic's policy; the name may be repeated but not changed."""

    class Meta(TopicSerializer.Meta):
        extra_kwargs = {"name": {**_NAME_KWARGS, "required": False}}


class GroupSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    """A consumer group: its Kafka group.id, its topics (by name), its walk mode."""

    topics = serializers.SlugRelatedField(
        many=True,
        slug_field="name",
        queryset=Topic.objects.all(),
        required=False,
        error_messages={
            "does_not_exist": "Topic {value!r} does not exist; create it first "
            "with POST /api/topics/."
        },
        help_text="Names of the topics this group consumes.",
    )
    url = serializers.HyperlinkedIdentityField(
        view_name="consumergroup-detail", lookup_field="group_id"
    )

    class Meta:
        model = ConsumerGroup
        fields = ["group_id", "topics", "walk_mode", "created_at", "url"]
        read_only_fields = ["created_at"]
        extra_kwargs = {"group_id": _NAME_KWARGS}

    def service_changes(self) -> dict[str, Any]:
        """Return the validated topics and walk mode as service arguments."""
        data = self.validated_data
        changes: dict[str, Any] = {}
        if "topics" in data:
            changes["topic_names"] = [topic.name for topic in data["topics"]]
        if "walk_mode" in data:
            changes["walk_mode"] = data["walk_mode"]
        return changes


class GroupUpdateSerializer(GroupSerializer):
    """Changes to a group; the group id may be repeated but not changed."""

    class Meta(GroupSerializer.Meta):
        extra_kwargs = {"group_id": {**_NAME_KWARGS, "required": False}}

    def validate_group_id(self, value: str) -> str:
        """Refuse a rename: Kafka keeps offsets under the old group id."""
        if self.instance is not None and value != self.instance.group_id:
            raise serializers.ValidationError(
                "A group cannot be renamed (Kafka keeps its offsets under the old "
                "id); create a new group."
            )
        return value
