"""Django settings, every deploy-specific value read from the environment (12-factor).

The three service URLs come from DATABASE_URL, REDIS_URL and KAFKA_BOOTSTRAP_SERVERS.
When one is unset, the values written by the running dev stack
(`.devstack/services.env`, or `$DEVSTACK_DIR/services.env`) are used. Only those
URLs: DEBUG and SECRET_KEY come from the environment alone, so a stray dev file
can never turn DEBUG on or hand its key to a deploy; a second shell gets them by
`source .devstack/services.env`.
"""

import os
import shlex
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DEV_DIR = Path(os.environ.get("DEVSTACK_DIR") or BASE_DIR / ".devstack")
DEV_SERVICES_ENV = DEV_DIR / "services.env"
DEV_SERVICE_VARS = ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS")


def _dev_services() -> dict[str, str]:
    """Read the service URLs from the `export NAME=value` lines `make dev` wrote."""
    if not DEV_SERVICES_ENV.exists():
        return {}
    found = {}
    for line in DEV_SERVICES_ENV.read_text().splitlines():
        words = shlex.split(line, comments=True)
        name, _, value = (words[-1] if words else "").partition("=")
        if name in DEV_SERVICE_VARS and value:
            found[name] = value
    return found


def env_str(name: str, default: str | None = None) -> str:
    """Return an environment value, or fail naming the variable when it is missing."""
    value = os.environ.get(name) or _dev_services().get(name) or default
    if value is None:
        raise ImproperlyConfigured(
            f"{name} is not set. Set it, or start the embedded stack with `make dev` "
            "(which writes .devstack/services.env)."
        )
    return value


def env_bool(name: str, default: bool) -> bool:
    """Read a yes/no flag: 1, true, yes, on (any case) mean yes."""
    raw = os.environ.get(name)
    return default if raw is None else raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    """Read a comma-separated list, dropping blanks around and between items."""
    raw = os.environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    """Read an integer setting, failing with the variable's name when malformed."""
    raw = os.environ.get(name)
    try:
        return default if raw is None else int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    """Read a number setting, failing with the variable's name when malformed."""
    raw = os.environ.get(name)
    try:
        return default if raw is None else float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc


DEBUG = env_bool("DEBUG", False)

# A production deploy must bring its own secret; only DEBUG may run without one.
_INSECURE_PREFIX = "django-insecure-"
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY and DEBUG:
    SECRET_KEY = _INSECURE_PREFIX + "dev-only-key-never-use-in-production"
if not DEBUG and (len(SECRET_KEY) < 32 or SECRET_KEY.startswith(_INSECURE_PREFIX)):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random string of at least 32 characters when "
        'DEBUG is off. Generate one with: python -c "import secrets; '
        'print(secrets.token_urlsafe(50))". Next to `make dev`, run '
        "`source .devstack/services.env` first (it sets DEBUG and a dev-only key)."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# HTTPS. With DEBUG off every default is the secure one, so a deploy that sets
# nothing is safe: HTTP is redirected, cookies travel over HTTPS only, browsers
# are told to use HTTPS for a year (HSTS). `manage.py check --deploy` passes
# under docker-compose.yml's environment (tests/test_deploy_settings.py).
# https://docs.djangoproject.com/en/5.2/ref/middleware/#http-strict-transport-security
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Probes reach /healthz over plain HTTP inside the network (compose's
# healthcheck, a load balancer), so it is never redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
# Behind a proxy that terminates TLS, name the header it sets to "https" (e.g.
# X-Forwarded-Proto), so Django knows the request was secure and does not
# redirect it forever. Only with a proxy that always sets (or strips) it:
# otherwise a client could claim HTTPS. https://docs.djangoproject.com/en/5.2/ref/settings/#secure-proxy-ssl-header
_PROXY_SSL_HEADER = os.environ.get("SECURE_PROXY_SSL_HEADER", "")
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"),
        "https",
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "tasks_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads a body: 413 over the limit, 415 for non-UTF-8.
    "tasks_app.middleware.RequestBodyCheckMiddleware",
    # Serves /static/ from gunicorn, so no proxy is needed for the admin's assets.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tasks_app.middleware.DatabaseUnavailableMiddleware",
    # Last, as axes asks: turns a locked-out sign-in into tasks_app.lockout's answer.
    "axes.middleware.AxesMiddleware",
]

# Axes refuses sign-ins of a locked-out (username, address) before the password
# is checked; ModelBackend then checks it.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "scheduler_site.urls"
WSGI_APPLICATION = "scheduler_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL only: the publisher and the fenced lane writes rely on its locking.
# https://github.com/jazzband/dj-database-url
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL"), conn_max_age=60, conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...)")
_DB_OPTIONS = DATABASES["default"].setdefault("OPTIONS", {})
_DB_OPTIONS["connect_timeout"] = env_int("DATABASE_CONNECT_TIMEOUT_S", 3)
# TCP keepalives both ways, so a vanished peer is noticed in ~15 s instead of the
# kernel's two hours: the client side lets a worker give up on a dead database
# host; the server side ends the session of a worker that vanished (a crash, a
# network split), freeing the lane rows it had locked.
# https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-KEEPALIVES
DATABASE_KEEPALIVE = {"idle": 5, "interval": 2, "count": 3, "user_timeout_ms": 15000}
_DB_OPTIONS.update(
    keepalives=1,
    keepalives_idle=DATABASE_KEEPALIVE["idle"],
    keepalives_interval=DATABASE_KEEPALIVE["interval"],
    keepalives_count=DATABASE_KEEPALIVE["count"],
    tcp_user_timeout=DATABASE_KEEPALIVE["user_timeout_ms"],
)
_DB_OPTIONS["options"] = " ".join(
    [
        _DB_OPTIONS.get("options", ""),
        f"-c tcp_keepalives_idle={DATABASE_KEEPALIVE['idle']}",
        f"-c tcp_keepalives_interval={DATABASE_KEEPALIVE['interval']}",
        f"-c tcp_keepalives_count={DATABASE_KEEPALIVE['count']}",
        f"-c tcp_user_timeout={DATABASE_KEEPALIVE['user_timeout_ms']}",
    ]
).strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
KAFKA_BOOTSTRAP_SERVERS = env_str("KAFKA_BOOTSTRAP_SERVERS")

# Largest request body (form fields and JSON; the API takes no file uploads).
# Bounds a bulk submission: SCHEDULER_MAX_BULK_TASKS tasks must fit in it.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 4 * 1024 * 1024)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Sign-in lockout (tasks_app/lockout.py): after LOGIN_FAILURE_LIMIT failed
# sign-ins for one username from one address, that pair waits
# LOGIN_LOCKOUT_MINUTES. Per pair, so an attacker cannot lock a user out from
# elsewhere; a success clears the count.
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Successful sign-ins show in each user's last_login; a log row per sign-in
# would also make a session for every token request.
AXES_DISABLE_ACCESS_LOG = True
AXES_LOCKOUT_CALLABLE = "tasks_app.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "tasks_app.lockout.client_ip"
# Behind a TLS proxy every connection comes from the proxy: name the header it
# sets to the client's address (e.g. X-Forwarded-For); its right-most address
# is used. Leave empty when clients reach the server directly.
CLIENT_IP_HEADER = os.environ.get("CLIENT_IP_HEADER", "")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves STATIC_ROOT (filled by collectstatic) when DEBUG is off, with
# gzip copies made at collectstatic time. The non-manifest storage is chosen on
# purpose: it needs no staticfiles.json, so a process that never ran collectstatic
# (the tests, a one-off manage.py) still renders pages instead of failing on a
# missing manifest entry; the cost is no hashed names, so browsers revalidate
# assets after WhiteNoise's max-age instead of caching them forever.
# https://whitenoise.readthedocs.io/en/stable/django.html
if not DEBUG:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {
            "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage",
        },
    }

# https://www.django-rest-framework.org/api-guide/settings/
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["tasks_app.api.throttling.SharedUserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "user": os.environ.get("API_THROTTLE_RATE", "6000/minute"),
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tasks_app.api.exceptions.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "workload-scheduler API",
    "DESCRIPTION": "Fair, ordered, time-sliced execution of tasks on Kafka.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Tag operations by the path segment after /api/ (tasks, topics, ...).
    "SCHEMA_PATH_PREFIX": "/api/",
    # Swagger UI and Redoc assets ship in drf-spectacular-sidecar and are served
    # from STATIC_URL, so /api/docs/ works offline and without a CDN.
    # https://drf-spectacular.readthedocs.io/en/latest/settings.html
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Document what the API does (tests/test_api_schema_fuzz.py checks it):
    # required text is non-blank, bodies are JSON (form posts are for the
    # browsable API), answers are JSON, and each error status is listed.
    "ENFORCE_NON_BLANK_FIELDS": True,
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    "RENDERER_WHITELIST": ["rest_framework.renderers.JSONRenderer"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tasks_app.api.schema.errors_postprocess",
    ],
}

# The throttle counts live in Redis so every web process shares them.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
    }
}

# Scheduler policy. Each can be overridden in the environment.
SCHEDULER_CONFIG = os.environ.get("SCHEDULER_CONFIG", "")
SCHEDULER_AUTO_CREATE_TOPICS = env_bool("SCHEDULER_AUTO_CREATE_TOPICS", True)
SCHEDULER_MAX_MESSAGE_BYTES = env_int("SCHEDULER_MAX_MESSAGE_BYTES", 256 * 1024)
SCHEDULER_MAX_BULK_TASKS = env_int("SCHEDULER_MAX_BULK_TASKS", 1000)
SCHEDULER_DEFAULT_GROUP = os.environ.get("SCHEDULER_DEFAULT_GROUP", "default")
# Workers run only registered handlers (tasks_app/handlers/registry.py). Besides
# the `handlers` module of every installed app, these modules are imported at
# start-up so their @register_handler functions are registered too.
SCHEDULER_HANDLER_MODULES = env_list("SCHEDULER_HANDLER_MODULES")
# Beat's safety net; submissions also nudge the publisher right after commit.
SCHEDULER_PUBLISH_INTERVAL_S = env_float("SCHEDULER_PUBLISH_INTERVAL", 1.0)
# Larger batches amortise round trips; smaller ones hold row locks for less time.
SCHEDULER_PUBLISH_BATCH = env_int("SCHEDULER_PUBLISH_BATCH", 500)
# One publisher run stops after this long so beat can start a fresh one.
SCHEDULER_PUBLISH_BUDGET_S = env_float("SCHEDULER_PUBLISH_BUDGET_S", 10.0)
SCHEDULER_DEFAULT_SLICE_MS = env_int("SCHEDULER_SLICE_MS", 2000)
# Lease TTL = slice + grace: room for the last handler and the commit.
SCHEDULER_LEASE_GRACE_MS = env_int("SCHEDULER_LEASE_GRACE_MS", 3000)
SCHEDULER_CONSUME_BATCH = env_int("SCHEDULER_CONSUME_BATCH", 200)
SCHEDULER_POLL_TIMEOUT_MS = env_int("SCHEDULER_POLL_TIMEOUT_MS", 50)
SCHEDULER_HEARTBEAT_S = env_float("SCHEDULER_HEARTBEAT_S", 2.0)
SCHEDULER_WATCHDOG_S = env_float("SCHEDULER_WATCHDOG_S", 2.0)

# https://docs.celeryq.dev/en/stable/userguide/configuration.html
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Longer than the longest slice, so Redis never redelivers a turn still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes every database connection around every task
# unless this is set; a rotation turn then reconnects to PostgreSQL (3-10 ms of
# each hand-off, measured by bench/rotation.py). Set high, connections are kept
# and Django's CONN_MAX_AGE and health checks decide (see scheduler_site/celery.py).
CELERY_DB_REUSE_MAX = 1_000_000
# Each worker also consumes its own queue, so a lane's next turn can go to a
# member other than the last one (DESIGN invariant 5, "take turns").
CELERY_WORKER_DIRECT = True
CELERY_TASK_ROUTES = {
    "tasks_app.tasks.publish_pending": {"queue": "publish"},
    "tasks_app.tasks.watchdog": {"queue": "publish"},
    "tasks_app.tasks.run_slice": {"queue": "rotation"},
}
CELERY_BEAT_SCHEDULE = {
    "publish-pending": {
        "task": "tasks_app.tasks.publish_pending",
        "schedule": SCHEDULER_PUBLISH_INTERVAL_S,
        "options": {"expires": SCHEDULER_PUBLISH_INTERVAL_S * 5},
    },
    "rotation-watchdog": {
        "task": "tasks_app.tasks.watchdog",
        "schedule": SCHEDULER_WATCHDOG_S,
        "options": {"expires": SCHEDULER_WATCHDOG_S * 5},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"confluent_kafka": {"level": "WARNING"}},
}
