"""Provoke each kind of response (401, 403, 404, 405, 422, 429, 5xx, preflight) from an arbitrary backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from .client import ContractClient
from .openapi import OpenAPIDoc, Operation
from .target.settings import TargetSettings

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
                 rate_budget: int) -> None:
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

    def ok(self) -> httpx.Response:
        return self.client.get("/health")

    def unauthorized(self) -> httpx.Response:
        secured = [op for op in self._ops() if op.secured]
        if not secured:
            pytest.skip("no operation in the OpenAPI document has a security requirement")
        op = next((o for o in secured if o.method == "GET"), secured[0])
        return self.client.request(op.method, op.url(), json={} if op.has_body else None)

    def forbidden(self) -> httpx.Response:
        if not self.settings.roles:
            pytest.skip("no role-protected endpoint configured: add [[roles]] path/method/roles to "
                        "[tool.makrx-contract]")
        rule = self.settings.roles[0]
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
            headers = self.bearer() if op.secured else {}
            return self.client.request(op.method, op.url(fill="not-a-number"), headers=headers)
        bodied = [o for o in ops if o.has_body]
        if bodied:
            op = bodied[0]
            return self.client.request(op.method, op.url(), headers=self.bearer() if op.secured else {},
                                       json={"makrx-contract": ["not", "the", "schema"]})
        pytest.skip("no operation with a typed path parameter or a request body to send invalid input to")

    def malformed_json(self) -> httpx.Response:
        bodied = [o for o in self._ops() if o.has_body]
        if not bodied:
            pytest.skip("no operation in the OpenAPI document takes a request body")
        op = bodied[0]
        headers = {"Content-Type": "application/json", **(self.bearer() if op.secured else {})}
        return self.client.request(op.method, op.url(), headers=headers, content=b'{"name": "x", broken')

    def rate_limit_path(self) -> str:
        if self.settings.rate_limit_path:
            return self.settings.rate_limit_path
        for op in self._ops():
            if op.method == "GET" and not op.secured and "{" not in op.path and op.path.startswith("/api") \
                    and not is_health_path(op.path):
                return op.path
        pytest.skip("no public GET endpoint under /api to rate-limit: set rate_limit_path in [tool.makrx-contract]")

    def rate_limited(self, client: ContractClient | None = None) -> httpx.Response:
        """Burst from a fresh source address until a 429 (or the budget is spent: the last response)."""
        client = client or self.new_client()
        path = self.rate_limit_path()
        response = client.get(path)
        for _ in range(self.rate_budget - 1):
            if response.status_code == 429:
                break
            response = client.get(path)
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
                headers = {"Origin": LOCAL_ORIGIN, **(self.bearer() if op.secured else {})}
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
