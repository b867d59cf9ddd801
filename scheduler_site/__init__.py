"""Django project wiring; exports the Celery app for `celery -A scheduler_site`."""

from scheduler_site.celery import app as celery_app

__all__ = ("celery_app",)
