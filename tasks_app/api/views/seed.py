"""The Rust seed's routes, kept so its clients keep working unchanged."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tasks_app.api.parsers import API_PARSERS
from tasks_app.api.permissions import CanSubmitTasks, CanUseTasks
from tasks_app.api.serializers import TaskMessageSerializer
from tasks_app.api.views.docs import BAD_REQUEST
from tasks_app.selectors import tasks_pending_seed
from tasks_app.services.tasks import task_submit

SEED_SUCCESS = "Success"


class SeedGenerateView(generics.GenericAPIView):
    """`POST /tasks/generate`: store one task and answer "Success", as the seed did."""

    serializer_class = TaskMessageSerializer
    parser_classes = API_PARSERS
    permission_classes = [CanSubmitTasks]

    @extend_schema(
        operation_id="seed_tasks_generate",
        tags=["seed"],
        responses={200: OpenApiTypes.STR, 400: BAD_REQUEST},
    )
    def post(self, request: Request) -> Response:
        """Store the task; the seed answered 200 with the JSON string "Success"."""
        serializer = TaskMessageSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        task_submit(submitted_by=request.user, spec=serializer.spec())
        return Response(SEED_SUCCESS)


class SeedPendingView(APIView):
    """`GET /tasks`: the tasks not yet published, oldest first, as the seed listed.

    A submitter sees their own; an operator every pending task.
    """

    permission_classes = [CanUseTasks]

    @extend_schema(
        operation_id="seed_tasks_pending",
        tags=["seed"],
        responses=TaskMessageSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        """List `{"topic", "message"}` of the pending tasks the user may see."""
        return Response(tasks_pending_seed(user=request.user))
