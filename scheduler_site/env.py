"""Read settings from the environment with django-environ, and the dev stack's URLs.

https://django-environ.readthedocs.io/en/latest/types.html
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
SERVICE_VARS = ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS")
_KINDS = {int: "an integer", float: "a number"}


class Env(environ.Env):
    """django-environ's reader, failing with the variable's name on a bad value.

    Left alone, `env.int("SCHEDULER_SLICE_MS")` of "abc" escapes as a bare
    ValueError that names no variable, and `env.float` reads "1e3" as 13.0 (it
    drops every character but digits, ',', '.' and '-').
    """

    def get_value(
        self,
        var: str,
        cast: Any = None,
        default: Any = environ.Env.NOTSET,
        parse_default: bool = False,
    ) -> Any:
        try:
            return super().get_value(var, cast, default, parse_default)
        except ValueError as exc:
            kind = _KINDS.get(cast, "well-formed")
            raw = self.ENVIRON.get(var)
            raise ImproperlyConfigured(f"{var} must be {kind}, got {raw!r}") from exc

    @classmethod
    def parse_value(cls, value: Any, cast: Any) -> Any:
        """Parse numbers with `float()`, which refuses what is not one."""
        return float(value) if cast is float else super().parse_value(value, cast)

    def list(self, var: str, default: Any = environ.Env.NOTSET) -> list[str]:
        """Read a comma-separated list, dropping blanks around and between items."""
        items = super().list(var, cast=str.strip, default=default)
        return [item for item in items if item]


env = Env()


def service_urls() -> dict[str, str]:
    """Return DATABASE_URL, REDIS_URL and KAFKA_BOOTSTRAP_SERVERS.

    Each comes from the environment or, when unset or empty there, from the
    `export NAME=value` lines the running dev stack wrote to services.env. Only
    these three: DEBUG and SECRET_KEY come from the environment alone, so a
    stray dev file can never turn DEBUG on or hand its key to a deploy.
    """
    given = {name: os.environ[name] for name in SERVICE_VARS if os.environ.get(name)}
    urls = {**_dev_services(), **given}
    for name in SERVICE_VARS:
        if name not in urls:
            raise ImproperlyConfigured(
                f"{name} is not set. Set it, or start the embedded stack with "
                "`make dev` (which writes .devstack/services.env)."
            )
    return urls


def _dev_services() -> dict[str, str]:
    """Read the service URLs from `$DEVSTACK_DIR/services.env`, if it exists.

    The file is shell syntax (written with `shlex.quote` for `source`), so it
    is read back with `shlex`, not as a dotenv file.
    """
    dev_dir = Path(env.str("DEVSTACK_DIR", default="") or BASE_DIR / ".devstack")
    path = dev_dir / "services.env"
    if not path.exists():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        name, _, value = (words[-1] if words else "").partition("=")
        if name in SERVICE_VARS and value:
            found[name] = value
    return found
