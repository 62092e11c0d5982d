"""Provoke each kind of response (401, 403, 404, 405, 422, 429, 5xx, preflight) from an arbitrary backend."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from makrx_contracts.harness.backend.settings import RoleRule, TargetSettings, parse_operation
from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.services.base import Faults

from .access import Protection, is_health_path, rule_for
from .burst import RateOp, burst
from .cors import preflight
from .openapi import OpenAPIDoc, Operation

__all__ = ["HEALTH_PATHS", "KINDS", "LOCAL_ORIGIN", "Provoker", "frozen", "is_health_path", "outage"]

KINDS = ("200", "401", "403", "404", "405", "422", "429", "5xx", "preflight")
LOCAL_ORIGIN = "http://localhost:3000"
HEALTH_PATHS = (
    "/health",
    "/api/health",
    "/health/live",
    "/health/readyz",
    "/api/v1/health/live",
    "/api/v1/health/readyz",
)


_WRITES = ("POST", "PUT", "PATCH", "DELETE")


class Provoker:
    """Finds, from the OpenAPI document and per-target settings, a request that yields each kind.

    When a kind cannot be provoked on this backend, the contract is skipped with a reason that says
    which setting makes it possible.
    """

    def __init__(
        self,
        client: ContractClient,
        new_client: Callable[[], ContractClient],
        doc: OpenAPIDoc | None,
        settings: TargetSettings,
        mint: Callable[..., str] | None,
        outage: Callable[[], Any],
        rate_budget: int,
        protection: Callable[[], Protection],
        auth_probe: Callable[[], Operation] | None = None,
        discovered: Callable[..., None] | None = None,
    ) -> None:
        """``protection``: which operations need a token beyond the document's `security` (found lazily, like
        ``auth_probe``, the operation a plain valid token may call: both cost requests);
        ``discovered(key, toml_value, note)`` reports a setting found instead of configured."""
        self.protection = protection
        self.auth_probe = auth_probe
        self.discovered = discovered
        self.client = client
        self.new_client = new_client
        self.doc = doc
        self.settings = settings
        self.mint = mint
        self.outage = outage
        self.rate_budget = rate_budget
        self.rate_ops_tried: tuple[str, ...] = ()

    def _ops(self) -> list[Operation]:
        """The document's operations, ``secured`` also where the document is silent but a token is needed."""
        if self.doc is None:
            pytest.skip("the target serves no OpenAPI document at /openapi.json, so no operation can be chosen")
        return self.protection().operations(self.doc)

    def bearer(self, **claims: Any) -> dict[str, str]:
        """A valid token's header; ``mint`` is None when the target does not trust the harness's issuer."""
        if self.mint is None:
            pytest.skip("needs a token the backend trusts: a URL target trusts its own Keycloak, not the harness's")
        return {"Authorization": f"Bearer {self.mint(**claims)}"}

    def credentials(self, op: Operation, **claims: Any) -> dict[str, str]:
        """What a caller allowed to call ``op`` sends: nothing for a public operation, a valid token with
        the roles a role rule names (so a 422 or 5xx provoked there is not a role's 403)."""
        if not op.secured:
            return {}
        rule = rule_for(op, self.role_rules)
        return self.bearer(**claims, **({"roles": rule.roles} if rule else {}))

    def ok(self) -> httpx.Response:
        return self.client.get("/health")

    def unauthorized(self) -> httpx.Response:
        secured = [op for op in self._ops() if op.secured]
        if not secured:
            pytest.skip(
                "no operation is known to need a token: none has a security requirement in the OpenAPI "
                "document or a [[roles]] entry, and none asked answered 401 without a token"
            )
        op = next((o for o in secured if o.method == "GET"), secured[0])
        return self.client.request(op.method, op.url(), json={} if op.has_body else None)

    def forbidden(self) -> httpx.Response:
        rules = self.role_rules
        if not rules:
            pytest.skip(
                "no role-protected endpoint known: no OpenAPI security requirement names scopes, and no "
                "[[roles]] path/method/roles in [tool.makrx-contract]"
            )
        rule = rules[0]
        path = rule.path
        op = next((o for o in self._ops() if o.path == rule.path and o.method == rule.method), None)
        if op is not None:
            path = op.url()
        headers = self.bearer(roles=("makrx-contract-no-such-role",), client_roles={})
        return self.client.request(rule.method, path, headers=headers, json={} if op and op.has_body else None)

    def not_found(self) -> httpx.Response:
        return self.client.get(f"/api/v1/makrx-contract-missing-{uuid.uuid4().hex[:8]}")

    def method_not_allowed(self) -> httpx.Response:
        for op in self._ops():
            if "{" in op.path:
                continue
            allowed = self.doc.methods_of(op.path) if self.doc else set()
            for method in ("PATCH", "PUT", "DELETE", "POST"):
                if method not in allowed:
                    return self.client.request(method, op.path)
        return self.client.request("PATCH", "/health")

    def unprocessable(self) -> httpx.Response:
        ops = self._ops()
        typed = [o for o in ops if any(t in ("integer", "number") for t in o.path_params.values())]
        for op in sorted(typed, key=lambda o: (o.secured, o.method != "GET")):
            return self.client.request(op.method, op.url(fill="not-a-number"), headers=self.credentials(op))
        bodied = [o for o in ops if o.has_body]
        if bodied:
            op = bodied[0]
            return self.client.request(
                op.method, op.url(), headers=self.credentials(op), json={"makrx-contract": ["not", "the", "schema"]}
            )
        pytest.skip("no operation with a typed path parameter or a request body to send invalid input to")

    def malformed_json(self) -> httpx.Response:
        """A body that is not JSON, sent to the first operation documented to take a body; when none is, to
        each write under /api until one answers past routing and auth (a body read by hand is in no document)."""
        ops = self._ops()
        bodied = [o for o in ops if o.has_body][:1]
        candidates = bodied or [
            o for o in ops if o.method in _WRITES[:3] and o.path.startswith("/api") and not is_health_path(o.path)
        ]
        for op in candidates:
            headers = {"Content-Type": "application/json", **self.credentials(op)}
            response = self.client.request(op.method, op.url(), headers=headers, content=b'{"name": "x", broken')
            if bodied or response.status_code not in (401, 403, 404, 405):
                return response
        pytest.skip(
            "no operation takes a request body: the OpenAPI document declares none, and no POST, PUT or "
            "PATCH under /api answered a malformed body past routing and auth"
        )

    @property
    def role_rules(self) -> tuple[RoleRule, ...]:
        return self.protection().rules

    @functools.cached_property
    def rate_op(self) -> RateOp:
        """What the rate-limit bursts send: `rate_limit_path` of the settings, else the first candidate (a
        public GET under /api, the GET a plain token may call, then one write per method with a JSON body,
        for a limiter that counts only writes) that a burst from a fresh caller sees answered 429; when none
        is, the first that answered without a server error. Found once and reported; `rate_ops_tried` names
        what was burst."""
        if self.settings.rate_limit_path:
            method, path = parse_operation(self.settings.rate_limit_path, "rate_limit_path")
            listed = self._ops() if self.doc else []
            op = next((o for o in listed if o.path == path and o.method == method), None)
            return RateOp(op or Operation(path, method, False, method != "GET", {}))
        tried: list[RateOp] = []
        answering: list[RateOp] = []  # candidates whose burst ended in an answer below 500
        chosen: RateOp | None = None
        for candidate in self.ordinary_ops():
            tried.append(candidate)
            try:
                status = self._burst(candidate).status_code
            except httpx.TransportError:
                continue  # never answers: the next candidate
            if status == 429:
                chosen = candidate
                break
            if status < 500:
                answering.append(candidate)
        if not tried:
            pytest.skip(
                "no operation under /api to rate-limit (a public GET, one a plain token may call, or a "
                "write with a JSON body): set rate_limit_path in [tool.makrx-contract]"
            )
        # None limited: RATE-LIMIT shows a burst that was answered, not one that failed on its own.
        chosen = chosen or (answering or tried)[0]
        self.rate_ops_tried = tuple(str(op) for op in tried)
        if self.discovered is not None:
            self.discovered("rate_limit_path", str(chosen), "the request the rate-limit bursts send")
        return chosen

    def ordinary_ops(self) -> Iterator[RateOp]:
        """The requests an everyday client sends, in this order: a public GET under /api, the GET a plain
        token may call, one write per method (with a malformed JSON body: no data changes)."""
        ops = [o for o in self._ops() if o.path.startswith("/api") and not is_health_path(o.path)]
        yield from [RateOp(o) for o in ops if o.method == "GET" and not o.secured and "{" not in o.path][:1]
        if self.auth_probe is not None and self.mint is not None:
            try:
                probe = self.auth_probe()
            except pytest.skip.Exception:
                probe = None  # no operation a plain token may call: AUTH-VALID-TOKEN says why
            if probe is not None and probe.method == "GET" and "{" not in probe.path:
                yield RateOp(probe)
        for method in _WRITES:
            # Only writes that take a body: the malformed body stops them before any handler runs.
            writes = sorted(
                (o for o in ops if o.method == method and o.has_body and (self.mint or not o.secured)),
                key=lambda o: ("{" in o.path, o.secured),
            )
            yield from [RateOp(o) for o in writes[:1]]

    def rate_limit_auth(self, op: RateOp | None = None) -> dict[str, str]:
        """Credentials of one new caller of ``op`` (default: the rate-limit operation): none for a public one,
        else a valid token of a user of its own (a limiter keyed by user never counts two callers together)."""
        return self.credentials((op or self.rate_op).operation, user=f"rate-{uuid.uuid4().hex}")

    def _burst(self, op: RateOp, client: ContractClient | None = None) -> httpx.Response:
        """Send ``op`` from a fresh caller until a 429 (or the budget is spent: the last response)."""
        headers = self.rate_limit_auth(op)
        seen = burst([client or self.new_client()], op, self.rate_budget, headers=lambda n: headers)
        if seen.last is None:
            raise seen.transport_errors[-1]
        return seen.last

    def rate_limited(self, client: ContractClient | None = None) -> httpx.Response:
        """Burst the rate-limit operation from a fresh source address until a 429 (or the last response)."""
        return self._burst(self.rate_op, client)

    def server_error(self) -> httpx.Response:
        """With the database stopped, the first DB-backed operation that answers 5xx."""
        candidates = [
            o for o in self._ops() if o.method == "GET" and o.path.startswith("/api") and not is_health_path(o.path)
        ]
        candidates.sort(key=lambda o: ("{" in o.path, o.secured))
        last: httpx.Response | None = None
        with self.outage():
            for op in candidates:
                headers = {"Origin": LOCAL_ORIGIN, **self.credentials(op)}
                try:
                    last = self.client.get(op.url(), headers=headers)
                except httpx.TimeoutException:
                    continue
                if last.status_code >= 500:
                    return last
        pytest.skip(
            "no GET operation under /api answered 5xx with the database stopped"
            + (f" (last: {last.status_code} {last.request.url.path})" if last is not None else "")
        )

    def preflight(self) -> httpx.Response:
        return preflight(self.client, LOCAL_ORIGIN, headers=("authorization",))

    def provoke(self, kind: str) -> httpx.Response:
        return {
            "200": self.ok,
            "401": self.unauthorized,
            "403": self.forbidden,
            "404": self.not_found,
            "405": self.method_not_allowed,
            "422": self.unprocessable,
            "429": self.rate_limited,
            "5xx": self.server_error,
            "preflight": self.preflight,
        }[kind]()


def outage(service: Faults, what: str) -> AbstractContextManager[None]:
    """``service`` stopped for the block (``Faults.outage``); the contract skips for one the harness did not
    start, since it may not stop it."""
    if not service.owns_process:
        pytest.skip(f"{what} is external (not started by the harness), so it cannot be stopped")
    return service.outage()


def frozen(service: Faults, what: str) -> AbstractContextManager[None]:
    """``service`` paused for the block (``Faults.frozen``); skips for an external one, as ``outage``."""
    if not service.owns_process:
        pytest.skip(f"{what} is external (not started by the harness), so it cannot be paused")
    return service.frozen()
