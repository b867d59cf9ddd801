"""Accounts: the admin that `make dev` and deployments sign in with, and users
created with a role (submitter or operator), each with an API token."""

import json
import logging
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.authtoken.models import Token

from tasks_app.errors import Conflict, InvalidInput
from tasks_app.roles import ROLE_GROUPS, Role, roles_ensure

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


@dataclass(frozen=True)
class UserCredentials:
    """A new user's name, role, generated password and API token (shown once)."""

    username: str
    role: Role
    password: str
    token: str


@transaction.atomic
def user_create(*, username: str, role: Role) -> UserCredentials:
    """Create an active user in the role's group, with a random password and a token.

    Operators are also staff, so they can sign in to the admin; submitters use
    the API only. An existing username is refused: change roles in the admin.
    """
    users = get_user_model()
    if users.objects.filter(username=username).exists():
        raise Conflict(
            f"User {username!r} already exists. Change its groups in the admin, "
            "or get its token with POST /api/auth/token/.",
            field="username",
        )
    password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    user = users(username=username)
    user.set_password(password)
    try:
        user.full_clean(exclude=["password"])
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), field="username") from exc
    user.save()
    user_role_grant(user=user, role=role)
    token = Token.objects.create(user=user)
    return UserCredentials(user.get_username(), role, password, token.key)


def token_sign_in(*, user: AbstractUser, request: Any) -> str:
    """Record a password sign-in and return the user's API token (made once).

    Sends Django's user_logged_in like a login page does, so `last_login` moves
    and the sign-in lockout forgets this (username, address)'s failures.
    """
    user_logged_in.send(sender=user.__class__, request=request, user=user)
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def user_role_grant(*, user: AbstractUser, role: Role) -> None:
    """Put the user in the role's group; operators also become staff (admin)."""
    roles_ensure()  # the groups come from a migration, but may have been deleted
    user.groups.add(Group.objects.get(name=ROLE_GROUPS[role]))
    if role == Role.OPERATOR and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])


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
