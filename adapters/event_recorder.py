"""The library's PostgreSQL event recorder, with every statement of its connections bounded.

Projections read the log below the oldest transaction still running in the cluster, so a
writer's statement that hangs (a lock wait, a stuck insert) would hold every projection
back for as long as it hangs. This recorder gives each connection of the store's pool a
`statement_timeout`; the library's own settings already give them a lock timeout and an
idle-in-transaction timeout. `event_store_env` selects it through the library's
`APPLICATION_RECORDER_TOPIC` setting.
"""

from __future__ import annotations

from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

from adapters.engines import EVENT_STORE_STATEMENT_TIMEOUT_SECONDS


class BoundedPostgresRecorder(PostgresApplicationRecorder):
    """`PostgresApplicationRecorder` whose connections end any statement within the timeout."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        # Before the base class opens the pool (it fetches type information at once): the
        # pool passes these keyword arguments to every connection it makes.
        options = f"-c statement_timeout={EVENT_STORE_STATEMENT_TIMEOUT_SECONDS * 1000}"
        kwargs = datastore.pool.kwargs
        if isinstance(kwargs, dict) and "options" not in kwargs:
            kwargs["options"] = options
        super().__init__(datastore, events_table_name=events_table_name)
