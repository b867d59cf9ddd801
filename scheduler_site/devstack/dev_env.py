"""What `make dev` adds to its children's environment; services.env, for a second shell.

`source .devstack/services.env` gives a second shell exactly the variables the
children got from `make dev`: the service URLs, DEBUG=1 and a dev-only
SECRET_KEY (each default only when the user had not set it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
from collections.abc import Mapping
from pathlib import Path

SECRET_KEY_FILE = "secret_key"
# Django's own marker for keys unfit for production: settings refuse such a key
# whenever DEBUG is off, and `check --deploy` flags it.
DEV_SECRET_PREFIX = "django-insecure-"
SECRET_KEY_BYTES = 50
PRIVATE_FILE_MODE = 0o600


def dev_defaults(dev_dir: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """Return DEBUG=1 and the dev-only SECRET_KEY, for those `environ` lacks.

    They go to the children and to services.env, never into settings.py's own
    fallback: only a shell that sources the file turns DEBUG on.
    """
    defaults = {}
    if "DEBUG" not in environ:
        defaults["DEBUG"] = "1"
    if not environ.get("SECRET_KEY"):
        defaults["SECRET_KEY"] = dev_secret_key(dev_dir)
    return defaults


def dev_secret_key(dev_dir: Path) -> str:
    """Return this dev directory's SECRET_KEY, creating it (mode 0600) on first use.

    Random per checkout, so no two dev stacks share a signing key, and kept, so
    sessions survive a restart. The django-insecure- prefix makes settings and
    `check --deploy` refuse it wherever DEBUG is off.
    """
    path = dev_dir / SECRET_KEY_FILE
    if not path.exists():
        scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        _write_private(
            scratch, DEV_SECRET_PREFIX + secrets.token_urlsafe(SECRET_KEY_BYTES)
        )
        with contextlib.suppress(FileExistsError):  # a racing writer won: use its key
            os.link(scratch, path)
        scratch.unlink()
    return path.read_text().strip()


def write_services_env(path: Path, env: Mapping[str, str]) -> None:
    """Write `export NAME=value` lines (shell-quoted) that `source` exports.

    Plain `NAME=value` lines would set shell variables that `manage.py` never
    sees. Mode 0600: the file may hold the dev SECRET_KEY.
    """
    scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    lines = (
        f"export {name}={shlex.quote(value)}\n" for name, value in sorted(env.items())
    )
    _write_private(scratch, "".join(lines))
    scratch.replace(path)


def _write_private(path: Path, text: str) -> None:
    """Write a new file that only its owner can read (never widened by a umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w") as out:
        out.write(text)
