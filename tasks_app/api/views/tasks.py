"""Task endpoints: submit one or many, list, read, cancel, retry."""

from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from tasks_app.api.pagination import TaskCursorPagination
from tasks_app.api.parsers import API_PARSERS
from tasks_app.api.permissions import CanSubmitTasks, CanUseTasks
from tasks_app.api.prefer import preference_answered, prefers_minimal
from tasks_app.api.serializers import (
    TaskAcceptedSerializer,
    TaskCreateSerializer,
    TaskDetailSerializer,
    TaskListQuerySerializer,
    TaskSerializer,
)
from tasks_app.api.serializers.tasks import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY_MAX_CHARS,
)
from tasks_app.api.views.docs import BAD_REQUEST, CONFLICT, NOT_FOUND
from tasks_app.errors import InvalidInput
from tasks_app.models import Task
from tasks_app.selectors import task_list, task_with_events
from tasks_app.services.tasks import (
    task_accept,
    task_cancel,
    task_retry,
    task_submit_many,
)

TASK_SUBMISSION = PolymorphicProxySerializer(
    component_name="TaskSubmission",
    serializers=[TaskCreateSerializer, TaskCreateSerializer(many=True)],
    resource_type_field_name=None,
    many=False,
)
TASKS_ACCEPTED = PolymorphicProxySerializer(
    component_name="TasksAccepted",
    serializers=[
        TaskSerializer,
        TaskSerializer(many=True),
        TaskAcceptedSerializer,
        TaskAcceptedSerializer(many=True),
    ],
    resource_type_field_name=None,
    many=False,
)
TASK_REPEATED = PolymorphicProxySerializer(
    component_name="TaskRepeated",
    serializers=[TaskSerializer, TaskAcceptedSerializer],
    resource_type_field_name=None,
    many=False,
)
IDEMPOTENCY_HEADER_DOC = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX_CHARS},
    OpenApiParameter.HEADER,
    description="Same as the body field idempotency_key; a single task only (with "
    "a list, give each task its own idempotency_key). Empty means none.",
)
PREFER_HEADER_DOC = OpenApiParameter(
    "Prefer",
    str,
    OpenApiParameter.HEADER,
    description="RFC 7240 preferences; `return=minimal` answers each task's id and "
    "status only (far cheaper for large lists; Preference-Applied says so). "
    "Without it the answer is the full task; other preferences are ignored.",
)


@extend_schema(tags=["tasks"])
class TaskViewSet(viewsets.GenericViewSet):
    """Submit tasks and follow them; a task's `id` is its public UUID.

    Submitters see, cancel and retry the tasks they submitted; operators any task.
    """

    # Names the model for the schema (the `id` path type); reads use selectors.
    queryset = Task.objects.all()
    serializer_class = TaskSerializer
    pagination_class = TaskCursorPagination
    parser_classes = API_PARSERS
    lookup_field = "uuid"
    lookup_url_kwarg = "id"

    def get_permissions(self) -> list[BasePermission]:
        allowed = CanSubmitTasks if self.action == "create" else CanUseTasks
        return [allowed()]

    def get_object(self) -> Task:
        """Find the task among those the user may see (else 404), then check it."""
        task = task_with_events(
            user=self.request.user, task_id=self.kwargs[self.lookup_url_kwarg]
        )
        self.check_object_permissions(self.request, task)
        return task

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        if self.action == "create":
            return TaskCreateSerializer
        if self.action == "retrieve":
            return TaskDetailSerializer
        return TaskSerializer

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context["idempotency_header"] = self.request.headers.get(IDEMPOTENCY_HEADER)
        return context

    @extend_schema(parameters=[TaskListQuerySerializer], responses=TaskSerializer)
    def list(self, request: Request) -> Response:
        """List tasks, newest first, filtered by status, topic and key."""
        query = TaskListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        tasks = task_list(user=request.user, **query.validated_data)
        page = self.paginate_queryset(tasks)
        return self.get_paginated_response(self._answer(page, many=True))

    @extend_schema(
        request=TASK_SUBMISSION,
        parameters=[IDEMPOTENCY_HEADER_DOC, PREFER_HEADER_DOC],
        responses={
            201: OpenApiResponse(
                TASKS_ACCEPTED, description="The task, or the list of tasks, stored."
            ),
            200: OpenApiResponse(
                TASK_REPEATED, description="The original task (repeated key)."
            ),
            400: BAD_REQUEST,
            409: OpenApiResponse(
                CONFLICT.response,
                description="The idempotency key was used with another body.",
            ),
        },
        description="Submit one task (an object) or up to SCHEDULER_MAX_BULK_TASKS "
        "(a list, stored all or none). Answers 201, or 200 with the original task "
        "when an idempotency key is repeated with the same body.",
    )
    def create(self, request: Request) -> Response:
        """Accept one task, or a list of tasks stored together."""
        if isinstance(request.data, list):
            return self._create_many(request)
        serializer = TaskCreateSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        task, new = task_accept(submitted_by=request.user, spec=serializer.spec())
        return self._accepted(request, task, status=201 if new else 200)

    def _create_many(self, request: Request) -> Response:
        if request.headers.get(IDEMPOTENCY_HEADER):
            raise InvalidInput(
                f"The {IDEMPOTENCY_HEADER} header applies to a single task; give "
                "each task in a list its own idempotency_key field.",
                field=IDEMPOTENCY_HEADER,
            )
        serializer = TaskCreateSerializer.many_init(
            data=request.data, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        tasks = task_submit_many(submitted_by=request.user, specs=serializer.specs())
        return self._accepted(request, tasks, status=201, many=True)

    @extend_schema(responses={200: TaskDetailSerializer, 404: NOT_FOUND})
    def retrieve(self, request: Request, **kwargs: str) -> Response:
        """Return a task with its history of transitions."""
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=None, responses={200: TaskSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, **kwargs: str) -> Response:
        """Cancel a task that has not been published yet."""
        task = task_cancel(task_id=self.get_object().uuid)
        return Response(self._answer(task))

    @extend_schema(request=None, responses={200: TaskSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, **kwargs: str) -> Response:
        """Run a dead task again from its first attempt."""
        task = task_retry(task_id=self.get_object().uuid)
        return Response(self._answer(task))

    def _accepted(
        self, request: Request, tasks: Any, *, status: int, many: bool = False
    ) -> Response:
        """Answer stored tasks in full, or lean when the client prefers minimal."""
        minimal = prefers_minimal(request)
        if minimal:
            data = TaskAcceptedSerializer(tasks, many=many).data
        else:
            data = self._answer(tasks, many=many)
        return preference_answered(Response(data, status=status), minimal=minimal)

    def _answer(self, tasks: Any, many: bool = False) -> Any:
        return TaskSerializer(
            tasks, many=many, context=self.get_serializer_context()
        ).data
