"""Writes and side effects: every view, admin action and Celery task calls these."""
