"""The issuer's admin HTTP API under ``/admin`` (rotation, faults, clock, fetch counts, outages, case tokens), for
frontends and other processes. Unauthenticated: the issuer binds loopback by default."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from makrx_contracts.harness.errors import IssuerError

from . import catalogue
from ._http import Reply, Request, json_reply
from .fetches import FETCH_KINDS
from .tokens import primary_audience

if TYPE_CHECKING:
    from .server import Issuer

__all__ = ["HELP", "ROUTES", "answer"]

Handler = Callable[["Issuer", Request, Mapping[str, Any]], Reply]
"""An admin endpoint: the issuer, the request and its JSON body (``{}`` unless POST) to the reply."""


def _state(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    return json_reply(200, {**issuer.admin_state(), "endpoints": HELP})


def _token(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    """The case's token, prepared and signed here, so another process gets tokens of this issuer's keys; without
    a case, a valid token. ``keys_changed`` says the case changed the key state (``POST /admin/keys/reset``
    restores it; the token needs that state)."""
    name, audience = body.get("case"), body.get("audience")
    if not isinstance(name, str | None) or not isinstance(audience, str | None):
        return json_reply(400, {"error": "case and audience must be strings"})
    aud = audience or primary_audience(issuer.default_audience)
    issued: dict[str, Any] = {"issuer": issuer.issuer_url, "audience": aud}
    if not name:
        return json_reply(200, {**issued, "case": None, "token": issuer.mint(audience=aud)})
    try:
        case = catalogue.get(name)
    except IssuerError as exc:
        return json_reply(404, {"error": exc.message, "fix": exc.fix})
    if not case.applies(issuer):
        return json_reply(409, {"error": f"case {name!r} does not apply to a {issuer.algorithm} issuer"})
    before = issuer.keys.snapshot()
    case.prepare(issuer)
    token = case.build(issuer, aud)
    return json_reply(
        200,
        {
            **issued,
            "case": case.name,
            "token": token,
            "description": case.description,
            "level": case.level,
            "verdict": case.verdict.name,
            "statuses": sorted(case.verdict.statuses),
            "expected": str(case.verdict),
            "hint": case.hint,
            "keys_changed": issuer.keys.snapshot() != before,
        },
    )


def _keys(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    return json_reply(200, {"keys": issuer.keys.snapshot()})


def _keys_next(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    key = issuer.keys.publish_next()
    return json_reply(200, {"kid": key.kid, "keys": issuer.keys.snapshot()})


def _keys_promote(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    key = issuer.keys.promote()
    return json_reply(200, {"kid": key.kid, "keys": issuer.keys.snapshot()})


def _keys_retire(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    retired = issuer.keys.retire(body.get("kid"))
    return json_reply(200, {"retired": [k.kid for k in retired], "keys": issuer.keys.snapshot()})


def _keys_reset(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    issuer.keys.reset()
    return json_reply(200, {"keys": issuer.keys.snapshot()})


def _faults(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    return json_reply(200, {"faults": issuer.faults.active()})


def _faults_set(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    kind = body.get("kind", "jwks")
    if "status" in body:
        issuer.faults.status(kind, int(body["status"]))
    if "delay" in body:
        issuer.faults.delay(kind, float(body["delay"]))
    if "garbage" in body:
        garbage = body["garbage"]
        issuer.faults.garbage(kind, "truncated" if garbage is True else str(garbage))
    return json_reply(200, {"faults": issuer.faults.active()})


def _faults_clear(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    issuer.faults.clear(body.get("kind") or next(iter(request.query.get("kind", [])), None))
    return json_reply(200, {"faults": issuer.faults.active()})


def _clock(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    issuer.clock_offset = float(body.get("offset", 0))
    return json_reply(200, {"clock_offset": issuer.clock_offset})


def _fetches(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    kind = next(iter(request.query.get("kind", [])), None)
    if kind is not None and kind not in FETCH_KINDS:
        return json_reply(400, {"error": f"unknown fetch kind {kind!r}", "fix": f"one of {FETCH_KINDS}"})
    return json_reply(
        200,
        {
            "fetches": issuer.fetch_counts(),
            "now": time.time(),  # "at" minus "now" is an age that needs no synchronised clocks
            "clients": [
                {"kind": f.kind, "ip": f.client_ip, "user_agent": f.user_agent, "at": f.at}
                for f in issuer.fetch_log(kind)[-200:]
            ],
        },
    )


def _fetches_reset(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    issuer.reset_fetches()
    return json_reply(200, {"fetches": {}})


def _down(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    seconds = float(body.get("seconds", 5))
    issuer._down_for(seconds)
    return json_reply(202, {"down_for": seconds}, {"Connection": "close"})


def _reset(issuer: Issuer, request: Request, body: Mapping[str, Any]) -> Reply:
    issuer.reset()
    return json_reply(200, issuer.admin_state())


class Route(NamedTuple):
    """An admin endpoint and its line in ``GET /admin``'s ``endpoints`` (None: an alias or a view left out)."""

    handler: Handler
    help: str | None = None


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/admin"): Route(_state, "state: keys, faults, clock offset, fetch counts"),
    ("GET", "/admin/state"): Route(_state),
    ("POST", "/admin/tokens"): Route(
        _token,
        'body {"case": NAME, "audience": AUD}: that bad-token case\'s token, its keys prepared '
        'here (see "keys_changed"), with level, verdict and hint; without a case, a valid token',
    ),
    ("GET", "/admin/keys"): Route(_keys),
    ("POST", "/admin/keys/next"): Route(_keys_next, "publish the next key (not yet signing)"),
    ("POST", "/admin/keys/promote"): Route(
        _keys_promote, "next key becomes active, the old one passive (still published)"
    ),
    ("POST", "/admin/keys/retire"): Route(_keys_retire, 'unpublish passive keys (body {"kid": ...} for one)'),
    ("POST", "/admin/keys/reset"): Route(
        _keys_reset, "keys back to the initial state (one active key): undoes a case's or a rotation's keys"
    ),
    ("GET", "/admin/faults"): Route(_faults),
    ("POST", "/admin/faults"): Route(
        _faults_set, 'body {"kind": "jwks", "status": 500 | "delay": 5 | "garbage": "truncated"}'
    ),
    ("DELETE", "/admin/faults"): Route(_faults_clear, "clear all faults (?kind=jwks for one)"),
    ("POST", "/admin/faults/clear"): Route(_faults_clear),
    ("POST", "/admin/clock"): Route(_clock, 'body {"offset": seconds}'),
    ("GET", "/admin/fetches"): Route(
        _fetches, "fetch counts per endpoint kind, the last 200 requests with their time (?kind=jwks)"
    ),
    ("POST", "/admin/fetches/reset"): Route(_fetches_reset, "zero the fetch counts"),
    ("POST", "/admin/down"): Route(_down, 'body {"seconds": 5}: close the port, reopen after that long'),
    ("POST", "/admin/reset"): Route(_reset, "clear faults, clock, counts; keys back to the initial state"),
}
"""Every admin endpoint by ``(method, path)``."""

HELP: dict[str, str] = {f"{method} {path}": route.help for (method, path), route in ROUTES.items() if route.help}
"""The endpoint list ``GET /admin`` and every 404 carry."""


def answer(issuer: Issuer, request: Request) -> Reply:
    """Answer one request under ``/admin``: 400 for a body that is not a JSON object, 404 for an unknown
    endpoint, 409 when the issuer refuses (e.g. a second next key), 400 for a bad value."""
    path, method = request.path.rstrip("/"), request.method
    try:
        body = request.json() if method == "POST" else {}
    except ValueError:
        return json_reply(400, {"error": "body is not JSON"})
    if not isinstance(body, dict):
        return json_reply(400, {"error": "body must be a JSON object"})
    route = ROUTES.get((method, path))
    if route is None:
        return json_reply(404, {"error": f"no admin endpoint {method} {path}", "endpoints": HELP})
    try:
        return route.handler(issuer, request, body)
    except IssuerError as exc:
        return json_reply(409, {"error": exc.message, "fix": exc.fix})
    except (TypeError, ValueError) as exc:
        return json_reply(400, {"error": str(exc)})
