"""Celery app and thin tasks that drive projections and the mail outbox."""
