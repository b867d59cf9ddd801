"""Topic and consumer-group serializers; uniqueness is left to the services."""

from typing import Any

from rest_framework import serializers

from tasks_app.api.serializers.base import (
    HandlerNameField,
    KafkaNameField,
    RejectUnknownFieldsMixin,
)
from tasks_app.models import ConsumerGroup, Topic

# Names are declared fields, so the model's UniqueValidator is left out and the
# service's message (which says what to do) is the one a caller sees.
TOPIC_NAME_HELP = Topic._meta.get_field("name").help_text
GROUP_ID_HELP = ConsumerGroup._meta.get_field("group_id").help_text


class TopicSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    """A topic and its policy; `kafka_error` holds the broker's reason if any."""

    name = KafkaNameField(help_text=TOPIC_NAME_HELP)
    url = serializers.HyperlinkedIdentityField(
        view_name="topic-detail", lookup_field="name"
    )

    class Meta:
        model = Topic
        fields = [
            "name",
            *Topic.POLICY_FIELDS,
            "kafka_error",
            "created_at",
            "updated_at",
            "url",
        ]
        read_only_fields = ["kafka_error", "created_at", "updated_at"]

    def build_standard_field(self, field_name: str, model_field: Any) -> Any:
        """Build `handler` as a HandlerNameField: the schema lists the names,
        the model field's validator (the one rule) checks them."""
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        return (HandlerNameField if field_name == "handler" else field_class), kwargs


class TopicUpdateSerializer(TopicSerializer):
    """Changes to a topic's policy; the name may be repeated but not changed."""

    name = KafkaNameField(required=False, help_text=TOPIC_NAME_HELP)


class GroupSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    """A consumer group: its Kafka group.id, its topics (by name), its walk mode."""

    group_id = KafkaNameField(help_text=GROUP_ID_HELP)
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

    def service_changes(self) -> dict[str, Any]:
        """Return the validated group id, topics and walk mode as service arguments."""
        data = self.validated_data
        changes: dict[str, Any] = {}
        if "group_id" in data:
            changes["group_id"] = data["group_id"]
        if "topics" in data:
            changes["topic_names"] = [topic.name for topic in data["topics"]]
        if "walk_mode" in data:
            changes["walk_mode"] = data["walk_mode"]
        return changes


class GroupUpdateSerializer(GroupSerializer):
    """Changes to a group; the group id may be repeated but not changed."""

    group_id = KafkaNameField(required=False, help_text=GROUP_ID_HELP)
