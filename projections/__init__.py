"""Projections: event -> row handlers that build the read tables, the runner, and rebuilds."""
