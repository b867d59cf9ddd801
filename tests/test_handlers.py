"""The handler registry: what may run, how it is named, found and refused."""

import sys
import textwrap

import pytest
from django.core.exceptions import ImproperlyConfigured

from tasks_app.config_file import ConfigError, config_load
from tasks_app.errors import InvalidInput
from tasks_app.handlers import (
    HandlerNotRegistered,
    HandlerRegistry,
    handler_get,
    handlers_discover,
    log_message,
    noop,
)
from tasks_app.services.topics import topic_create
from tests import handlers as test_handlers


def test_the_built_in_handlers_are_registered_under_their_dotted_paths():
    assert handler_get("tasks_app.handlers.log_message") is log_message
    assert handler_get("tasks_app.handlers.noop") is noop


def test_modules_named_in_scheduler_handler_modules_are_registered():
    assert handler_get("tests.handlers.record") is test_handlers.record


def test_a_decorated_function_is_registered_under_module_and_qualname():
    registry = HandlerRegistry()

    @registry.register
    def compute(message, context):
        return message

    assert registry.get(f"{__name__}.{compute.__qualname__}") is compute
    assert registry.names() == [f"{__name__}.{compute.__qualname__}"]


def test_an_explicit_name_registers_the_handler_under_that_name():
    registry = HandlerRegistry()

    @registry.register(name="billing.send_invoice")
    def send(message, context):
        return message

    assert registry.get("billing.send_invoice") is send


def test_another_callable_under_a_taken_name_is_refused_naming_both():
    registry = HandlerRegistry()
    registry.register(name="shared")(log_message)

    with pytest.raises(ImproperlyConfigured) as refused:
        registry.register(name="shared")(noop)

    assert "'shared' is already registered" in str(refused.value)
    assert "tasks_app.handlers.log_message" in str(refused.value)
    assert "tasks_app.handlers.noop" in str(refused.value)


def test_an_unregistered_name_is_refused_even_when_importable():
    with pytest.raises(HandlerNotRegistered) as refused:
        handler_get("os.system")

    message = str(refused.value)
    assert "'os.system' is not registered" in message
    assert "tasks_app.handlers.log_message" in message, "lists what is registered"
    assert "register_handler" in message, "says how to register one"


def test_looking_up_a_name_imports_nothing():
    sys.modules.pop("json.tool", None)

    with pytest.raises(HandlerNotRegistered):
        handler_get("json.tool.main")

    assert "json.tool" not in sys.modules


def test_discovery_imports_the_modules_the_setting_names(
    settings, tmp_path, monkeypatch
):
    (tmp_path / "extra_handlers.py").write_text(
        textwrap.dedent(
            """
            from tasks_app.handlers import register_handler

            @register_handler
            def extra(message, context):
                return "extra"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.SCHEDULER_HANDLER_MODULES = ["extra_handlers"]

    handlers_discover()

    assert handler_get("extra_handlers.extra")(None, None) == "extra"


def test_a_module_the_setting_names_that_cannot_be_imported_fails_naming_it(
    settings,
):
    settings.SCHEDULER_HANDLER_MODULES = ["no_such_package.handlers"]

    with pytest.raises(ImproperlyConfigured) as failed:
        handlers_discover()

    assert "no_such_package.handlers" in str(failed.value)
    assert "SCHEDULER_HANDLER_MODULES" in str(failed.value)


@pytest.mark.django_db
def test_creating_a_topic_with_an_unregistered_handler_is_refused(topic_name):
    with pytest.raises(InvalidInput) as refused:
        topic_create(name=topic_name, handler="builtins.eval")

    assert refused.value.field == "handler"
    assert "'builtins.eval' is not registered" in refused.value.message


def test_a_config_file_naming_an_unregistered_handler_is_refused_at_its_line(
    tmp_path,
):
    path = tmp_path / "scheduler.toml"
    path.write_text('[[topics]]\nname = "A"\nhandler = "os.getenv"\n')

    with pytest.raises(ConfigError) as refused:
        config_load(path=path)

    assert refused.value.message.startswith(f"{path}, line 3: topic 'A': 'handler'")
    assert "'os.getenv' is not registered" in refused.value.message
