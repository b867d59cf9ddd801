"""factory_boy factories for the models tests create directly."""

from datetime import timedelta
from typing import cast

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.utils import timezone

from rotation.store import EndReason
from tasks_app.models import ConsumerGroup, Slice, Topic
from tasks_app.roles import Role
from tasks_app.services.users import user_role_grant


class UserFactory(factory.django.DjangoModelFactory):
    """A user with a known password ("pw-for-tests-1"); `role=` grants it a role
    (none: it can sign in, but is allowed nothing)."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-1")

    @factory.post_generation
    def role(self, create: bool, extracted: Role | None, **kwargs: object) -> None:
        # factory_boy calls this hook with the built user as `self`.
        if create and extracted:
            user_role_grant(user=cast(User, self), role=extracted)


class TopicFactory(factory.django.DjangoModelFactory):
    """A topic row with a unique name (not created in Kafka; use services for that)."""

    class Meta:
        model = Topic

    name = factory.Sequence(lambda n: f"topic-{n}")


class GroupFactory(factory.django.DjangoModelFactory):
    """A consumer group with a unique id."""

    class Meta:
        model = ConsumerGroup

    group_id = factory.Sequence(lambda n: f"group-{n}")


class SliceFactory(factory.django.DjangoModelFactory):
    """A recorded slice of 1.5 s on partition 0 of a new topic, in a new group."""

    class Meta:
        model = Slice

    group = factory.SubFactory(GroupFactory)
    topic = factory.SubFactory(TopicFactory)
    partition = 0
    member = "celery@host-a"
    token = factory.Sequence(lambda n: n + 1)
    started_at = factory.LazyFunction(timezone.now)
    ended_at = factory.LazyAttribute(lambda s: s.started_at + timedelta(seconds=1.5))
    messages = 3
    first_offset = 10
    last_offset = 12
    end_reason = EndReason.DRAINED.value
