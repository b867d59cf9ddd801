"""Declare topics and groups in a TOML file (seed parity) and apply it idempotently.

The file is the Rust seed's way of naming its topics; the database stays the live
truth. Applying creates what is missing and sets only the keys the file gives:
omitted keys, topics added to a group at run time and partitions above the file's
count are left alone, so re-applying at every start never undoes a change made
through the API or the admin.
"""

from tasks_app.services.config.apply import ConfigChange, ConfigReport, config_apply
from tasks_app.services.config.load import (
    GroupDecl,
    SchedulerConfig,
    TopicDecl,
    config_load,
)
from tasks_app.services.config.source import ConfigError

__all__ = [
    "ConfigChange",
    "ConfigError",
    "ConfigReport",
    "GroupDecl",
    "SchedulerConfig",
    "TopicDecl",
    "config_apply",
    "config_load",
]
