"""Multi-worker runtime: `gunicorn -c reference_app/gunicorn.conf.py reference_app.main:app`.

Uvicorn alone is the default; this is the conventions' multi-worker toggle. WEB_CONCURRENCY sets
the worker count and PORT the port. Use REDIS_URL with several workers, so they share rate limits.
"""

import os
from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    """Uvicorn worker that leaves X-Forwarded-For alone: TRUST_PROXY decides in the app."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "proxy_headers": False,
    }


bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = Worker
accesslog = None  # the app writes one JSON access line per request
control_socket_disable = True  # instances on one host would share its default path
