"""Rotation endpoints: recorded slices, live members, and the stats overview."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from tasks_app.api.pagination import NewestFirstCursorPagination
from tasks_app.api.permissions import CanViewRotation, ModelPermissions
from tasks_app.api.serializers import (
    ErrorSerializer,
    MemberSerializer,
    SliceListQuerySerializer,
    SliceSerializer,
    StatsSerializer,
)
from tasks_app.api.views.docs import BAD_REQUEST, NOT_FOUND
from tasks_app.models import Slice
from tasks_app.selectors import member_list, slice_list, stats_overview

REDIS_DOWN = OpenApiResponse(
    ErrorSerializer, description="Redis, which holds the live members, is down."
)


@extend_schema(tags=["slices"])
class SliceViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Every turn a member took on a lane, newest first (read-only)."""

    serializer_class = SliceSerializer
    pagination_class = NewestFirstCursorPagination
    permission_classes = [ModelPermissions]

    def get_queryset(self) -> QuerySet[Slice]:
        return slice_list()

    @extend_schema(
        parameters=[SliceListQuerySerializer],
        responses={200: SliceSerializer, 400: BAD_REQUEST},
    )
    def list(self, request: Request) -> Response:
        """List slices, newest first, filtered by topic, group, member, reason."""
        query = SliceListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = self.paginate_queryset(slice_list(**query.validated_data))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(responses={200: SliceSerializer, 404: NOT_FOUND})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Return one recorded slice."""
        return super().retrieve(request, *args, **kwargs)


@extend_schema(tags=["members"])
class MemberViewSet(viewsets.ViewSet):
    """The rotation members alive now (workers that beat within 3 heartbeats)."""

    permission_classes = [CanViewRotation]

    @extend_schema(responses={200: MemberSerializer(many=True), 503: REDIS_DOWN})
    def list(self, request: Request) -> Response:
        """List live members by name, with the lane each works on now."""
        return Response(MemberSerializer(member_list(), many=True).data)


@extend_schema(tags=["stats"])
class StatsViewSet(viewsets.ViewSet):
    """Counts of tasks, outbox backlog, per-lane lag and live members."""

    permission_classes = [CanViewRotation]

    @extend_schema(
        operation_id="stats_retrieve",
        responses={200: StatsSerializer, 503: REDIS_DOWN},
    )
    def list(self, request: Request) -> Response:
        """Summarise tasks by status, the outbox backlog, lanes and members."""
        return Response(StatsSerializer(stats_overview()).data)
