"""Real workers run only registered handlers, whatever a topic row says.

The `worker` fixture (tests/conftest.py) runs one rotation worker, a publisher
and beat for this module.
"""

import pytest
import redis
from django.conf import settings

from tasks_app.models import Task, TaskStatus, Topic
from tests.cluster import settle
from tests.rotation_support import make_topic, submit, wait_all_finished

pytestmark = pytest.mark.django_db(transaction=True)

# The module's path as text only: importing it here would leave the trace.
TRACE_MODULE = "tests.leaves_a_trace"
TRACE_KEY = "test:trace:leaves_a_trace"


@pytest.fixture
def traces(worker):
    """Return a function reading the trace list; empty it before and after."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(TRACE_KEY)
    yield lambda: [item.decode() for item in client.lrange(TRACE_KEY, 0, -1)]
    settle(worker)
    client.delete(TRACE_KEY)


def test_a_handler_path_written_into_the_database_never_runs(traces, topic_name):
    make_topic(topic_name, slice_ms=200)
    Topic.objects.filter(name=topic_name).update(handler=f"{TRACE_MODULE}.run")
    [task] = submit(topic_name, [{"n": 1}])

    wait_all_finished(topic_name, 1, timeout_s=60)

    task = Task.objects.get(pk=task.pk)
    assert task.status == TaskStatus.DEAD
    assert task.attempts == 1, "dead at once, not retried"
    assert f"'{TRACE_MODULE}.run' is not registered" in task.error
    assert "register_handler" in task.error
    assert task.result is None
    assert traces() == [], "the worker imported or ran the module"


def test_a_registered_handler_still_runs_on_the_same_worker(traces, topic_name):
    make_topic(topic_name, slice_ms=200)
    [task] = submit(topic_name, [{"n": 1}])

    wait_all_finished(topic_name, 1, timeout_s=60)

    assert Task.objects.get(pk=task.pk).status == TaskStatus.SUCCEEDED
