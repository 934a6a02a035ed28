"""The write model: aggregates, their events, domain errors and the event-sourced application.

Imports only `eventsourcing` and the standard library, so every invariant can be tested
without a database, a web framework or a broker.
"""
