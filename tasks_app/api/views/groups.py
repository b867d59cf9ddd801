"""Consumer-group endpoints: create, list, read and change groups."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from tasks_app.api.pagination import LookupCursorPagination
from tasks_app.api.parsers import API_PARSERS
from tasks_app.api.permissions import ModelPermissions
from tasks_app.api.serializers import GroupSerializer, GroupUpdateSerializer
from tasks_app.api.views.docs import BAD_REQUEST
from tasks_app.api.views.topics import KAFKA_NAME_URL_REGEX
from tasks_app.models import ConsumerGroup
from tasks_app.services.topics import group_create, group_update


@extend_schema(tags=["groups"])
class GroupViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Consumer groups: each keeps its own offsets over its own topics."""

    queryset = ConsumerGroup.objects.prefetch_related("topics")
    serializer_class = GroupSerializer
    pagination_class = LookupCursorPagination
    parser_classes = API_PARSERS
    permission_classes = [ModelPermissions]
    lookup_field = "group_id"
    lookup_value_regex = KAFKA_NAME_URL_REGEX

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        if self.action in {"update", "partial_update"}:
            return GroupUpdateSerializer
        return GroupSerializer

    @extend_schema(responses={201: GroupSerializer, 400: BAD_REQUEST})
    def create(self, request: Request) -> Response:
        """Create a group over existing topics."""
        serializer = GroupSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        group = group_create(**serializer.service_changes())
        return Response(self._answer(group), status=201)

    @extend_schema(responses={200: GroupSerializer, 400: BAD_REQUEST})
    def update(
        self, request: Request, partial: bool = False, **kwargs: str
    ) -> Response:
        """Change a group's topics or walk mode."""
        group = self.get_object()
        serializer = GroupUpdateSerializer(
            group,
            data=request.data,
            partial=partial,
            context=self.get_serializer_context(),
        )
        serializer.is_valid(raise_exception=True)
        group = group_update(group=group, **serializer.service_changes())
        return Response(self._answer(group))

    @extend_schema(responses={200: GroupSerializer, 400: BAD_REQUEST})
    def partial_update(self, request: Request, **kwargs: str) -> Response:
        """Change some of a group's fields."""
        return self.update(request, partial=True)

    def _answer(self, group: ConsumerGroup) -> dict:
        return GroupSerializer(group, context=self.get_serializer_context()).data
