"""Requests with bearer tokens to a target's protected operation, shared by the AUTH contract modules."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
import pytest
from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.contract import violation
from makrx_contracts.harness.issuer.fixtures import TokenMaker
from makrx_contracts.harness.ports import SourceAddresses

from .openapi import Operation

HANG_SECONDS = 10.0  # the client timeout: no answer by then is a hang
PER_ADDRESS = 40  # requests per source address, well under any per-IP limit (often 60-100/min)
_BEARER_CHALLENGE = re.compile(r"\s*bearer(\s|,|$)", re.IGNORECASE)


def bearer(token: str) -> str:
    return f"Bearer {token}"


def challenges_bearer(response: httpx.Response) -> bool:
    """A `WWW-Authenticate` challenge for the Bearer scheme (RFC 6750 §3) among the response's challenges."""
    return any(_BEARER_CHALLENGE.match(value) for value in response.headers.get_list("www-authenticate"))


def accepted(op: Operation, response: httpx.Response) -> bool:
    """Got past authentication: 2xx; for an operation with parameters or a body, anything but 401/403/5xx."""
    if "{" in op.path or op.has_body:
        return response.status_code not in (401, 403) and response.status_code < 500
    return 200 <= response.status_code < 300


class Caller:
    """Requests to one protected operation from a fresh source address every PER_ADDRESS requests, so the
    target's per-IP rate limit never answers for it; no answer within HANG_SECONDS is a violation."""

    def __init__(self, base_url: str, op: Operation, addresses: SourceAddresses) -> None:
        self.base_url = base_url
        self.op = op
        self.addresses = addresses
        self._clients: list[ContractClient] = []
        self._used = PER_ADDRESS

    def _client(self) -> ContractClient:
        if self._used >= PER_ADDRESS:
            self._clients.append(
                ContractClient(self.base_url, source_address=self.addresses.next(), timeout=HANG_SECONDS)
            )
            self._used = 0
        self._used += 1
        return self._clients[-1]

    def raw(
        self, authorization: str | None, *, method: str | None = None, path: str | None = None, body: bool | None = None
    ) -> httpx.Response:
        """One request (the operation's, unless method/path say otherwise); transport errors propagate."""
        headers = {} if authorization is None else {"Authorization": authorization}
        with_body = self.op.has_body if body is None else body
        return self._client().request(
            method or self.op.method, path or self.op.url(), headers=headers, json={} if with_body else None
        )

    def send(
        self,
        authorization: str | None,
        *,
        title: str,
        expected: str,
        details: str | None = None,
        method: str | None = None,
        path: str | None = None,
        body: bool | None = None,
    ) -> httpx.Response:
        """Like raw(), but a timeout or a dropped connection fails the contract."""
        __tracebackhide__ = True
        try:
            return self.raw(authorization, method=method, path=path, body=body)
        except httpx.TimeoutException:
            raise violation(
                f"{title}: no answer",
                received=f"no answer within {HANG_SECONDS:.0f} s",
                expected=expected,
                details=details,
            ) from None
        except httpx.TransportError as exc:
            raise violation(
                f"{title}: the connection failed",
                received=f"{type(exc).__name__}: {exc}",
                expected=expected,
                details=details,
            ) from None

    def close(self) -> None:
        for client in self._clients:
            client.close()


@dataclass
class ValidTokenCheck:
    """Whether the target accepts a plain valid token at all: the precondition of every contract that
    needs an accepted token to judge something else (else it is skipped, and AUTH-VALID-TOKEN fails)."""

    caller: Caller
    make_token: TokenMaker
    _ok: bool | None = None

    def require(self) -> None:
        if self._ok is None:
            try:
                self._ok = accepted(self.caller.op, self.caller.raw(bearer(self.make_token())))
            except httpx.TransportError:
                self._ok = False
        if not self._ok:
            pytest.skip("precondition: a valid token is refused (see AUTH-VALID-TOKEN)")
