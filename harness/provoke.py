"""Provoke each kind of response (401, 403, 404, 405, 422, 429, 5xx, preflight) from an arbitrary backend."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from .access import role_rules, rule_for
from .client import ContractClient
from .openapi import OpenAPIDoc, Operation
from .target.settings import RoleRule, TargetSettings

__all__ = ["Provoker", "database_outage", "KINDS", "LOCAL_ORIGIN", "HEALTH_PATHS", "is_health_path"]

KINDS = ("200", "401", "403", "404", "405", "422", "429", "5xx", "preflight")
LOCAL_ORIGIN = "http://localhost:3000"
HEALTH_PATHS = ("/health", "/api/health", "/health/live", "/health/readyz", "/api/v1/health/live",
                "/api/v1/health/readyz")


def is_health_path(path: str) -> bool:
    return "health" in path or path.endswith(("/live", "/ready", "/readyz", "/livez", "/metrics"))


class Provoker:
    """Finds, from the OpenAPI document and per-target settings, a request that yields each kind.

    When a kind cannot be provoked on this backend, the contract is skipped with a reason that says
    which setting makes it possible.
    """

    def __init__(self, client: ContractClient, new_client: Callable[[], ContractClient], doc: OpenAPIDoc | None,
                 settings: TargetSettings, mint: Callable[..., str] | None, outage: Callable[[], Any],
                 rate_budget: int, auth_probe: Callable[[], Operation] | None = None,
                 discovered: Callable[..., None] | None = None) -> None:
        """``auth_probe``: the operation a plain valid token may call (found lazily: it costs requests);
        ``discovered(key, toml_value, note)`` reports a setting found instead of configured."""
        self.auth_probe = auth_probe
        self.discovered = discovered
        self.client = client
        self.new_client = new_client
        self.doc = doc
        self.settings = settings
        self.mint = mint
        self.outage = outage
        self.rate_budget = rate_budget

    def _ops(self) -> list[Operation]:
        if self.doc is None:
            pytest.skip("the target serves no OpenAPI document at /openapi.json, so no operation can be chosen")
        return self.doc.operations

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
            pytest.skip("no operation in the OpenAPI document has a security requirement")
        op = next((o for o in secured if o.method == "GET"), secured[0])
        return self.client.request(op.method, op.url(), json={} if op.has_body else None)

    def forbidden(self) -> httpx.Response:
        rules = self.role_rules
        if not rules:
            pytest.skip("no role-protected endpoint known: no OpenAPI security requirement names scopes, and no "
                        "[[roles]] path/method/roles in [tool.makrx-contract]")
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
            return self.client.request(op.method, op.url(), headers=self.credentials(op),
                                       json={"makrx-contract": ["not", "the", "schema"]})
        pytest.skip("no operation with a typed path parameter or a request body to send invalid input to")

    def malformed_json(self) -> httpx.Response:
        bodied = [o for o in self._ops() if o.has_body]
        if not bodied:
            pytest.skip("no operation in the OpenAPI document takes a request body")
        op = bodied[0]
        headers = {"Content-Type": "application/json", **self.credentials(op)}
        return self.client.request(op.method, op.url(), headers=headers, content=b'{"name": "x", broken')

    @functools.cached_property
    def role_rules(self) -> tuple[RoleRule, ...]:
        return role_rules(self.doc, self.settings)

    @functools.cached_property
    def _rate_limit_op(self) -> Operation:
        """`rate_limit_path` of the settings, else a public GET under /api, else the GET a plain token may
        call (an API all behind auth is limited too); found once, and reported when found."""
        op = self._find_rate_limit_op()
        if not self.settings.rate_limit_path and self.discovered is not None:
            self.discovered("rate_limit_path", op.path, "the GET the rate-limit bursts call")
        return op

    def _find_rate_limit_op(self) -> Operation:
        if self.settings.rate_limit_path:
            path = self.settings.rate_limit_path
            listed = [op for op in (self.doc.operations if self.doc else []) if op.path == path and op.method == "GET"]
            return listed[0] if listed else Operation(path, "GET", False, False, {})
        for op in self._ops():
            if op.method == "GET" and not op.secured and "{" not in op.path and op.path.startswith("/api") \
                    and not is_health_path(op.path):
                return op
        probe = self.auth_probe() if self.auth_probe is not None and self.mint is not None else None
        if probe is not None and probe.method == "GET" and "{" not in probe.path:
            return probe
        pytest.skip("no GET endpoint under /api to rate-limit (public, or one a plain token may call): set "
                    "rate_limit_path in [tool.makrx-contract]")

    def rate_limit_path(self) -> str:
        return self._rate_limit_op.path

    def rate_limit_auth(self) -> dict[str, str]:
        """Credentials of one new caller of the rate-limit path: none for a public one, else a valid token
        of a user of its own (a limiter keyed by user never counts two callers together)."""
        op = self._rate_limit_op
        return self.credentials(op, user=f"rate-{uuid.uuid4().hex}") if op.secured else {}

    def rate_limited(self, client: ContractClient | None = None) -> httpx.Response:
        """Burst from a fresh source address until a 429 (or the budget is spent: the last response)."""
        client = client or self.new_client()
        path = self.rate_limit_path()
        headers = self.rate_limit_auth()
        response = client.get(path, headers=headers)
        for _ in range(self.rate_budget - 1):
            if response.status_code == 429:
                break
            response = client.get(path, headers=headers)
        # Keep only the last exchanges: hundreds of identical ones would bury the failure message.
        del client.exchanges[:-2]
        return response

    def server_error(self) -> httpx.Response:
        """With the database stopped, the first DB-backed operation that answers 5xx."""
        candidates = [o for o in self._ops() if o.method == "GET" and o.path.startswith("/api")
                      and not is_health_path(o.path)]
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
        pytest.skip("no GET operation under /api answered 5xx with the database stopped"
                    + (f" (last: {last.status_code} {last.request.url.path})" if last is not None else ""))

    def preflight(self, origin: str = LOCAL_ORIGIN, path: str = "/api/health") -> httpx.Response:
        return self.client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                                                  "Access-Control-Request-Headers": "authorization"})

    def provoke(self, kind: str) -> httpx.Response:
        return {
            "200": self.ok, "401": self.unauthorized, "403": self.forbidden, "404": self.not_found,
            "405": self.method_not_allowed, "422": self.unprocessable, "429": self.rate_limited,
            "5xx": self.server_error, "preflight": self.preflight,
        }[kind]()


@contextmanager
def database_outage(postgres: Any) -> Iterator[None]:
    """Stop the database for the block; always start it again."""
    if not getattr(postgres, "owns_process", False):
        pytest.skip("the database is external (not started by the harness), so it cannot be stopped")
    postgres.stop()
    try:
        yield
    finally:
        postgres.start()
