"""Task admin: rows are read-only (workers own them); cancel and retry act."""

from collections.abc import Callable

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from tasks_app.admin.base import ReadOnlyAdminMixin, action_report
from tasks_app.admin.pagination import ROWS_PER_PAGE, EstimatedCountPaginator
from tasks_app.errors import SchedulerError
from tasks_app.models import Task, TaskEvent, TaskStatus
from tasks_app.selectors import tasks_in_status
from tasks_app.services.tasks import task_cancel, task_retry


class TaskEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    """A task's recorded transitions, oldest first."""

    model = TaskEvent
    fields = ("status", "at", "worker", "attempt", "detail")
    readonly_fields = fields
    extra = 0


class TaskStatusFilter(admin.SimpleListFilter):
    """Filter by status the way the API does, so rare statuses use their indexes."""

    title = "status"
    parameter_name = "status__exact"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, str]]:
        return list(TaskStatus.choices)

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Task]
    ) -> QuerySet[Task]:
        status = self.value()
        return tasks_in_status(queryset, status=status) if status else queryset


@admin.register(Task)
class TaskAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Tasks are read-only here (workers own their rows); cancel and retry act."""

    list_display = [
        "uuid",
        "topic",
        "key",
        "status",
        "attempts",
        "created_at",
        "finished_at",
        "worker",
    ]
    list_filter = [TaskStatusFilter, "topic", "schedule"]
    list_select_related = ["topic"]
    search_fields = ["uuid", "=key", "=idempotency_key"]
    # Counting millions of rows on every page load is slow: the total is not
    # shown, and the pager's count is estimated past 10,000 rows.
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = ROWS_PER_PAGE
    inlines = [TaskEventInline]
    actions = ["cancel_tasks", "retry_tasks"]
    fields = (
        "uuid",
        "topic",
        "key",
        "message",
        "run_at",
        "idempotency_key",
        "schedule",
        "submitted_by",
        "status",
        "attempts",
        "created_at",
        "published_at",
        "started_at",
        "finished_at",
        "partition",
        "offset",
        "worker",
        "result",
        "error",
    )
    readonly_fields = fields

    def has_control_permission(self, request: HttpRequest) -> bool:
        """Allow cancel and retry to users who may change tasks."""
        return request.user.has_perm("tasks_app.change_task")

    @admin.action(description="Cancel selected pending tasks", permissions=["control"])
    def cancel_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._each_task(request, queryset, task_cancel, "Cancelled")

    @admin.action(description="Retry selected dead tasks", permissions=["control"])
    def retry_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._each_task(request, queryset, task_retry, "Queued again")

    def _each_task(
        self,
        request: HttpRequest,
        queryset: QuerySet[Task],
        service: Callable[..., Task],
        verb: str,
    ) -> None:
        done: list[str] = []
        failures: list[str] = []
        for task_id in queryset.values_list("uuid", flat=True):
            try:
                service(task_id=task_id)
                done.append(str(task_id))
            except SchedulerError as exc:
                failures.append(exc.message)
        action_report(self, request, verb, done, failures)
