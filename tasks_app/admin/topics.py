"""Topic and group admin: saved through the services, so Kafka stays in step."""

from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.db.models import QuerySet
from django.http import HttpRequest

from tasks_app.admin.base import action_report
from tasks_app.errors import Conflict, InvalidInput
from tasks_app.models import ConsumerGroup, Topic
from tasks_app.services.topics import (
    group_create,
    group_topics_check,
    group_update,
    topic_create,
    topic_partitions_check,
    topic_set_paused,
    topic_update,
)


class TopicAdminForm(forms.ModelForm):
    """The topic form, refusing what Kafka cannot do before the service is called."""

    class Meta:
        model = Topic
        fields = ["name", *Topic.POLICY_FIELDS]

    def clean_partitions(self) -> int:
        partitions = self.cleaned_data["partitions"]
        if self.instance.pk:  # a new topic has no partitions to keep
            try:
                topic_partitions_check(topic=self.instance, partitions=partitions)
            except Conflict as exc:
                raise forms.ValidationError(exc.message) from exc
        return partitions


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    """Topics: saved through the services, so Kafka gets the topic too."""

    form = TopicAdminForm
    list_display = [
        "name",
        "partitions",
        "slice_ms",
        "weight",
        "max_attempts",
        "paused",
        "kafka_error",
    ]
    list_filter = ["paused"]
    search_fields = ["name"]
    actions = ["pause_topics", "resume_topics"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: Topic | None = None
    ) -> list[str]:
        fixed = ["kafka_error", "created_at", "updated_at"]
        return ["name", *fixed] if obj else fixed

    def save_model(
        self, request: HttpRequest, obj: Topic, form: forms.ModelForm, change: bool
    ) -> None:
        policy = {
            f: form.cleaned_data[f]
            for f in Topic.POLICY_FIELDS
            if f in form.changed_data
        }
        if change:
            saved = topic_update(topic=Topic.objects.get(pk=obj.pk), **policy)
        else:
            saved = topic_create(name=obj.name, **policy)
        obj.pk = saved.pk
        obj.refresh_from_db()
        if obj.kafka_error:
            self.message_user(
                request,
                f"Topic {obj.name} is saved, but Kafka did not create it: "
                f"{obj.kafka_error}. Creation is retried when tasks are published.",
                messages.WARNING,
            )

    @admin.action(description="Pause selected topics")
    def pause_topics(self, request: HttpRequest, queryset: QuerySet[Topic]) -> None:
        self._set_paused(request, queryset, paused=True)

    @admin.action(description="Resume selected topics")
    def resume_topics(self, request: HttpRequest, queryset: QuerySet[Topic]) -> None:
        self._set_paused(request, queryset, paused=False)

    def _set_paused(
        self, request: HttpRequest, topics: Iterable[Topic], *, paused: bool
    ) -> None:
        names = [topic_set_paused(topic=t, paused=paused).name for t in topics]
        action_report(self, request, "Paused" if paused else "Resumed", names, [])


class GroupAdminForm(forms.ModelForm):
    """The group form; its topics follow the one-group-per-topic rule."""

    topics = forms.ModelMultipleChoiceField(
        queryset=Topic.objects.all(),
        required=False,
        widget=FilteredSelectMultiple("topics", is_stacked=False),
        help_text=ConsumerGroup._meta.get_field("topics").help_text,
    )

    class Meta:
        model = ConsumerGroup
        fields = ["group_id", "walk_mode"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["topics"].initial = list(self.instance.topics.all())

    def clean_topics(self) -> QuerySet[Topic]:
        topics = self.cleaned_data["topics"]
        group = self.instance if self.instance.pk else None
        try:
            group_topics_check(group=group, topics=topics)
        except InvalidInput as exc:
            raise forms.ValidationError(exc.message) from exc
        return topics


@admin.register(ConsumerGroup)
class GroupAdmin(admin.ModelAdmin):
    """Consumer groups: saved through the services; the id is fixed once created."""

    form = GroupAdminForm
    list_display = ["group_id", "walk_mode", "topic_names", "created_at"]
    list_filter = ["walk_mode"]
    search_fields = ["group_id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsumerGroup]:
        return super().get_queryset(request).prefetch_related("topics")

    def get_readonly_fields(
        self, request: HttpRequest, obj: ConsumerGroup | None = None
    ) -> list[str]:
        return ["group_id", "created_at"] if obj else ["created_at"]

    @admin.display(description="Topics")
    def topic_names(self, group: ConsumerGroup) -> str:
        return ", ".join(topic.name for topic in group.topics.all())

    def save_model(
        self,
        request: HttpRequest,
        obj: ConsumerGroup,
        form: forms.ModelForm,
        change: bool,
    ) -> None:
        changes: dict[str, Any] = {
            "topic_names": [t.name for t in form.cleaned_data["topics"]],
            "walk_mode": form.cleaned_data["walk_mode"],
        }
        if change:
            group_update(group=obj, **changes)
        else:
            obj.pk = group_create(group_id=obj.group_id, **changes).pk

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool
    ) -> None:
        """Skip the form's own m2m save: the service already set the topics."""
