"""The read model: denormalised SQLAlchemy tables and the queries that read them.

Knows nothing of the write side: projections fill these tables from events.
"""
