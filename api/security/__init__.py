"""Authentication: signed tokens, sessions, and who may call what."""
