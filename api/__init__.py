"""The HTTP API (FastAPI): routers, request/response schemas, auth and problem details."""
