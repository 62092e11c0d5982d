"""Request-level security helpers shared by middleware and routes."""

from starlette.datastructures import Headers
from starlette.types import Scope

from .input_validation import normalize_ip


def client_ip(scope: Scope, *, trust_proxy: bool) -> str:
    """The caller's address; X-Forwarded-For counts only behind a trusted proxy."""
    if trust_proxy:
        forwarded = Headers(scope=scope).get("x-forwarded-for")
        if forwarded and (first := normalize_ip(forwarded.split(",")[0])):
            return first
    client = scope.get("client")
    return client[0] if client else "unknown"
