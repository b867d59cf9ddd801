"""The admin account that `make dev` and deployments sign in with, and its API token."""

import json
import logging
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.authtoken.models import Token

from tasks_app.errors import InvalidInput

logger = logging.getLogger(__name__)

# 12 random bytes as URL-safe text: 16 characters, easy to paste, hard to guess.
GENERATED_PASSWORD_BYTES = 12
CREDENTIALS_FILE_MODE = 0o600


@dataclass(frozen=True)
class AdminCredentials:
    """What a person needs to use the admin and the API: written to a 0600 file."""

    username: str
    password: str | None
    token: str


@transaction.atomic
def admin_ensure(*, username: str, password: str | None) -> tuple[AbstractUser, Token]:
    """Make `username` an active superuser with an API token.

    Set the password when one is given; a new user without one gets an unusable
    password (sign-in by token only) until a password is set.
    """
    user, created = get_user_model().objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = user.is_active = True
    if password is not None:
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    user.save()
    token, _ = Token.objects.get_or_create(user=user)
    return user, token


def admin_credentials_ensure(
    *, username: str, password: str | None, path: Path | None
) -> AdminCredentials:
    """Ensure the admin and its token, and record them in `path` (mode 0600).

    The password is the one given, else the one stored in `path` while it still
    signs in, else a fresh random one. Without a file to write it to, an
    existing admin's password is left as it is rather than replaced by one no
    one could read.
    """
    if password is not None:
        _password_check(password, username=username)
    chosen = password or _stored_password(path=path, username=username)
    if chosen is None and (path is not None or not _user_exists(username)):
        chosen = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
        logger.info("Generated a new password for admin user %s", username)
    user, token = admin_ensure(username=username, password=chosen)
    credentials = AdminCredentials(user.get_username(), chosen, token.key)
    if path is not None:
        _credentials_write(path=path, credentials=credentials)
    return credentials


def _password_check(password: str, *, username: str) -> None:
    """Refuse a weak ADMIN_PASSWORD with the validators' own reasons."""
    try:
        validate_password(password, user=get_user_model()(username=username))
    except ValidationError as exc:
        raise InvalidInput(
            f"ADMIN_PASSWORD is too weak: {' '.join(exc.messages)}", field="password"
        ) from exc


def _user_exists(username: str) -> bool:
    return get_user_model().objects.filter(username=username).exists()


def _stored_password(*, path: Path | None, username: str) -> str | None:
    """Return the password in the credentials file if it still signs `username` in."""
    if path is None or not path.exists():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("Ignoring unreadable credentials file %s: %s", path, exc)
        return None
    password = stored.get("password") if isinstance(stored, dict) else None
    user = get_user_model().objects.filter(username=username).first()
    if isinstance(password, str) and user and user.check_password(password):
        return password
    return None


def _credentials_write(*, path: Path, credentials: AdminCredentials) -> None:
    """Replace the file atomically, readable by its owner only from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, CREDENTIALS_FILE_MODE)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(asdict(credentials), stream, indent=2)
            stream.write("\n")
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
        raise
