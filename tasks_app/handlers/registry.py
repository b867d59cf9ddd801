"""The handler registry: the only callables a worker runs for a task.

A topic names its handler by a registered name. Workers look the name up here
and never import a module named by a database row, so a handler written into
the database by hand (SQL, an old row, a migration) cannot run arbitrary code.
Handlers register with `@register_handler` in a `handlers` module of an
installed app (discovered at start-up, as Django discovers `admin` modules) or
in a module listed in SCHEDULER_HANDLER_MODULES.
"""

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any, overload

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules

HOW_TO_REGISTER = (
    "Register a handler with @register_handler (from tasks_app.handlers) in a "
    "`handlers` module of an installed app, or in a module listed in "
    "SCHEDULER_HANDLER_MODULES; see docs/handlers.md."
)


@dataclass(frozen=True)
class TaskContext:
    """What a handler may want to know about the task it runs."""

    task_id: str
    topic: str
    key: str
    partition: int
    offset: int
    attempt: int
    timestamp_ms: int
    worker: str


Handler = Callable[[Any, TaskContext], Any]


class HandlerNotRegistered(LookupError):
    """A topic names a handler that is not in this process's registry."""

    def __init__(self, name: str, registered: list[str]):
        super().__init__(
            f"Handler {name[:100]!r} is not registered, so it was not run. "
            f"Registered handlers: {', '.join(registered) or 'none'}. "
            f"{HOW_TO_REGISTER}"
        )
        self.name = name


def _origin(handler: Handler) -> str:
    """Name where a callable is defined: `module.qualname`."""
    module = getattr(handler, "__module__", "?")
    return f"{module}.{getattr(handler, '__qualname__', repr(handler))}"


class HandlerRegistry:
    """Handlers by name; a name is taken once, by one callable."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    @overload
    def register(self, handler: Handler, *, name: str | None = None) -> Handler: ...

    @overload
    def register(
        self, handler: None = None, *, name: str | None = None
    ) -> Callable[[Handler], Handler]: ...

    def register(
        self, handler: Handler | None = None, *, name: str | None = None
    ) -> Handler | Callable[[Handler], Handler]:
        """Register under `name`, else the dotted path; use bare or with `name=`.

        Registering the same function again (a re-imported module) is allowed;
        a different callable under a taken name is a deploy mistake and fails.
        """

        def add(func: Handler) -> Handler:
            if not callable(func):
                raise ImproperlyConfigured(f"Handler {func!r} is not callable.")
            key = name or _origin(func)
            taken = self._handlers.get(key)
            if taken is not None and _origin(taken) != _origin(func):
                raise ImproperlyConfigured(
                    f"Handler name {key!r} is already registered for "
                    f"{_origin(taken)}; {_origin(func)} needs another name."
                )
            self._handlers[key] = func
            return func

        return add if handler is None else add(handler)

    def get(self, name: str) -> Handler:
        """Return the handler registered as `name`; never imports anything."""
        try:
            return self._handlers[name]
        except KeyError:
            raise HandlerNotRegistered(name, self.names()) from None

    def names(self) -> list[str]:
        """List the registered names, sorted."""
        return sorted(self._handlers)


registry = HandlerRegistry()
register_handler = registry.register
handler_get = registry.get
handler_names = registry.names


def handlers_discover() -> None:
    """Import every installed app's `handlers` module and SCHEDULER_HANDLER_MODULES.

    Called once per process when Django is ready (web, workers, commands), so
    each process's registry holds what its deployed code registers.
    """
    autodiscover_modules("handlers")
    for module in settings.SCHEDULER_HANDLER_MODULES:
        try:
            import_module(module)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"SCHEDULER_HANDLER_MODULES names {module!r}, which cannot be "
                f"imported: {exc}"
            ) from exc
