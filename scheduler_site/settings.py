"""Django settings, every deploy-specific value read from the environment (12-factor).

Values are read with django-environ (scheduler_site/env.py). The three service
URLs come from DATABASE_URL, REDIS_URL and KAFKA_BOOTSTRAP_SERVERS, or, when one
is unset, from the running dev stack's `.devstack/services.env` (see
`service_urls`); a second shell gets DEBUG and the dev key by
`source .devstack/services.env`. The scheduler's own policy and Celery's
settings are in scheduler_settings.py.
"""

import os
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from scheduler_site.env import BASE_DIR, Env, env, service_urls
from scheduler_site.scheduler_settings import *  # noqa: F403 (SCHEDULER_*, CELERY_*)

DEBUG = env.bool("DEBUG", default=False)

# A production deploy must bring its own secret; only DEBUG may run without one.
_INSECURE_PREFIX = "django-insecure-"
# Read as given: django-environ takes a value starting with "$" for the name of
# another variable, and Django's own generated keys may start with one.
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

# /metrics: Prometheus sends `Authorization: Bearer <METRICS_TOKEN>`; operators
# may also read it signed in. Unset, no token is accepted (docs/metrics.md).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
if METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured(
        "METRICS_TOKEN must be at least 32 characters (or unset). Generate one "
        'with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS. With DEBUG off every default is the secure one, so a deploy that sets
# nothing is safe: HTTP is redirected, cookies travel over HTTPS only, browsers
# are told to use HTTPS for a year (HSTS). `manage.py check --deploy` passes
# under docker-compose.yml's environment (tests/test_deploy_settings.py).
# https://docs.djangoproject.com/en/5.2/ref/middleware/#http-strict-transport-security
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Probes reach /healthz over plain HTTP inside the network (compose's
# healthcheck, a load balancer), so it is never redirected.
# Prometheus scrapes /metrics the same way (with its bearer token, below).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int(
    "SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG
)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
# Behind a proxy that terminates TLS, name the header it sets to "https" (e.g.
# X-Forwarded-Proto), so Django knows the request was secure and does not
# redirect it forever. Only with a proxy that always sets (or strips) it:
# otherwise a client could claim HTTPS. https://docs.djangoproject.com/en/5.2/ref/settings/#secure-proxy-ssl-header
_PROXY_SSL_HEADER = env.str("SECURE_PROXY_SSL_HEADER", default="")
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
    "django_celery_beat",
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
# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-db-url
_SERVICE_URLS = service_urls()
DATABASES = {
    "default": {
        **Env.db_url_config(_SERVICE_URLS["DATABASE_URL"]),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }
}
if DATABASES["default"].get("ENGINE") != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...)")
# Django's backend, reading timestamps with psycopg's C loader (its docstring).
DATABASES["default"]["ENGINE"] = "scheduler_site.postgresql"
_DB_OPTIONS = DATABASES["default"].setdefault("OPTIONS", {})
# Bind parameters on the server, and let psycopg prepare a statement from its
# sixth use in a session: the pipeline repeats a few dozen statements (the
# fenced claim, each batch's reads and writes, the publisher's), and planning
# them once per session cut PostgreSQL's CPU per task by about a tenth
# (docs/benchmarks.md). A pooler in transaction mode that cannot keep prepared
# statements (PgBouncer before 1.21) needs DATABASE_PREPARED_STATEMENTS=0.
# https://docs.djangoproject.com/en/5.2/ref/databases/#server-side-parameters-binding
_DB_OPTIONS["server_side_binding"] = True
_DB_OPTIONS["prepare_threshold"] = (
    5 if env.bool("DATABASE_PREPARED_STATEMENTS", default=True) else None
)
_DB_OPTIONS["connect_timeout"] = env.int("DATABASE_CONNECT_TIMEOUT_S", default=3)
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

REDIS_URL = _SERVICE_URLS["REDIS_URL"]
KAFKA_BOOTSTRAP_SERVERS = _SERVICE_URLS["KAFKA_BOOTSTRAP_SERVERS"]

# Largest request body (form fields and JSON; the API takes no file uploads).
# Bounds a bulk submission: SCHEDULER_MAX_BULK_TASKS tasks must fit in it.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BYTES", default=4 * 1024 * 1024)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Sign-in lockout (tasks_app/lockout.py): after LOGIN_FAILURE_LIMIT failed
# sign-ins for one username from one address, that pair waits
# LOGIN_LOCKOUT_MINUTES. Per pair, so an attacker cannot lock a user out from
# elsewhere; a success clears the count.
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
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
CLIENT_IP_HEADER = env.str("CLIENT_IP_HEADER", default="")

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
        "user": env.str("API_THROTTLE_RATE", default="6000/minute"),
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
# Celery's broker is the same Redis; the rest of Celery's settings are in
# scheduler_settings.py. https://docs.celeryq.dev/en/stable/userguide/configuration.html
CELERY_BROKER_URL = REDIS_URL

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"confluent_kafka": {"level": "WARNING"}},
}
