"""factory_boy factories for the models tests create directly."""

import factory
from django.contrib.auth import get_user_model

from tasks_app.models import ConsumerGroup, Topic


class UserFactory(factory.django.DjangoModelFactory):
    """A user with a known password ("pw-for-tests-1")."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-1")


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
