"""Start background work by its Celery task name.

Services sit below the Celery layer (tasks_app.tasks) and never import it;
sending a task by name keeps them there. A broker outage must not fail the
request that asked: beat starts the same work on its own schedule, so a send
that fails is logged with what will happen instead, not raised.
"""

import logging
from typing import Any

import redis
from celery import current_app
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)

PUBLISH_PENDING = "tasks_app.tasks.publish_pending"
LANES_KICK = "tasks_app.tasks.lanes_kick"


def task_send(name: str, *args: Any, instead: str) -> bool:
    """Queue the task `name` with `args`; return False (logged) if the broker
    refused, saying what happens `instead`."""
    try:
        current_app.send_task(name, args=list(args))
    except (OperationalError, redis.RedisError) as exc:
        logger.warning("Could not queue %s through Redis (%s); %s", name, exc, instead)
        return False
    return True
