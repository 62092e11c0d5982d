"""What a rate limiter's response headers tell a client: that there is a limit, how many requests are left,
when to come back (draft-ietf-httpapi-ratelimit-headers, the legacy X-RateLimit-*, RFC 9110 §10.2.3)."""

from __future__ import annotations

import email.utils
import re
import time

import httpx

__all__ = ["LIMIT_HEADERS", "limit_headers", "remaining", "retry_after"]

LIMIT_HEADERS = (
    "RateLimit",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Policy",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
)
_REMAINING = re.compile(r"(?:^|[;,\s])r=(\d+)")


def limit_headers(response: httpx.Response) -> list[str]:
    """The limit headers ``response`` carries."""
    return [name for name in LIMIT_HEADERS if name in response.headers]


def remaining(response: httpx.Response) -> int | None:
    """Requests left in the window, from any of the common limit headers (None when absent)."""
    for name in ("RateLimit-Remaining", "X-RateLimit-Remaining"):
        value = response.headers.get(name, "").strip()
        if value.isdigit():
            return int(value)
    match = _REMAINING.search(response.headers.get("RateLimit", ""))
    return int(match.group(1)) if match else None


def retry_after(response: httpx.Response) -> float | None:
    """Seconds Retry-After asks the client to wait: its delay-seconds, or the time until its HTTP date
    (negative once past). None when the header is absent or neither."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        return email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None
