"""How the issuer answers a request: the endpoint kind of its path, then CORS, an injected fault, the endpoint."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from . import admin
from ._http import Reply, Request, json_reply, sleep_unless
from .faults import FAULTABLE, GARBAGE_BODIES
from .oidc import OidcEndpoints

if TYPE_CHECKING:
    from .server import Issuer

__all__ = ["Dispatcher", "classify"]

_UNDER_REALM = {
    "/.well-known/openid-configuration": "discovery",
    "/protocol/openid-connect/certs": "jwks",
    "/protocol/openid-connect/token": "token",
    "/protocol/openid-connect/token/introspect": "introspect",
    "/protocol/openid-connect/userinfo": "userinfo",
}
_HEALTH = ("/health", "/health/ready", "/health/live", "/health/started")
_READ_ONLY = ("realm", "discovery", "jwks", "health")


def classify(path: str, realm: str) -> str:
    """The endpoint kind (one of ``FETCH_KINDS``) of a request path."""
    prefix = f"/realms/{realm}"
    if path == prefix or path == prefix + "/":
        return "realm"
    if path.startswith(prefix + "/"):
        return _UNDER_REALM.get(path[len(prefix) :], "other")
    if path in _HEALTH:
        return "health"
    if path == "/admin" or path.startswith("/admin/"):
        return "admin"
    return "other"


class Dispatcher:
    """The issuer's endpoints by kind, behind CORS and fault injection; transport-independent."""

    def __init__(self, issuer: Issuer) -> None:
        self._issuer = issuer
        oidc = OidcEndpoints(issuer)
        self._endpoints: dict[str, Callable[[Request], Reply]] = {
            "realm": lambda _: json_reply(200, issuer.realm_document()),
            "discovery": lambda _: json_reply(200, issuer.discovery_document()),
            "jwks": lambda _: Reply(
                200, issuer.keys.jwks_json(), {"Content-Type": "application/json", "Cache-Control": "no-cache"}
            ),
            "health": lambda _: json_reply(200, {"status": "UP", "checks": []}),
            "token": oidc.token,
            "userinfo": oidc.userinfo,
            "introspect": oidc.introspect,
            "admin": partial(admin.answer, issuer),
        }

    def answer(self, kind: str, request: Request) -> Reply | None:
        """The reply to a request of endpoint ``kind``; None: drop the connection (went down during a delay)."""
        cors = self._issuer.cors
        if request.method == "OPTIONS" and request.header("origin") and cors:
            return self._with_cors(Reply(204, b"", {}), request, preflight=True)
        if kind in FAULTABLE:
            reply = self._fault(kind)
            if reply is not None:
                return self._with_cors(reply, request) if reply.status else None
        return self._with_cors(self._route(kind, request), request)

    def _route(self, kind: str, request: Request) -> Reply:
        if kind in _READ_ONLY and request.method not in ("GET", "HEAD"):
            return json_reply(405, {"error": "HTTP 405 Method Not Allowed"}, {"Allow": "GET, HEAD"})
        endpoint = self._endpoints.get(kind)
        if endpoint is not None:
            return endpoint(request)
        issuer = self._issuer
        if request.path.startswith("/realms/") and request.path.split("/")[2] != issuer.realm:
            return json_reply(404, {"error": "Realm does not exist", "error_description": "Realm does not exist"})
        if request.path == "/":
            return json_reply(
                200, {"issuer": issuer.issuer_url, "discovery": issuer.discovery_url, "admin": issuer.admin_url}
            )
        return json_reply(404, {"error": "Unable to find matching target resource method"})

    def _fault(self, kind: str) -> Reply | None:
        """A faulted reply, ``Reply(0)`` meaning "drop the connection" (went down while delaying), or None."""
        faults = self._issuer.faults
        fault = faults.get(kind)
        if fault is None:
            return None
        if fault.delay:
            generation = faults.generation
            sleep_unless(fault.delay, lambda: faults.generation != generation or not self._issuer.is_up)
            if not self._issuer.is_up:
                return Reply(0)
            fault = faults.get(kind)
            if fault is None:
                return None
        if fault.status is not None:
            return json_reply(
                fault.status,
                {"error": "injected_fault", "error_description": f"makrx issuer: {kind} fault {fault.status}"},
                {"Cache-Control": "no-cache"},
            )
        if fault.garbage is not None:
            if isinstance(fault.garbage, bytes):
                return Reply(200, fault.garbage, {"Content-Type": "application/json"})
            content_type, body = GARBAGE_BODIES[fault.garbage]
            return Reply(200, body, {"Content-Type": content_type})
        return None

    def _with_cors(self, reply: Reply, request: Request, *, preflight: bool = False) -> Reply:
        origin = request.header("origin")
        if self._issuer.cors and origin:
            reply.headers.update(
                {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}
            )
            if preflight:
                reply.headers.update(
                    {
                        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                        "Access-Control-Allow-Headers": request.header("access-control-request-headers")
                        or "Authorization, Content-Type",
                        "Access-Control-Max-Age": "3600",
                    }
                )
        return reply
