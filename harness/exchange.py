"""Readable, redacted renderings of HTTP exchanges for failure messages and reports."""

from __future__ import annotations

import re
from collections.abc import Iterable

import httpx

__all__ = ["redact", "render_exchange", "render_exchanges"]

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")
_SECRET_HEADERS = {"authorization", "cookie", "set-cookie", "proxy-authorization"}
_BODY_LIMIT = 1200


def redact(text: str) -> str:
    """Replace anything shaped like a JWT with a marker that keeps only its length."""
    return _JWT.sub(lambda m: f"<token:{len(m.group(0))} chars>", text)


def _header_lines(headers: httpx.Headers) -> list[str]:
    lines = []
    for key, value in headers.multi_items():
        if key.lower() in _SECRET_HEADERS:
            scheme = value.split(" ", 1)[0] if " " in value else ""
            value = f"{scheme} <redacted:{len(value)} chars>".strip()
        lines.append(f"  {key}: {redact(value)}")
    return lines


def _body(content: bytes) -> str:
    if not content:
        return ""
    text = content[: _BODY_LIMIT * 2].decode("utf-8", "replace")
    text = redact(text)
    if len(content) > _BODY_LIMIT:
        text = text[:_BODY_LIMIT] + f"... ({len(content)} bytes in all)"
    return "  " + text.replace("\n", "\n  ")


def render_exchange(response: httpx.Response) -> str:
    """Request line, headers and body, then status, headers and body, trimmed and redacted."""
    request = response.request
    lines = [f"> {request.method} {redact(str(request.url))}"]
    lines += _header_lines(request.headers)
    try:
        body = _body(request.content)
    except httpx.RequestNotRead:
        body = "  <streamed body>"
    if body:
        lines.append(body)
    lines.append(f"< {response.status_code} {response.reason_phrase}")
    lines += _header_lines(response.headers)
    try:
        body = _body(response.content)
    except httpx.ResponseNotRead:
        body = "  <unread body>"
    if body:
        lines.append(body)
    return "\n".join(lines)


def render_exchanges(responses: Iterable[httpx.Response], limit: int = 3) -> str:
    """The last ``limit`` exchanges, oldest first."""
    chosen = list(responses)[-limit:]
    return "\n\n".join(render_exchange(r) for r in chosen)
