"""Composition root: settings, the wiring of concrete stores and broker, and the CLI."""
