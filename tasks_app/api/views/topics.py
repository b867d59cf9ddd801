"""Topic endpoints: create (also in Kafka), list, read, change, pause and resume."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from tasks_app.api.pagination import LookupCursorPagination
from tasks_app.api.parsers import API_PARSERS
from tasks_app.api.permissions import ChangeModelPermissions, ModelPermissions
from tasks_app.api.serializers import TopicSerializer, TopicUpdateSerializer
from tasks_app.api.views.docs import BAD_REQUEST
from tasks_app.models import Topic
from tasks_app.services.topics import (
    topic_create,
    topic_set_paused,
    topic_update,
)

# Kafka's topic-name characters; dots included, so `/api/topics/a.b/` works.
KAFKA_NAME_URL_REGEX = r"[a-zA-Z0-9._-]+"


@extend_schema(tags=["topics"])
class TopicViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Topics and their policy. No DELETE: tasks keep referring to their topic."""

    queryset = Topic.objects.all()
    serializer_class = TopicSerializer
    pagination_class = LookupCursorPagination
    parser_classes = API_PARSERS
    permission_classes = [ModelPermissions]
    lookup_field = "name"
    lookup_value_regex = KAFKA_NAME_URL_REGEX

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        if self.action in {"update", "partial_update"}:
            return TopicUpdateSerializer
        return TopicSerializer

    @extend_schema(responses={201: TopicSerializer, 400: BAD_REQUEST})
    def create(self, request: Request) -> Response:
        """Create a topic here and in Kafka; `kafka_error` says if Kafka failed."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        topic = topic_create(**serializer.validated_data)
        return Response(self._answer(topic), status=201)

    @extend_schema(responses={200: TopicSerializer, 400: BAD_REQUEST})
    def update(
        self, request: Request, partial: bool = False, **kwargs: str
    ) -> Response:
        """Change a topic's policy (partitions can only grow)."""
        topic = self.get_object()
        serializer = self.get_serializer(topic, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        topic = topic_update(topic=topic, **serializer.validated_data)
        return Response(self._answer(topic))

    @extend_schema(responses={200: TopicSerializer, 400: BAD_REQUEST})
    def partial_update(self, request: Request, **kwargs: str) -> Response:
        """Change some of a topic's policy fields."""
        return self.update(request, partial=True)

    @extend_schema(request=None, responses=TopicSerializer)
    @action(detail=True, methods=["post"], permission_classes=[ChangeModelPermissions])
    def pause(self, request: Request, **kwargs: str) -> Response:
        """Stop giving the topic's lanes turns; its tasks wait, none is lost."""
        topic = topic_set_paused(topic=self.get_object(), paused=True)
        return Response(self._answer(topic))

    @extend_schema(request=None, responses=TopicSerializer)
    @action(detail=True, methods=["post"], permission_classes=[ChangeModelPermissions])
    def resume(self, request: Request, **kwargs: str) -> Response:
        """Give the topic's lanes turns again."""
        topic = topic_set_paused(topic=self.get_object(), paused=False)
        return Response(self._answer(topic))

    def _answer(self, topic: Topic) -> dict:
        return TopicSerializer(topic, context=self.get_serializer_context()).data
