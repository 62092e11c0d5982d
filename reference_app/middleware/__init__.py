"""Pure ASGI middleware: request id, error catch-all and rate limiting."""
