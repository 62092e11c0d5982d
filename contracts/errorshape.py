"""The MakrX error shape: a JSON object with a machine-readable code, a message and the request id."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
from makrx_contracts.harness.contract import expect

__all__ = ["ErrorBody", "expect_no_leaks", "leaks_in", "parse_error_body"]

_CODE_KEYS = ("code", "error_code", "errorCode", "type")
_MESSAGE_KEYS = ("message", "detail", "title", "error_description", "msg")
_ID_KEYS = ("request_id", "requestId", "request-id", "correlation_id", "trace_id")


@dataclass(frozen=True)
class ErrorBody:
    """What was found in an error body; ``problems`` empty means it has the shape."""

    code: str | None
    message: str | None
    request_id: str | None
    problems: tuple[str, ...]


def _pick(obj: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def parse_error_body(response: httpx.Response) -> ErrorBody:
    """Accept a flat object, one wrapper (``{"error": {...}}``, ``{"detail": {...}}``) or RFC 9457
    problem+json; report what is missing."""
    try:
        data = json.loads(response.content) if response.content else None
    except ValueError:
        return ErrorBody(None, None, None, ("body is not JSON",))
    if not isinstance(data, dict):
        return ErrorBody(None, None, None, (f"body is JSON {type(data).__name__}, not an object",))
    # One wrapper object is the same shape: FastAPI's HTTPException(detail={...}) nests it under "detail".
    layers = [data] + [data[k] for k in ("error", "errors", "detail") if isinstance(data.get(k), dict)]
    code = next((c for layer in layers if (c := _pick(layer, _CODE_KEYS))), None)
    if code is None and isinstance(data.get("error"), str):
        code = data["error"]
    message = next((m for layer in layers if (m := _pick(layer, _MESSAGE_KEYS))), None)
    request_id = next((r for layer in layers if (r := _pick(layer, _ID_KEYS))), None)
    problems = []
    if code is None:
        problems.append("no machine-readable code (code / error_code / problem type)")
    if message is None:
        problems.append("no human message (message / detail / title)")
    if request_id is None:
        problems.append("no request id (request_id)")
    return ErrorBody(code, message, request_id, tuple(problems))


_LEAK_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a Python traceback", re.compile(r"Traceback \(most recent call last\)")),
    ("a source file path", re.compile(r"(/[\w.-]+)+\.py\b|File \"[^\"]+\", line \d+")),
    (
        "an exception class name",
        re.compile(
            r"\b(builtins|sqlalchemy|psycopg2?|asyncpg|redis|httpx|pydantic_core|starlette|fastapi|jwt)\.\w"
            r"|\b(KeyError|ValueError|TypeError|AttributeError|IndexError|ZeroDivisionError|RuntimeError|NameError"
            r"|AssertionError|ImportError|ModuleNotFoundError|OperationalError|IntegrityError|ProgrammingError"
            r"|InterfaceError|ConnectionRefusedError|NotImplementedError|UnboundLocalError|RecursionError)\b"
        ),
    ),
    ("SQL text", re.compile(r"\b(SELECT\s+.+\s+FROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.I)),
    ("a database DSN", re.compile(r"\b(postgres(ql)?(\+\w+)?|redis|mysql)://", re.I)),
)


def leaks_in(text: str, secrets: tuple[str, ...] = ()) -> list[str]:
    """What a response body gives away that it should not: traces, paths, SQL, DSNs, known secrets."""
    found = [name for name, pattern in _LEAK_PATTERNS if pattern.search(text)]
    found += [f"a secret of the harness ({s[:3]}...)" for s in secrets if s and s in text]
    return found


def expect_no_leaks(response: httpx.Response, body: str, *, expected: str, secrets: tuple[str, ...] = ()) -> None:
    """Fail unless the response's body (``body`` names it in the title) gives nothing away (``leaks_in``)."""
    __tracebackhide__ = True
    found = leaks_in(response.text, secrets)
    expect(not found, f"{body} gives away internals", received=", ".join(found), expected=expected, response=response)
