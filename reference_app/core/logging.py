"""structlog set-up: app, uvicorn and library logs become one JSON object per line on stdout."""

import logging
import sys

import structlog


def configure_logging(level: str) -> None:
    """Route structlog and stdlib logging through one JSON renderer carrying the request id."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,  # request_id bound by the request-id middleware
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # Plain traceback text: dict tracebacks can include local variables (tokens).
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # uvicorn (and gunicorn's worker) attach their own plain-text handlers; send them to ours.
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # The request-id middleware writes the access line; uvicorn's would duplicate it.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every outbound call (readiness probes, JWKS) at INFO: noise at that level.
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))
