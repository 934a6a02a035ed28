"""Concrete stores and services behind the inner layers' ports.

One module per thing adapted: the write-side tables and the stores over them (credentials,
refresh and reset tokens, mail outbox, login throttle), the password hasher, database
engines, Celery wake-ups and SMTP. Adapters never import the API, the workers, the
composition root or the projections; `bookstore.bootstrap` decides which ones are used.
"""
