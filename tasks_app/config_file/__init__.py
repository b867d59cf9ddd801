"""The scheduler's TOML config (topics and groups, seed parity): read and checked."""

from tasks_app.config_file.load import config_load
from tasks_app.config_file.source import ConfigError

__all__ = ["ConfigError", "config_load"]
